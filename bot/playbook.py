"""The playbook (format version 1, ../shared/playbook-format.md): YAML file -> validated model.

Every rule of the format is checked here, at load time, and a playbook that breaks any of
them is rejected whole with the file, line and fix of each problem.
"""

from __future__ import annotations

import copy
import difflib
import gettext
import re
from collections.abc import Callable, Mapping
from datetime import date, time
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, WithJsonSchema

from bot import i18n, templates
from bot.i18n import _
from bot.yamlfile import EmptyList, InputError, Problem, Source, read_yaml, validate

ID_PATTERN = r"^[a-z0-9_-]+$"

# Which placeholders each kind of text can fill (playbook-format.md, "Templates").
ACK_FIELDS = ("name", "day", "track", "done", "total", "playbook", "completion", "streak")
ROLL_CALL_FIELDS = ("track", "count", "done", "total", "names", "day", "playbook")
REWARD_FIELDS = ("name", "reward", "track", "playbook", "day", "streak")
WELCOME_FIELDS = ("name", "playbook", "day")
ANSWER_FIELDS = ("name", "playbook", "day")


def _parse_hhmm(value: Any) -> Any:
    if isinstance(value, time):
        return value
    if isinstance(value, str) and (m := re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*", value)):
        hour, minute = int(m[1]), int(m[2])
        if hour < 24 and minute < 60:
            return time(hour, minute)
    if isinstance(value, str) and "：" in value:
        fixed = value.strip().replace("：", ":")
        raise ValueError(
            _(
                '"{value}" has the Chinese colon "："; write the time with the English colon: "{fixed}"'
            ).format(value=value, fixed=fixed)
        )
    raise ValueError(
        _(
            '{value!r} is not a time of day; write it as "HH:MM" in 24-hour form, e.g. "07:30" or "19:30"'
        ).format(value=value)
    )


HHMM = Annotated[
    time,
    BeforeValidator(_parse_hhmm),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$",
            "description": 'time of day, "HH:MM", 24-hour',
            "examples": ["07:30"],
        }
    ),
]


