"""Whole cohorts through `simulate`: the sample playbook with the demo's 60 members, and
the contract's own example, checked against answers worked out independently from the
scenario."""

import itertools
import json
from collections import defaultdict
from datetime import timedelta

import pytest

from bot import playbook as playbooks
from bot.demo import demo_scenario
from bot.plan import calendar
from bot.scenario import timeline
from bot.simulate import simulate, to_json
from tests.harness import EXAMPLE, SAMPLE, load_playbook


@pytest.fixture(scope="module")
def sample_run():
    pb = playbooks.load(SAMPLE)
    sc, _ = demo_scenario(pb, members=60, seed=7)
    result = simulate(pb, sc)
    return pb, sc, result


def test_every_post_goes_out_once_at_its_minute(sample_run):
    pb, _sc, result = sample_run
    cal = result.cal
    posts = {cal.at(it.day, it.at): it.post.rstrip() for it in pb.schedule if it.post is not None}
    sent = defaultdict(list)
    for s in result.sent:
        sent[s.text].append(s.at)
    for due, template in posts.items():
        rendered = [t for t in sent if t.startswith(template.split("{")[0][:12])]
        assert rendered, f"post due {cal.local(due)} never sent"
    room_at = {s.at for s in result.sent if s.chat == "room"}
    for due in posts:
        assert due in room_at, f"nothing went out exactly at {cal.local(due)}"
    assert sum(1 for s in result.sent if s.chat == "room" and s.at in posts) == len(posts)


def test_reminders_mention_exactly_the_unfinished(sample_run):
    pb, sc, result = sample_run
    cal = result.cal
    events = timeline(sc, cal)
    present = {m.id for m in sc.members}
    reminders = [(cal.at(it.day, it.at), it) for it in pb.schedule if it.remind is not None]
    checked: dict[tuple[str, int], set[str]] = defaultdict(set)
    expected: dict = {}
    timeline_iter = iter(events)
    pending = next(timeline_iter, None)
    for due, it in sorted(reminders, key=lambda r: r[0]):
        while pending is not None and pending.at <= due:
            ev = pending
            if ev.kind == "join":
                present.add(ev.member.id)
            elif ev.kind == "leave":
                present.discard(ev.member.id)
            elif ev.kind == "say":
                text = ev.text.removeprefix("@CohortBot").strip()
                track = (
                    "reading"
                    if text.startswith("晨读")
                    else "lesson"
                    if text.startswith(("打卡", "完成"))
                    else None
                )
                day = cal.day_of(ev.at)
                t = pb.tracks.get(track) if track else None
                if t and day in t.days and (t.until is None or cal.local(ev.at).time() <= t.until):
                    checked[(track, day)].add(ev.member.id)
            pending = next(timeline_iter, None)
        missing = present - set(sc.operators) - checked[(it.remind.track, it.day)]
        expected[due] = missing
    for due, missing in expected.items():
        # The reminder's own messages: sent from its minute on, starting with its text.
        text = next(it.remind.text for d, it in reminders if d == due).split("{")[0]
        msgs = [
            s
            for s in result.sent
            if s.chat == "room" and due <= s.at < due + timedelta(minutes=5) and s.text.startswith(text)
        ]
        mentioned = [m for s in msgs for m in s.mentions]
        assert sorted(mentioned) == sorted(missing), f"reminder at {cal.local(due)}"
        assert len(mentioned) == len(set(mentioned))
        assert all(len(s.mentions) <= 20 for s in msgs)


