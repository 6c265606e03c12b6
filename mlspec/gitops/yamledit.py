"""Edit one spec file so that the diff is only the lines that change.

The edit is made on the ruamel.yaml round-trip tree, which is the truth of what the file must
say. The text is then spliced at the marks the round-trip loader recorded: a changed scalar is
replaced where it stands (keeping its quotes), an appended sequence item is rendered by the
round-trip dumper (flow mappings and quotes kept) and inserted after the last item's last line.
Re-dumping the whole tree would also keep comments, but it re-renders every line: a file with
its own indentation per block, a ``---`` marker or a comment between items would show a noisy
diff in the pull request. The spliced text is parsed again and must equal the edited tree;
where it cannot be spliced (a flow-style list), the whole tree is dumped with the file's own
indentation.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from mlspec.errors import MlspecError


def _yaml(indent: tuple[int, int, int] | None = None) -> YAML:
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 1 << 16  # never fold a long line (sha256 digests in flow mappings)
    if indent:
        y.indent(mapping=indent[0], sequence=indent[1], offset=indent[2])
    return y


def plain(node: Any) -> Any:
    """The data of a round-trip tree without styles or comments, for comparing trees."""
    return json.loads(json.dumps(node, default=str))


def clean_copy(node: Any) -> Any:
    """A copy with the flow/block style and scalar quoting kept, comments and anchors dropped."""
    if isinstance(node, CommentedMap):
        out = CommentedMap((k, clean_copy(v)) for k, v in node.items())
    elif isinstance(node, CommentedSeq):
        out = CommentedSeq(clean_copy(v) for v in node)
    else:
        return node
    if node.fa.flow_style():
        out.fa.set_flow_style()
    return out


class YamlEdit:
    """One YAML text, its round-trip tree, and edits applied to both."""

    def __init__(self, text: str, rel: str):
        self.rel = rel
        self.original = text
        self.text = text
        self.tree = self._load(text)
        self.indent = guess_indent(self.tree)
        self.newline = "\r\n" if "\r\n" in text else "\n"  # new lines end as the file's do
        self._spliced = True

    def _load(self, text: str) -> Any:
        try:
            return _yaml().load(text)
        except Exception as e:  # ruamel's errors have no common base worth naming here
            raise MlspecError(f"{self.rel} is not valid YAML ({e.__class__.__name__}); run `mlspec validate` to see where") from None

    @property
    def changed(self) -> bool:
        return self.result() != self.original

    def node(self, path: tuple) -> Any:
        node = self.tree
        for part in path:
            node = node[part]
        return node

    def set_scalar(self, path: tuple, value: str) -> None:
        """Set a string scalar, keeping its quoting."""
        parent, key = self.node(path[:-1]), path[-1]
        old = parent[key]
        new = type(old)(value) if isinstance(old, str) else value
        line, col = parent.lc.value(key) if isinstance(parent, CommentedMap) else parent.lc.item(key)
        parent[key] = new
        lines = self.text.splitlines(keepends=True)
        before, after = _token(old), _token(new)
        if self._spliced and before is not None and lines[line][col:col + len(before)] == before:
            lines[line] = lines[line][:col] + after + lines[line][col + len(before):]
            self._resplice("".join(lines))
        else:
            self._spliced = False

    def append_item(self, path: tuple, item: Any) -> None:
        """Append ``item`` (a round-trip node) to the block sequence at ``path``."""
        seq = self.node(path)
        if not self._spliced or seq.fa.flow_style() or not seq:
            seq.append(item)
            self._spliced = False
            return
        lines = self.text.splitlines(keepends=True)
        first, content_col = seq.lc.item(len(seq) - 1)
        dash_col = lines[first].rfind("-", 0, content_col)
        end = _last_content_line(lines, first, dash_col)
        rendered = self._render_item(item, dash_col)
        seq.append(item)
        if not lines[end].endswith("\n"):
            lines[end] += self.newline
        self._resplice("".join(lines[: end + 1]) + rendered + "".join(lines[end + 1:]))

    def _render_item(self, item: Any, dash_col: int) -> str:
        buf = io.StringIO()
        _yaml(self.indent).dump(CommentedSeq([item]), buf)
        lines = buf.getvalue().splitlines(keepends=True)
        shift = dash_col - lines[0].index("-")  # the dumper puts a top-level dash at the offset
        pad = " " * max(shift, 0)
        text = "".join(pad + line[max(-shift, 0):] if line.strip() else line for line in lines)
        return text.replace("\n", self.newline) if self.newline != "\n" else text

    def _resplice(self, text: str) -> None:
        try:
            reloaded = _yaml().load(text)
        except Exception:  # a splice that broke the YAML: fall back to dumping the tree
            reloaded = None
        self._spliced = reloaded is not None and plain(reloaded) == plain(self.tree)
        if self._spliced:  # the marks of the next edit must be those of the new text
            self.text, self.tree = text, reloaded

    def result(self) -> str:
        if self._spliced:
            return self.text
        buf = io.StringIO()
        _yaml(self.indent).dump(self.tree, buf)
        return buf.getvalue()


def _token(value: Any) -> str | None:
    """How a scalar is written in the file, for the scalars an edit changes (versions)."""
    if isinstance(value, DoubleQuotedScalarString):
        return None if '"' in value or "\\" in value else f'"{value}"'
    if isinstance(value, SingleQuotedScalarString):
        return None if "'" in value else f"'{value}'"
    return value if isinstance(value, str) else None


def _last_content_line(lines: list[str], first: int, dash_col: int) -> int:
    """Index of the last line of the sequence item starting at ``first`` that holds YAML, not a comment.

    Comment lines and blank lines after it belong to what follows (``# Where it runs`` above
    ``deployments:``), so the new item goes before them.
    """
    last = first
    for i in range(first + 1, len(lines)):
        stripped = lines[i].strip()
        if not stripped or stripped.startswith("#"):
            continue
        if len(lines[i]) - len(lines[i].lstrip(" ")) <= dash_col:
            break
        last = i
    return last


def guess_indent(tree: Any) -> tuple[int, int, int]:
    """The file's (mapping, sequence, offset) indentation, as ruamel's ``YAML.indent`` takes it."""
    maps: Counter = Counter()
    seqs: Counter = Counter()

    def walk(node: Any) -> None:
        if isinstance(node, CommentedMap) and not node.fa.flow_style():
            for key, value in node.items():
                key_col = node.lc.key(key)[1]
                if isinstance(value, CommentedMap) and value and not value.fa.flow_style():
                    maps[value.lc.key(next(iter(value)))[1] - key_col] += 1
                elif isinstance(value, CommentedSeq) and value and not value.fa.flow_style():
                    dash = value.lc.col
                    seqs[(value.lc.item(0)[1] - key_col, dash - key_col)] += 1
                walk(value)
        elif isinstance(node, CommentedSeq) and not node.fa.flow_style():
            for value in node:
                walk(value)

    walk(tree)
    mapping = maps.most_common(1)[0][0] if maps else 2
    sequence, offset = seqs.most_common(1)[0][0] if seqs else (4, 2)
    return max(mapping, 1), max(sequence, offset + 2), max(offset, 0)