# Block scalars (|) end in a newline nobody means to send.
# YAML turns `yes`/`true` into booleans, which pydantic would take as 1. Text digits ("20",
# e.g. from ${ENV} in a config) are fine.
def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError(_("{value!r} is not a number; write a whole number like 2").format(value=value))
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Text = Annotated[str, BeforeValidator(lambda v: v.rstrip() if isinstance(v, str) else v), Field(min_length=1)]
Keyword = Annotated[
    str, BeforeValidator(lambda v: v.strip() if isinstance(v, str) else v), Field(min_length=1)
]


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def check_timezone(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(
            _("{value!r} is not a time zone; write an IANA name such as Asia/Shanghai").format(value=value)
        )
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        guess = difflib.get_close_matches(value, sorted(_zones()), n=1)
        if guess:
            message = _("unknown time zone {value!r}; did you mean {guess}?")
        else:
            message = _("unknown time zone {value!r}; use an IANA name such as Asia/Shanghai")
        raise ValueError(message.format(value=value, guess=guess[0] if guess else "")) from None
    return value


TimeZoneName = Annotated[
    str,
    BeforeValidator(check_timezone),
    WithJsonSchema({"type": "string", "examples": ["Asia/Shanghai"], "description": "IANA time zone"}),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Track(_Strict):
    name: Text = Field(description="shown as {track} in templates, e.g. 正课")
    keywords: list[Keyword] = Field(min_length=1, description='check-in words, e.g. ["打卡", "完成"]')
    days: list[Int] = Field(
        min_length=1, description="cohort days on which a check-in counts, e.g. [2, 3, 4, 5]"
    )
    until: HHMM | None = Field(None, description='check-ins later that day do not count, e.g. "12:00"')
    ack: Text | None = Field(
        None,
        description="with `acknowledge: each`: the reply to a check-in; may use "
        + ", ".join(f"{{{f}}}" for f in ACK_FIELDS),
    )
    acknowledge: Literal["roll_call", "each"] = Field(
        "roll_call",
        description="(1.1) roll_call: counted check-ins are named in roll calls, one group "
        "message every few minutes; each: one reply per check-in with `ack`",
    )
    roll_call: Text | None = Field(
        None,
        description="(1.1) the roll call's line for this track; may use "
        + ", ".join(f"{{{f}}}" for f in ROLL_CALL_FIELDS),
    )
    makeup: MakeUp | None = Field(
        None,
        description='(1.1) members may make up missed days with "补卡 [day]": {days: 1, times: 2}',
    )
    testimonial: bool = Field(
        False,
        description="(1.1) true: the whole text of each check-in is kept (a 心得 track), for "
        "`cohortbot testimonials` and the operators' 精选",
    )


class MakeUp(_Strict):
    days: Int = Field(1, ge=1, le=7, description="how many days back a member may make up (1: yesterday)")
    times: Int = Field(2, ge=1, le=50, description="how many make-ups a member may take in the cohort")


class Reward(_Strict):
    id: Annotated[
        str, Field(pattern=ID_PATTERN, description="reward id: lower-case letters, digits, - and _")
    ]
    name: Text = Field(description="shown as {reward} in templates")
    track: str = Field(description="the track id whose check-ins count toward it")
    count: Int = Field(ge=1, description="distinct days checked in on that track")
    dm: Text = Field(description="private message to the member who earns it")
    announce: Text | None = Field(None, description="optional group post when it is earned")


Words = Annotated[list[Keyword], Field(min_length=1)]


# The bot's fixed words to members, overridable in `messages:`: key -> what it may use.
MESSAGE_FIELDS: dict[str, tuple[str, ...]] = {
    "too_late": ("name", "track", "until", "day", "playbook"),
    "not_today": ("name", "track", "days", "day", "playbook"),
    "ended": ("name", "track", "day", "playbook"),
    "roll_call_title": ("day", "playbook"),
    "roll_call_reward": ("reward", "names", "playbook"),
    "operator_checkin": (),
    "add_friend": ("name",),
    "early_welcome": ("name", "playbook", "start"),
}


class Messages(_Strict):
    """(1.1) The bot's fixed replies, in the playbook's own words; unset ones keep the
    defaults."""

    too_late: Text | None = Field(default=None, description="private notice: a check-in after `until`")
    not_today: Text | None = Field(default=None, description="private notice: not a day of that track")
    ended: Text | None = Field(default=None, description="private notice: the track's days are over")
    roll_call_title: Text | None = Field(
        default=None, description='first line of a roll call, e.g. "✅ 第{day}天打卡播报"'
    )
    roll_call_reward: Text | None = Field(
        default=None, description='a roll call\'s reward line, e.g. "🎁 解锁{reward}：{names}"'
    )
    operator_checkin: Text | None = Field(default=None, description="private reply to an operator's check-in")
    add_friend: Text | None = Field(
        default=None, description="group post asking a non-friend to add the assistant"
    )
    early_welcome: Text | None = Field(default=None, description="welcome for members who join before day 1")


class Commands(_Strict):
    progress: Words = Field(default_factory=lambda: ["进度", "我的进度"])
    leaderboard: Words = Field(default_factory=lambda: ["排行榜"])
    today: Words = Field(default_factory=lambda: ["今日安排", "课表"])
    help: Words = Field(default_factory=lambda: ["帮助", "菜单"])
    # (1.1) optional: no keywords, no feature.
    mute: Words | None = Field(default=None, description='opt out of @-mentions and nudges, e.g. ["免打扰"]')
    unmute: Words | None = Field(default=None, description='opt in again, e.g. ["恢复提醒"]')
    makeup: Words | None = Field(
        default=None,
        description='(1.1) a make-up check-in, "补卡 2"; default ["补卡"] when a track has `makeup:`',
    )
    leave: Words | None = Field(
        default=None,
        description='(1.1) leave for a day, "请假" or "请假 3": no reminders that day, e.g. ["请假"]',
    )


class Reply(_Strict):
    """(extension) A keyword reply: members' frequent questions answered by the bot."""

    keywords: Words = Field(description='what members ask, e.g. ["作业在哪", "怎么交作业"]')
    match: Literal["whole", "contains"] = Field(
        "whole",
        description="whole: the message, trimmed and without ending punctuation (？！。~), equals a "
        "keyword; contains: a keyword appears anywhere in the message",
    )
    answer: Text = Field(description="the answer; may use " + ", ".join(f"{{{f}}}" for f in ANSWER_FIELDS))
    where: Literal["private", "group"] = Field(
        "private",
        description="private: answered privately (in the group with an @ if the account cannot "
        "message the member); group: in the group with an @, askers close together in one message",
    )


class Remind(_Strict):
    track: str = Field(description="track id")
    text: Text = Field(description="posted with @-mentions of members not checked in today")


class Nudge(_Strict):
    track: str = Field(description="track id")
    day: Int | None = Field(None, description="the day checked; default: the item's own day")
    dm: Text = Field(description="private message to each member not checked in on `day`")


class Leaderboard(_Strict):
    track: str = Field(description="track id")
    top: Int = Field(10, ge=1, le=100, description="how many to list")
    title: Text | None = Field(
        None,
        description="optional first line; may use {playbook}, {day}, {track}, {completion}, "
        "{checked_in}, {rewarded}",
    )
    by: Literal["days", "streak"] = Field(
        "days", description="(1.1) rank by days checked in, or by current streak (consecutive track days)"
    )


class Summary(_Strict):
    """(1.1) The day's figures in one group post: completion per track, the longest current
    streaks, who earned a reward that day."""

    tracks: Annotated[list[str], Field(min_length=1)] | None = Field(
        None, description="track ids; default: every track that counts check-ins on the item's day"
    )
    title: Text | None = Field(None, description="optional first line; may use {playbook}, {day}, {total}")
    top_streaks: Int = Field(
        3, ge=0, le=20, description="how many of the longest current streaks to name per track (0: none)"
    )


ItemKind = Literal["post", "remind", "nudge", "leaderboard", "summary"]
KINDS: tuple[ItemKind, ...] = ("post", "remind", "nudge", "leaderboard", "summary")
SURVEY_INTRO_FIELDS = ("name", "playbook", "n")
SURVEY_THANKS_FIELDS = ("name", "playbook")
ON_JOIN = "on_join"


def _survey_start(value: Any) -> Any:
    """`start: on_join` (the default) is None; a mapping is the day and time to start at."""
    if value is None or value == ON_JOIN:
        return None
    if isinstance(value, dict):
        return value
    raise ValueError(
        _('{value!r} is not a start; write on_join, or a day and time: {{day: 1, at: "20:00"}}').format(
            value=value
        )
    )


class SurveyStart(_Strict):
    day: Int = Field(description="cohort day, 1..days")
    at: HHMM = Field(description='local time, "HH:MM"')


class SurveyQuestion(_Strict):
    text: Text = Field(description="the question, sent privately as it is written")
    choices: Annotated[list[Keyword], Field(min_length=2, max_length=20)] | None = Field(
        None, description="numbered choices, answered by number or by text; none: a free-text answer"
    )


class Survey(_Strict):
    """(1.1) A questionnaire asked privately, one question at a time (bot/survey.py)."""

    id: Annotated[str, Field(pattern=ID_PATTERN)] = Field(
        description="names the questionnaire in the database: a new id asks everyone again"
    )
    start: Annotated[
        SurveyStart | None,
        BeforeValidator(_survey_start),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "string", "pattern": f"^{ON_JOIN}$"},
                    {
                        "type": "object",
                        "properties": {"day": {"type": "integer"}, "at": {"type": "string"}},
                        "required": ["day", "at"],
                    },
                ],
                "description": 'on_join (default), or {day: 1, at: "20:00"}',
            }
        ),
    ] = Field(
        None,
        description="on_join: each member as soon as the bot sees them in the group; {day, at}: "
        "nobody before then, everyone (and later joiners) from then on",
    )
    link: Text | None = Field(
        None, description="the questionnaire on the web, posted in the group for those not reachable"
    )
    remind_after_hours: Int = Field(
        24, ge=1, le=168, description="one reminder when a question has waited this long"
    )
    intro: Text | None = Field(
        None, description="before the first question; may use {name}, {playbook}, {n} (questions)"
    )
    thanks: Text | None = Field(None, description="after the last answer; may use {name}, {playbook}")
    questions: Annotated[list[SurveyQuestion], Field(min_length=1, max_length=50)]


