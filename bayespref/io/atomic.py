"""Atomic file writes: through a temporary sibling and a rename, so no reader sees a partial file
and a killed writer leaves the old file (or none), never half of a new one."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def make_folder(folder: str | Path) -> None:
    """Create `folder` and its parents; a file in the way is an OSError naming that file."""
    folder = Path(folder)
    for ancestor in (folder, *folder.parents):
        if ancestor.exists():
            if not ancestor.is_dir():
                inside = "" if ancestor == folder else f", so '{folder}' cannot be made in it"
                raise NotADirectoryError(
                    errno.ENOTDIR, f"is a file, not a folder{inside}", str(ancestor)
                )
            break
    folder.mkdir(parents=True, exist_ok=True)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary sibling of `path` to write to; it replaces `path` when the block ends without
    an error, and is removed when it ends with one. `path` must not be a folder."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder; give a file name", str(path))
    make_folder(path.parent)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_atomically(path: str | Path, content: str | bytes) -> None:
    """Write text (UTF-8) or bytes to `path` atomically."""
    with atomic_path(path) as temporary:
        if isinstance(content, bytes):
            temporary.write_bytes(content)
        else:
            temporary.write_text(content, encoding="utf-8")


def write_json(data: dict, path: str | Path) -> None:
    """Write indented, key-sorted JSON atomically."""
    write_atomically(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
