"""JSON-with-comments editing that keeps the text: parse with positions, merge keys minimally.

The merge is textual: only the members asked for are replaced, inserted or removed; every other byte
(unknown keys, their order, comments, indentation, line endings) stays as the user wrote it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError, located

_WS = re.compile(r"[ \t\r\n]*")
_STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\.)*"', re.S)
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")


# --------------------------------------------------------------------------- parsing (JSON with comments)


@dataclass
class Node:
    """A parsed JSON value with its character span in the source text."""

    value: Any
    start: int
    end: int
    members: list[Member] = field(default_factory=list)  # objects only, in source order


@dataclass
class Member:
    """One `"key": value` pair of an object; `start` is where its key begins."""

    key: str
    start: int
    value: Node


@dataclass
class Document:
    """A parsed settings file: the tree plus where Claude Code would choke on it."""

    text: str
    root: Node
    comment_line: int | None = None  # first line holding a comment, if any
    trailing_comma_line: int | None = None  # first line holding a trailing comma, if any

    @property
    def value(self) -> Any:
        """The plain Python value."""
        return self.root.value

    @property
    def strict_json_issue(self) -> tuple[int, str] | None:
        """(line, 'comment' | 'trailing comma'): why strict JSON readers (Claude Code 2.1.197) reject it."""
        if self.comment_line:
            return self.comment_line, "comment"
        if self.trailing_comma_line:
            return self.trailing_comma_line, "trailing comma"
        return None

    @property
    def strict_json_problem(self) -> str | None:
        """The same as `strict_json_issue`, as text ('line 3: comment'), or None."""
        issue = self.strict_json_issue
        return f"line {issue[0]}: {issue[1]}" if issue else None


class _Parser:
    def __init__(self, text: str, path: Path | str) -> None:
        self.text, self.path, self.pos = text, path, 0
        self.comment_line: int | None = None
        self.trailing_comma_line: int | None = None

    def line(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def fail(self, message: str, pos: int | None = None) -> ConfigError:
        return ConfigError(
            located(self.path, self.line(self.pos if pos is None else pos), f"invalid JSON: {message}"),
            hint="fix the JSON at that line; the file was left untouched",
        )

    def skip(self) -> None:
        """Skip whitespace and // or /* */ comments, remembering the first comment's line."""
        text = self.text
        while True:
            self.pos = _WS.match(text, self.pos).end()  # type: ignore[union-attr]
            if text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.comment_line = self.comment_line or self.line(self.pos)
                self.pos = len(text) if end < 0 else end
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise self.fail("unterminated /* comment")
                self.comment_line = self.comment_line or self.line(self.pos)
                self.pos = end + 2
            else:
                return

    def value(self) -> Node:
        self.skip()
        start, char = self.pos, self.text[self.pos : self.pos + 1]
        if char == "{":
            return self._container(start, "}", is_object=True)
        if char == "[":
            return self._container(start, "]", is_object=False)
        if char == '"':
            return Node(self._string(), start, self.pos)
        match = _SCALAR.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a value" if char else "unexpected end of file")
        self.pos = match.end()
        return Node(json.loads(match.group()), start, self.pos)

    def _string(self) -> str:
        match = _STRING.match(self.text, self.pos)
        if not match:
            raise self.fail("unterminated or invalid string")
        self.pos = match.end()
        try:
            return json.loads(match.group())
        except json.JSONDecodeError as exc:
            raise self.fail(f"invalid string ({exc.msg})", match.start()) from None

    def _container(self, start: int, close: str, *, is_object: bool) -> Node:
        self.pos += 1
        node = Node({} if is_object else [], start, start)
        expect_item = True
        while True:
            self.skip()
            if self.text.startswith(close, self.pos):
                self.pos += 1
                node.end = self.pos
                return node
            if self.pos >= len(self.text):
                raise self.fail(f"unexpected end of file (a '{close}' is missing)")
            if not expect_item:
                raise self.fail(f"expected ',' or '{close}'")
            if is_object:
                self._member(node)
            else:
                node.value.append(self.value().value)
            self.skip()
            expect_item = self.text.startswith(",", self.pos)
            if expect_item:
                comma = self.pos
                self.pos += 1
                self.skip()
                if self.text.startswith(close, self.pos):
                    self.trailing_comma_line = self.trailing_comma_line or self.line(comma)

    def _member(self, node: Node) -> None:
        key_start = self.pos
        if not self.text.startswith('"', self.pos):
            raise self.fail("expected a quoted key")
        key = self._string()
        self.skip()
        if not self.text.startswith(":", self.pos):
            raise self.fail("expected ':' after the key")
        self.pos += 1
        child = self.value()
        node.value[key] = child.value
        node.members = [m for m in node.members if m.key != key] + [Member(key, key_start, child)]


def parse(text: str, path: Path | str = "settings.json") -> Document:
    """Parse JSON that may hold // and /* */ comments and trailing commas; errors name file and line."""
    parser = _Parser(text, path)
    root = parser.value()
    parser.skip()
    if parser.pos != len(text):
        raise parser.fail("unexpected text after the end of the JSON value")
    return Document(text, root, parser.comment_line, parser.trailing_comma_line)


# --------------------------------------------------------------------------- minimal merge


