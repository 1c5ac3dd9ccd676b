"""Trial keys and the manifest check that let a run folder be resumed safely."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from bayespref.collect.store import RunStore
from bayespref.errors import CollectError


def payload_hash(payload: object) -> str:
    """The sha256 of a JSON payload (keys sorted): trial keys are its first 24 hex digits."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def check_manifest(
    previous: dict | None, config: dict, out: Path, defaults: dict | None = None
) -> None:
    """Refuse to resume a folder whose manifest holds another configuration. A setting in
    `defaults` that the folder's manifest lacks (added later) matches when left at its default."""
    if previous is None:
        return
    before = previous.get("config", {})
    defaults = defaults or {}
    before = {key: defaults[key] for key in set(config) - set(before) if key in defaults} | before
    changed = sorted(key for key in set(before) | set(config) if before.get(key) != config.get(key))
    if changed:
        details = "; ".join(
            f"{key}: {before.get(key)!r} there, {config.get(key)!r} now" for key in changed
        )
        raise CollectError(
            f"'{out / 'manifest.json'}' belongs to a different collection ({details}); rerun with "
            "the same settings to resume it, or choose another --out folder"
        )


def resume_manifest(store: RunStore, manifest: dict, defaults: dict | None = None) -> dict | None:
    """Check the folder's manifest against this run's (refusing another configuration), keep
    its creation time, and write this run's manifest. Returns the folder's earlier manifest."""
    previous = store.read_manifest()
    check_manifest(previous, manifest["config"], store.out, defaults)
    manifest["created"] = (previous or {}).get("created") or datetime.now(UTC).isoformat()
    store.write_manifest(manifest)
    return previous
