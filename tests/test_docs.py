"""The manual checked against the code, so that the two cannot drift apart.

* docs/cli.md names every subcommand and long option of ``scheduler`` and
  ``catalog`` (read from their argparse parsers), and every ``scheduler X`` or
  ``catalog X`` written in the docs exists.
* docs/configuration.md lists every environment variable the code reads, and
  every variable in its tables is read: by the code, through ``${VAR}`` in the
  shipped jobs.yaml/catalog.yaml, or by the library the page names.
* Every relative link in README.md, docs/ and bench/README.md points at a file
  that exists (and at a heading that exists, when it names one).
* Nothing in the repository points at the design notes outside it.
* The Python the docs show (``module:function`` callables, imports in Python
  examples) resolves.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CLI_PAGE = DOCS / "cli.md"
CONFIG_PAGE = DOCS / "configuration.md"
MANUAL = [ROOT / "README.md", *sorted(DOCS.glob("*.md")), ROOT / "bench" / "README.md"]
CODE_PACKAGES = ("scheduler", "catalog", "tickless")
SHIPPED_YAML = (ROOT / "jobs.yaml", ROOT / "catalog.yaml")

FENCE = re.compile(r"^(```|~~~)")


def prose_and_code(text: str) -> tuple[str, str]:
    """A Markdown text split into its prose and the contents of its fenced blocks."""
    prose: list[str] = []
    code: list[str] = []
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.strip()):
            fenced = not fenced
            continue
        (code if fenced else prose).append(line)
    return "\n".join(prose), "\n".join(code)


def without_comments(text: str) -> str:
    """Shell and YAML text without its ``# comments`` (prose, not code)."""
    return re.sub(r"(?m)(^|\s)#.*$", "", text)


def code_text(text: str) -> str:
    """Everything written as code: fenced blocks (without comments) and `inline spans`."""
    prose, code = prose_and_code(text)
    return "\n".join([without_comments(code), *re.findall(r"`([^`\n]+)`", prose)])


# --- (a) commands and options ----------------------------------------------------------------------------


def parsers() -> dict[str, argparse.ArgumentParser]:
    from catalog.cli import build_parser as catalog_parser
    from scheduler.cli import build_parser as scheduler_parser

    return {"scheduler": scheduler_parser(), "catalog": catalog_parser()}


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to list subparsers; its actions are the documented source of --help.
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def cli_commands() -> Iterator[tuple[str, str, argparse.ArgumentParser]]:
    for program, parser in parsers().items():
        for name, sub in subcommands(parser).items():
            yield program, name, sub