def merge(text: str | None, updates: Mapping[str, Any], *, section: str | None = None, path: Path | str = "") -> str:
    """Return `text` with `updates` applied to the top-level object (or to its `section` object).

    A value of None removes that key. Every other byte stays as it was; a missing file (None) or
    missing section is created with 2-space indentation.
    """
    if text is None or not text.strip():
        body = {k: v for k, v in updates.items() if v is not None}
        return json.dumps({section: body} if section else body, indent=2, ensure_ascii=False) + "\n"
    doc = parse(text, path)
    root = doc.root
    if not isinstance(root.value, dict):
        raise ConfigError(located(path, 1, "expected a JSON object at the top level"), hint="fix the file first")
    if section is None:
        return _edit_object(text, root, updates)
    found = next((m for m in root.members if m.key == section), None)
    if found is None:
        values = {k: v for k, v in updates.items() if v is not None}
        return _edit_object(text, root, {section: values}) if values else text
    if not isinstance(found.value.value, dict):
        line = text.count("\n", 0, found.start) + 1
        raise ConfigError(located(path, line, f'"{section}" is not a JSON object'), hint="fix the file first")
    return _edit_object(text, found.value, updates)


@dataclass(frozen=True)
class _Layout:
    """How one object is laid out in the file, so inserted members look like their neighbours."""

    indent: str  # before each member
    outer: str  # before the closing brace
    unit: str  # one level of indentation
    newline: str


def _edit_object(text: str, node: Node, updates: Mapping[str, Any]) -> str:
    """Replace, remove and insert members of one object; edits run back to front so spans stay valid."""
    indent, outer = _indents(text, node)
    unit = indent[len(outer) :] if indent.startswith(outer) and len(indent) > len(outer) else "  "
    layout = _Layout(indent, outer, unit, "\r\n" if "\r\n" in text else "\n")
    edits: list[tuple[int, int, str]] = []
    present = {m.key: i for i, m in enumerate(node.members)}
    for key, value in updates.items():
        if key in present and value is not None:
            old = node.members[present[key]].value
            if old.value != value or type(old.value) is not type(value):
                edits.append((old.start, old.end, _dump(value, layout)))
    removed = [i for key, i in present.items() if key in updates and updates[key] is None]
    added = [(k, v) for k, v in updates.items() if k not in present and v is not None]
    insertion = _insertion(text, node, added, layout, removed) if added else None
    if insertion is None or insertion[0] == insertion[1]:  # else it rewrites the whole inside, removals included
        edits += _removals(node, removed)
    if insertion is not None:
        edits.append(insertion)
    for start, end, new in sorted(edits, key=lambda e: e[0], reverse=True):
        text = text[:start] + new + text[end:]
    return text


def _removals(node: Node, removed: list[int]) -> list[tuple[int, int, str]]:
    """The spans removing members, merged where they overlap (two trailing members share the comma before them)."""
    merged: list[tuple[int, int]] = []
    for start, end, _ in sorted({_removal(node, i, removed) for i in removed}):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return [(start, end, "") for start, end in merged]


def _removal(node: Node, index: int, removed: list[int]) -> tuple[int, int, str]:
    members = node.members
    member = members[index]
    later = [i for i in range(index + 1, len(members)) if i not in removed]
    if later:
        return member.start, members[later[0]].start, ""
    earlier = [i for i in range(index) if i not in removed]
    if earlier:
        return members[earlier[-1]].value.end, member.value.end, ""
    return node.start + 1, node.end - 1, ""


def _insertion(
    text: str, node: Node, added: list[tuple[str, Any]], layout: _Layout, removed: list[int]
) -> tuple[int, int, str]:
    multiline = "\n" in text[node.start : node.end] or not node.members
    sep = ("," + layout.newline + layout.indent) if multiline else ", "
    items = [f"{json.dumps(k, ensure_ascii=False)}: {_dump(v, layout)}" for k, v in added]
    kept = [m for i, m in enumerate(node.members) if i not in removed]
    if kept:
        return kept[-1].value.end, kept[-1].value.end, sep + sep.join(items)
    inner = layout.newline + layout.indent + sep.join(items) + layout.newline + layout.outer
    return node.start + 1, node.end - 1, inner


def _indents(text: str, node: Node) -> tuple[str, str]:
    """Return (member indent, closing-brace indent) as used in the file (2 spaces per level by default)."""
    line_start = text.rfind("\n", 0, node.start) + 1
    outer = re.match(r"[ \t]*", text[line_start:]).group()  # type: ignore[union-attr]
    for member in node.members:
        before = text[text.rfind("\n", 0, member.start) + 1 : member.start]
        if before.strip() == "" and text.rfind("\n", 0, member.start) > node.start:
            return before, outer
    unit = "\t" if outer.startswith("\t") else "  "
    return outer + unit, outer


def _dump(value: Any, layout: _Layout) -> str:
    """Serialize a value; a nested object is laid out one level deeper than its member."""
    if not isinstance(value, dict) or not value:
        return json.dumps(value, ensure_ascii=False)
    inner = layout.indent + layout.unit
    lines = [
        f"{inner}{json.dumps(k, ensure_ascii=False)}: {json.dumps(v, ensure_ascii=False)}" for k, v in value.items()
    ]
    return "{" + layout.newline + ("," + layout.newline).join(lines) + layout.newline + layout.indent + "}"


# --------------------------------------------------------------------------- undo snapshots
