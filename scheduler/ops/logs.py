"""Logging set-up: text or one JSON object per line, secrets redacted."""

from __future__ import annotations

import atexit
import logging
import queue
import sys
import time
from collections.abc import Iterable
from logging.handlers import QueueHandler, QueueListener

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


class _DropApschedulerSkipWarning(logging.Filter):
    # The runner logs a fuller line for the same event (job, times, since when).
    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


_listener: QueueListener | None = None
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
    handler = logging.StreamHandler(sys.stderr)
    global _redactor
    _redactor = RedactingFormatter(inner, secrets)
    handler.setFormatter(_redactor)
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
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    global _listener
    _listener = QueueListener(records, handler)
    _listener.start()
    root.addHandler(_LeanQueueHandler(records))
    root.setLevel(level)
    apscheduler = logging.getLogger("apscheduler")
    apscheduler.setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("apscheduler.scheduler").addFilter(_DropApschedulerSkipWarning())
    logging.getLogger("urllib3").setLevel(logging.WARNING)
