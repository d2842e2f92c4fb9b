"""Safe YAML loading that remembers line numbers, rejects duplicate keys and
stays bounded on hostile input.

PyYAML's SafeLoader silently keeps the last of two equal keys; a job catalogue
with two ``data-refresh`` entries must be an error instead, so mappings are
built here, each remembering the line of every key.

PyYAML also recurses once per nesting level (500 levels end in a
RecursionError) and lets aliases multiply a small file into a huge document
("billion laughs"). Both are refused while the node graph is composed, before
anything is built: nesting beyond ``MAX_DEPTH`` levels, and a document whose
aliases would expand it beyond ``MAX_NODES`` nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from tickless.config.problems import Problems


class LineMap(dict[str, Any]):
    """A dict from YAML that knows its own line and the line of each key."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.key_lines: dict[str, int] = {}

    def line_of(self, key: str) -> int:
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A list from YAML that knows the line of each item."""

    def __init__(self, line: int) -> None:
        super().__init__()
        self.line = line
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class YamlProblem(Exception):
    def __init__(self, line: int | None, message: str) -> None:
        self.line = line
        self.message = message
        super().__init__(message)


# Far beyond any real jobs.yaml or catalog.yaml, far below Python's recursion limit.
MAX_DEPTH = 100
# Nodes of the document with every alias expanded: a few thousand in a large real file.
MAX_NODES = 100_000
MAX_FILE_BYTES = 4 * 1024 * 1024


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[YamlProblem] = []
        self._depth = 0

    def fetch_flow_collection_start(self, token_class: type[yaml.Token]) -> None:
        # The scanner looks ahead over a run of '[' or '{' with a cost that grows with
        # its length squared (a thousand levels took half a second): refuse at the
        # scanner, before the composer would.
        if self.flow_level >= MAX_DEPTH:
            raise YamlProblem(self.line + 1, f"nested more than {MAX_DEPTH} levels deep")
        super().fetch_flow_collection_start(token_class)

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlProblem(mark.line + 1, f"nested more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _expanded_size(root: yaml.Node) -> int:
    """Nodes in the document with every alias expanded, counted once per use.

    Each node's size is computed once (memoised), so an alias bomb is measured
    in time linear in its written size. Counting stops at the innermost node whose
    expansion passes MAX_NODES: its line is the one reported. An alias that refers
    to a node containing itself is infinite.
    """
    sizes: dict[int, int] = {}
    pending: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in pending:
            raise YamlProblem(node.start_mark.line + 1, "an alias refers to a node that contains it (a recursive document)")
        pending.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
        elif isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                total += size(key_node) + size(value_node)
        if total > MAX_NODES:
            raise YamlProblem(
                node.start_mark.line + 1,
                f"aliases expand the document beyond {MAX_NODES} nodes (an alias bomb?): write the values out",
            )
        pending.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> Iterator[LineMap]:
    data = LineMap(node.start_mark.line + 1)
    yield data
    loader.flatten_mapping(node)
    for key_node, value_node in node.value:
        # Keys are names as written: YAML 1.1 would turn a job called `on`
        # or `no` into a boolean.
        if isinstance(key_node, yaml.ScalarNode):
            key = key_node.value
        else:
            key = str(loader.construct_object(key_node, deep=True))
        line = key_node.start_mark.line + 1
        if key in data:
            loader.duplicates.append(
                YamlProblem(line, f"duplicate key {key!r} (first at line {data.key_lines[key]})")
            )
            continue
        data[key] = loader.construct_object(value_node, deep=False)
        data.key_lines[key] = line


def _construct_list(loader: _Loader, node: yaml.SequenceNode) -> Iterator[LineList]:
    data = LineList(node.start_mark.line + 1)
    yield data
    for item in node.value:
        data.append(loader.construct_object(item, deep=False))
        data.item_lines.append(item.start_mark.line + 1)


_Loader.add_constructor("tag:yaml.org,2002:map", _construct_map)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_list)


def load_yaml(path: Path) -> tuple[Any, list[YamlProblem]]:
    """Parse ``path``; return the document and any duplicate-key problems.

    Raises YamlProblem for a file that cannot be read or parsed at all.
    """
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise YamlProblem(None, f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB: not a configuration file")
        text = raw.decode("utf-8")
    except OSError as exc:
        raise YamlProblem(None, f"cannot read the file: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise YamlProblem(None, f"not UTF-8 text: {exc.reason}") from None
    try:
        # The reader checks every character as the loader is built.
        loader = _Loader(text)
    except yaml.reader.ReaderError as exc:
        at_line = text.count("\n", 0, exc.position or 0) + 1
        character = chr(exc.character) if isinstance(exc.character, int) else exc.character
        raise YamlProblem(at_line, f"invalid YAML: character {character!r} is not allowed ({exc.reason})") from None
    try:
        node = loader.get_single_node()
        if node is not None:
            _expanded_size(node)  # raises YamlProblem past the budget
        document = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        raise YamlProblem(line, f"invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, f"invalid YAML: {exc}") from None
    finally:
        loader.dispose()
    return document, loader.duplicates


def read_document(path: Path, problems: Problems, required_key: str, shape: str) -> LineMap | None:
    """The file's top-level mapping, or None when it cannot be read as one.

    Every problem goes to ``problems``, located: an unreadable file, invalid or
    hostile YAML, duplicate keys, and a top level that is not a mapping with
    ``required_key`` (``shape`` says what it should be).
    """
    try:
        document, duplicates = load_yaml(path)
    except YamlProblem as exc:
        problems.add(exc.line, None, exc.message)
        return None
    for duplicate in duplicates:
        problems.add(duplicate.line, None, duplicate.message)
    if not isinstance(document, LineMap) or required_key not in document:
        problems.add(getattr(document, "line", 1), None, f"the file needs {shape}")
        return None
    return document
