"""A run folder: manifest.json, append-only JSONL shards of answers, and a lock.

Layout of `out/`:
  manifest.json       the run's configuration (compared on every rerun) and its status
  shards/000001.jsonl one file per finished batch, written to a temporary name and renamed, so a
                      kill leaves either a whole shard or none
  .lock               held while a process collects into the folder (pid and host inside)
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

SHARDS = "shards"
LOCK = ".lock"
MANIFEST = "manifest.json"
EMPTY_LOCK_GRACE_S = 10.0  # a lock file still empty after this long was left by a killed process


class CollectError(ValueError):
    """A collection that cannot run as asked: a busy or mismatched folder, a failing engine."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def write_json(data: dict, path: Path) -> None:
    """Write JSON atomically (temporary file in the same folder, then rename)."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    os.replace(temporary, path)


class RunStore:
    """Use as a context manager: entering takes the folder's lock, leaving releases it."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.shards = self.out / SHARDS
        self.lock = self.out / LOCK
        self._next_shard = 1

    def __enter__(self) -> RunStore:
        self.shards.mkdir(parents=True, exist_ok=True)
        self._acquire()
        for leftover in self.shards.glob(".*.tmp"):  # from a process killed mid-write
            leftover.unlink()
        names = [int(path.stem) for path in self.shards.glob("*.jsonl") if path.stem.isdigit()]
        self._next_shard = max(names, default=0) + 1
        return self

    def __exit__(self, *exc_info) -> None:
        self.lock.unlink(missing_ok=True)

    def _holder(self) -> dict | None:
        """The lock's owner, or None when the lock is stale (its process is gone)."""
        try:
            holder = json.loads(self.lock.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            age = time.time() - self.lock.stat().st_mtime
            return None if age > EMPTY_LOCK_GRACE_S else {"pid": "?", "host": "?"}
        if holder.get("host") == socket.gethostname() and not _alive(int(holder["pid"])):
            return None
        return holder

    def _acquire(self) -> None:
        for _ in range(2):
            try:
                handle = os.open(self.lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None:
                    raise CollectError(
                        f"'{self.out}' is in use by process {holder['pid']} on "
                        f"{holder['host']} (lock file '{self.lock}'); wait for it to finish, or "
                        "delete the lock file if that process is gone"
                    ) from None
                self.lock.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w") as lock:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, lock)
            return
        raise CollectError(f"could not take the lock '{self.lock}'; another process raced for it")

    def read_manifest(self) -> dict | None:
        path = self.out / MANIFEST
        return json.loads(path.read_text()) if path.exists() else None

    def write_manifest(self, manifest: dict) -> None:
        write_json(manifest, self.out / MANIFEST)

    def append(self, records: list[dict]) -> None:
        """Write one shard holding `records` (one JSON object per line)."""
        path = self.shards / f"{self._next_shard:06d}.jsonl"
        temporary = self.shards / f".{path.name}.tmp"
        with temporary.open("w", encoding="utf-8") as shard:
            for record in records:
                shard.write(json.dumps(record, ensure_ascii=False) + "\n")
        os.replace(temporary, path)
        self._next_shard += 1

    def records(self) -> dict[str, dict]:
        """The latest record of every key; a success is never replaced by a later error."""
        latest: dict[str, dict] = {}
        for path in sorted(self.shards.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                previous = latest.get(record["key"])
                if previous is None or previous.get("error") is not None:
                    latest[record["key"]] = record
        return latest
