"""bot.config: the config-format.md example verbatim, and every start-up error with its line."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from bot import config
from bot.yamlfile import InputError, Problem
from tests.harness import EXAMPLE

# The example of ../shared/config-format.md, verbatim.
CONFIG = """\
timezone: Asia/Shanghai                 # default for playbooks that set none
database: sqlite:///cohortbot.db        # any SQLAlchemy URL; postgresql+psycopg://… for production
operators: [wxid_operator1]             # contact ids allowed to use operator commands
bot_name: CohortBot                     # optional: how members @ the bot; default: the account's name

transport:
  kind: wechaty                         # wechaty | simulated
  endpoint: 127.0.0.1:8788              # the Wechaty puppet-service gateway
  token: ${WECHATY_PUPPET_SERVICE_TOKEN}

pacing:                                 # optional; these are the defaults
  same_chat_seconds: 1.5                # at least this long between two sends to one chat
  any_chat_seconds: 3                   # at least this long between sends to different chats
  per_minute: 30                        # and no more than this many sends a minute in all
  max_mentions: 20                      # @-mentions per message; longer lists are split

cohorts:
  - id: py-2026-12-a                    # [a-z0-9_-]+, unique
    playbook: playbooks/python-8day.yaml   # relative to this file
    room: Python 8天训练营 1班             # the group's name (topic) or its room id
    start: 2026-12-01                   # day 1
