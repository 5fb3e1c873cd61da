"""Hostile and broken input files: every one gives `file:line: what to do`, exit 2, in
`cohortbot validate` and in `cohortbot run --config`, and never a traceback."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from bot import config, playbook, yamlfile
from bot.cli import app
from bot.yamlfile import InputError, parse_yaml
from tests.harness import EXAMPLE
from tests.test_config import CONFIG

TOKEN = "tok3n-S3cret-value"
# Nothing listens there: a config wrongly let through fails `run` in 2 s, not 120.
SITE_CONFIG = CONFIG.replace("127.0.0.1:8788", "127.0.0.1:9").replace(
    "  token:", "  connect_timeout_seconds: 2\n  token:"
)
ENV = {"COLUMNS": "200", "WECHATY_PUPPET_SERVICE_TOKEN": TOKEN}


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args], env=ENV)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "python-8day.yaml").write_text(EXAMPLE, encoding="utf-8")
    (tmp_path / "config.yaml").write_text(SITE_CONFIG, encoding="utf-8")
    return tmp_path


def refused(result, where: str) -> str:
    """Exit 2 through typer.Exit, the problem's file:line shown, no traceback; the output."""
    output = result.output
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in output
    assert f"{where}:" in result.stderr, result.stderr
    return result.stderr


def refused_everywhere(site: Path, broken: Path, line: int) -> str:
    """`broken` (a playbook or the config) is refused by `validate` and by `run` alike."""
    where = f"{broken}:{line}"
    if broken.name != "config.yaml":
        cfg = site / "config.yaml"
        cfg.write_text(SITE_CONFIG.replace("playbooks/python-8day.yaml", str(broken)), encoding="utf-8")
        refused(invoke("validate", cfg), where)
    refused(invoke("run", "--config", site / "config.yaml"), where)
    return refused(invoke("validate", broken), where)


def write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------- control characters


@pytest.mark.parametrize(
    ("char", "described"),
    [
        ("\x0c", "U+000C form feed"),
        ("\x00", "U+0000 null"),
        ("\x1b", "U+001B escape"),
        ("\x80", "U+0080"),
        ("\x7f", "U+007F delete"),
    ],
)
def test_a_control_character_in_a_playbook(site: Path, char: str, described: str):
    pb = write_bytes(site / "cc.yaml", f"name: a{char}b\ndays: 2\n".encode())
    stderr = refused_everywhere(site, pb, 1)
    assert f"{pb}:1:8:" in stderr  # the column too
    assert described in stderr
    assert "delete it" in stderr and "Word" in stderr


def test_a_control_character_in_the_config(site: Path):
    cfg = site / "config.yaml"
    text = SITE_CONFIG.replace("room: Python", "room: \x1bPython")
    cfg.write_text(text, encoding="utf-8")
    line = next(i + 1 for i, t in enumerate(text.splitlines()) if "\x1b" in t)
    stderr = refused_everywhere(site, cfg, line)
    assert "U+001B escape" in stderr


def test_every_control_character_is_reported_with_its_line():
    with pytest.raises(InputError) as caught:
        parse_yaml("name: a\x0cb\ndays: 2\nx: \x07\n", "p.yaml")
    assert [(p.line, p.column) for p in caught.value.problems] == [(1, 8), (3, 4)]
    assert "U+0007 bell" in str(caught.value)


@pytest.mark.parametrize("escape", ["\\0", "\\x0c", "\\e", "\\ud800"])
def test_a_control_character_written_as_an_escape(escape: str):
    with pytest.raises(InputError) as caught:
        parse_yaml(f'name: x\nroom: "a{escape}b"\n', "c.yaml")
    (p,) = caught.value.problems
    assert (p.path, p.line, p.where) == ("c.yaml", 2, "room")
    assert "delete" in p.message


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("!!bool abc", "'abc' cannot be read as `!!bool`"),
        ('!!int ""', "'' cannot be read as `!!int`"),
        ('!!float ""', "'' cannot be read as `!!float`"),
        ("!!timestamp x", "'x' is not a real date"),
    ],
)
def test_a_type_tag_that_does_not_fit_its_value(value: str, says: str):
    # PyYAML fails on these with a KeyError, an IndexError, an AttributeError.
    with pytest.raises(InputError) as caught:
        parse_yaml(f"name: x\nroom: {value}\n", "t.yaml")
    (p,) = caught.value.problems
    assert (p.path, p.line, p.where) == ("t.yaml", 2, "room")
    assert says in p.message


