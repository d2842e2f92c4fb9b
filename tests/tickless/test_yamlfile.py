"""The shared YAML loader: line numbers, duplicate keys, and bounds on hostile input."""

from __future__ import annotations

import resource
import time
from pathlib import Path

import pytest

from tickless.config.yamlfile import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, LineMap, YamlProblem, load_yaml

BOMB = """\
jobs:
  x:
    every: 60
    http:
      method: POST
      path: /x
      json: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_keys_and_items_remember_their_lines(tmp_path: Path) -> None:
    document, duplicates = load_yaml(write(tmp_path, "a: 1\nb:\n  - x\n  - y\n"))
    assert isinstance(document, LineMap) and duplicates == []
    assert document.line_of("a") == 1 and document.line_of("b") == 2
    assert document["b"].line_of(1) == 4


def test_a_duplicate_key_is_reported_with_both_lines(tmp_path: Path) -> None:
    _, duplicates = load_yaml(write(tmp_path, "a: 1\nb: 2\na: 3\n"))
    assert [(problem.line, problem.message) for problem in duplicates] == [(3, "duplicate key 'a' (first at line 1)")]


def test_an_alias_bomb_is_refused_quickly_with_bounded_memory(tmp_path: Path) -> None:
    path = write(tmp_path, BOMB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.monotonic()
    with pytest.raises(YamlProblem) as caught:
        load_yaml(path)
    assert time.monotonic() - started < 1.0
    # ru_maxrss is in KiB on Linux: expanded, this document is 387 million strings.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024
    assert f"beyond {MAX_NODES} nodes" in caught.value.message
    assert caught.value.line == 12  # the first anchor whose expansion passes the budget: f, 9**6 strings


def test_aliases_within_the_budget_are_expanded(tmp_path: Path) -> None:
    document, _ = load_yaml(write(tmp_path, "base: &b {timeout: 30s}\nother: *b\n"))
    assert document["other"] == {"timeout": "30s"}


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    with pytest.raises(YamlProblem) as caught:
        load_yaml(write(tmp_path, "a: &a [1, *a]\n"))
    assert "recursive" in caught.value.message and caught.value.line == 1


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 1000, 5000])
def test_deep_nesting_is_refused_with_a_line_not_a_recursion_error(tmp_path: Path, levels: int) -> None:
    nested = "[" * levels + "]" * levels
    started = time.monotonic()
    with pytest.raises(YamlProblem) as caught:
        load_yaml(write(tmp_path, f"a: 1\nb: {nested}\n"))
    assert time.monotonic() - started < 5.0  # generous: a loaded 2-core machine
    assert caught.value.line == 2 and f"more than {MAX_DEPTH} levels" in caught.value.message


def test_nesting_up_to_the_limit_is_read(tmp_path: Path) -> None:
    depth = MAX_DEPTH - 2  # the top-level mapping and its value count as levels too
    document, _ = load_yaml(write(tmp_path, "a: " + "[" * depth + "]" * depth + "\n"))
    assert isinstance(document["a"], list)


def test_an_oversized_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"# " + b"x" * (MAX_FILE_BYTES + 10))
    with pytest.raises(YamlProblem) as caught:
        load_yaml(path)
    assert "larger than 4 MiB" in caught.value.message


@pytest.mark.parametrize("opening", ["[", "{a: "])
@pytest.mark.parametrize("levels", [1000, 5000])
def test_deep_flow_nesting_is_refused_by_the_scanner_in_well_under_a_second(tmp_path: Path, opening: str, levels: int) -> None:
    # PyYAML's scanner looks ahead over a run of '[' at a cost growing with its square
    # (1,000 levels took 0.4 s before the composer refused them): refused while scanning.
    closing = "]" if opening == "[" else "}"
    path = write(tmp_path, "jobs:\n  x:\n    json: " + opening * levels + "1" + closing * levels + "\n")
    started = time.monotonic()
    with pytest.raises(YamlProblem) as caught:
        load_yaml(path)
    assert time.monotonic() - started < 0.2
    assert caught.value.line == 3 and f"more than {MAX_DEPTH} levels" in caught.value.message
