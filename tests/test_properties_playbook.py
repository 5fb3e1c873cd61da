"""Property tests over playbook and config loading: whatever the text, the loader returns a
valid model or raises InputError whose problems name the file and a line in it; nothing else
(no YAML reader error, no RecursionError, no OverflowError, no pydantic error leaking out)."""

from __future__ import annotations

import re
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import config, playbook
from bot.yamlfile import InputError, parse_yaml
from tests.harness import EXAMPLE
from tests.test_config import CONFIG

FAST = settings(
    max_examples=60,
    deadline=None,
    database=None,  # no .hypothesis folder in the repository
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ENV = {"WECHATY_PUPPET_SERVICE_TOKEN": "s3cret"}


def check_playbook_text(text: str) -> None:
    try:
        pb = playbook.parse(parse_yaml(text, "p.yaml"))
    except InputError as exc:
        assert exc.problems
        lines = len(re.findall("\r\n|[\r\n\x85\u2028\u2029]", text)) + 1  # YAML's line breaks
        for p in exc.problems:
            assert p.path == "p.yaml"
            assert 1 <= p.line <= lines, (p, lines)
            assert p.message
    else:
        assert isinstance(pb, playbook.Playbook)


def check_playbook_file(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        pb = playbook.load(path)
    except InputError as exc:
        assert exc.problems
        assert all(p.path == str(path) and p.line >= 1 and p.message for p in exc.problems)
    else:
        assert isinstance(pb, playbook.Playbook)


def check_config_text(site: Path, text: str) -> None:
    cfg = site / "config.yaml"
    cfg.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        loaded = config.load(cfg, env=ENV)
    except InputError as exc:
        assert exc.problems
        assert all(p.line >= 1 and p.message for p in exc.problems)
        assert all(p.path in (str(cfg), *(str(f) for f in site.rglob("*.yaml"))) for p in exc.problems)
    else:
        assert isinstance(loaded, config.Loaded)


# Pieces of YAML, to build documents that are often almost right.
SCALARS = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            ".inf",
            "-.inf",
            ".nan",
            "1e300",
            "~",
            "null",
            "yes",
            "no",
            "true",
            '"19:30"',
            "19:30",
            "25:99",
            "2026-12-01",
            "2026-13-45",
            "'x'",
            '"\\0"',
            '"\\e"',
            '"\\x85"',
            "*a",
            "&a x",
            "!!binary aGk=",
            "!!python/object:os.system x",
            "{",
            "[",
            "}",
            "]",
            "|",
            ">",
            "- ",
            "? x",
            "<<: *a",
            "@x",
            "`x`",
            "'",
            '"',
            "\t",
            "打卡",
            "Asia/Shanghai",
            "Mars/Base",
            "%TAG",
            "---",
            "...",
            "#",
        ]
    ),
    st.text(max_size=12),
)
KEYS = st.sampled_from(
    [
        "name",
        "days",
        "timezone",
        "tracks",
        "rewards",
        "commands",
        "schedule",
        "welcome",
        "lesson",
        "keywords",
        "day",
        "at",
        "post",
        "remind",
        "nudge",
        "leaderboard",
        "track",
        "text",
        "dm",
        "id",
        "count",
        "until",
        "ack",
        "top",
        "title",
        "progress",
        "<<",
        "x",
        "&a k",
        "*a",
    ]
)


@st.composite
def yamlish(draw: st.DrawFn, depth: int = 0) -> str:
    """A YAML-looking document: keys, lists, flow collections and odd scalars, nested."""
    lines: list[str] = []
    for _ in range(draw(st.integers(1, 6))):
        key = draw(KEYS)
        kind = draw(st.integers(0, 3 if depth < 3 else 0))
        indent = "  " * depth
        if kind == 0:
            lines.append(f"{indent}{key}: {draw(SCALARS)}")
        elif kind == 1:
            lines.append(f"{indent}{key}: [{', '.join(draw(st.lists(SCALARS, max_size=4)))}]")
        elif kind == 2:
            lines.append(f"{indent}{key}:")
            lines.append(draw(yamlish(depth + 1)))
        else:
            lines.append(f"{indent}{key}:")
            for _ in range(draw(st.integers(0, 3))):
                lines.append(f"{indent}  - {draw(SCALARS)}")
    return "\n".join(lines)