# ---------------------------------------------------------------- deep nesting


@pytest.mark.parametrize(
    ("deep", "line"),
    [
        ("extra: " + "[" * 500 + "]" * 500, 2),
        ("extra: " + "{a: " * 400 + "1" + "}" * 400, 2),
        ("extra:\n" + "".join("  " * i + "- \n" for i in range(1, 300)), 52),  # the 51st level
    ],
)
def test_deep_nesting_is_refused_with_its_line(site: Path, deep: str, line: int):
    pb = site / "deep.yaml"
    pb.write_text("name: x\n" + deep + "\n", encoding="utf-8")
    stderr = refused_everywhere(site, pb, line)
    assert "nested more than 50 levels" in stderr


def test_nesting_made_deep_by_aliases_is_refused():
    text = "a0: &a0 " + "[" * 40 + "1" + "]" * 40 + "\n"
    text += "".join(f"a{i}: &a{i} " + "[" * 40 + f"*a{i - 1}" + "]" * 40 + "\n" for i in range(1, 30))
    with pytest.raises(InputError) as caught:
        parse_yaml(text, "p.yaml")
    assert "nested more than 50 levels" in str(caught.value)
    assert caught.value.problems[0].line == 2


def test_fifty_levels_are_fine():
    src = parse_yaml("x: " + "[" * 48 + "]" * 48 + "\n", "p.yaml")
    assert isinstance(src.data["x"], list)


# ---------------------------------------------------------------- size, encoding, aliases


