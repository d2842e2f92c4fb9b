"""``${VAR}`` and ``${VAR:-default}`` expansion for jobs.yaml scalars.

Unlike the shell, a variable that is set but empty is an error rather than a
reason to use the default: ``FOO=`` in an env_file is nearly always a typo.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)


class InterpolationError(ValueError):
    def __init__(self, name: str, reason: str, message: str) -> None:
        self.name = name
        self.reason = reason  # "unset" | "empty" | "malformed"
        super().__init__(message)


@dataclass(frozen=True)
class Expanded:
    text: str
    variables: tuple[str, ...]
    # The variable whose environment value is the whole scalar, if any: such
    # values follow the variable's own rule (e.g. integer seconds).
    whole_from_env: str | None


def expand(text: str, env: Mapping[str, str]) -> Expanded:
    used: list[str] = []
    whole_from_env: str | None = None

    def substitute(match: re.Match[str]) -> str:
        nonlocal whole_from_env
        inner = _NAME.match(match.group(1))
        if not inner:
            raise InterpolationError(
                match.group(1), "malformed",
                f"{match.group(0)!r} is not a variable reference: use ${{NAME}} or ${{NAME:-default}}",
            )
        name, default = inner.group(1), inner.group(2)
        used.append(name)
        value = env.get(name)
        if value is None:
            if default is None:
                raise InterpolationError(
                    name, "unset",
                    f"${{{name}}} is not set and has no default "
                    f"(set {name}, or write ${{{name}:-value}})",
                )
            return default
        if value == "":
            hint = f"unset it to use the default {default!r}" if default is not None else "give it a value"
            raise InterpolationError(name, "empty", f"{name} is set but empty: {hint}")
        if match.group(0) == text:
            whole_from_env = name
        return value

    if "${" not in text:
        return Expanded(text, (), None)
    if text.count("${") != len(_REFERENCE.findall(text)):
        raise InterpolationError(text, "malformed", f"unclosed variable reference in {text!r}")
    result = _REFERENCE.sub(substitute, text)
    return Expanded(result, tuple(used), whole_from_env)
