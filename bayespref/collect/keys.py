"""Trial keys and the manifest check that let a run folder be resumed safely."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

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