def test_an_oversized_file_is_refused_before_it_is_read(site: Path):
    pb = site / "huge.yaml"
    with pb.open("w", encoding="utf-8") as f:
        line = "# " + "注释" * 40 + "\n"
        f.write(line * (60_000_000 // len(line.encode())))
    started = time.perf_counter()
    stderr = refused_everywhere(site, pb, 1)
    assert time.perf_counter() - started < 5
    assert "60.0 MB" in stderr and "1 MB" in stderr


def test_a_big_file_within_the_limit_is_not_called_nested_aliases(tmp_path: Path, monkeypatch):
    # The guard counts values filled in by aliases, not values: (a smaller bound, for speed)
    monkeypatch.setattr(yamlfile, "MAX_EXPANDED", 1000)
    src = parse_yaml("x: [" + "1, " * 5000 + "1]\n", "big.yaml")
    assert len(src.data["x"]) == 5001
    text = EXAMPLE.replace("days: [2, 3, 4, 5]", "days: [" + "2, " * 5000 + "3]", 1)
    pb = tmp_path / "big.yaml"
    pb.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as caught:
        playbook.load(pb)
    assert "alias" not in str(caught.value)
    assert "listed twice" in str(caught.value)
    with pytest.raises(InputError, match=r"too many values \(more than 1,000\)"):
        parse_yaml("a: &a [" + "1, " * 600 + "1]\nb: [*a, *a]\n", "p.yaml")


def test_an_alias_bomb_is_refused_with_the_line_of_the_alias():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    with pytest.raises(InputError) as caught:
        parse_yaml("\n".join(lines) + "\n", "bomb.yaml")
    (p,) = caught.value.problems
    assert "aliases (*name)" in p.message
    assert p.line in range(2, 10)


def test_an_alias_repeated_within_limits_is_fine():
    src = parse_yaml("a: &a [1, 2, 3]\nb: [*a, *a, *a]\n", "p.yaml")
    assert src.data["b"] == [[1, 2, 3]] * 3


def test_a_merged_mapping_used_again_through_an_alias():
    src = parse_yaml("base: &b {a: 1, c: 3}\nx: &x {<<: *b, a: 2}\ny: *x\n", "p.yaml")
    assert src.data["x"] == src.data["y"] == {"a": 2, "c": 3}


@pytest.mark.parametrize(
    ("data", "line", "says"),
    [
        ("name: x\ndays: 2\nroom: 训练营\n".encode("gbk"), 3, "UTF-8"),
        ("name: 训练营\n".encode("utf-16"), 1, "UTF-16"),
        (bytes(range(256)) * 8, 1, "not a text file"),
        (b"name: x\x00\x00\x01\x02\xff\xfe binary", 1, "not a text file"),
    ],
)
def test_a_file_that_is_not_utf8_text(site: Path, data: bytes, line: int, says: str):
    pb = write_bytes(site / "odd.yaml", data)
    stderr = refused_everywhere(site, pb, line)
    assert says in stderr
    assert "UTF-8" in stderr


# ---------------------------------------------------------------- config numbers


def config_with(site: Path, old: str, new: str) -> tuple[Path, int]:
    """The config with `old` replaced by `new`; the line of `new`'s first line."""
    text = SITE_CONFIG.replace(old, new, 1)
    assert text != SITE_CONFIG
    cfg = site / "config.yaml"
    cfg.write_text(text, encoding="utf-8")
    first = new.splitlines()[0]
    return cfg, next(i + 1 for i, t in enumerate(text.splitlines()) if first in t)


@pytest.mark.parametrize(
    "setting",
    [
        "grace_minutes: .inf",
        "grace_minutes: 1e300",
        "grace_minutes: -.inf",
        "grace_minutes: .nan",
        "grace_minutes: -1",
        'grace_minutes: "1e300"',
        "reconcile_minutes: 1e300",
        "reconcile_minutes: 0",
        "reconcile_minutes: .nan",
    ],
)
def test_top_level_numbers_out_of_range(site: Path, setting: str):
    cfg, line = config_with(site, "cohorts:", f"{setting}\ncohorts:")
    stderr = refused_everywhere(site, cfg, line)
    assert "out of range; write a " in stderr or "not a number; write a " in stderr


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("per_minute: 30", "per_minute: 1000000000000000000000000000000"),
        ("per_minute: 30", "per_minute: 0"),
        ("max_mentions: 20", "max_mentions: 100000"),
        ("same_chat_seconds: 1.5", "same_chat_seconds: .nan"),
        ("any_chat_seconds: 3", "any_chat_seconds: .inf"),
        ("any_chat_seconds: 3", "any_chat_seconds: -3"),
        ("connect_timeout_seconds: 2", "connect_timeout_seconds: .inf"),
        ("  token:", "  room_wait_seconds: 1e300\n  token:"),
        ("  token:", "  ping_seconds: 0\n  token:"),
    ],
)
def test_pacing_and_transport_numbers_out_of_range(site: Path, old: str, new: str):
    cfg, line = config_with(site, old, new)
    stderr = refused_everywhere(site, cfg, line)
    assert "out of range; write a " in stderr or "not a number; write a " in stderr


def test_numbers_in_range_are_kept(site: Path):
    cfg, _ = config_with(site, "cohorts:", "grace_minutes: 60\nreconcile_minutes: 0.5\ncohorts:")
    loaded = config.load(cfg, env=ENV)
    assert loaded.settings().grace.total_seconds() == 3600
    assert loaded.config.reconcile_minutes == 0.5


# ---------------------------------------------------------------- transport endpoint


@pytest.mark.parametrize(
    ("endpoint", "says"),
    [
        ("localhost", "no port"),
        ("127.0.0.1:99999", "port 99999"),
        ("127.0.0.1:0", "port 0"),
        ('"127.0.0.1:"', "no port"),
        ("127.0.0.1:port", "port"),
        ("http://127.0.0.1:8788", "without http://"),
        ("::1:8788", "brackets"),
        ('"[::1]"', "no port"),
        ('"[not-ipv6]:8788"', "brackets"),
        ("bad host:8788", "host"),
        ('":8788"', "host"),
    ],
)
def test_a_malformed_endpoint(site: Path, endpoint: str, says: str):
    cfg, line = config_with(site, "endpoint: 127.0.0.1:9", f"endpoint: {endpoint}")
    stderr = refused_everywhere(site, cfg, line)
    assert "transport.endpoint" in stderr
    assert says in stderr
    assert "127.0.0.1:8788" in stderr  # the example of what to write


