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
from pathlib import Path

from bayespref.locking import FolderLock

SHARDS = "shards"
LOCK = ".lock"
MANIFEST = "manifest.json"


class CollectError(ValueError):
    """A collection that cannot run as asked: a busy or mismatched folder, a failing engine."""


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
        self.lock = FolderLock(self.out / LOCK, str(self.out), CollectError)
        self._next_shard = 1

    def __enter__(self) -> RunStore:
        self.shards.mkdir(parents=True, exist_ok=True)
        self.lock.__enter__()
        for leftover in self.shards.glob(".*.tmp"):  # from a process killed mid-write
            leftover.unlink()
        names = [int(path.stem) for path in self.shards.glob("*.jsonl") if path.stem.isdigit()]
        self._next_shard = max(names, default=0) + 1
        return self

    def __exit__(self, *exc_info) -> None:
        self.lock.__exit__(*exc_info)

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
        """The latest record of every key; a success is never replaced by a later error. A record
        whose answer is not text counts as an error."""
        latest: dict[str, dict] = {}
        for path in sorted(self.shards.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if record.get("error") is None and not isinstance(record.get("raw_response"), str):
                    # Written before engines read content parts: a failure, asked again.
                    kind = type(record.get("raw_response")).__name__
                    record["error"] = f"the stored answer is not text ({kind})"
                previous = latest.get(record["key"])
                if previous is None or previous.get("error") is not None:
                    latest[record["key"]] = record
        return latest
