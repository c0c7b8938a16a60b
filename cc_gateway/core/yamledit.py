"""Edit YAML text in place: locate nodes with ruamel.yaml's round-trip loader, splice lines, verify.

A ruamel dump re-indents the whole file to one style (our own config.yaml mixes two), so edits
here never dump the document. They replace, insert or delete the lines of one node and leave
every other byte alone: comments, blank lines, quoting, key order and indentation survive.
After the edits, `verify()` re-parses the result and compares it with the intended data, so a
layout this module cannot splice safely becomes a clear error instead of a wrong file.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

from cc_gateway.core.errors import ConfigError, located

Key = str | int
KeyPath = tuple[Key, ...]


class Doc:
    """YAML text plus its round-trip parse (for locations); immutable: every edit returns a new Doc."""

    def __init__(self, text: str, path: Path | str, *, derived: bool = False) -> None:
        self.text = text
        self.path = path
        self.newline = "\r\n" if "\r\n" in text else "\n"
        self.lines = text.splitlines()
        self._derived = derived  # the result of a splice: a parse error is ours, not the user's

    @functools.cached_property
    def data(self) -> Any:
        """The round-trip parse (lazy: the text after the last splice is checked by `verify` instead)."""
        try:
            return parse_roundtrip(self.text, self.path)
        except ConfigError:
            if self._derived:  # the splice broke the YAML (e.g. removed an anchor used elsewhere)
                raise _unsafe(self.path) from None
            raise

    @functools.cached_property
    def step(self) -> int:
        """The file's mapping indentation."""
        return _mapping_step(self.data)

    # ------------------------------------------------------------------ reading

    def get(self, path: KeyPath) -> Any:
        """Return the node at `path` (mapping keys and list indexes), or None when absent."""
        node = self.data
        for key in path:
            if not _contains(node, key):
                return None
            node = node[key]
        return node

    def line_of(self, path: KeyPath) -> int | None:
        """1-based line where the node at `path` starts (None for the root or when absent)."""
        if not path or self.get(path[:-1]) is None:
            return None
        parent, key = self.get(path[:-1]), path[-1]
        if isinstance(parent, dict) and key in parent:
            return parent.lc.key(key)[0] + 1
        if isinstance(parent, list) and isinstance(key, int) and key < len(parent):
            return parent.lc.item(key)[0] + 1
        return None

    # ------------------------------------------------------------------ edits

    def set(self, path: KeyPath, value: Any) -> Doc:
        """Set the node at `path` (its parent must exist), rewriting only that node's lines."""
        parent, key = self.get(path[:-1]), path[-1]
        if _is_block(parent) and self.has(path):
            start, end, col = self._span(parent, key)
            lines = emit({key: value} if isinstance(parent, dict) else [value], col, self.step)
            prefix = self.lines[start][:col]  # "  - " when the key is the first of a list item
            return self._splice(start, end, [prefix + lines[0][col:], *lines[1:]])
        if isinstance(parent, dict) and _is_block(parent) and len(parent):
            return self.add_keys(path[:-1], {key: value})
        merged = plain(parent) if isinstance(parent, (dict, list)) else {}
        merged[key] = value
        return self._replace_container(path[:-1], merged)

    def has(self, path: KeyPath) -> bool:
        """Tell whether `path` names an existing key or list item (its value may be null)."""
        return _contains(self.get(path[:-1]), path[-1])

    def add_keys(self, path: KeyPath, items: dict[str, Any]) -> Doc:
        """Add keys to the mapping at `path`, creating it (and its parents) when missing."""
        node = self.get(path)
        if isinstance(node, dict) and _is_block(node) and len(node):
            _, end, col = self._key_span(node, list(node)[-1])
            blank = [] if path else [""]  # a new top-level section gets a blank line before it
            return self._splice(end + 1, end, blank + emit(items, col, self.step))
        if not path:
            return self._replace_container((), items) if self.data is None else self._append_top(items)
        if not self.has(path):
            return self.add_keys(path[:-1], {str(path[-1]): items})
        merged = plain(node) if isinstance(node, dict) else {}
        merged.update(items)
        return self.set(path, merged)

    def append(self, path: KeyPath, value: Any, *, comment: str | None = None) -> Doc:
        """Append an item to the list at `path`, creating the list when missing."""
        node = self.get(path)
        if isinstance(node, list) and _is_block(node) and len(node):
            _, end, col = self._item_span(node, len(node) - 1)
            lines = ([" " * col + "# " + comment] if comment else []) + emit([value], col, self.step)
            return self._splice(end + 1, end, lines)
        if not self.has(path):
            return self.add_keys(path[:-1], {str(path[-1]): [value]})
        merged = plain(node) if isinstance(node, list) else []
        merged.append(value)
        return self.set(path, merged)

    def delete(self, path: KeyPath) -> Doc:
        """Delete the key or list item at `path`, with the comment lines directly above it."""
        parent, key = self.get(path[:-1]), path[-1]
        if len(parent) == 1 and path[:-1]:
            return self.set(path[:-1], type(plain(parent))())  # the last entry: leave `key: {}` (or [])
        start, end, col = self._span(parent, key) if _is_block(parent) else (0, 0, 0)
        if _is_block(parent) and not self.lines[start][:col].strip():
            while start > 0 and _is_comment_at(self.lines[start - 1], col):
                start -= 1
            return self._splice(start, end, [])
        merged = plain(parent)
        del merged[key]
        return self._replace_container(path[:-1], merged)

    # ------------------------------------------------------------------ internals

    def _replace_container(self, path: KeyPath, value: Any) -> Doc:
        """Rewrite a flow-style, empty or null node as block YAML (its inner comments, if any, go)."""
        if not path:
            return Doc(self.newline.join(emit(value, 0, self.step)) + self.newline, self.path, derived=True)
        return self.set(path, value)

    def _append_top(self, items: dict[str, Any]) -> Doc:
        """Add top-level keys after the last top-level block, separated by a blank line."""
        if not isinstance(self.data, dict):
            raise ConfigError(f"{self.path}: expected a mapping at the top level")
        end = max((self._key_span(self.data, k)[1] for k in self.data), default=len(self.lines) - 1)
        return self._splice(end + 1, end, ["", *emit(items, 0, self.step)])

    def _span(self, parent: Any, key: Key) -> tuple[int, int, int]:
        return self._key_span(parent, key) if isinstance(parent, dict) else self._item_span(parent, key)

    def _key_span(self, mapping: Any, key: Key) -> tuple[int, int, int]:
        """0-based (first line, last line, column) of a mapping key and its value."""
        line, col = mapping.lc.key(key)
        end = _block_end(self.lines, line, col)
        value = mapping[key]
        if isinstance(value, list) and _is_block(value) and len(value):
            end = max(end, self._item_span(value, len(value) - 1)[1])
        return line, end, col

    def _item_span(self, seq: Any, index: Key) -> tuple[int, int, int]:
        """0-based (first line, last line, column of the dash) of a list item."""
        line, col = seq.lc.item(index)
        dash = self.lines[line].rfind("-", 0, col)
        if dash < 0:  # `-` alone on the line before its value: not a layout we splice
            raise ConfigError(
                located(self.path, line + 1, "cannot edit this list item in place (unusual layout)"),
                hint="edit this part of the file by hand",
            )
        return line, _block_end(self.lines, line, dash), dash

    def _splice(self, start: int, end: int, new: list[str]) -> Doc:
        """Replace lines start..end (inclusive; end = start - 1 inserts) and re-parse."""
        lines = self.lines[:start] + new + self.lines[end + 1 :]
        trailing = self.newline if (self.text.endswith(("\n", "\r")) or not self.text) else ""
        if start >= len(self.lines) and not trailing:
            trailing = self.newline  # we appended after an unterminated last line
        return Doc(self.newline.join(lines) + trailing, self.path, derived=True)


