"""A run folder: manifest.json, append-only JSONL shards of answers, and a lock.

Layout of `out/`:
  manifest.json       the run's configuration (compared on every rerun) and its status
  shards/000001.jsonl one file per finished batch, written to a temporary name and renamed, so a
                      kill leaves either a whole shard or none
  .lock               held while a process collects into the folder (pid and host inside)
"""

from __future__ import annotations

import json
from pathlib import Path

from bayespref.errors import CollectError
from bayespref.io.atomic import write_atomically, write_json
from bayespref.io.locking import FolderLock

SHARDS = "shards"
LOCK = ".lock"
MANIFEST = "manifest.json"
# The table a run writes beside its shards, by template kind.
OUTPUTS = {"choice": "comparisons.parquet", "rating": "ratings.parquet"}


class RunStore:
    """Use as a context manager: entering takes the folder's lock, leaving releases it."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.shards = self.out / SHARDS
        self.lock = FolderLock(self.out / LOCK, str(self.out), CollectError)
        self._next_shard = 1

    def __enter__(self) -> RunStore:
        self._refuse_foreign_table()
        self.shards.mkdir(parents=True, exist_ok=True)
        self.lock.__enter__()
        for leftover in self.shards.glob(".*.tmp-*"):  # from a process killed mid-write
            leftover.unlink()
        names = [int(path.stem) for path in self.shards.glob("*.jsonl") if path.stem.isdigit()]
        self._next_shard = max(names, default=0) + 1
        return self

    def __exit__(self, *exc_info) -> None:
        self.lock.__exit__(*exc_info)

    def _refuse_foreign_table(self) -> None:
        """A table in a folder without a manifest was not written by a run: never overwrite it."""
        if (self.out / MANIFEST).exists():
            return
        for name in OUTPUTS.values():
            if (self.out / name).exists():
                raise CollectError(
                    f"'{self.out / name}' exists, but '{self.out}' has no {MANIFEST}, so it is not "
                    "a collect run folder and collecting would overwrite it; choose another --out"
                )

    def read_manifest(self) -> dict | None:
        self._refuse_foreign_table()
        path = self.out / MANIFEST
        if not path.exists():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as error:
            raise CollectError(f"'{path}' is not a readable manifest ({error})") from error
        if not isinstance(manifest, dict):
            raise CollectError(f"'{path}' is not a readable manifest (not a JSON object)")
        return manifest

    def write_manifest(self, manifest: dict) -> None:
        write_json(manifest, self.out / MANIFEST)

    def append(self, records: list[dict]) -> None:
        """Write one shard holding `records` (one JSON object per line)."""
        path = self.shards / f"{self._next_shard:06d}.jsonl"
        lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        write_atomically(path, lines)
        self._next_shard += 1

    def records(self) -> dict[str, dict]:
        """The latest record of every key; a success is never replaced by a later error. A record
        whose answer is not text counts as an error."""
        latest: dict[str, dict] = {}
        for path in sorted(self.shards.glob("*.jsonl")):
            for number, line in enumerate(_shard_lines(path), start=1):
                record = _shard_record(path, number, line)
                if record.get("error") is None and not isinstance(record.get("raw_response"), str):
                    # Written before engines read content parts: a failure, asked again.
                    kind = type(record.get("raw_response")).__name__
                    record["error"] = f"the stored answer is not text ({kind})"
                previous = latest.get(record["key"])
                if previous is None or previous.get("error") is not None:
                    latest[record["key"]] = record
        return latest


def _shard_lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise CollectError(
            f"shard '{path}': bytes that are not UTF-8 at byte {error.start}"
        ) from error


def _shard_record(path: Path, number: int, line: str) -> dict:
    """One shard line as a record; a damaged line is an error naming the shard and the line."""
    try:
        record = json.loads(line)
    except ValueError as error:
        raise CollectError(
            f"shard '{path}', line {number}: not valid JSON ({error}); the shard was altered "
            "after it was written: move it aside to ask its trials again"
        ) from error
    if not isinstance(record, dict) or not isinstance(record.get("key"), str):
        raise CollectError(
            f"shard '{path}', line {number}: a record without a trial 'key'; the shard was "
            "altered after it was written: move it aside to ask its trials again"
        )
    return record
