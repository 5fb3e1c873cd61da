"""Operator-written YAML -> plain data that remembers the line of every value, and errors
that name the file, the line and the fix.

Playbooks, configs and scenarios all come through here, so every bad input gets the same
kind of message: ``playbooks/x.yaml:12: schedule[3].at: ... write "19:30"``.
"""

from __future__ import annotations

import difflib
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, BeforeValidator, ValidationError

from bot.i18n import N_, _, current, ngettext

Loc = tuple[str | int, ...]
T = TypeVar("T")
# `schedule:` with nothing under it is YAML null; an operator means an empty list.
EmptyList = Annotated[list[T], BeforeValidator(lambda v: [] if v is None else v)]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    where: str
    message: str
    loc: Loc = field(default=(), compare=False)  # where, as keys and indexes
    column: int | None = None  # 1-based, where a single character is the problem

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        column = f":{self.column}" if self.column else ""
        return f"{self.path}:{self.line}{column}: {where}{self.message}"


class InputError(Exception):
    """One or more problems in one input file; the whole file is rejected."""

    def __init__(self, problems: Iterable[Problem], warnings: Iterable[Problem] = ()) -> None:
        self.problems = list(problems)
        # What is legal but surely not meant, found despite the errors: shown with them, so
        # the operator fixes everything in one round.
        self.warnings = list(warnings)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass
class Source:
    """A parsed YAML file: its data, and the 1-based line of each value by location."""

    path: str
    data: Any
    lines: dict[Loc, int] = field(default_factory=dict)
    text: str = ""  # the file as read
    # Where each unquoted, one-line-or-more value written by hand ends: its index in `text`.
    plain_ends: dict[Loc, int] = field(default_factory=dict)

    def cut_by_hash(self, loc: Loc) -> str | None:
        """What YAML dropped from the unquoted value at ``loc`` as a comment, when it looks like
        text the operator meant to send (``post: 直播 #腾讯会议 123``): ``#`` right after a single
        space, ``#`` followed by a non-space, or a link. A note written the usual way, two
        spaces or more then ``# ``, is a note."""
        end = self.plain_ends.get(tuple(loc))
        if end is None:
            return None
        rest = _LINE_BREAK.split(self.text[end : end + 10_000], maxsplit=1)[0]
        m = re.match(r"([ \t]+)(#.*)", rest)
        if m is None:
            return None
        comment = m[2].rstrip()
        if m[1] == " " or (len(comment) > 1 and not comment[1].isspace()) or "://" in comment:
            return comment
        return None

    def line(self, loc: Loc) -> int:
        loc = tuple(loc)
        while loc:
            if loc in self.lines:
                return self.lines[loc]
            loc = loc[:-1]
        return self.lines.get((), 1)

    def problem(self, loc: Loc, message: str) -> Problem:
        return Problem(self.path, self.line(loc), format_loc(loc), message, tuple(loc))


