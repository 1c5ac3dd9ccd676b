"""An exclusive lock file, so that two processes never write the same output."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

EMPTY_LOCK_GRACE_S = 10.0  # a lock file still empty after this long was left by a killed process


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class FolderLock:
    """Hold `path` (created with O_EXCL, holding pid and host) while writing `subject`.

    A lock whose process is gone (same host) is stale and taken over. Use as a context manager;
    a busy lock raises `error`."""

    def __init__(self, path: Path, subject: str, error: type[Exception]) -> None:
        self.path, self.subject, self.error = Path(path), subject, error

    def __enter__(self) -> FolderLock:
        for _ in range(2):
            try:
                handle = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder is not None:
                    raise self.error(
                        f"'{self.subject}' is in use by process {holder['pid']} on "
                        f"{holder['host']} (lock file '{self.path}'); wait for it to finish, or "
                        "delete the lock file if that process is gone"
                    ) from None
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(handle, "w") as lock:
                json.dump({"pid": os.getpid(), "host": socket.gethostname()}, lock)
            return self
        raise self.error(f"could not take the lock '{self.path}'; another process raced for it")

    def __exit__(self, *exc_info) -> None:
        self.path.unlink(missing_ok=True)

    def _holder(self) -> dict | None:
        """The lock's owner, or None when the lock is stale (its process is gone)."""
        try:
            holder = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (json.JSONDecodeError, UnicodeDecodeError):
            age = time.time() - self.path.stat().st_mtime
            return None if age > EMPTY_LOCK_GRACE_S else {"pid": "?", "host": "?"}
        if holder.get("host") == socket.gethostname() and not _alive(int(holder["pid"])):
            return None
        return holder
