"""YAML in and out, with a position for every value and limits against hostile input.

:func:`load_documents` reads one or many YAML documents and returns, for each, the plain
Python data and a map from YAML path (a tuple of keys and list indices) to the 1-based
``(line, column)`` where that entry starts (the key for mapping entries, the item for list
entries). It builds the data from libyaml's event stream rather than PyYAML's recursive
composer, so deep nesting cannot exhaust the Python stack, and it enforces:

* a nesting depth of :data:`MAX_DEPTH`, a node budget of :data:`MAX_NODES` (which stops
  alias "billion laughs" expansion) and :data:`MAX_BYTES` of text (code ``too-complex``);
* unique keys in every mapping (code ``duplicate-key``);
* plain scalar keys, kept as the text written (``on:`` stays ``"on"``, not ``True``).

Syntax errors become :class:`~styx.errors.SpecError` ``yaml-syntax`` with line and column.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from styx.errors import Location, SpecError

# Paths and marks belong to the validation framework (which must not need PyYAML: the agent
# validates its protocol with it); re-exported here, where YAML positions are made.
from styx.spec.check import Mark as Mark
from styx.spec.check import YamlPath as YamlPath
from styx.spec.check import format_path as format_path

MAX_DEPTH = 64
MAX_NODES = 100_000
MAX_BYTES = 8 * 1024 * 1024

_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_COLLECTION_TAGS = {
    _MAP: _MAP,
    "tag:yaml.org,2002:set": _MAP,
    _SEQ: _SEQ,
    "tag:yaml.org,2002:omap": _SEQ,
    "tag:yaml.org,2002:pairs": _SEQ,
}
_SCALAR_TAGS = {
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:binary",
    "tag:yaml.org,2002:timestamp",
    _STR,
    _MERGE,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Document:
    """One YAML document: its data and where each YAML path starts in the text."""

    data: Any
    positions: Mapping[YamlPath, Mark]
    line: int = 1


class _Node:
    __slots__ = ("items", "kind", "mark", "style", "tag", "value")

    def __init__(self, kind: str, tag: str, mark: Mark, value: str = "", style: Any = None):
        self.kind = kind  # "scalar", "seq" or "map"
        self.tag = tag
        self.mark = mark
        self.value = value
        self.style = style
        self.items: list[_Node] = []  # children; for maps: key, value, key, value, ...


def _error(
    code: str,
    message: str,
    hint: str,
    file: str | None,
    mark: Mark | None,
    path: YamlPath | None = None,
) -> SpecError:
    line, col = mark if mark else (None, None)
    where = format_path(path) if path else None
    return SpecError(message, hint, location=Location(file, line, col, where), code=code)


def _mark(event: Any) -> Mark:
    return (event.start_mark.line + 1, event.start_mark.column + 1)


def _syntax_error(exc: yaml.YAMLError, text: str, file: str | None) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where: Mark | None = (mark.line + 1, mark.column + 1) if mark is not None else None
    position = getattr(exc, "position", None)
    if where is None and isinstance(position, int):
        before = text[:position]
        where = (before.count("\n") + 1, position - before.rfind("\n"))
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or "it cannot be parsed"
    context = getattr(exc, "context", None)
    if context:
        problem = f"{problem} ({context})"
    return _error(
        "yaml-syntax",
        f"The file is not valid YAML: {problem}.",
        "Check the indentation, colons and quoting at that line.",
        file,
        where,
    )


def _build_nodes(text: str, file: str | None) -> list[_Node | None]:
    """Turn libyaml events into node trees, iteratively, resolving tags and aliases."""
    resolver = yaml.resolver.Resolver()
    roots: list[_Node | None] = []
    anchors: dict[str, _Node] = {}
    stack: list[_Node] = []
    root: _Node | None = None

    def attach(node: _Node) -> None:
        nonlocal root
        if stack:
            stack[-1].items.append(node)
        else:
            root = node

    for event in yaml.parse(text, Loader=yaml.CSafeLoader):
        if isinstance(event, yaml.DocumentStartEvent):
            anchors, root = {}, None
        elif isinstance(event, yaml.DocumentEndEvent):
            roots.append(root)
        elif isinstance(event, yaml.AliasEvent):
            target = anchors.get(event.anchor or "")
            if target is None:
                raise _error(
                    "yaml-syntax",
                    f"The alias '*{event.anchor}' refers to an anchor that is not defined.",
                    f"Define '&{event.anchor}' before using '*{event.anchor}'.",
                    file,
                    _mark(event),
                )
            attach(target)
        elif isinstance(event, yaml.ScalarEvent):
            tag = event.tag
            if tag is None or tag == "!":
                tag = resolver.resolve(yaml.ScalarNode, event.value, event.implicit)  # type: ignore[no-untyped-call]
            if tag not in _SCALAR_TAGS:
                raise _unknown_tag(tag, file, _mark(event))
            node = _Node("scalar", tag, _mark(event), event.value, event.style)
            if event.anchor:
                anchors[event.anchor] = node
            attach(node)
        elif isinstance(event, yaml.CollectionStartEvent):
            is_map = isinstance(event, yaml.MappingStartEvent)
            tag = event.tag if event.tag not in (None, "!") else (_MAP if is_map else _SEQ)
            if _COLLECTION_TAGS.get(tag) != (_MAP if is_map else _SEQ):
                raise _unknown_tag(tag, file, _mark(event))
            node = _Node("map" if is_map else "seq", tag, _mark(event))
            if event.anchor:
                anchors[event.anchor] = node
            attach(node)
            stack.append(node)
            if len(stack) > MAX_DEPTH:
                raise _too_complex(f"nests deeper than {MAX_DEPTH} levels", file, node.mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            stack.pop()
    return roots


def _unknown_tag(tag: str, file: str | None, mark: Mark) -> SpecError:
    return _error(
        "yaml-syntax",
        f"The YAML tag '{tag}' is not supported.",
        "Remove the tag; task files use plain YAML values only.",
        file,
        mark,
    )


def _too_complex(what: str, file: str | None, mark: Mark | None) -> SpecError:
    return _error(
        "too-complex",
        f"The YAML {what}.",
        "Simplify the file; task files never need that much structure.",
        file,
        mark,
    )


class _Builder:
    """Turns a node tree into Python data, recording positions and enforcing budgets."""

    def __init__(self, file: str | None, prefix: YamlPath) -> None:
        self.file = file
        self.prefix = prefix
        self.positions: dict[YamlPath, Mark] = {}
        self.count = 0
        self.constructor = yaml.constructor.SafeConstructor()

    def build(self, node: _Node, path: YamlPath) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            # Report the top-level entry being expanded: the alias use, not the anchor.
            mark = self.positions.get(path[:1], node.mark)
            raise _too_complex(f"expands to more than {MAX_NODES} values", self.file, mark)
        if len(path) > MAX_DEPTH:
            raise _too_complex(
                f"nests deeper than {MAX_DEPTH} levels (is an alias recursive?)",
                self.file,
                node.mark,
            )
        if node.kind == "scalar":
            return self.scalar(node)
        if node.kind == "seq":
            out: list[Any] = []
            for index, item in enumerate(node.items):
                self.positions.setdefault((*path, index), item.mark)
                out.append(self.build(item, (*path, index)))
            return out
        return self.mapping(node, path)

    def scalar(self, node: _Node) -> Any:
        if node.tag == _STR:
            return node.value
        if node.tag == _MERGE:
            return "<<"
        scalar = yaml.ScalarNode(node.tag, node.value, style=node.style)
        try:
            return self.constructor.yaml_constructors[node.tag](self.constructor, scalar)
        except ValueError as exc:
            if node.tag == "tag:yaml.org,2002:int":
                raise _error(
                    "invalid-value",
                    "A number in the file is too large to read.",
                    "Use a smaller number.",
                    self.file,
                    node.mark,
                ) from exc
            return node.value  # e.g. a date-like value that is not a real date: keep the text
        except yaml.YAMLError:
            return node.value

    def mapping(self, node: _Node, path: YamlPath) -> dict[str, Any]:
        out: dict[str, Any] = {}
        merged: dict[str, Any] = {}
        marks: dict[str, Mark] = {}
        pairs = list(zip(node.items[::2], node.items[1::2], strict=True))
        for key_node, value_node in pairs:
            if key_node.kind == "scalar" and key_node.tag == _MERGE:
                merged.update(self.merge_sources(value_node, path))
                continue
            if key_node.kind != "scalar":
                raise _error(
                    "invalid-type",
                    "A mapping key is a list or mapping, which task files do not allow.",
                    "Use plain text for every key.",
                    self.file,
                    key_node.mark,
                    self.prefix + path,
                )
            key = key_node.value
            if key in out:
                where = format_path(self.prefix + path) or "the document"
                raise _error(
                    "duplicate-key",
                    f"The key '{key}' appears twice in {where}.",
                    "Remove or rename one of the two entries.",
                    self.file,
                    key_node.mark,
                    self.prefix + path + (key,),
                )
            self.positions[(*path, key)] = marks[key] = key_node.mark
            out[key] = self.build(value_node, (*path, key))
        if not merged:
            return out
        for key, mark in marks.items():  # explicit keys win over merged ones, positions too
            self.positions[(*path, key)] = mark
        return {**merged, **out}

    def merge_sources(self, node: _Node, path: YamlPath) -> dict[str, Any]:
        sources = node.items if node.kind == "seq" else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):  # earlier sources win, as YAML merge keys specify
            if source.kind != "map":
                raise _error(
                    "invalid-type",
                    "A '<<' merge key must refer to a mapping or a list of mappings.",
                    "Point '<<' at an anchored mapping such as '<<: *defaults'.",
                    self.file,
                    source.mark,
                )
            value = self.build(source, path)
            merged.update(value)
        return merged


def load_documents(text: str, *, file: str | None = None) -> list[Document]:
    """Parse every YAML document in ``text``; empty documents have ``data`` None.

    Raises SpecError with code ``yaml-syntax``, ``duplicate-key``, ``too-complex`` or
    ``invalid-type`` (non-scalar keys), each with the line and column.
    """
    if len(text) > MAX_BYTES:
        raise _too_complex(f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB", file, None)
    try:
        roots = _build_nodes(text, file)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, text, file) from None
    documents: list[Document] = []
    for index, root in enumerate(roots):
        if root is None:
            documents.append(Document(None, {}))
            continue
        builder = _Builder(file, (index,) if len(roots) > 1 else ())
        data = builder.build(root, ())
        builder.positions[()] = root.mark
        documents.append(Document(data, builder.positions, root.mark[0]))
    return documents


def read_text(path: str | os.PathLike[str]) -> str:
    """Read a YAML file as UTF-8 text; a missing or unreadable file is SpecError."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise SpecError(
            f"The file '{name}' does not exist.",
            "Check the path; relative paths are resolved from the current directory.",
            location=Location(file=name),
            code="file-not-found",
        ) from None
    except OSError as exc:
        raise SpecError(
            f"The file '{name}' cannot be read ({exc.strerror or exc}).",
            "Check that the path names a readable file, not a directory.",
            location=Location(file=name),
            code="file-not-found",
        ) from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise SpecError(
            "The file is not UTF-8 text.",
            "Save the file as UTF-8; it may be a binary file given by mistake.",
            location=Location(file=name, line=line),
            code="yaml-syntax",
        ) from None


class _Dumper(yaml.CSafeDumper):
    """Emits multi-line strings as literal blocks so run/setup scripts stay readable."""


def _represent_str(dumper: _Dumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value and value.strip() else None
    return dumper.represent_scalar(_STR, value, style=style)


_Dumper.add_representer(str, _represent_str)


def dump(data: Any) -> str:
    """One YAML document, keys in the given order, unicode kept."""
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def dump_all(documents: Sequence[Any]) -> str:
    """Several YAML documents separated by ``---``."""
    return yaml.dump_all(
        list(documents),
        Dumper=_Dumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        explicit_start=len(documents) > 1,
    )