# --------------------------------------------------------------------------- parsing


def parse_roundtrip(text: str, path: Path | str) -> Any:
    """Parse with ruamel's round-trip loader; a YAML error names the file and line."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        return YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = (exc.problem or exc.context or "invalid YAML").split("\n")[0]
        raise ConfigError(
            located(path, mark.line + 1 if mark else None, f"invalid YAML: {problem}"),
            hint="fix the YAML at that line; nothing was changed",
        ) from None
    except YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {str(exc).splitlines()[0]}") from None


def plain(node: Any) -> Any:
    """Deep-copy a round-trip node into plain dicts, lists and scalars."""
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (int, bool)) else k: plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    for kind in (bool, int, float, str):  # ruamel's ScalarInt, ScalarFloat, quoted strings...
        if isinstance(node, kind):
            return kind(node)
    return copy.copy(node)


def verify(old_text: str, new_text: str, expected: Any, path: Path | str) -> None:
    """Check that the edited text parses to `expected` (as LiteLLM's PyYAML reads it)."""
    from cc_gateway.core.files import parse_yaml

    try:
        actual = parse_yaml(new_text, path)
    except ConfigError:
        actual = object()
    if actual != expected:
        raise _unsafe(path)


def _unsafe(path: Path | str) -> ConfigError:
    return ConfigError(
        f"{path}: cannot edit this file safely in place (an unusual layout, e.g. a YAML anchor in the part "
        "being changed); nothing was changed",
        hint="make the change by hand, or run `cc-gateway init` to regenerate the file",
    )


# --------------------------------------------------------------------------- emitting


def scalar(value: Any) -> str:
    """Dump one scalar as YAML, quoted only when needed (PyYAML's rules, which LiteLLM reads with)."""
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True)
    return text.strip().removesuffix("...").strip()