def format_loc(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


MAX_DEPTH = 50  # lists and mappings inside each other; a real playbook uses five


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


def _too_deep(path: str, line: int, aliases: bool = False) -> InputError:
    return InputError(
        [
            Problem(
                path,
                line,
                "",
                (
                    _(
                        "this is nested more than {depth} levels deep once the aliases (*name) are filled "
                        "in (lists or mappings inside each other); a playbook needs only a few levels: "
                        "check the brackets [ ] and {{ }} and the indentation here"
                    )
                    if aliases
                    else _(
                        "this is nested more than {depth} levels deep (lists or mappings inside "
                        "each other); a playbook needs only a few levels: check the brackets [ ] and {{ }} "
                        "and the indentation here"
                    )
                ).format(depth=MAX_DEPTH),
            )
        ]
    )


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps "19:30" a string (YAML 1.1 would read 19:30 as the base-60
    number 1170, a trap for anyone writing times unquoted) and rejects duplicate keys.
    It refuses nesting deeper than MAX_DEPTH before the (recursive) composer overflows."""

    _depth = 0

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        # The line of each alias (*name) in a list, by (list node, index): the node it gives
        # is the anchor's, which carries the anchor's line.
        self.alias_lines: dict[tuple[int, int], int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            event = self.peek_event()
            line = event.start_mark.line + 1 if event.start_mark else 1
            if self._depth > MAX_DEPTH:
                raise _TooDeep(line)
            if isinstance(event, yaml.AliasEvent) and isinstance(index, int) and parent is not None:
                self.alias_lines[(id(parent), index)] = line
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
for _digit in "0123456789":
    _Loader.yaml_implicit_resolvers.setdefault(_digit, []).insert(
        0, ("tag:yaml.org,2002:str", re.compile(r"^\d{1,2}:\d{2}(:\d{2})?$"))
    )


def _problem(path: str, node: yaml.Node, loc: Loc, message: str) -> InputError:
    return InputError([Problem(path, node.start_mark.line + 1, format_loc(loc), message)])


# Characters no operator means to type: C0 controls but tab and line breaks, DEL, C1 controls,
# lone surrogates, U+FFFE/U+FFFF. The YAML reader refuses most of them in the file with a
# traceback-shaped message, and lets `"\0"`-style escapes put them in values, where they would
# reach WeChat or PostgreSQL (which refuses NUL).
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_CHAR_NAMES = {
    0x00: N_("null"),
    0x07: N_("bell"),
    0x08: N_("backspace"),
    0x0B: N_("vertical tab"),
    0x0C: N_("form feed"),
    0x1B: N_("escape"),
    0x7F: N_("delete"),
    0x85: N_("next line"),
}
MAX_CONTROL_PROBLEMS = 10
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")  # YAML's: its marks count these


def describe_char(ch: str) -> str:
    """``U+000C form feed``: a character an operator cannot see, named so they can find it."""
    cp = ord(ch)
    name = _(_CHAR_NAMES[cp]) if cp in _CHAR_NAMES else unicodedata.name(ch, "").lower()
    if not name:
        if cp < 0x20 or 0x80 <= cp <= 0x9F:
            name = _("control character")
        elif 0xD800 <= cp <= 0xDFFF:
            name = _("broken character (half of a surrogate pair)")
        else:
            name = _("non-character")
    return f"U+{cp:04X} {name}"


def _control_problems(text: str, path: str) -> list[Problem]:
    """One problem per invisible control character in the file, with line and column."""
    problems: list[Problem] = []
    hits = list(_CONTROL.finditer(text))
    for m in hits[:MAX_CONTROL_PROBLEMS]:
        start = m.start()
        breaks = list(_LINE_BREAK.finditer(text, 0, start))
        line = len(breaks) + 1
        column = start - (breaks[-1].end() if breaks else 0) + 1
        problems.append(
            Problem(
                path,
                line,
                "",
                _(
                    "there is an invisible control character here ({char}); delete it (it often comes "
                    "in with text pasted from Word, Excel or a web page)"
                ).format(char=describe_char(m[0])),
                column=column,
            )
        )
    if len(hits) > MAX_CONTROL_PROBLEMS:
        last = problems[-1]
        more = len(hits) - MAX_CONTROL_PROBLEMS
        problems.append(
            Problem(
                path,
                last.line,
                "",
                ngettext(
                    "and {n} more such character after this line; delete them all",
                    "and {n} more such characters after this line; delete them all",
                    more,
                ).format(n=more),
            )
        )
    return problems


def _scalar(node: yaml.Node, loader: _Loader, loc: Loc, path: str) -> Any:
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, LookupError, AttributeError) as exc:
        # PyYAML's constructors fail on explicitly tagged odd values with whatever their code
        # trips on: `!!bool abc` KeyError, `!!int ""` IndexError, `!!timestamp x` AttributeError.
        if node.tag == "tag:yaml.org,2002:timestamp":
            # e.g. 2026-13-01: YAML sees a date, Python refuses it.
            raise _problem(
                path,
                node,
                loc,
                _("{value!r} is not a real date; write YYYY-MM-DD, e.g. 2026-12-01").format(value=node.value),
            ) from None
        if not isinstance(exc, ValueError):
            tag = node.tag.rsplit(":", 1)[-1]
            raise _problem(
                path,
                node,
                loc,
                _(
                    "{value!r} cannot be read as `!!{tag}`, the type written before it; remove `!!{tag}`"
                ).format(value=node.value, tag=tag),
            ) from None
        raise _problem(
            path,
            node,
            loc,
            _("this value cannot be read ({reason}); write a shorter, plain value").format(reason=exc),
        ) from None
    if isinstance(value, str) and (m := _CONTROL.search(value)):
        raise _problem(
            path,
            node,
            loc,
            _(
                "this text contains an invisible control character ({char}), maybe "
                "written as an escape such as \\0 or \\x0c; delete it"
            ).format(char=describe_char(m[0])),
        )
    return value


MAX_EXPANDED = 100_000  # values filled in by aliases (*name): far above any real file's


@dataclass
class _Builder:
    """Constructs the data, recording for each location the line an error there should name:
    a mapping entry's key line, a list item's own line."""

    loader: _Loader
    path: str
    lines: dict[Loc, int] = field(default_factory=dict)
    active: set[int] = field(default_factory=set)  # nodes being built: an alias to one loops
    built: set[int] = field(default_factory=set)  # nodes built once: meeting one again is an alias
    merged: dict[int, int] = field(default_factory=dict)  # mapping node -> its merged (<<) pairs
    alias: tuple[int, Loc] | None = None  # while an alias (*name) is filled in: where it is
    expanded: int = 0  # values filled in by aliases so far
    plain_ends: dict[Loc, int] = field(default_factory=dict)  # see Source.plain_ends

    def build(self, node: yaml.Node, loc: Loc, line: int) -> Any:
        outer = id(node) in self.built and self.alias is None
        if outer:
            self.alias = (line, loc)
        try:
            return self._build(node, loc, line)
        finally:
            if outer:
                self.alias = None

    def _build(self, node: yaml.Node, loc: Loc, line: int) -> Any:
        alias_line = self.alias[0] if self.alias else None
        if len(loc) >= MAX_DEPTH:  # only aliases (*name) inside each other get here
            raise _too_deep(self.path, alias_line or line, aliases=True)
        if self.alias is not None:
            # Counted where aliases expand, not in the whole file: a long list written out
            # by hand is fine (the file size bounds it), a few lines of nested aliases that
            # expand to billions of values are not.
            self.expanded += 1
            if self.expanded > MAX_EXPANDED:
                raise InputError(
                    [
                        Problem(
                            self.path,
                            self.alias[0],
                            format_loc(self.alias[1]),
                            _(
                                "the aliases (*name) in this file expand to too many values (more "
                                "than {n}); write the values out, or use fewer aliases inside aliases"
                            ).format(n=f"{MAX_EXPANDED:,}"),
                        )
                    ]
                )
        if id(node) in self.active:
            raise _problem(self.path, node, loc, _("an alias (*name) refers to the value it is inside"))
        self.lines[loc] = line
        self.active.add(id(node))
        self.built.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode):
                at = self.loader.alias_lines
                return [
                    self.build(n, (*loc, i), at.get((id(node), i), n.start_mark.line + 1))
                    for i, n in enumerate(node.value)
                ]
            if isinstance(node, yaml.ScalarNode) and node.style is None and self.alias is None and loc:
                self.plain_ends[loc] = node.end_mark.index
            return _scalar(node, self.loader, loc, self.path)
        finally:
            self.active.discard(id(node))

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[Any, Any]:
        if id(node) not in self.merged:  # flattening changes the node: only once
            explicit = sum(1 for k, _ in node.value if k.tag != "tag:yaml.org,2002:merge")
            self.loader.flatten_mapping(node)
            self.merged[id(node)] = len(node.value) - explicit  # flattened (<<) pairs come first
        merged = self.merged[id(node)]
        out: dict[Any, Any] = {}
        for index, (key_node, value_node) in enumerate(node.value):
            key = _scalar(key_node, self.loader, loc, self.path)
            if isinstance(key, list | dict):
                raise _problem(
                    self.path, key_node, loc, _("a key must be a plain word, not a list or mapping")
                )
            # A key given twice by hand is a mistake; one that overrides a merged (<<) key is not.
            if key in out and index >= merged and key in _explicit_keys(node.value[merged:index]):
                raise _problem(
                    self.path,
                    key_node,
                    loc,
                    _("`{key}` appears twice here; keep one (YAML would silently drop the first)").format(
                        key=key
                    ),
                )
            out[key] = self.build(value_node, (*loc, key), key_node.start_mark.line + 1)
        return out


def _explicit_keys(pairs: list[tuple[yaml.Node, yaml.Node]]) -> set[Any]:
    return {k.value for k, _ in pairs if isinstance(k, yaml.ScalarNode)}


def parse_yaml(text: str, path: str) -> Source:
    control = _control_problems(text, path)
    if control:
        raise InputError(control)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        builder = _Builder(loader, path)
        data = None if node is None else builder.build(node, (), node.start_mark.line + 1)
    except _TooDeep as exc:
        raise _too_deep(path, exc.line) from None
    except yaml.MarkedYAMLError as exc:
        raise InputError(_syntax_problems(text, path, exc)) from None
    except yaml.YAMLError as exc:
        raise InputError(
            [Problem(path, 1, "", _("this is not valid YAML ({reason})").format(reason=exc))]
        ) from None
    finally:
        loader.dispose()
    return Source(path, data, builder.lines, text, builder.plain_ends)


_QUOTES = {'"': "”", "'": "’"}  # an English quote, and the Chinese one typed in its place
_SLIP_SPAN = 3  # a slip makes the parser fail this many lines later at most
# `day：2`, `- name：正课`: a key, then the Chinese colon.
_KEY_COLON = re.compile(r"[ ]*(?:-[ ]+)*([A-Za-z_][A-Za-z0-9_-]*)[ \u3000]*：")


def _syntax_problems(text: str, path: str, exc: yaml.MarkedYAMLError) -> list[Problem]:
    """The parser's complaint, in the operator's words and on the line of the slip behind it
    (the parser notices a Chinese colon, a full-width space or an open quote a line or more
    later, in its own terms)."""
    mark = exc.problem_mark or exc.context_mark
    error_line = mark.line if mark else 0  # 0-based, like the marks
    lines = _LINE_BREAK.split(text)
    # The scanner alone goes on past the parser's error: where each piece of text lies.
    inside: set[int] = set()  # lines that continue a value begun on an earlier line
    opened: list[tuple[int, int]] = []  # (line, column) of quotes that run over several lines
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            start, end = token.start_mark, token.end_mark
            if start.line == end.line:
                continue
            inside.update(range(start.line + 1, end.line + (1 if end.column > 0 else 0)))
            quoted = isinstance(token, yaml.ScalarToken) and token.style in _QUOTES
            if quoted and start.line <= error_line <= end.line + _SLIP_SPAN:
                opened.append((start.line, start.column))
    except yaml.MarkedYAMLError as scan_exc:
        at = scan_exc.context_mark
        if at is not None and str(scan_exc.context).startswith("while scanning a quoted scalar"):
            opened.append((at.line, at.column))
            inside.update(range(at.line + 1, len(lines)))
    except yaml.YAMLError:
        pass  # the reader's own complaints come with the main error
    problems = [_open_quote(path, n, lines[n], column) for n, column in opened if n < len(lines)]
    for n in range(max(0, error_line - _SLIP_SPAN), min(error_line + 1, len(lines))):
        line = lines[n]
        indent = re.match(r"[ \t\u3000]*", line)[0]  # type: ignore[index]
        rest = line[len(indent) :]
        if n in inside or not rest or (rest.startswith("#") and not indent.strip(" ")):
            continue
        if "\u3000" in indent:
            message = _(
                'this line is indented with a full-width space "\u3000" (U+3000, the wide space a '
                "Chinese keyboard types); indent with ordinary spaces only, switching the keyboard "
                "to English (half-width) input"
            )
        elif "\t" in indent:
            message = _(
                'this line is indented with a tab ("\\t"); indent with spaces only (2 for each level)'
            )
        elif m := _KEY_COLON.match(line):
            wrong, fixed = line[m.start(1) :].strip(), f"{m[1]}: {line[m.end() :].strip()}"
            message = _(
                '"{written}" has the Chinese colon "：" after `{key}`; after a key write the English '
                "colon and a space: {fixed}"
            ).format(written=wrong, key=m[1], fixed=fixed)
        else:
            continue
        problems.append(Problem(path, n + 1, "", message))
    if problems:
        return sorted(set(problems), key=lambda p: p.line)
    what = (exc.problem or exc.context or "").strip()
    if what == "mapping values are not allowed here" and error_line < len(lines):
        return [Problem(path, error_line + 1, "", _colon_in_text(lines, error_line))]
    return [
        Problem(
            path,
            error_line + 1,
            "",
            _(
                "this is not valid YAML ({reason}); check the indentation, and put text that "
                "contains ': ' or starts with '@', '{{', '[' or '*' in quotes"
            ).format(reason=what),
        )
    ]


# `post: 链接: http://…`: a key, then text holding ": " (YAML reads a second key in it).
_TEXT_WITH_COLON = re.compile(r"([ ]*(?:-[ ]+)*)([A-Za-z_][A-Za-z0-9_-]*):[ ]+([^\"'{\[].*?:[ ].*?)[ ]*$")


def _colon_in_text(lines: list[str], n: int) -> str:
    """PyYAML's "mapping values are not allowed here", said as what the operator did."""
    line = lines[n]
    if m := _TEXT_WITH_COLON.match(line):
        text = m[3].replace('"', '\\"')
        return _(
            'the text after `{key}:` contains ": " (a colon and a space), which YAML reads as the '
            'start of another key; put the whole text in English quotes: {key}: "{text}"'
        ).format(key=m[2], text=text)
    above = next((lines[i] for i in range(n - 1, -1, -1) if lines[i].strip()), "")
    indent, before = len(line) - len(line.lstrip(" ")), len(above) - len(above.lstrip(" "))
    if indent > before and not above.rstrip().endswith(":"):
        return _(
            "this line is indented more than the line above, which already has its value; indent it "
            "like the line above (or, if it belongs to the line above, put it in its text)"
        )
    return _(
        'YAML found a ": " (colon and space) where it does not expect a key; check the indentation, '
        'and put text that contains ": " in English quotes'
    )


def _open_quote(path: str, n: int, line: str, column: int) -> Problem:
    """A quote opened on line ``n`` (0-based) and not closed on it."""
    quote = line[column]
    closing = _QUOTES[quote]
    written = line[column:].rstrip()
    if closing in written:
        fixed = written.replace(closing, quote, 1)
        message = _(
            "the text {text} opens with the English quote {quote} but closes with the Chinese "
            "quote {closing}, which YAML does not count as a closing quote; use the same English "
            "quote at both ends: {fixed}"
        ).format(text=written, quote=quote, closing=closing, fixed=fixed)
    else:
        # In a list [..] or mapping {..} on one line, the quote goes before its closing bracket.
        before = line[:column]
        m = re.match(r"(.*?)([\]},\s]*)$", written) if "[" in before or "{" in before else None
        fixed = f"{m[1]}{quote}{m[2]}" if m and m[1] else f"{written}{quote}"
        message = _(
            "the quote {quote} that opens {text} is not closed on this line, so everything up "
            "to the next quote below is read as part of the text; add the closing quote: {fixed}"
        ).format(quote=quote, text=written, fixed=fixed)
    return Problem(path, n + 1, "", message)


MAX_BYTES = 1_000_000  # a real playbook is a few KB; reading past this only wastes minutes


def _size(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB" if n >= 100_000 else f"{n / 1000:.0f} KB"


def _decode(raw: bytes, path: str) -> str:
    save = _(
        "open it in a text editor and save it again with the encoding UTF-8 (in Windows Notepad: "
        "File > Save As > Encoding: UTF-8)"
    )
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError(
            [
                Problem(
                    path,
                    1,
                    "",
                    _('this file is saved as UTF-16 (Windows calls it "Unicode"); {fix}').format(fix=save),
                )
            ]
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if b"\x00" in raw:
            message = _(
                "this is not a text file (it holds binary data); check that this is the right "
                "file: playbooks, configs and scenarios are text saved as UTF-8"
            )
            raise InputError([Problem(path, 1, "", message)]) from None
        line = raw.count(b"\n", 0, exc.start) + 1
        message = _(
            "this file is not saved as UTF-8: from this line on it has characters in another "
            "encoding (often GBK/ANSI, from Windows Notepad or Excel); {fix}"
        ).format(fix=save)
        raise InputError([Problem(path, line, "", message)]) from None


def resolved(path: Path) -> Path:
    """``path.resolve()``, or, in a symlink loop (RuntimeError up to Python 3.12, OSError
    after), the absolute path as written: opening it then says what is wrong, with the file."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return Path(os.path.abspath(path))


def read_yaml(path: str | Path) -> Source:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            raw = fh.read(MAX_BYTES + 1)  # never the whole of a huge file
            size = max(len(raw), os.fstat(fh.fileno()).st_size)
    except FileNotFoundError:
        raise InputError([Problem(str(path), 1, "", _("no such file; check the path"))]) from None
    except IsADirectoryError:
        raise InputError([Problem(str(path), 1, "", _("this is a folder, not a file"))]) from None
    except OSError as exc:
        raise InputError(
            [Problem(str(path), 1, "", _("cannot read it: {reason}").format(reason=exc.strerror))]
        ) from None
    if len(raw) > MAX_BYTES:
        raise InputError(
            [
                Problem(
                    str(path),
                    1,
                    "",
                    _(
                        "this file is {size}; playbooks, configs and scenarios must be under "
                        "{limit} MB (a real one is a few KB), so it is probably the "
                        "wrong file, or something huge was pasted into it"
                    ).format(size=_size(size), limit=MAX_BYTES // 1_000_000),
                )
            ]
        )
    return parse_yaml(_decode(raw, str(path)), str(path))


def validate(source: Source, model: type[M], context: dict[str, Any] | None = None) -> M:
    """Validate ``source.data`` as ``model``; every problem comes back with its line."""
    if not isinstance(source.data, dict):
        raise InputError(
            [
                source.problem(
                    (),
                    _("the file must be a YAML mapping (key: value lines); it is empty")
                    if source.data is None
                    else _("the file must be a YAML mapping (key: value lines)"),
                )
            ]
        )
    try:
        return model.model_validate(source.data, context=context)
    except ValidationError as exc:
        raise InputError(_explain(source, model, exc)) from None


def _model_at(model: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The pydantic model that validates the mapping at ``loc`` (for listing allowed keys)."""
    current: Any = model
    for part in loc:
        current = _step(current, part)
        if current is None:
            return None
    current = _strip_optional(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _strip_optional(tp: Any) -> Any:
    args = [a for a in getattr(tp, "__args__", ()) if a is not type(None)]
    if get_origin(tp) in (Union, UnionType) and len(args) == 1:
        return _strip_optional(args[0])
    if get_origin(tp) is Annotated:
        return _strip_optional(get_args(tp)[0])
    return tp


def _step(tp: Any, part: str | int) -> Any:
    """The type found one step (a field, a list index, a dict key) inside ``tp``."""
    tp = _strip_optional(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        for name, f in tp.model_fields.items():
            if part in (name, f.alias):
                return f.annotation
        return None
    origin, args = get_origin(tp), get_args(tp)
    if origin is list and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def _field_names(model: type[BaseModel]) -> list[str]:
    """The keys a file may use: aliases where they are set (`from`, not `sender`)."""
    return sorted(f.alias or name for name, f in model.model_fields.items())


# pydantic's own messages, for operators who read another language than English (in English,
# pydantic's wording is kept). The placeholders are pydantic's context values.
_PYDANTIC = {
    "string_type": N_("this should be text"),
    "int_type": N_("this should be a whole number"),
    "int_parsing": N_("this should be a whole number"),
    "int_from_float": N_("this should be a whole number, without a fractional part"),
    "float_type": N_("this should be a number"),
    "float_parsing": N_("this should be a number"),
    "bool_type": N_("this should be true or false"),
    "bool_parsing": N_("this should be true or false"),
    "list_type": N_("this should be a list"),
    "dict_type": N_("this should be a mapping (key: value lines)"),
    "model_type": N_("this should be a mapping (key: value lines)"),
    "model_attributes_type": N_("this should be a mapping (key: value lines)"),
    "literal_error": N_("this should be {expected}"),
    "greater_than": N_("this should be more than {gt}"),
    "greater_than_equal": N_("this should be {ge} or more"),
    "less_than": N_("this should be less than {lt}"),
    "less_than_equal": N_("this should be {le} or less"),
    "string_too_short": N_("this text should not be empty"),
    "too_short": N_("this should have at least {min_length} entries"),
    "time_type": N_("this should be a time of day, HH:MM"),
    "time_parsing": N_("this should be a time of day, HH:MM"),
    "date_type": N_("this should be a date, YYYY-MM-DD"),
    "date_parsing": N_("this should be a date, YYYY-MM-DD"),
    "date_from_datetime_parsing": N_("this should be a date, YYYY-MM-DD"),
    "datetime_type": N_("this should be a date and time"),
    "datetime_parsing": N_("this should be a date and time"),
}


def _pydantic_message(kind: str, message: str, err: Any) -> str:
    if current() == "en" or kind not in _PYDANTIC:
        return message
    try:
        return _(_PYDANTIC[kind]).format(**err.get("ctx", {}))
    except (KeyError, IndexError):
        return message


class _Shown:
    """A value quoted in a message, cut short: a block indented under the wrong key would
    otherwise fill the screen with one line (``days: (got {'k0': ..., ... 3 KB})``)."""

    LIMIT = 60

    def __init__(self, value: Any) -> None:
        self.value = value

    def _cut(self, text: str) -> str:
        return text if len(text) <= self.LIMIT else text[: self.LIMIT - 1] + "…"

    def __repr__(self) -> str:
        return self._cut(repr(self.value))

    def __str__(self) -> str:
        return self._cut(str(self.value))


def _explain(source: Source, model: type[BaseModel], exc: ValidationError) -> list[Problem]:
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            parent = _model_at(model, loc[:-1])
            allowed = _field_names(parent) if parent else []
            guess = difflib.get_close_matches(key, allowed, n=1)
            msg = _("unknown key `{key}`").format(key=key)
            msg += _("; did you mean `{guess}`?").format(guess=guess[0]) if guess else ""
            if allowed:
                msg += _("; allowed here: {keys}").format(keys=", ".join(allowed))
            problems.append(source.problem(loc, msg))
            continue
        if kind == "missing":
            parent = _model_at(model, loc[:-1])
            f = (
                next((f for n, f in parent.model_fields.items() if loc[-1] in (n, f.alias)), None)
                if parent
                else None
            )
            if f and f.description:
                missing = _("`{key}` is missing; add it ({description})")
            else:
                missing = _("`{key}` is missing; add it")
            description = f.description if f else ""
            problems.append(source.problem(loc[:-1], missing.format(key=loc[-1], description=description)))
            continue
        if loc and loc[-1] == "[key]":  # a mapping key (e.g. a track id) failed validation
            loc = loc[:-1]
            kind = "bad_key"
        msg = err["msg"]
        if kind in ("string_pattern_mismatch", "bad_key") and "a-z0-9_-" in str(err.get("ctx", {})):
            bad = str(err.get("input"))
            slug = re.sub(r"[^a-z0-9_-]+", "-", bad.lower()).strip("-") or "lesson"
            msg = _(
                "{value!r} is not a valid id; use lower-case letters, digits, - and _, e.g. {example!r}"
            ).format(value=_Shown(bad), example=_Shown(slug[:40].strip("-")))
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif kind in ("string_type",):
            msg = _pydantic_message(kind, msg, err) + _("; put the value in quotes")
        elif kind.endswith("_parsing") or kind.endswith("_type"):
            msg = _pydantic_message(kind, msg, err) + _(" (got {value!r})").format(
                value=_Shown(err.get("input"))
            )
        else:
            msg = _pydantic_message(kind, msg, err)
        problems.append(source.problem(loc, msg))
    problems.sort(key=lambda p: p.line)
    return problems
