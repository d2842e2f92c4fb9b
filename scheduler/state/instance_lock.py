"""One ``scheduler run`` per SQLite state file: an exclusive OS lock beside it.

The lock is ``flock`` on ``<state file>.lock``, held for the service's
lifetime and released by the kernel when the process ends, however it ends
(a ``kill -9`` leaves no stale lock). The file holds who has it (pid, host,
since), so the second process can say whom it lost to.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from pathlib import Path
from types import TracebackType

from scheduler.errors import InstanceLocked, StateError
from tickless.clock import Clock, iso, utc_now


class InstanceLock:
    def __init__(self, state_path: Path, clock: Clock = utc_now) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self.state_path = state_path
        self.clock = clock
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise InstanceLocked naming the holder (StateError if the file cannot be made)."""
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(str(self.state_path), f"cannot create the lock file {self.path}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(os.read(fd, 4096))
            os.close(fd)
            raise InstanceLocked(str(self.state_path), holder) from None
        record = {"pid": os.getpid(), "host": socket.gethostname(), "since": iso(self.clock())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.release()


def _describe(raw: bytes) -> str:
    try:
        holder = json.loads(raw.decode())
        return f"pid {holder['pid']} on {holder['host']}, since {holder['since']}"
    except (ValueError, KeyError, TypeError):
        return "a process that has not said who it is yet"