def test_rewards_match_the_checkins(sample_run):
    pb, _sc, result = sample_run
    from storage import repo

    with result.bot.db.connect() as conn:
        grants = repo.grants(conn, "simulated")
        for mid, reward_id, _ in grants:
            reward = next(r for r in pb.rewards if r.id == reward_id)
            assert len(repo.member_days(conn, "simulated", mid, reward.track)) >= reward.count
        everyone = repo.members(conn, "simulated", present_only=False)
        for m in everyone:
            for r in pb.rewards:
                if len(repo.member_days(conn, "simulated", m.member_id, r.track)) >= r.count:
                    assert (m.member_id, r.id) in {(g[0], g[1]) for g in grants}
    openings = tuple(r.dm.split("{")[0] for r in pb.rewards)
    reward_dms = [s for s in result.sent if s.chat.startswith("dm:") and s.text.startswith(openings)]
    assert len(reward_dms) == len(grants)
    assert len({(s.chat, s.text) for s in reward_dms}) == len(reward_dms)


def test_pacing_holds_over_the_whole_cohort(sample_run):
    _, _, result = sample_run
    sent = result.sent
    for a, b in itertools.pairwise(sent):
        gap = (b.at - a.at).total_seconds()
        assert gap >= (1.5 if a.chat == b.chat else 3.0) - 1e-6, (a, b)
    times = [s.at for s in sent]
    for i, t in enumerate(times):
        assert sum(1 for u in times[i : i + 31] if u - t < timedelta(seconds=60)) <= 30


def test_contract_example_transcript():
    """The scenario of scenario-format.md against the playbook of playbook-format.md."""
    import textwrap

    from bot.scenario import Scenario

    pb = load_playbook(EXAMPLE)
    sc = Scenario.model_validate(
        {
            "start": "2026-12-01",
            "room": "训练营 1 班",
            "bot": "CohortBot",
            "operators": ["op1"],
            "members": [
                {"id": "op1", "name": "王助教"},
                {"id": "u01", "name": "小明"},
                {"id": "u02", "name": "小红"},
            ],
            "events": [
                {"at": "day 2 07:45", "from": "u01", "text": "晨读打卡"},
                {"at": "day 2 20:10", "from": "u02", "text": "@CohortBot 打卡"},
                {"at": "day 3 09:00", "join": {"id": "u09", "name": "新同学"}},
                {"at": "day 4 12:00", "leave": "u02"},
                {"at": "day 4 12:05", "from": "u01", "dm": True, "text": "进度"},
            ],
        }
    )
    result = simulate(pb, sc)
    lines = [json.loads(to_json(s, result.cal)) for s in result.sent]
    expected = textwrap.dedent("""\
        2026-12-01T19:30:00+08:00 room [] 【开营仪式】欢迎来到Python 入门体验营！
        2026-12-02T07:30:00+08:00 room [] ☀️ 晨读开始啦，读完在群里发「晨读打卡」
        2026-12-02T07:45:03+08:00 room [] ✅ 第2天打卡播报|晨读 +1（今日 1/2）：小明
        2026-12-02T20:10:03+08:00 room [] ✅ 第2天打卡播报|正课 +1（今日 1/2）：小红
        2026-12-02T21:30:00+08:00 room ['u01'] 今天的课还没完成的同学抓紧哦 👇
        2026-12-03T09:00:00+08:00 dm:u01 [] 小明，第2天的课还没完成，今天补上吧～
        """).splitlines()
    # Roll calls, not one reply per check-in: the morning's first at once (a fold window
    # later), 小红's in the evening too (more than 6 hours after the last one). The new
    # member joined after day 2 ended: not nudged about it.
    got = [
        f"{line['at']} {line['chat']} {line['mentions']} {line['text']}".replace("\n", "|") for line in lines
    ]
    assert got[:6] == expected
    assert got[6].startswith("2026-12-04T12:05:00+08:00 dm:u01 [] 📋 小明 的学习进度")
    assert "晨读：1/4 天（第2天）" in lines[6]["text"]
    assert lines[-1]["text"].startswith("🏆 晨读排行榜（截至第5天）\n🥇 小明 1 天")
    assert len(lines) == 8
    for line in lines:
        assert list(line) == ["at", "chat", "text", "mentions"]
    cal = calendar(pb, sc.start)
    assert cal.zone.key == "Asia/Shanghai"
