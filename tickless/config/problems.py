"""Located configuration problems, collected so one pass reports every mistake.

A ``Problem`` keeps where it is (file, line), what it is about (a job, a
table) and which field, apart from what is wrong, so errors can be sorted,
filtered and shown without parsing text back. Its text is the contract:
``FILE:LINE: job 'NAME': field: what is wrong``, or for an environment
variable just ``NAME=value: rule``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# How near a word must be to a known one to be offered as a correction.
_CUTOFF = 0.6


def closest(word: str, choices: Iterable[str], cutoff: float = _CUTOFF) -> str | None:
    """The known word nearest to ``word``, or None when none is near enough."""
    close = difflib.get_close_matches(word, [str(choice) for choice in choices], n=1, cutoff=cutoff)
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str], cutoff: float = _CUTOFF) -> str:
    """`` (did you mean 'x'?)`` or the empty string."""
    match = closest(word, choices, cutoff)
    return f" (did you mean {match!r}?)" if match else ""


@dataclass(frozen=True)
class Problem:
    message: str
    file: str | None = None
    line: int | None = None
    subject: str | None = None  # "job 'nightly'", "table 'orders'"
    field: str | None = None  # "http.method", "retry.backoff"

    def __str__(self) -> str:
        parts = []
        if self.file is not None:
            parts.append(f"{self.file}:{self.line}:" if self.line else f"{self.file}:")
        if self.subject:
            parts.append(f"{self.subject}:")
        if self.field:
            parts.append(f"{self.field}:")
        parts.append(self.message)
        return " ".join(parts)

    @property
    def position(self) -> tuple[str, int]:
        """Sort key: file order, then line; problems without a line first."""
        return self.file or "", self.line or 0


def as_problem(item: Problem | str) -> Problem:
    return item if isinstance(item, Problem) else Problem(item)


class Problems:
    """Every problem found so far, and where the reader is (file, subject).

    ``about(subject)`` gives a collector for one job or table that adds to
    the same list, so readers of a part need not know where it sits.
    """

    def __init__(self, file: str | None = None, subject: str | None = None, *, found: list[Problem] | None = None) -> None:
        self.file = file
        self.subject = subject
        self._found: list[Problem] = [] if found is None else found

    def about(self, subject: str | None) -> Problems:
        return Problems(self.file, subject, found=self._found)

    def add(self, line: int | None, field: str | None, message: str) -> None:
        self._found.append(Problem(message, self.file, line, self.subject, field))

    def note(self, message: str) -> None:
        """An unlocated problem, such as ``NAME=value: rule`` for a variable."""
        self._found.append(Problem(message))

    def extend(self, problems: Iterable[Problem | str]) -> None:
        self._found.extend(as_problem(problem) for problem in problems)

    def check_keys(self, mapping: Mapping[str, Any], allowed: Sequence[str], prefix: str = "") -> None:
        """Report every key of ``mapping`` not in ``allowed``, with a correction if one is near."""
        line_of = getattr(mapping, "line_of", lambda _key: None)
        for key in mapping:
            if key not in allowed:
                self.add(
                    line_of(key), f"{prefix}{key}",
                    f"unknown key{did_you_mean(key, allowed)}; allowed: {', '.join(allowed)}",
                )

    def in_order(self) -> list[Problem]:
        """By file and line (stable: problems on one line keep their order)."""
        return sorted(self._found, key=lambda problem: problem.position)

    def __len__(self) -> int:
        return len(self._found)

    def __bool__(self) -> bool:
        return bool(self._found)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self._found)