def emit(value: Any, col: int, step: int = 2) -> list[str]:
    """Emit a mapping or list as block YAML lines starting at column `col`."""
    pad = " " * col
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{scalar(key)}:")
                lines += emit(item, col + step if isinstance(item, dict) else col, step)
            else:
                lines.append(f"{pad}{scalar(key)}: {_inline(item)}")
        return lines
    for item in value:
        if isinstance(item, (dict, list)) and item:
            inner = emit(item, col + 2, step)
            lines.append(f"{pad}- {inner[0].lstrip()}")
            lines += inner[1:]
        else:
            lines.append(f"{pad}- {_inline(item)}")
    return lines


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return scalar(value)


# --------------------------------------------------------------------------- layout helpers


def _is_block(node: Any) -> bool:
    """Tell whether a round-trip collection is written in block style."""
    fa = getattr(node, "fa", None)
    return isinstance(node, (dict, list)) and fa is not None and not fa.flow_style()


def _contains(node: Any, key: Key) -> bool:
    if isinstance(node, dict):
        return key in node
    return isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _is_comment_at(line: str, col: int) -> bool:
    return line.lstrip().startswith("#") and _indent(line) == col


def _block_end(lines: list[str], start: int, col: int) -> int:
    """Last line of the block that starts at `start`: following lines indented deeper than `col`."""
    end = start
    for index in range(start + 1, len(lines)):
        line = lines[index]
        stripped = line.strip()
        if not stripped:
            continue
        if _indent(line) <= col:
            if stripped.startswith("#"):
                continue  # a shallow comment: the block may go on below it
            break
        end = index
    return end


def _mapping_step(data: Any) -> int:
    """The file's mapping indentation (2 unless a nested mapping says otherwise)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict) and _is_block(value) and len(value):
                step = value.lc.key(next(iter(value)))[1] - data.lc.key(key)[1]
                if step > 0:
                    return step
    return 2