@pytest.mark.parametrize("endpoint", ["[::1]:8788", "localhost:8788", "gw.example.com:65535", "10.0.0.2:1"])
def test_a_wellformed_endpoint(site: Path, endpoint: str):
    cfg, _ = config_with(site, "endpoint: 127.0.0.1:9", f"endpoint: '{endpoint}'")
    assert config.load(cfg, env=ENV).config.transport.endpoint == endpoint


# ---------------------------------------------------------------- database


PASSWORD = "S3cretPW"


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("not a url at all", "is not a database URL"),
        (f"mysql://bot:{PASSWORD}@127.0.0.1/cohortbot", "driver"),
        (f"nosuchdb://bot:{PASSWORD}@127.0.0.1/cohortbot", "unknown kind of database"),
        (f"postgresql+asyncpg://bot:{PASSWORD}@127.0.0.1/cohortbot", "postgresql+psycopg://"),
        (f"postgresql+psycopg://bot:{PASSWORD}@127.0.0.1:99999/cohortbot", "port"),
        (f"postgresql+psycopg://bot:{PASSWORD}@127.0.0.1:abc/cohortbot", "is not a database URL"),
        ("sqlite:////nonexistent/dir/bot.db", "mkdir"),
        ("sqlite:///missing/bot.db", "mkdir"),
    ],
)
def test_a_database_url_that_cannot_work_is_refused_by_validate(site: Path, url: str, says: str):
    cfg, line = config_with(site, "database: sqlite:///cohortbot.db", f"database: {url}")
    stderr = refused_everywhere(site, cfg, line)
    assert f"{cfg}:{line}: database:" in stderr
    assert says in stderr
    assert PASSWORD not in stderr


def test_a_sqlite_file_that_is_a_folder(site: Path):
    (site / "bot.db").mkdir()
    cfg, line = config_with(site, "database: sqlite:///cohortbot.db", "database: sqlite:///bot.db")
    stderr = refused_everywhere(site, cfg, line)
    assert "is a folder" in stderr


def test_a_sqlite_file_that_is_not_a_database_fails_run_in_one_line(site: Path):
    (site / "bot.db").write_text("not a database, just text\n" * 100, encoding="utf-8")
    cfg, line = config_with(site, "database: sqlite:///cohortbot.db", "database: sqlite:///bot.db")
    stderr = refused(invoke("run", "--config", cfg), f"{cfg}:{line}")
    assert "SQLite" in stderr and "bot.db" in stderr


def test_a_symlink_loop_is_named_not_a_traceback(site: Path):
    # Path.resolve() raises RuntimeError on a loop (Python 3.11): the config's playbook and
    # database, and --db, went through it.
    for name in ("loop.yaml", "loop.db"):
        (site / name).symlink_to(site / name)
    cfg, line = config_with(site, "playbooks/python-8day.yaml", "loop.yaml")
    assert "loop.yaml" in refused(invoke("validate", cfg), f"{cfg}:{line}: cohorts[0].playbook")
    cfg, line = config_with(site, "database: sqlite:///cohortbot.db", "database: sqlite:///loop.db")
    stderr = refused(invoke("run", "--config", cfg), f"{cfg}:{line}: database")
    assert "loop.db" in stderr
    for command in (["report"], ["export", "--out", site / "out"], ["demo", "--quiet"]):
        result = invoke(*command, "--db", site / "loop.db")
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert isinstance(result.exception, SystemExit), result.exception
        assert "loop.db" in result.stderr


def postgres_up() -> bool:
    import socket

    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", 5432)) == 0


