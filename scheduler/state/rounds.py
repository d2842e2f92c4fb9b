"""Rounds: requests asked from many threads at once, sent together one round at a time.

Jobs due at one instant ask for their claims at nearly the same time, each from its own
thread. One round at a time carries every request waiting: the first thread to ask sends
its own at once (a lone request waits for nothing), those asking meanwhile wait and go in
the next round, sent by the first of them. A hundred claims cost a few round trips, a few
commits and one connection, where one round trip each made them queue for a pool and wake
a hundred threads twice. The PostgreSQL store's claims go through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Q = TypeVar("Q")  # what is asked
A = TypeVar("A")  # its answer


class Ask(Generic[Q, A]):
    """One request waiting for its round: what is asked, then its answer or its error."""

    __slots__ = ("answer", "asked", "error", "leads", "ready")

    def __init__(self, asked: Q) -> None:
        self.asked = asked
        self.answer: A | None = None
        self.error: Exception | None = None
        self.leads = False  # this request's thread sends the next round
        self.ready = threading.Event()


class Rounds(Generic[Q, A]):
    """Requests asked while a round is out go together in the next one; ``send`` answers a round
    (setting each ask's ``answer`` or ``error``) on the thread that leads it."""

    def __init__(self, send: Callable[[list[Ask[Q, A]]], None]) -> None:
        self._send = send
        self._lock = threading.Lock()
        self._waiting: list[Ask[Q, A]] = []
        self._busy = False

    def ask(self, asked: Q) -> Ask[Q, A]:
        mine: Ask[Q, A] = Ask(asked)
        with self._lock:
            if self._busy:
                self._waiting.append(mine)
            else:
                self._busy = mine.leads = True
        if not mine.leads:
            mine.ready.wait()
            if not mine.leads:
                return mine  # answered in another thread's round
        with self._lock:
            asks = [mine, *self._waiting]
            self._waiting.clear()
        try:
            self._send(asks)
        finally:
            with self._lock:
                successor = self._waiting.pop(0) if self._waiting else None
                if successor is None:
                    self._busy = False
                else:
                    successor.leads = True
            if successor is not None:
                successor.ready.set()  # the next round first: the answered threads can wait a moment
            for ask in asks[1:]:
                ask.ready.set()
        return mine
