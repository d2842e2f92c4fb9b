"""BigQuery's naming rules, checked before any identifier is put in SQL text.

Values always travel as query parameters; identifiers cannot (BigQuery has no
parameters for them), so they are validated here and then backtick-quoted.
A name that passes these rules contains no backtick, backslash or newline.
"""

from __future__ import annotations

import re
import unicodedata

# 6-30 chars, lowercase letters, digits and hyphens, starts with a letter,
# does not end with a hyphen; optionally "domain.com:" (legacy domain-scoped).
_PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_LOCATION = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,62}$")
# Letters, marks, numbers, connectors (_), dashes and spaces.
_TABLE_CATEGORIES = ("L", "M", "N", "Pc", "Pd", "Zs")


def project_problem(name: str) -> str | None:
    if _PROJECT.match(name):
        return None
    return (
        f"{name!r} is not a valid BigQuery project id "
        "(6-30 lowercase letters, digits and hyphens, starting with a letter)"
    )


def dataset_problem(name: str) -> str | None:
    if _DATASET.match(name):
        return None
    return f"{name!r} is not a valid BigQuery dataset name (letters, digits and underscores, at most 1024)"


def table_problem(name: str) -> str | None:
    ok = (
        0 < len(name.encode("utf-8")) <= 1024
        and not name.startswith(" ")
        and all(unicodedata.category(ch).startswith(_TABLE_CATEGORIES) for ch in name)
    )
    if ok:
        return None
    return (
        f"{name!r} is not a valid BigQuery table name "
        "(letters, marks, digits, underscores, dashes and spaces, at most 1024 bytes)"
    )


def family_problem(name: str) -> str | None:
    """A wildcard table family: a valid table-name prefix followed by one ``*`` (``events_*``)."""
    prefix = name[:-1]
    if name.endswith("*") and prefix and not table_problem(prefix):
        return None
    return f"{name!r} is not a BigQuery wildcard table (a table-name prefix followed by one '*', e.g. events_*)"


def location_problem(name: str) -> str | None:
    if _LOCATION.match(name):
        return None
    return f"{name!r} is not a BigQuery location (e.g. EU, US, europe-west3)"


def quote_path(project: str, dataset: str, *rest: str) -> str:
    """```project`.`dataset`.rest`` after re-checking the names (defence in depth)."""
    for problem in (project_problem(project), dataset_problem(dataset)):
        if problem:
            raise ValueError(problem)
    return ".".join([f"`{project}`", f"`{dataset}`", *rest])


def quote_region(project: str, location: str) -> str:
    """```project`.`region-eu``` for the region-qualified INFORMATION_SCHEMA views."""
    for problem in (project_problem(project), location_problem(location)):
        if problem:
            raise ValueError(problem)
    return f"`{project}`.`region-{location.lower()}`"


def full_path(project: str, dataset: str, table: str) -> str:
    """```project.dataset.table```: one backticked path, as BigQuery's console writes it (``events_*`` allowed)."""
    table_check = family_problem(table) if table.endswith("*") else table_problem(table)
    for problem in (project_problem(project), dataset_problem(dataset), table_check):
        if problem:
            raise ValueError(problem)
    return f"`{project}.{dataset}.{table}`"