needs_postgres = pytest.mark.skipif(not postgres_up(), reason="no PostgreSQL at 127.0.0.1:5432")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        (f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:1/test", "is PostgreSQL running"),
        pytest.param(
            f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:5432/no_such_db_cohortbot",
            "createdb",
            marks=needs_postgres,
        ),
        pytest.param(
            f"postgresql+psycopg://no_such_role_cb:{PASSWORD}@127.0.0.1:5432/test",
            "no_such_role_cb",
            marks=needs_postgres,
        ),
    ],
)
def test_run_explains_a_failed_database_connection_in_one_line(site: Path, url: str, says: str):
    cfg, line = config_with(site, "database: sqlite:///cohortbot.db", f"database: {url}")
    ok = invoke("validate", cfg)
    assert ok.exit_code == 0, ok.output  # nothing wrong that can be seen without connecting
    result = invoke("run", "--config", cfg)
    stderr = refused(result, f"{cfg}:{line}: database")
    assert says in stderr
    assert "127.0.0.1" in stderr
    assert PASSWORD not in result.output
    assert len(stderr.strip().splitlines()) == 1, stderr


# ---------------------------------------------------------------- secrets never printed


def run_subprocess(cfg: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **env},
    )


@needs_postgres
def test_run_logs_the_database_without_its_password(site: Path):
    # Trust authentication: the password is not needed, so the bot gets as far as its log.
    # The test database, emptied first: a schema another version left there is not this test's.
    from sqlalchemy.engine import make_url

    from tests.harness import scratch_postgres

    url = make_url(scratch_postgres()).set(password=PASSWORD)
    written = url.render_as_string(hide_password=False)
    cfg, _ = config_with(site, "database: sqlite:///cohortbot.db", f"database: {written}")
    result = run_subprocess(cfg, {"WECHATY_PUPPET_SERVICE_TOKEN": TOKEN})
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert url.render_as_string(hide_password=True) in output or "is already run by" in output
    assert PASSWORD not in output
    assert TOKEN not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("bot_name: CohortBot", "bot_nam: CohortBot"),  # an unrelated mistake
        ("per_minute: 30", f"per_minute: {PASSWORD}"),
        ("endpoint: 127.0.0.1:9", f"endpoint: {TOKEN}"),
        ("endpoint: 127.0.0.1:9", "endpoint: ${WECHATY_PUPPET_SERVICE_TOKEN}"),
        ("cohorts:", f"cohorts: {PASSWORD}\nx:"),
    ],
)
def test_no_secret_in_the_errors_of_a_config(site: Path, old: str, new: str):
    cfg, _ = config_with(
        site, "database: sqlite:///cohortbot.db", f"database: postgresql+psycopg://bot:{PASSWORD}@db/x"
    )
    cfg.write_text(cfg.read_text(encoding="utf-8").replace(old, new, 1), encoding="utf-8")
    for result in (invoke("validate", cfg), invoke("run", "--config", cfg)):
        assert result.exit_code == 2, result.output
        assert PASSWORD not in result.output and TOKEN not in result.output, result.output
        assert "***" in result.output or "bot_nam" in result.output


def test_no_secret_when_a_config_is_fine(site: Path):
    cfg, _ = config_with(
        site, "database: sqlite:///cohortbot.db", f"database: postgresql+psycopg://bot:{PASSWORD}@db/x"
    )
    result = invoke("validate", cfg)
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and TOKEN not in result.output


def test_the_loaded_config_does_not_show_its_secrets(site: Path):
    cfg, _ = config_with(
        site, "database: sqlite:///cohortbot.db", f"database: postgresql+psycopg://bot:{PASSWORD}@db/x"
    )
    loaded = config.load(cfg, env={"WECHATY_PUPPET_SERVICE_TOKEN": TOKEN})
    assert loaded.config.transport.token == TOKEN and PASSWORD in loaded.database_url
    for shown in (repr(loaded), str(loaded.config), loaded.safe_database_url):
        assert PASSWORD not in shown and TOKEN not in shown


def test_text_from_the_file_is_shown_as_written_not_as_terminal_markup(site: Path):
    pb = site / "markup.yaml"
    pb.write_text(EXAMPLE.replace("days: 8", 'days: 8\n"[bold]x": 1'), encoding="utf-8")
    stderr = refused(invoke("validate", pb), str(pb))
    assert "unknown key `[bold]x`" in stderr