def mentions_option(text: str, option: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_the_parsers_have_commands() -> None:
    # Guards the checks below against passing vacuously on a parser they cannot read.
    found = {(program, name) for program, name, _ in cli_commands()}
    assert ("scheduler", "run") in found
    assert ("catalog", "guard") in found


@pytest.mark.parametrize(("program", "name"), [(program, name) for program, name, _ in cli_commands()])
def test_every_subcommand_is_documented(program: str, name: str) -> None:
    documented = f"{program} {name}" in code_text(CLI_PAGE.read_text())
    assert documented, f"docs/cli.md does not document `{program} {name}`"


def test_every_long_option_is_documented() -> None:
    text = CLI_PAGE.read_text()
    missing = []
    for program, parser in parsers().items():
        missing += [f"{program} {option}" for option in long_options(parser) if not mentions_option(text, option)]
        for name, sub in subcommands(parser).items():
            missing += [f"{program} {name} {option}" for option in long_options(sub) if not mentions_option(text, option)]
    assert not missing, f"options missing from docs/cli.md: {missing}"


def test_every_documented_command_exists() -> None:
    known = {program: set(subcommands(parser)) for program, parser in parsers().items()}
    unknown = []
    for page in MANUAL:
        for program, name in re.findall(r"(?<![\w./$-])(scheduler|catalog)[ \t]+([a-z][\w-]*)", code_text(page.read_text())):
            if name not in known[program]:
                unknown.append(f"{page.relative_to(ROOT)}: {program} {name}")
    assert not unknown, f"commands in the docs that the code does not have: {unknown}"


# --- (b) environment variables ---------------------------------------------------------------------------

# A quoted name with the project's prefixes, or any quoted name read from the environment directly.
PROJECT_VARIABLE = re.compile(r"""["']((?:SCHEDULER|CATALOG|BIGQUERY)_[A-Z0-9_]+|API_URL)["']""")
ENVIRONMENT_READ = re.compile(
    r"""(?:environ|env)\.get\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|getenv\(\s*["']([A-Z][A-Z0-9_]*)["']"""
    r"""|environ\[\s*["']([A-Z][A-Z0-9_]*)["']\s*\]"""
)
YAML_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
# Read by a dependency, not by our code; each is checked against that library below.
LIBRARY_VARIABLES = {"GOOGLE_APPLICATION_CREDENTIALS", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"}


def source_files() -> Iterator[Path]:
    for package in CODE_PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def variables_in_code() -> dict[str, str]:
    """Variable -> the first file that reads it."""
    found: dict[str, str] = {}
    for path in source_files():
        text = path.read_text()
        names = PROJECT_VARIABLE.findall(text) + [name for groups in ENVIRONMENT_READ.findall(text) for name in groups if name]
        for name in names:
            found.setdefault(name, str(path.relative_to(ROOT)))
    return found


def variables_in_shipped_yaml() -> set[str]:
    return {name for path in SHIPPED_YAML for name in YAML_VARIABLE.findall(without_comments(path.read_text()))}


def documented_variables() -> set[str]:
    """The names in the first column of every table on docs/configuration.md."""
    prose, _ = prose_and_code(CONFIG_PAGE.read_text())
    names: set[str] = set()
    for line in prose.splitlines():
        cells = line.strip().strip("|").split("|")
        if line.lstrip().startswith("|") and len(cells) > 1:
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", cells[0]))
    return names


def test_the_scans_find_variables() -> None:
    # Guards the checks below against passing vacuously on a scan that finds nothing.
    assert {"SCHEDULER_STARTUP_GRACE_SECONDS", "API_URL", "CATALOG_DB"} <= set(variables_in_code())
    assert "SCHEDULER_DATA_REFRESH_INTERVAL" in variables_in_shipped_yaml()
    assert {"SCHEDULER_CONFIG", "CATALOG_CONFIG"} <= documented_variables()


def test_every_variable_the_code_reads_is_documented() -> None:
    documented = documented_variables()
    missing = {name: path for name, path in variables_in_code().items() if name not in documented}
    assert not missing, f"variables read by the code but not in the tables of docs/configuration.md: {missing}"


def test_every_variable_of_the_shipped_files_is_documented() -> None:
    missing = variables_in_shipped_yaml() - documented_variables()
    assert not missing, f"variables used in jobs.yaml/catalog.yaml but not in docs/configuration.md: {sorted(missing)}"


def test_every_documented_variable_is_read() -> None:
    read = set(variables_in_code()) | variables_in_shipped_yaml() | LIBRARY_VARIABLES
    unread = documented_variables() - read
    assert not unread, f"docs/configuration.md documents variables nothing reads: {sorted(unread)}"


def test_the_library_variables_are_read_by_their_libraries(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth import environment_vars
    from requests.utils import get_environ_proxies

    assert environment_vars.CREDENTIALS == "GOOGLE_APPLICATION_CREDENTIALS"
    for name in ("http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3129")
    monkeypatch.setenv("NO_PROXY", "app.internal")
    assert get_environ_proxies("http://example.test/")["http"] == "http://proxy.invalid:3128"
    assert get_environ_proxies("https://example.test/")["https"] == "http://proxy.invalid:3129"
    assert get_environ_proxies("http://app.internal/") == {}


# --- (c) links -------------------------------------------------------------------------------------------

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def heading_anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file."""
    prose, _ = prose_and_code(path.read_text())
    anchors: set[str] = set()
    for line in prose.splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        slug = re.sub(r"[^\w\- ]", "", match.group(1).replace("`", "").lower()).replace(" ", "-")
        anchor, count = slug, 1
        while anchor in anchors:
            anchor, count = f"{slug}-{count}", count + 1
        anchors.add(anchor)
    return anchors


def relative_links(page: Path) -> Iterator[tuple[str, Path, str]]:
    prose, _ = prose_and_code(page.read_text())
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        yield target, (page.parent / path_part).resolve() if path_part else page, anchor


def test_the_manual_has_links() -> None:
    assert sum(1 for page in MANUAL for _ in relative_links(page)) > 20


@pytest.mark.parametrize("page", MANUAL, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_relative_link_points_at_a_file(page: Path) -> None:
    broken = []
    for target, path, anchor in relative_links(page):
        if not path.exists():
            broken.append(f"{target}: no such file")
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path):
            broken.append(f"{target}: no heading #{anchor} in {path.relative_to(ROOT)}")
        elif ROOT not in path.parents and path != ROOT:
            broken.append(f"{target}: outside the repository")
    assert not broken, f"broken links in {page.relative_to(ROOT)}: {broken}"


# --- (d) nothing outside the repository ------------------------------------------------------------------

# Built from parts so that this file does not match itself.
OUTSIDE_DESIGN = ("../" + "shared/", "shared/" + "DESIGN.md")
SKIPPED_DIRS = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "dist", "data"}


def repository_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS and not name.endswith(".egg-info")]
        for name in files:
            path = Path(folder) / name
            if path.stat().st_size < 1_000_000:
                yield path


def test_nothing_links_outside_the_repository() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for path in repository_files()
        if any(marker.encode() in path.read_bytes() for marker in OUTSIDE_DESIGN)
    ]
    assert not offenders, f"files pointing at design notes outside the repository: {offenders}"


# --- (e) the Python the docs show ------------------------------------------------------------------------

CALLABLE = re.compile(r"\b((?:scheduler|catalog|tickless)(?:\.\w+)*):(\w+)\b")
IMPORT = re.compile(r"^\s*from\s+((?:scheduler|catalog|tickless)(?:\.\w+)*)\s+import\s+([\w, ]+)$", re.MULTILINE)


def documented_python() -> set[tuple[str, str]]:
    names: set[tuple[str, str]] = set()
    for page in MANUAL:
        code = code_text(page.read_text())
        names.update(CALLABLE.findall(code))
        for module, imported in IMPORT.findall(code):
            names.update((module, name.strip()) for name in imported.split(",") if name.strip())
    return names


def test_the_python_the_docs_show_exists() -> None:
    names = documented_python()
    assert names, "found no Python names in the docs: the scan is broken"
    missing = []
    for module, name in sorted(names):
        try:
            if not hasattr(importlib.import_module(module), name):
                missing.append(f"{module}:{name}")
        except ImportError:
            missing.append(f"{module}:{name} (no module {module})")
    assert not missing, f"Python names in the docs that do not exist: {missing}"
