"""The refresh's single-flight lock: one refresh at a time per cache file, across threads and processes.

An exclusive, non-blocking ``flock`` on ``<CATALOG_DB>.refresh.lock``. Each
attempt opens the file anew, so two threads of one process exclude each other
exactly like two processes do; the kernel drops the lock if the holder dies.
The holder writes its run id into the file so a loser can name it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO

from catalog.errors import CacheError


@dataclass(frozen=True)
class Holder:
    run_id: str | None
    started_at: str | None
    pid: int | None


class AlreadyRunning(Exception):  # control flow inside the package; never escapes refresh_catalog
    def __init__(self, holder: Holder) -> None:
        self.holder = holder
        super().__init__(f"a catalog refresh is already running (run_id {holder.run_id})")


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".refresh.lock")


class RefreshLock:
    def __init__(self, db_path: Path, run_id: str, started_at: str) -> None:
        self.db_path = db_path
        self.path = lock_path(db_path)
        self.run_id = run_id
        self.started_at = started_at
        self._file: IO[str] | None = None

    def __enter__(self) -> RefreshLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "a+", encoding="utf-8")  # held open until __exit__: the lock lives as long as the descriptor
        except OSError as exc:
            raise CacheError(
                str(self.db_path), f"cannot create its refresh lock {self.path}: {exc.strerror or exc}",
                "check the path and its permissions (CATALOG_DB)",
            ) from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise AlreadyRunning(read_holder(self.path)) from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"run_id": self.run_id, "started_at": self.started_at, "pid": os.getpid()}))
        handle.flush()
        self._file = handle
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            self._file.close()  # closing the last descriptor releases the lock
            self._file = None


def read_holder(path: Path, patience: float = 1.0) -> Holder:
    """The running refresh's id; waits briefly for a holder that has just taken the lock."""
    deadline = time.monotonic() + patience
    while True:
        try:
            data = json.loads(path.read_text(encoding="utf-8") or "null")
        except (OSError, ValueError):
            data = None
        if isinstance(data, dict) or time.monotonic() >= deadline:
            break
        time.sleep(0.01)
    data = data if isinstance(data, dict) else {}
    return Holder(data.get("run_id"), data.get("started_at"), data.get("pid"))
