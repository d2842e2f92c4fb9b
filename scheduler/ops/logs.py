"""Logging set-up: text or one JSON object per line, secrets redacted."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import threading
import time
from collections.abc import Iterable
from logging.handlers import QueueHandler
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _utc_time(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class _UtcTextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc_time(record)


class _LeanQueueHandler(QueueHandler):
    """Hands records to the listener thread, doing as little as possible on the run's thread.

    The standard prepare() formats the message and copies the record; the
    listener formats it again anyway. Only this handler sees the record, so
    merging the arguments in place is enough (exception text is rendered here
    because a traceback cannot cross threads safely).
    """

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg = record.getMessage()
        record.args = None
        if record.exc_info:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
            record.msg = f"{record.msg}\n{record.exc_text}"
            record.exc_info = None
        return record


class RedactingFormatter(logging.Formatter):
    """Formats with ``inner``, then blanks every secret out of the whole line.

    The token is never passed to a logger on purpose; this is the second line
    of defence against a library message or exception text that quotes it.
    """

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = [secret for secret in secrets if secret]

    def add(self, secret: str) -> None:
        """Redact ``secret`` too from now on (a rotated token); the old ones stay redacted."""
        if secret and secret not in self.secrets:
            self.secrets = [*self.secrets, secret]

    def format(self, record: logging.LogRecord) -> str:
        line = self.inner.format(record)
        for secret in self.secrets:
            line = line.replace(secret, "[redacted]")
        return line


class _LineWriter:
    """The one thread that formats the queued records and writes them out.

    Lines waiting together go out in one write and one flush: when a thousand
    runs start at once, two thousand lines are written in a few writes instead
    of two thousand, each through a handler's lock and its own flush.
    """

    _MOST_PER_WRITE = 512

    def __init__(self, records: queue.SimpleQueue[logging.LogRecord | None], formatter: logging.Formatter,
                 stream: TextIO) -> None:
        self._records = records
        self._formatter = formatter
        self._stream = stream
        self._thread = threading.Thread(target=self._write, name="log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write out every record queued so far, then end the thread."""
        self._records.put(None)
        self._thread.join()

    def _write(self) -> None:
        while True:
            record = self._records.get()
            batch = [record]
            while record is not None and len(batch) < self._MOST_PER_WRITE:
                try:
                    record = self._records.get_nowait()
                except queue.Empty:
                    break
                batch.append(record)
            lines = [self._line(entry) for entry in batch if entry is not None]
            if lines:
                try:
                    self._stream.write("\n".join(lines) + "\n")
                    self._stream.flush()
                except (OSError, ValueError):
                    pass  # the stream is closed or gone: there is nowhere left to say so
            if batch[-1] is None:
                return

    def _line(self, record: logging.LogRecord) -> str:
        try:
            return self._formatter.format(record)
        except Exception as exc:  # a record that cannot be formatted must not stop every later line
            return f"(a log line of {record.name} could not be formatted: {type(exc).__name__}: {exc})"


class _DropApschedulerSkipWarning(logging.Filter):
    # The runner logs a fuller line for the same event (job, times, since when).
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_listener: _LineWriter | None = None
_redactor: RedactingFormatter | None = None


def redact(secret: str | None) -> None:
    """Add a secret to those blanked out of every log line (a token re-read on SIGHUP)."""
    if _redactor is not None and secret:
        _redactor.add(secret)


def stop_logging() -> None:
    """Write out every queued log line (call before the process exits)."""
    global _listener
    if _listener is not None:
        _listener.stop()
        _listener = None


atexit.register(stop_logging)


def configure_logging(log_format: str = "text", level: str = "INFO", secrets: Iterable[str] = ()) -> None:
    inner: logging.Formatter
    if log_format == "json":
        inner = JsonFormatter(
            "{levelname}{name}{message}", style="{", timestamp="time",
            rename_fields={"levelname": "level", "name": "logger"},
        )
    else:
        inner = _UtcTextFormatter(TEXT_FORMAT)
    global _redactor
    _redactor = RedactingFormatter(inner, secrets)
    # Every run logs two lines from a busy thread: skip the record fields no
    # format here uses (the logging HOWTO's "Optimization" settings).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    stop_logging()
    # Runs log from many threads at once; formatting and writing happen on one
    # listener thread so no run waits for the stream's lock.
    records: queue.SimpleQueue[logging.LogRecord | None] = queue.SimpleQueue()
    global _listener
    _listener = _LineWriter(records, _redactor, sys.stderr)
    _listener.start()
    root.addHandler(_LeanQueueHandler(records))
    root.setLevel(level)
    apscheduler = logging.getLogger("apscheduler")
    apscheduler.setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("apscheduler.scheduler").addFilter(_DropApschedulerSkipWarning())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