"""

ENV = {"WECHATY_PUPPET_SERVICE_TOKEN": "s3cret"}
SECOND = "  - id: {id}\n    playbook: {playbook}\n    room: 2班\n    start: 2026-12-08\n"


def line_of(text: str, needle: str, nth: int = 1) -> int:
    hits = [i + 1 for i, line in enumerate(text.splitlines()) if needle in line]
    assert len(hits) >= nth, f"{needle!r} not in text"
    return hits[nth - 1]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A deployment folder with the sample playbook; returns the folder."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "python-8day.yaml").write_text(EXAMPLE, encoding="utf-8")
    return tmp_path


def write(site: Path, text: str, name: str = "config.yaml") -> Path:
    f = site / name
    f.write_text(text, encoding="utf-8")
    return f


def problems(path: Path, env: dict[str, str] | None = None) -> list[Problem]:
    with pytest.raises(InputError) as info:
        config.load(path, env=ENV if env is None else env)
    assert info.value.problems
    return info.value.problems


def one_problem(path: Path, env: dict[str, str] | None = None) -> Problem:
    probs = problems(path, env)
    assert len(probs) == 1, [str(p) for p in probs]
    return probs[0]


def test_example_loads(site: Path):
    loaded = config.load(write(site, CONFIG), env=ENV)
    cfg = loaded.config
    assert cfg.timezone == "Asia/Shanghai"
    assert cfg.operators == ["wxid_operator1"]
    assert cfg.bot_name == "CohortBot"
    assert (cfg.transport.kind, cfg.transport.endpoint, cfg.transport.token) == (
        "wechaty",
        "127.0.0.1:8788",
        "s3cret",
    )
    (cohort,) = cfg.cohorts
    assert (cohort.id, cohort.room) == ("py-2026-12-a", "Python 8天训练营 1班")
    assert cohort.start == date(2026, 12, 1)
    assert loaded.playbooks["py-2026-12-a"].name == "Python 入门体验营"
    assert loaded.playbooks["py-2026-12-a"].path == str((site / "playbooks" / "python-8day.yaml").resolve())


def test_env_argument_is_used_instead_of_the_process_environment(site: Path, monkeypatch):
    monkeypatch.setenv("WECHATY_PUPPET_SERVICE_TOKEN", "from-os")
    assert (
        config.load(write(site, CONFIG), env={"WECHATY_PUPPET_SERVICE_TOKEN": "given"}).config.transport.token
        == "given"
    )
    assert config.load(site / "config.yaml").config.transport.token == "from-os"


def test_env_var_inside_a_longer_value(site: Path):
    f = write(site, CONFIG.replace("room: Python 8天训练营 1班", "room: ${ROOM}-1班"))
    loaded = config.load(f, env={**ENV, "ROOM": "Python"})
    assert loaded.config.cohorts[0].room == "Python-1班"


def test_env_values_are_not_parsed_as_yaml(site: Path):
    token = "a: b # not a comment ${NOT_EXPANDED_AGAIN} [x]"
    loaded = config.load(write(site, CONFIG), env={"WECHATY_PUPPET_SERVICE_TOKEN": token})
    assert loaded.config.transport.token == token


def test_unset_env_var_names_the_variable_and_the_line(site: Path):
    f = write(site, CONFIG)
    p = one_problem(f, env={})
    assert (p.path, p.line, p.where) == (str(f), 9, "transport.token")
    assert "WECHATY_PUPPET_SERVICE_TOKEN is not set" in p.message
    assert "export WECHATY_PUPPET_SERVICE_TOKEN=" in p.message


def test_every_unset_env_var_is_reported(site: Path):
    text = CONFIG.replace("room: Python 8天训练营 1班", "room: ${ROOM_NAME}")
    f = write(site, text)
    probs = problems(f, env={})
    assert [(p.line, p.message.split()[2]) for p in probs] == [
        (9, "WECHATY_PUPPET_SERVICE_TOKEN"),
        (line_of(text, "ROOM_NAME"), "ROOM_NAME"),
    ]


@pytest.mark.parametrize(
    ("written", "told"),
    [
        ("${WECHATY_TOKEN", "${WECHATY_TOKEN"),
        ("${}", "${}"),
        ("${1ROOM}", "${1ROOM}"),
        ("a${ROOM NAME}", "${ROOM"),
    ],
)
def test_a_broken_env_variable_is_not_kept_as_text(site: Path, written: str, told: str):
    # Kept as written, `${WECHATY_TOKEN` would be sent as the token and refused, unexplained.
    text = CONFIG.replace("room: Python 8天训练营 1班", f"room: {written}")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (line_of(text, written), "cohorts[0].room")
    assert f'"{told}" is not an environment variable; write it as ${{NAME}}' in p.message


def test_unknown_key_with_did_you_mean(site: Path):
    text = CONFIG.replace("bot_name:", "bot_nam:")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (4, "bot_nam")
    assert "unknown key `bot_nam`; did you mean `bot_name`?" in p.message


def test_unknown_key_in_pacing(site: Path):
    text = CONFIG.replace("per_minute:", "per_minut:")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (line_of(text, "per_minut"), "pacing.per_minut")
    assert "did you mean `per_minute`?" in p.message


def test_missing_playbook_names_the_line(site: Path):
    text = CONFIG.replace("playbooks/python-8day.yaml", "playbooks/python-9day.yaml")
    f = write(site, text)
    p = one_problem(f)
    assert (p.path, p.line, p.where) == (str(f), 19, "cohorts[0].playbook")
    assert str((site / "playbooks" / "python-9day.yaml").resolve()) in p.message
    assert "relative to this file" in p.message


def test_duplicate_cohort_id(site: Path):
    text = CONFIG + SECOND.format(id="py-2026-12-a", playbook="playbooks/python-8day.yaml")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (line_of(text, "id: py-2026-12-a", 2), "cohorts[1].id")
    assert "`py-2026-12-a` is used twice" in p.message


@pytest.mark.parametrize("bad", ["Py-2026", "py 2026", "py.2026", '""'])
def test_bad_cohort_id_pattern(site: Path, bad):
    text = CONFIG.replace("id: py-2026-12-a", f"id: {bad}")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (18, "cohorts[0].id")
    assert "lower-case letters, digits, - and _" in p.message or "[a-z0-9_-]" in p.message


@pytest.mark.parametrize("bad", ["next monday", "2026/12/01", "tomorrow"])
def test_bad_start_date(site: Path, bad):
    text = CONFIG.replace("start: 2026-12-01", f"start: {bad}")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (21, "cohorts[0].start")
    assert "date" in p.message


# A number: pydantic would read it as seconds since 1970 (1795996800 is 2026-11-30, silently).
@pytest.mark.parametrize("bad", ["2026-13-01", "2026-02-30", "1795996800", "20261201", "1795996800.0"])
def test_impossible_start_date_is_an_input_error(site: Path, bad):
    text = CONFIG.replace("start: 2026-12-01", f"start: {bad}")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (21, "cohorts[0].start")
    assert "YYYY-MM-DD" in p.message


def test_bad_transport_kind_and_pacing_value(site: Path):
    text = CONFIG.replace("kind: wechaty", "kind: wechat").replace("per_minute: 30", "per_minute: fast")
    probs = problems(write(site, text))
    assert [(p.line, p.where) for p in probs] == [(7, "transport.kind"), (14, "pacing.per_minute")]
    assert "'wechaty' or 'simulated'" in probs[0].message
    assert "'fast'" in probs[1].message


def test_wechaty_needs_an_endpoint(site: Path):
    text = CONFIG.replace("  endpoint: 127.0.0.1:8788", "  # no endpoint")
    p = one_problem(write(site, text))
    assert (p.line, p.where) == (6, "transport")
    assert "`endpoint` is missing" in p.message


def test_missing_cohorts(site: Path):
    text = CONFIG.split("cohorts:")[0]
    p = one_problem(write(site, text))
    assert p.line == 1
    assert "`cohorts` is missing" in p.message


def test_broken_playbook_reports_the_playbooks_own_file_and_line(site: Path):
    broken = EXAMPLE.replace('at: "21:30"', 'at: "9:30pm"')
    pb_file = site / "playbooks" / "broken.yaml"
    pb_file.write_text(broken, encoding="utf-8")
    p = one_problem(write(site, CONFIG.replace("python-8day.yaml", "broken.yaml")))
    assert Path(p.path).resolve() == pb_file.resolve()
    assert p.line == line_of(broken, "9:30pm")
    assert p.where == "schedule[2].at"


def test_one_playbook_shared_by_two_cohorts_is_loaded_once(site: Path):
    text = CONFIG + SECOND.format(id="py-2026-12-b", playbook="./playbooks/python-8day.yaml")
    loaded = config.load(write(site, text), env=ENV)
    assert loaded.playbooks["py-2026-12-a"] is loaded.playbooks["py-2026-12-b"]


def test_relative_paths_resolve_relative_to_the_config_file(site: Path, tmp_path_factory, monkeypatch):
    f = write(site, CONFIG)
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))
    loaded = config.load(f, env=ENV)
    assert loaded.database_url == f"sqlite:///{(site / 'cohortbot.db').resolve()}"
    assert "py-2026-12-a" in loaded.playbooks


def test_relative_sqlite_path_in_a_subfolder(site: Path):
    (site / "data").mkdir()  # SQLite makes the file, not its folder (a missing one is refused)
    text = CONFIG.replace("sqlite:///cohortbot.db", "sqlite:///data/bot.db")
    loaded = config.load(write(site, text), env=ENV)
    assert loaded.database_url == f"sqlite:///{(site / 'data' / 'bot.db').resolve()}"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite:////tmp/cohortbot.db",  # a folder any user may write to
        '"sqlite:///:memory:"',
        "postgresql+psycopg://bot:pw@db:5432/cohortbot",
    ],
)
def test_other_database_urls_are_kept(site: Path, url):
    loaded = config.load(write(site, CONFIG.replace("sqlite:///cohortbot.db", url)), env=ENV)
    assert loaded.database_url == url.strip('"')


def test_settings_give_the_pacing_values(site: Path):
    text = (
        CONFIG.replace("same_chat_seconds: 1.5", "same_chat_seconds: 2.5")
        .replace("any_chat_seconds: 3", "any_chat_seconds: 4")
        .replace("per_minute: 30", "per_minute: 12")
        .replace("max_mentions: 20", "max_mentions: 7")
    )
    s = config.load(write(site, text), env=ENV).settings()
    p = s.pacing
    assert (p.same_chat_seconds, p.any_chat_seconds, p.per_minute, p.max_mentions) == (2.5, 4, 12, 7)
    assert s.operators == frozenset({"wxid_operator1"})
    assert s.bot_name == "CohortBot"
    assert s.grace == timedelta(minutes=10)


def test_settings_defaults_without_pacing(site: Path):
    text = CONFIG.split("pacing:")[0] + "cohorts:" + CONFIG.split("cohorts:")[1]
    assert "pacing" not in text
    p = config.load(write(site, text), env=ENV).settings().pacing
    assert (p.same_chat_seconds, p.any_chat_seconds, p.per_minute, p.max_mentions) == (1.5, 3, 30, 20)


# --- web: the operators' console --------------------------------------------------------


def _with_web(site: Path, web: str) -> Path:
    path = site / "cohortbot.yaml"
    path.write_text(CONFIG + web, encoding="utf-8")
    return path


def test_no_web_section_serves_no_console(site: Path):
    assert config.load(_with_web(site, ""), env=ENV).config.web is None


def test_web_alone_is_loopback_8080(site: Path):
    loaded = config.load(_with_web(site, "web:\n"), env=ENV)
    assert loaded.config.web is not None and loaded.config.web.bind == "127.0.0.1:8080"
    assert loaded.web_line == CONFIG.count("\n") + 1


def test_web_bind_elsewhere_needs_public_true(site: Path):
    with pytest.raises(InputError) as err:
        config.load(_with_web(site, "web:\n  bind: 0.0.0.0:8080\n"), env=ENV)
    [p] = err.value.problems
    assert p.line == CONFIG.count("\n") + 2 and "public: true" in p.message
    loaded = config.load(_with_web(site, "web:\n  bind: 0.0.0.0:8080\n  public: true\n"), env=ENV)
    assert config.split_bind(loaded.config.web.bind) == ("0.0.0.0", 8080)  # type: ignore[union-attr]
    assert config.split_bind("[::1]:9000") == ("::1", 9000) and config.is_loopback("::1")


def test_web_bind_without_port_names_its_line(site: Path):
    with pytest.raises(InputError) as err:
        config.load(_with_web(site, "web:\n  bind: localhost\n"), env=ENV)
    [p] = err.value.problems
    assert p.line == CONFIG.count("\n") + 2 and "host:port" in p.message