@FAST
@given(st.text(max_size=300))
def test_any_unicode_text(text: str) -> None:
    check_playbook_text(text)


@FAST
@given(st.text(alphabet=st.characters(codec="utf-8", max_codepoint=0x2FF), max_size=200))
def test_text_full_of_control_characters(text: str) -> None:
    check_playbook_text("name: x\ndays: 2\n" + text)


@FAST
@given(st.integers(0, 3), st.integers(1, 80), st.sampled_from(["[", "{a: ", "- ", "{? "]))
def test_deep_structures(where: int, depth: int, opener: str) -> None:
    closer = {"[": "]", "{a: ": "}", "- ": "", "{? ": "}"}[opener]
    if opener == "- ":
        nested = "\n" + "".join("  " * (i + 1) + "-\n" for i in range(depth))
    else:
        nested = opener * depth + "1" + closer * depth
    lines = EXAMPLE.splitlines()
    lines.insert(min(where, len(lines)), f"extra: {nested}")
    check_playbook_text("\n".join(lines) + "\n")


@settings(FAST, max_examples=20)
@given(st.integers(1, 200_000), st.sampled_from(["name", "welcome", "post"]), st.characters(codec="utf-8"))
def test_huge_strings(size: int, key: str, char: str) -> None:
    value = (char * size).replace("\n", " ")
    text = EXAMPLE.replace("name: Python 入门体验营", f"name: {value!r}" if key == "name" else "name: x", 1)
    if key != "name":
        text += f"{key}: {value!r}\n"
    check_playbook_text(text)


@FAST
@given(yamlish())
def test_yamlish_documents(text: str) -> None:
    check_playbook_text(text)


@FAST
@given(st.lists(st.tuples(st.integers(0, 200), st.text(max_size=20)), max_size=5))
def test_the_example_with_random_edits(edits: list[tuple[int, str]]) -> None:
    lines = EXAMPLE.splitlines()
    for at, text in edits:
        i = at % len(lines)
        lines[i] = lines[i][: len(text)] + text
    check_playbook_text("\n".join(lines) + "\n")


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_in_a_file(tmp_path_factory, data: bytes) -> None:
    check_playbook_file(tmp_path_factory.mktemp("pb") / "p.yaml", data)


@FAST
@given(st.lists(st.tuples(st.integers(0, 100), yamlish()), min_size=1, max_size=3))
def test_configs_with_random_edits(tmp_path_factory, edits: list[tuple[int, str]]) -> None:
    site = tmp_path_factory.mktemp("site")
    (site / "playbooks").mkdir()
    (site / "playbooks" / "python-8day.yaml").write_text(EXAMPLE, encoding="utf-8")
    lines = CONFIG.splitlines()
    for at, text in edits:
        lines[at % len(lines)] = text
    check_config_text(site, "\n".join(lines) + "\n")


NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**400), 10**400).map(str),
    st.sampled_from([".inf", ".nan", "-.inf", "1e300", "0", "-0", "0x10", "1_000", '"5"', "yes", "~", "[]"]),
)
SETTINGS = [
    "grace_minutes",
    "reconcile_minutes",
    "pacing.per_minute",
    "pacing.max_mentions",
    "pacing.same_chat_seconds",
    "transport.ping_seconds",
    "database",
    "transport.endpoint",
]


@FAST
@given(st.sampled_from(SETTINGS), st.one_of(NUMBERS, SCALARS))
def test_config_settings_with_odd_values(tmp_path_factory, setting: str, value: str) -> None:
    site = tmp_path_factory.mktemp("site")
    (site / "playbooks").mkdir()
    (site / "playbooks" / "python-8day.yaml").write_text(EXAMPLE, encoding="utf-8")
    section, _, key = setting.rpartition(".")
    text = CONFIG
    if section:
        text = text.replace(f"{section}:\n", f"{section}:\n  {key}: {value}\n", 1)
        text = "\n".join(
            line for i, line in enumerate(text.splitlines()) if not line.startswith(f"  {key}:") or i < 30
        )
    else:
        text = f"{key}: {value}\n" + "\n".join(
            line for line in text.splitlines() if not line.startswith(f"{key}:")
        )
    check_config_text(site, text + "\n")
