"""Safe ``{name}``-style templates: only plain placeholders, checked when a playbook loads.

``str.format`` alone would let a template reach attributes (``{name.__class__}``) and would
fail at send time on a stray brace; here a template is parsed once, up front, and
rendering only substitutes values, so a member called ``{x}`` renders as ``{x}``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping

from bot.i18n import _

_formatter = string.Formatter()


def placeholders(template: str) -> list[str]:
    """The placeholder names in ``template``; ValueError with a readable reason if malformed."""
    names: list[str] = []
    try:
        parsed = list(_formatter.parse(template))
    except ValueError as exc:
        raise ValueError(
            _(
                "{reason}: a lone '{{' or '}}' in a template; write '{{{{' or '}}}}' for a literal brace"
            ).format(reason=exc)
        ) from None
    for _literal, field_name, spec, conversion in parsed:
        if field_name is None:
            continue
        if not field_name.isidentifier():
            raise ValueError(
                _("`{placeholder}` is not a placeholder; use plain names like {{name}}").format(
                    placeholder="{" + field_name + "}"
                )
            )
        if spec or conversion:
            raise ValueError(
                _("`{placeholder}` may not carry a format (':' or '!'); write {fixed}").format(
                    placeholder="{"
                    + field_name
                    + (f"!{conversion}" if conversion else "")
                    + (f":{spec}" if spec else "")
                    + "}",
                    fixed="{" + field_name + "}",
                )
            )
        names.append(field_name)
    return names


def check(template: str, allowed: Iterable[str], why: Mapping[str, str] | None = None) -> None:
    """ValueError unless every placeholder in ``template`` is one of ``allowed``. ``why``
    names placeholders this very text cannot fill (a figure where it has no value), each with
    the reason to give instead of the list of what may be used."""
    why = why or {}
    allowed = [a for a in allowed if a not in why]
    for name in placeholders(template):
        if name in why:
            raise ValueError(why[name])
        if name not in allowed:
            raise ValueError(
                _("`{placeholder}` cannot be filled here; this text may use {allowed}").format(
                    placeholder="{" + name + "}", allowed=", ".join("{" + a + "}" for a in allowed)
                )
            )


# A track named 早起打卡 in "{track}打卡成功" must read 早起打卡成功, not 早起打卡打卡成功.
_DOUBLED = ("打卡",)


def render(template: str, values: Mapping[str, object]) -> str:
    """Substitute values; placeholders were checked at load time. Where a value ends with a
    word the template repeats right after it (打卡), the word is said once."""
    out: list[str] = []
    last = ""
    for literal, field_name, _spec, _conversion in _formatter.parse(template):
        for word in _DOUBLED:
            if last.endswith(word) and literal.startswith(word):
                literal = literal[len(word) :]
        out.append(literal)
        last = ""
        if field_name is not None:
            last = str(values.get(field_name, ""))
            out.append(last)
    return "".join(out)