class ScheduleItem(_Strict):
    day: Int = Field(description="cohort day, 1..days")
    at: HHMM = Field(description='time of day, "HH:MM" 24-hour, e.g. "19:30"')
    id: Annotated[str, Field(pattern=ID_PATTERN)] | None = Field(
        None, description="optional stable id, unique in the playbook"
    )
    post: Text | None = None
    remind: Remind | None = None
    nudge: Nudge | None = None
    leaderboard: Leaderboard | None = None
    summary: Summary | None = None

    @property
    def kind(self) -> ItemKind:
        return next(k for k in KINDS if getattr(self, k) is not None)

    @property
    def track(self) -> str | None:
        body = getattr(self, self.kind)
        return getattr(body, "track", None)

    @property
    def checked_day(self) -> int:
        """The day whose check-ins the item looks at ({day} in its text)."""
        if self.nudge is not None and self.nudge.day is not None:
            return self.nudge.day
        return self.day


class Playbook(_Strict):
    name: Text = Field(description="{playbook} in templates")
    days: Int = Field(ge=1, le=366, description="cohort length in days; day 1 is the start date")
    timezone: TimeZoneName | None = Field(None, description="IANA zone; default: the config's")
    tracks: dict[Annotated[str, Field(pattern=ID_PATTERN)], Track] = Field(
        min_length=1, description="what members check in to, by track id"
    )
    rewards: EmptyList[Reward] = Field(default_factory=list)
    commands: Commands = Field(default_factory=lambda: Commands())
    welcome: Text | None = Field(
        None,
        description="optional (extension): group post for members who join; may use "
        "{name}, {playbook}, {day}; joins close together share one post",
    )
    messages: Messages = Field(default_factory=lambda: Messages())
    language: Literal["zh", "en"] = Field(
        "zh",
        description="(extension) the language of the bot's own words to members (notices, roll "
        "calls, help, progress, today, leaderboards); `messages:` overrides them; default zh",
    )
    schedule: EmptyList[ScheduleItem] = Field(default_factory=list)
    day_starts: HHMM | None = Field(
        None,
        description='(1.1) check-ins before this time count for the previous day, e.g. "04:00" '
        "for evening homework; default 00:00",
    )
    ack_every_minutes: float | None = Field(
        None, ge=1, le=720, description="(1.1) at most one roll call this often; default: the config's (20)"
    )
    roll_call_mentions: bool = Field(
        False, description="(1.1) roll calls @-mention the members they name (small groups only)"
    )
    replies: EmptyList[Reply] = Field(
        default_factory=list, description="(extension) keyword replies to members' frequent questions"
    )
    question_digest_minutes: Int = Field(
        30,
        ge=0,
        le=1440,
        description="(extension) a member's question no assistant answered in the group within this "
        "many minutes reaches the operators in one private digest; 0: never",
    )
    survey: Survey | None = Field(
        None, description="(1.1) a questionnaire asked privately, one question at a time (see docs)"
    )

    def tr(self, message: str) -> str:
        """A text for members (an English msgid) in the playbook's language."""
        return i18n.gettext_in(self.language, message)

    @property
    def words(self) -> gettext.NullTranslations:
        """The playbook language's catalog, for counted texts (``words.ngettext(...)``)."""
        return i18n.translation(i18n.normalize(self.language) or "zh")

    # Set by parse(): the stable id of each schedule item, in schedule order.
    _item_ids: tuple[str, ...] = PrivateAttr(default=())
    _path: str = PrivateAttr(default="")
    _warnings: tuple[Problem, ...] = PrivateAttr(default=())
    _item_lines: tuple[int, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[Problem, ...]:
        """Legal but almost surely not meant: printed by `validate`, errors with --strict."""
        return self._warnings

    def quiet_warnings(self, start: time, end: time, where: str | None = None) -> list[Problem]:
        """Items scheduled inside quiet hours: sent all the same (the operator chose the time),
        but members who muted the group for the night will not see them."""
        out = []
        where = _("the default quiet hours") if where is None else where
        for it, line in zip(self.schedule, self._item_lines, strict=True):
            inside = start <= it.at < end if start <= end else (it.at >= start or it.at < end)
            if inside:
                out.append(
                    Problem(
                        self._path,
                        line,
                        "schedule",
                        _(
                            "{at} is inside {where} ({start}-{end}): it is sent all the "
                            "same, but members may have muted the group for the night; move it, or change "
                            "`quiet_hours` in the config"
                        ).format(
                            at=f"{it.at:%H:%M}", where=where, start=f"{start:%H:%M}", end=f"{end:%H:%M}"
                        ),
                    )
                )
        return out

    @property
    def item_ids(self) -> tuple[str, ...]:
        return self._item_ids

    @property
    def path(self) -> str:
        return self._path


def derive_item_ids(items: list[ScheduleItem]) -> list[str]:
    """Explicit ids as given; others from day, time and kind (so editing the text keeps the
    identity), with a counter only where two items share all three."""
    taken = {it.id for it in items if it.id}
    out: list[str] = []
    for it in items:
        if it.id:
            out.append(it.id)
            continue
        base = f"d{it.day}-{it.at:%H%M}-{it.kind}" + (f"-{it.track}" if it.track else "")
        candidate, n = base, 1
        while candidate in taken:
            n += 1
            candidate = f"{base}-{n}"
        taken.add(candidate)
        out.append(candidate)
    return out


def _cross_check(pb: Playbook, src: Source, set_aside_tracks: frozenset[str] = frozenset()) -> list[Problem]:
    """The rules pydantic cannot see field by field: references, ranges, ids, templates."""
    problems: list[Problem] = []
    tracks = list(pb.tracks)

    def need_track(loc: tuple[str | int, ...], track: str) -> None:
        if track not in pb.tracks and track not in set_aside_tracks:
            guess = difflib.get_close_matches(track, tracks, n=1)
            problems.append(
                src.problem(
                    loc,
                    (
                        _("no track `{track}`; did you mean `{guess}`?")
                        if guess
                        else _("no track `{track}`; tracks are: {tracks}")
                    ).format(track=track, guess=guess[0] if guess else "", tracks=", ".join(tracks)),
                )
            )

    def need_template(
        loc: tuple[str | int, ...],
        text: str | None,
        allowed: tuple[str, ...],
        why: Mapping[str, str] | None = None,
    ) -> None:
        if text is None:
            return
        if m := _HALF_FULL_WIDTH.search(text):
            problems.append(
                src.problem(
                    loc,
                    _(
                        '"{written}" mixes a half-width and a full-width brace; write the placeholder with '
                        "half-width braces on both sides: {fixed}"
                    ).format(written=m[0], fixed="{" + (m[1] or m[2]) + "}"),
                )
            )
            return
        try:
            templates.check(text, allowed, why)
        except ValueError as exc:
            problems.append(src.problem(loc, str(exc)))

    def need_day(loc: tuple[str | int, ...], day: int) -> None:
        if not 1 <= day <= pb.days:
            problems.append(
                src.problem(
                    loc, _("day {day} is outside the cohort; use 1..{days}").format(day=day, days=pb.days)
                )
            )

    owner: dict[str, str] = {}
    for tid, track in pb.tracks.items():
        for i, d in enumerate(track.days):
            need_day(("tracks", tid, "days", i), d)
        if len(set(track.days)) != len(track.days):
            problems.append(src.problem(("tracks", tid, "days"), _("a day is listed twice; list each once")))
        for i, kw in enumerate(track.keywords):
            if kw in owner and owner[kw] != tid:
                problems.append(
                    src.problem(
                        ("tracks", tid, "keywords", i),
                        _(
                            "keyword {keyword!r} also belongs to track `{track}`; "
                            "a keyword must name one track"
                        ).format(keyword=kw, track=owner[kw]),
                    )
                )
            owner.setdefault(kw, tid)
        need_template(("tracks", tid, "ack"), track.ack, ACK_FIELDS)
        need_template(("tracks", tid, "roll_call"), track.roll_call, ROLL_CALL_FIELDS)

    seen_rewards: dict[str, int] = {}
    for i, r in enumerate(pb.rewards):
        if r.id in seen_rewards:
            problems.append(
                src.problem(
                    ("rewards", i, "id"),
                    _("reward id `{id}` is used twice; give each reward its own id").format(id=r.id),
                )
            )
        seen_rewards[r.id] = i
        need_track(("rewards", i, "track"), r.track)
        if r.track in pb.tracks and r.count > len(pb.tracks[r.track].days):
            problems.append(
                src.problem(
                    ("rewards", i, "count"),
                    _("count {count} can never be reached: track `{track}` counts on {days} days").format(
                        count=r.count, track=r.track, days=len(pb.tracks[r.track].days)
                    ),
                )
            )
        need_template(("rewards", i, "dm"), r.dm, REWARD_FIELDS)
        need_template(("rewards", i, "announce"), r.announce, REWARD_FIELDS)

    used: dict[str, str] = {}
    for name, words in pb.commands:
        for i, w in enumerate(words or ()):
            if w in used and used[w] != name:
                problems.append(
                    src.problem(
                        ("commands", name, i),
                        _("{word!r} is already the `{command}` command").format(word=w, command=used[w]),
                    )
                )
            used.setdefault(w, name)

    need_template(("welcome",), pb.welcome, WELCOME_FIELDS)
    for i, reply in enumerate(pb.replies):
        need_template(("replies", i, "answer"), reply.answer, ANSWER_FIELDS)
    problems += _reply_keywords(pb, src)
    for key, fields in MESSAGE_FIELDS.items():
        need_template(("messages", key), getattr(pb.messages, key), fields)

    _check_survey(pb, src, problems, need_template, need_day)

    from bot import items  # (items builds on this module: imported when first needed)

    checks = items.Checks(
        pb, lambda loc, msg: problems.append(src.problem(loc, msg)), need_template, need_track, need_day
    )
    ids: dict[str, int] = {}
    for i, it in enumerate(pb.schedule):
        loc: tuple[str | int, ...] = ("schedule", i)
        given = [k for k in KINDS if getattr(it, k) is not None]
        if len(given) != 1:
            what = _("none") if not given else _(" and ").join(given)
            problems.append(
                src.problem(
                    loc,
                    _("an item needs exactly one of {kinds} (it has {what})").format(
                        kinds=", ".join(KINDS), what=what
                    ),
                )
            )
            continue
        need_day((*loc, "day"), it.day)
        if it.id is not None:
            if it.id in ids:
                problems.append(
                    src.problem(
                        (*loc, "id"),
                        _("id `{id}` is already used by schedule[{index}]; ids must be unique").format(
                            id=it.id, index=ids[it.id]
                        ),
                    )
                )
            ids.setdefault(it.id, i)
        if abs(it.day) > 10_000:
            continue  # said above; past any calendar, its kind's checks would overflow on its time
        # What is particular to its kind is checked where the kind lives.
        items.KINDS[it.kind].check(it, loc, checks)
    return problems


def _reply_keywords(pb: Playbook, src: Source) -> list[Problem]:
    """Reply keywords that match nothing, or that two replies (or one, twice) claim."""
    from bot.replies import key  # as messages are matched (replies builds on this module)

    problems: list[Problem] = []
    owner: dict[tuple[str, str], int] = {}
    for i, r in enumerate(pb.replies):
        for j, kw in enumerate(r.keywords):
            loc = ("replies", i, "keywords", j)
            k = key(kw)
            if not k:
                problems.append(
                    src.problem(
                        loc,
                        _(
                            '"{keyword}" is only punctuation or spaces, which are ignored when messages are '
                            "matched, so it matches nothing; write the words members ask"
                        ).format(keyword=kw),
                    )
                )
                continue
            first = owner.setdefault((r.match, k), i)
            if first != i:
                message = _(
                    '"{keyword}" is already a keyword of replies[{index}]; a keyword must name one reply'
                )
                problems.append(src.problem(loc, message.format(keyword=kw, index=first)))
            elif [key(w) for w in r.keywords].index(k) != j:
                problems.append(
                    src.problem(loc, _('"{keyword}" is listed twice; list it once').format(keyword=kw))
                )
    return problems


Loc = tuple[str | int, ...]


def _check_survey(
    pb: Playbook,
    src: Source,
    problems: list[Problem],
    need_template: Callable[[Loc, str | None, tuple[str, ...]], None],
    need_day: Callable[[Loc, int], None],
) -> None:
    """The questionnaire's rules pydantic cannot see: its day, its texts, choices given twice."""
    survey = pb.survey
    if survey is None:
        return
    if survey.start is not None:
        need_day(("survey", "start", "day"), survey.start.day)
    need_template(("survey", "intro"), survey.intro, SURVEY_INTRO_FIELDS)
    need_template(("survey", "thanks"), survey.thanks, SURVEY_THANKS_FIELDS)
    for i, q in enumerate(survey.questions):
        seen: dict[str, int] = {}
        for j, choice in enumerate(q.choices or ()):
            if choice.casefold() in seen:
                problems.append(
                    src.problem(
                        ("survey", "questions", i, "choices", j),
                        _("{choice!r} is already choice {n}; list each choice once").format(
                            choice=choice, n=seen[choice.casefold()] + 1
                        ),
                    )
                )
            seen.setdefault(choice.casefold(), j)


def _survey_warnings(pb: Playbook, src: Source) -> list[Problem]:
    """Choices a member cannot answer by their text: a private message that is a command or a
    check-in keyword is answered as such, never taken as an answer (bot/survey.py)."""
    from bot import survey  # (survey builds on this module)

    out = []
    for i, q in enumerate(pb.survey.questions if pb.survey else ()):
        for j, choice in enumerate(q.choices or ()):
            if word := survey.reads_as_command(pb, choice):
                out.append(
                    src.problem(
                        ("survey", "questions", i, "choices", j),
                        _(
                            '"{choice}" is read as "{word}" (a command or check-in keyword) when a member '
                            "sends it privately, so it is not taken as an answer; members can still "
                            "answer with its number ({n}), or reword the choice"
                        ).format(choice=choice, word=word, n=j + 1),
                    )
                )
    return out


# Top-level keys whose broken value is set aside to check the rest.
SET_ASIDE = ("timezone", "commands", "welcome", "replies", "question_digest_minutes", "survey")


def _rules_despite(shape: InputError, src: Source) -> list[Problem]:
    """The rule problems of the well-formed parts of a file that also has shape problems, so
    an operator fixes everything in one round. Each broken part is set aside (a broken list
    item swapped for a neutral one, so later items keep their places; a broken track left
    out) and nothing more is said about it. Returns nothing when too little is left."""
    data = copy.deepcopy(src.data)
    aside: list[tuple[str | int, ...]] = []
    aside_tracks: set[str] = set()
    for p in shape.problems:
        loc = p.loc
        if len(loc) >= 2 and loc[0] == "schedule" and isinstance(loc[1], int):
            data["schedule"][loc[1]] = {"day": 1, "at": "00:00", "post": "-"}
        elif len(loc) >= 2 and loc[0] == "tracks" and isinstance(data.get("tracks"), dict):
            data["tracks"].pop(loc[1], None)
            aside_tracks.add(str(loc[1]))
        elif len(loc) >= 2 and loc[0] == "rewards" and isinstance(loc[1], int):
            data["rewards"][loc[1]] = None  # filled in below, once a valid track is known
        elif loc and loc[0] in SET_ASIDE:
            data.pop(loc[0], None)
        else:
            return []  # name, days, tracks or a whole list is broken: nothing to check against
        aside.append(loc[:2] if loc[0] in ("schedule", "tracks", "rewards") else loc[:1])
    some_track = next(iter(data.get("tracks") or {}), None)
    if isinstance(data.get("rewards"), list):
        for i, r in enumerate(data["rewards"]):
            if r is None:
                if some_track is None:
                    return []
                data["rewards"][i] = {
                    "id": f"set-aside-{i}",
                    "name": "-",
                    "track": some_track,
                    "count": 1,
                    "dm": "-",
                }
    try:
        pb = validate(Source(src.path, data, src.lines), Playbook)
    except InputError:
        return []
    return [
        p
        for p in _cross_check(pb, src, frozenset(aside_tracks))
        if not any(p.loc[: len(a)] == a for a in aside)
    ]


def parse(src: Source) -> Playbook:
    try:
        pb = validate(src, Playbook)
    except InputError as shape:
        problems = [*shape.problems, *_rules_despite(shape, src)]
        raise InputError(sorted(problems, key=lambda p: p.line), _slips(src)) from None
    problems = _cross_check(pb, src)
    if problems:
        raise InputError(sorted(problems, key=lambda p: p.line), _slips(src))
    pb._item_ids = tuple(derive_item_ids(pb.schedule))
    pb._path = src.path
    pb._item_lines = tuple(src.line(("schedule", i, "at")) for i in range(len(pb.schedule)))
    pb._warnings = tuple(_warnings(pb, src)) + tuple(pb.quiet_warnings(time(22, 30), time(7, 30)))
    return pb


def _warnings(pb: Playbook, src: Source) -> list[Problem]:
    out = _slips(src) + _shadowed(pb, src) + _after_until(pb, src)
    out += _replies_shadowed(pb, src) + _survey_warnings(pb, src)
    for tid, track in pb.tracks.items():
        if track.ack and track.acknowledge == "roll_call":
            out.append(
                src.problem(
                    ("tracks", tid, "ack"),
                    _(
                        "`ack` is used only with `acknowledge: each`; this track's check-ins are named in "
                        "roll calls (write their line as `roll_call:`), or add `acknowledge: each`"
                    ),
                )
            )
    for i, r in enumerate(pb.rewards):
        owner = pb.tracks.get(r.track)
        if r.announce and owner is not None and owner.acknowledge == "roll_call":
            out.append(
                src.problem(
                    ("rewards", i, "announce"),
                    _(
                        "`announce` is used only when track `{track}` has `acknowledge: each`; otherwise the "
                        "roll call names who earned the reward"
                    ).format(track=r.track),
                )
            )
    return sorted(out, key=lambda p: p.line)


# `{name｝`, `｛name}`: a placeholder half typed on a Chinese keyboard.
_HALF_FULL_WIDTH = re.compile(r"\{\s*([A-Za-z_]\w*)\s*｝|｛\s*([A-Za-z_]\w*)\s*\}")
_FULL_WIDTH_BRACES = re.compile(r"｛\s*([A-Za-z_]\w*)\s*｝")
_CHINESE_QUOTES = {"“": "”", "‘": "’"}


def _strings(data: Any, loc: tuple[str | int, ...] = ()) -> list[tuple[tuple[str | int, ...], str]]:
    """Every text value in the file, with its location."""
    if isinstance(data, str):
        return [(loc, data)]
    if isinstance(data, dict):
        return [s for k, v in data.items() if isinstance(k, str) for s in _strings(v, (*loc, k))]
    if isinstance(data, list):
        return [s for i, v in enumerate(data) for s in _strings(v, (*loc, i))]
    return []


def _short(text: str) -> str:
    """A long text, shortened to be quoted in a message."""
    text = " ".join(text.split())
    return text if len(text) <= 40 else f"{text[:20]}…{text[-19:]}"


def _is_keyword(loc: tuple[str | int, ...]) -> bool:
    """A check-in keyword, a command word or a reply keyword."""
    return (len(loc) == 4 and loc[0] in ("tracks", "replies") and loc[2] == "keywords") or (
        len(loc) == 3 and loc[0] == "commands"
    )


def _slips(src: Source) -> list[Problem]:
    """Text that YAML reads, but not as a Chinese keyboard's user meant it."""
    out = []
    for loc, text in _strings(src.data):
        if not loc:
            continue  # the whole file is one text: told as not a mapping
        key = f"{loc[-1]}:" if isinstance(loc[-1], str) else "-"  # how the fix starts its line
        if dropped := src.cut_by_hash(loc):
            kept = text.strip()
            out.append(
                src.problem(
                    loc,
                    _(
                        'only "{kept}" is read here: YAML drops "{dropped}" (" #" starts a note for '
                        "the reader); if it is part of the text, put the whole text in quotes: "
                        '{key} "{kept} {dropped}" (a note of your own: leave two spaces before "# ")'
                    ).format(kept=kept, dropped=dropped, key=key),
                )
            )
        stripped = text.strip()
        quoted = len(stripped) >= 2 and _CHINESE_QUOTES.get(stripped[0]) == stripped[-1]
        if _is_keyword(loc):
            parts = [p.strip() for p in re.split("[，、]", text) if p.strip()]
            if len(parts) > 1:
                sep = "，" if "，" in text else "、"
                written = ", ".join(f'"{p}"' for p in parts)
                out.append(
                    src.problem(
                        loc,
                        _(
                            '"{keyword}" is one keyword, not {n}: the Chinese "{sep}" does not '
                            "separate keywords. To give {n} keywords, write them in English "
                            "quotes separated by English commas: [{fixed}]"
                        ).format(keyword=stripped, n=len(parts), sep=sep, fixed=written),
                    )
                )
            if quoted:
                out.append(
                    src.problem(
                        loc,
                        _(
                            "the keyword {keyword} is written in Chinese quotes {open} "
                            "{close}, which are not YAML quotes: they are part of the keyword, so "
                            'members would have to type them; write it in English quotes: ["{inner}"]'
                        ).format(
                            keyword=stripped, open=stripped[0], close=stripped[-1], inner=stripped[1:-1]
                        ),
                    )
                )
            continue
        if quoted:
            shown, inner = _short(stripped), _short(stripped[1:-1])
            out.append(
                src.problem(
                    loc,
                    _(
                        "{text} is written in Chinese quotes {open} {close}, which are not "
                        "YAML quotes: the bot would send them as part of the text; write English quotes, "
                        'or none: {key} "{inner}"'
                    ).format(text=shown, open=stripped[0], close=stripped[-1], key=key, inner=inner),
                )
            )
        for m in _FULL_WIDTH_BRACES.finditer(text):
            out.append(
                src.problem(
                    loc,
                    _(
                        '"{written}" has full-width braces ｛ ｝, so it would be sent as it is, '
                        "not filled in; write it with half-width braces: {fixed}"
                    ).format(written=m[0], fixed="{" + m[1] + "}"),
                )
            )
    return out


def _shadowed(pb: Playbook, src: Source) -> list[Problem]:
    """Check-in keywords that a command takes first: commands are matched first, on the whole
    message (bot/router.py)."""
    from bot.checkins import normalize  # as messages are matched (checkins builds on this module)

    listed = src.data.get("commands") if isinstance(src.data, dict) else None
    words = [
        (w, name, ("commands", name, i) if isinstance(listed, dict) and name in listed else None)
        for name, ws in pb.commands
        for i, w in enumerate(ws or ())
    ]
    keywords = sorted(
        ((normalize(kw), kw, tid, i) for tid, t in pb.tracks.items() for i, kw in enumerate(t.keywords)),
        key=lambda k: -len(k[0]),
    )
    out = []
    for word, name, word_loc in words:
        # The check-in a message that is just this word would be: the longest keyword wins.
        hit = next((k for k in keywords if normalize(word).startswith(k[0])), None)
        if hit is None:
            continue
        _normalized, kw, tid, i = hit
        if normalize(word) == hit[0]:
            out.append(
                src.problem(
                    ("tracks", tid, "keywords", i),
                    _(
                        '"{keyword}" is also a word of the `{command}` command: a message that is just '
                        '"{keyword}" is answered as that command and never counts as a check-in on track '
                        "`{track}`; choose another keyword, or another word for the command"
                    ).format(keyword=kw, command=name, track=tid),
                )
            )
        else:
            out.append(
                src.problem(
                    word_loc or ("tracks", tid, "keywords", i),
                    _(
                        '"{word}" (the `{command}` command) starts with "{keyword}", a check-in keyword of '
                        'track `{track}`: a message that is just "{word}" is answered as the command and '
                        "does not count as a check-in; if members may send it to check in, choose another "
                        "word for the command"
                    ).format(word=word, command=name, keyword=kw, track=tid),
                )
            )
    return out


def _replies_shadowed(pb: Playbook, src: Source) -> list[Problem]:
    """Reply keywords that a command or a check-in takes first: a message is a command (the
    whole message) or a check-in (its start) before it is a reply (bot/router.py)."""
    from bot.checkins import normalize  # as messages are matched (checkins builds on this module)

    words = {normalize(w): name for name, ws in pb.commands for w in ws or ()}
    keywords = sorted(
        ((normalize(kw), kw, tid) for tid, t in pb.tracks.items() for kw in t.keywords),
        key=lambda k: -len(k[0]),
    )
    out = []
    for i, r in enumerate(pb.replies):
        for j, kw in enumerate(r.keywords):
            loc = ("replies", i, "keywords", j)
            said = normalize(kw).strip()
            hit = next((k for k in keywords if said.startswith(k[0])), None)
            if said in words:
                out.append(
                    src.problem(
                        loc,
                        _(
                            '"{keyword}" is also a word of the `{command}` command: a message that is just '
                            '"{keyword}" is answered as that command, not by this reply; choose other words'
                        ).format(keyword=kw, command=words[said]),
                    )
                )
            elif hit is not None:
                message = (
                    _(
                        '"{keyword}" starts with "{checkin}", a check-in keyword of track `{track}`: a '
                        "message that starts with it counts as a check-in, so this reply never answers; "
                        "choose words that do not start with a check-in keyword"
                    )
                    if r.match == "whole"
                    else _(
                        '"{keyword}" starts with "{checkin}", a check-in keyword of track `{track}`: a '
                        "message that starts with it counts as a check-in and is not answered; choose "
                        "words that do not start with a check-in keyword"
                    )
                )
                out.append(src.problem(loc, message.format(keyword=kw, checkin=hit[1], track=hit[2])))
            elif r.match == "contains" and len(said) == 1:
                out.append(
                    src.problem(
                        loc,
                        _(
                            '"{keyword}" is one character: with `match: contains` every message that has it '
                            "anywhere is answered; write the words of the question"
                        ).format(keyword=kw),
                    )
                )
    return out


def _after_until(pb: Playbook, src: Source) -> list[Problem]:
    """Reminders and nudges that ask, about their own day, for check-ins that no longer count."""
    from bot.plan import Calendar  # (plan builds on this module)

    cal = Calendar(date(2000, 1, 1), pb.days, ZoneInfo("UTC"), pb.day_starts or time(0, 0))
    out = []
    for i, it in enumerate(pb.schedule):
        track = pb.tracks.get(it.track or "")
        if it.kind not in ("remind", "nudge") or track is None or track.until is None:
            continue
        if it.checked_day != it.day or cal.at(it.day, it.at) <= cal.deadline(it.day, track.until):
            continue
        message = (
            _(
                "this reminder at {at} asks for today's check-ins on track `{track}`, but "
                "the track stops counting them at {until} (its `until`); move it "
                "before {until}, or make it about another day"
            )
            if it.kind == "remind"
            else _(
                "this nudge at {at} asks for today's check-ins on track `{track}`, but "
                "the track stops counting them at {until} (its `until`); move it "
                "before {until}, or make it about another day"
            )
        )
        out.append(
            src.problem(
                ("schedule", i, "at"),
                message.format(at=f"{it.at:%H:%M}", track=it.track, until=f"{track.until:%H:%M}"),
            )
        )
    return out


def load(path: str | Path) -> Playbook:
    """Read and validate a playbook file; InputError lists every problem with its line."""
    return parse(read_yaml(path))


def json_schema() -> dict[str, Any]:
    schema = Playbook.model_json_schema(mode="validation")
    schema["properties"]["tracks"]["additionalProperties"] = False  # ids must match the pattern
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "cohortbot playbook, version 1"
    return schema
