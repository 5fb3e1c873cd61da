"""Keyword replies, and members' questions that wait for an operator.

Members ask the same things all day (作业在哪里交？回放在哪？优惠还有吗？). The playbook's
`replies:` map keywords to answers: the whole message (trimmed, without its ending
punctuation or emoji) equal to a keyword, or, with `match: contains`, a keyword anywhere in
it. An answer goes privately by default (in the group with an @ to a member the account
cannot message privately); with `where: group` in the group with an @, and members asking
the same within a moment share one message naming them all. One member asking the same
again within COOLDOWN gets no second answer; group answers wait out the quiet hours.

A member's question that no reply answered (it ends in ？ or 吗, or starts like one: 请问,
怎么, 为什么, how, …) is stored and waits for an operator. An operator who then speaks in the
group answers every question waiting from the group; one whose message @-mentions members
answers theirs only (group and private). When the oldest question has waited
`question_digest_minutes`, each operator gets one private digest listing every question
still waiting, who asked it and when; at most one digest per cohort in that many minutes,
none in the quiet hours (the night's questions go in the morning's). The questions are rows
in the database, so a restart loses none, and a digest and the marking of what it lists
commit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import i18n, templates
from bot.checkins import DATE, LIST_SEPARATOR, normalize
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.i18n import N_
from bot.playbook import Playbook
from bot.roster import Roster
from bot.transports.base import Incoming, Member, clean_text
from storage import repo
from storage.models import OPERATOR

log = logging.getLogger(__name__)

FOLD = timedelta(seconds=15)  # a group answer waits this long for others asking the same
SAME_ANSWER_GAP = timedelta(minutes=5)  # the same answer goes to the group at most this often
COOLDOWN = timedelta(minutes=10)  # one member asking the same again is not answered again
STORED_CHARS = 300  # of a question
SHOWN_CHARS = 40  # of a question, in the digest
DIGEST_LINES = 15

# For the operators, in the config's language.
DIGEST_TITLE = N_("❓ [{group}] Questions nobody has answered yet: {n} (the first has waited {minutes} min)")
DIGEST_LINE = N_("· {name} {when} 「{text}」")
DIGEST_PRIVATE = N_(" (private message to the bot)")
DIGEST_MORE = N_("· {n} more")
DIGEST_HINT = N_(
    "Answer in the group (an @ to the member settles their questions), or privately. A keyword "
    "reply in the playbook's `replies:` answers frequent ones by itself."
)

# After the full-width fold (normalize), so ？ is ?.
_ENDS = ("?", "吗", "么")
_ASKS = ("请问", "请教", "想问", "问一下", "问下")  # anywhere in the message
_STARTS = (
    *("怎么", "怎样", "为什么", "为啥", "如何", "哪里", "在哪", "哪儿", "哪个", "哪些", "什么"),
    *("能不能", "能否", "可不可以", "可以问", "有没有", "是不是", "啥时候", "几点", "多久", "求助"),
)
_ENGLISH = re.compile(
    r"(how|what|why|where|when|which|who|can|could|is there|are there|does|did|should)\b", re.IGNORECASE
)


def _ignorable(c: str) -> bool:
    """What ends a message without changing what it asks: punctuation, emoji, ~."""
    cat = unicodedata.category(c)
    return c.isspace() or cat[0] == "P" or cat in ("So", "Sk", "Mn") or c == "~"


def key(text: str) -> str:
    """A message (or keyword) as replies match it: normalized like check-ins (full-width
    folded, invisible characters gone), spaces collapsed, without the punctuation and emoji
    it ends with, case-folded."""
    t = " ".join(normalize(text).split())
    end = len(t)
    while end and _ignorable(t[end - 1]):
        end -= 1
    return t[:end].casefold()


@dataclass(frozen=True)
class _Index:
    whole: dict[str, int]  # keyword -> reply index
    contains: tuple[tuple[str, int], ...]  # longest keyword first


@lru_cache(maxsize=32)
def _index(replies: tuple[tuple[str, tuple[str, ...]], ...]) -> _Index:
    whole: dict[str, int] = {}
    contains: list[tuple[str, int]] = []
    for i, (match, keywords) in enumerate(replies):
        for kw in keywords:
            if not (k := key(kw)):
                continue
            if match == "whole":
                whole.setdefault(k, i)
            else:
                contains.append((k, i))
    return _Index(whole, tuple(sorted(contains, key=lambda c: -len(c[0]))))


def find(pb: Playbook, text: str) -> int | None:
    """The index of the reply that answers ``text``: a whole-message keyword first, else the
    longest keyword it contains."""
    if not pb.replies:
        return None
    k = key(text)
    if not k:
        return None
    index = _index(tuple((r.match, tuple(r.keywords)) for r in pb.replies))
    found = index.whole.get(k)
    if found is not None:
        return found
    return next((i for kw, i in index.contains if kw in k), None)


def is_question(text: str) -> bool:
    """Whether a message asks something: it ends in ？ (or 吗), says 请问, or starts like a
    question (怎么, 为什么, 在哪, how, …). A bare "？" or "?？" asks nothing."""
    t = normalize(text).strip()
    core = key(t)
    if len(core) < 2:
        return False
    end = len(t)
    while end and (t[end - 1].isspace() or unicodedata.category(t[end - 1]) in ("So", "Sk", "Mn")):
        end -= 1  # an emoji after the question mark
    return (
        t[:end].rstrip("~.。").endswith(_ENDS)
        or any(a in core for a in _ASKS)
        or core.startswith(_STARTS)
        or _ENGLISH.match(core) is not None
    )


def _as_asked(original: str, matched: str) -> str:
    """The question as the member wrote it (？, not ?), unless it began with an @ to the bot."""
    written = clean_text(original).strip()
    return (written if normalize(written) == matched else matched)[:STORED_CHARS]


def _short(text: str) -> str:
    one = " ".join(text.split())
    return one[:SHOWN_CHARS] + ("…" if len(one) > SHOWN_CHARS else "")


@dataclass
class _Fold:
    """A group answer not sent yet, and who it @s."""

    row: int
    at: datetime
    ids: list[str]
    names: list[str]


class Replies:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        roster: Roster,
        bot_id: Callable[[], str],
        allow: Callable[[str, str, datetime], bool],
        outside_quiet: Callable[[CohortRun, datetime], datetime],
        wake: Callable[[], None],
        operators: frozenset[str],
        language: str = "zh",
        max_mentions: int = 20,
    ) -> None:
        self.db = db
        self.clock = clock
        self.roster = roster
        self.bot_id = bot_id
        self.allow = allow  # the answers-per-minute budget every answer to a member shares
        self.outside_quiet = outside_quiet
        self.wake = wake
        self.operators = operators
        self.language = language  # the operators'
        self.max_mentions = max_mentions
        self._folds: dict[tuple[str, str], _Fold] = {}  # (cohort, answer) -> its group answer
        self._answered: dict[tuple[str, str, str], datetime] = {}  # (cohort, member, answer) -> when
        self._digests: dict[str, tuple[datetime, asyncio.Task[None]]] = {}

    # --- messages ---------------------------------------------------------------------

    def heard(self, run: CohortRun, msg: Incoming, text: str, now: datetime) -> None:
        """A group message that is neither a command nor a check-in."""
        if self.roster.role(msg.sender.id) == OPERATOR:
            self._operator_spoke(run, msg, now)
            return
        self._take(run, msg, text, now, private_chat=False)

    def heard_privately(self, run: CohortRun, msg: Incoming, text: str, now: datetime) -> None:
        """A private message to the bot that is neither a command nor a check-in keyword."""
        if self.roster.role(msg.sender.id) != OPERATOR:
            self._take(run, msg, text, now, private_chat=True)

    def _take(self, run: CohortRun, msg: Incoming, text: str, now: datetime, private_chat: bool) -> None:
        """Answered by a reply, or kept as a question for the operators, or neither."""
        reply = find(run.playbook, text)
        asks = (
            reply is None
            and self._collects(run)
            and is_question(text)
            and (private_chat or self._for_us(msg))
        )
        if reply is None and not asks:
            return
        with self.db.begin() as conn:
            if not private_chat:
                self.roster.ensure(conn, run, msg.sender, now)
            if reply is not None:
                self._answer(conn, run, msg.sender, reply, now, private_chat)
            else:
                asked = _as_asked(msg.text, text)
                asks = repo.add_question(conn, run.id, msg.sender.id, asked, min(msg.at, now), private_chat)
        if asks:
            self._plan(run)
        self.wake()

    def _for_us(self, msg: Incoming) -> bool:
        """Not a question to another member: it @s nobody but the bot and operators."""
        us = (self.bot_id(), msg.sender.id)
        return all(m in us or self.roster.role(m) == OPERATOR for m in msg.mentions)

    def _operator_spoke(self, run: CohortRun, msg: Incoming, now: datetime) -> None:
        """An operator in the group answers what waits: @-mentioned members' questions, or,
        without @s, every question waiting from the group."""
        with self.db.begin() as conn:
            n = repo.answer_questions(conn, run.id, now, list(msg.mentions) or None)
        if n:
            log.info("%s: an assistant spoke in the group; %d question(s) no longer wait", run.id, n)

    # --- answers ------------------------------------------------------------------------

    def _answer(
        self, conn: Connection, run: CohortRun, member: Member, index: int, now: datetime, private_chat: bool
    ) -> None:
        pb = run.playbook
        reply = pb.replies[index]
        # Known by its answer, not its place in the list: a live edit may reorder the replies.
        said = (run.id, member.id, reply.answer)
        last = self._answered.get(said)
        if last is not None and now - last < COOLDOWN:
            return  # the answer is still on their screen
        if not self.allow(member.id, f"reply:{index}", now):
            return
        self._remember(said, now)
        values: dict[str, object] = {"name": member.shown, "playbook": pb.name, "day": run.day(now)}
        if private_chat or (reply.where == "private" and repo.reachable(conn, run.id, member.id)):
            # Behind the group's own traffic: a private answer never holds up an item due now.
            text = templates.render(reply.answer, values)
            repo.enqueue(conn, run.id, member_id=member.id, text=text, kind="reply", now=now, priority=1)
            return
        self._fold(conn, run, reply.answer, member, values, now)

    def _fold(
        self,
        conn: Connection,
        run: CohortRun,
        answer: str,
        member: Member,
        values: dict[str, object],
        now: datetime,
    ) -> None:
        """Into the group answer still waiting to go, if there is one with room for another @;
        else a new one, FOLD from now, SAME_ANSWER_GAP after the last, outside the quiet hours."""
        fold = self._folds.get((run.id, answer))
        at = now + FOLD
        if fold is not None:
            ids, names = [*fold.ids, member.id], [*fold.names, member.shown]
            if len(ids) <= self.max_mentions and repo.update_pending_message(
                conn, fold.row, self._group_text(run, answer, names, values), ids
            ):
                fold.ids, fold.names = ids, names
                return
            full = len(ids) > self.max_mentions and repo.still_pending(conn, [fold.row])
            at = fold.at if full else max(at, fold.at + SAME_ANSWER_GAP)
        at = self.outside_quiet(run, at)
        row = repo.enqueue(
            conn,
            run.id,
            room_id=run.room_id,
            text=self._group_text(run, answer, [member.shown], values),
            kind="reply",
            mentions=[member.id],
            now=now,
            not_before=at,
        )
        self._folds[(run.id, answer)] = _Fold(row, at, [member.id], [member.shown])

    def _group_text(self, run: CohortRun, answer: str, names: list[str], values: dict[str, object]) -> str:
        """The answer with {name} naming everyone it @s."""
        shown = run.playbook.tr(LIST_SEPARATOR).join(names)
        return templates.render(answer, {**values, "name": shown})

    def _remember(self, said: tuple[str, str, str], now: datetime) -> None:
        if len(self._answered) > 10_000:
            self._answered = {k: t for k, t in self._answered.items() if now - t < COOLDOWN}
        self._answered[said] = now

    # --- the operators' digest ---------------------------------------------------------------

    def _collects(self, run: CohortRun) -> bool:
        """Questions are kept only if someone will be told about them."""
        return bool(self.operators) and run.playbook.question_digest_minutes > 0

    def resume(self, run: CohortRun) -> None:
        """At start: questions that waited through a restart get their digest."""
        self._plan(run)

    def due(self, run: CohortRun) -> datetime | None:
        """When the next digest should go (None: nothing waits, or nobody to tell)."""
        if not self._collects(run):
            return None
        with self.db.connect() as conn:
            oldest = repo.oldest_question(conn, run.id)
            last = repo.last_digest(conn, run.id)
        if oldest is None:
            return None
        every = timedelta(minutes=run.playbook.question_digest_minutes)
        at = oldest + every if last is None else max(oldest + every, last + every)
        return self.outside_quiet(run, at)

    def _plan(self, run: CohortRun) -> None:
        at = self.due(run)
        if at is None:
            return
        planned = self._digests.get(run.id)
        if planned is not None and not planned[1].done():
            if planned[0] <= at:
                return
            planned[1].cancel()
        self._digests[run.id] = (at, asyncio.create_task(self._later(run, at), name=f"questions-{run.id}"))

    async def _later(self, run: CohortRun, at: datetime) -> None:
        while True:
            await asyncio.sleep(max((at - self.clock.now()).total_seconds(), 0))
            try:
                # Asked again now: an operator may have answered meanwhile, or a live edit
                # changed the minutes.
                due = self.due(run)
                if due is None:
                    break
                if due > self.clock.now() + timedelta(seconds=1):
                    at = due
                    self._digests[run.id] = (at, self._digests[run.id][1])
                    continue
                self.send(run)
            except Exception:
                log.exception("%s: could not compose the questions digest; trying again in a minute", run.id)
                at = self.clock.now() + timedelta(minutes=1)
                continue
            break
        self._digests.pop(run.id, None)
        self._plan(run)  # what was asked meanwhile

    def send(self, run: CohortRun) -> int:
        """Queue the digest, one private message per operator, and mark what it lists told, in
        one transaction; returns how many questions it lists. It goes when the oldest question
        has waited long enough, and lists every question waiting then: the operators are
        pinged once for a burst of questions, not once per question."""
        now = self.clock.now()
        with self.db.begin() as conn:
            waiting = repo.waiting_questions(conn, run.id, now)
            if not waiting or not self.operators:
                return 0
            text = self.compose(run, waiting, now)
            for op in sorted(self.operators):
                # Behind the group's own traffic (an item due at this minute goes first).
                repo.enqueue(conn, run.id, member_id=op, kind="digest", now=now, text=text, priority=1)
            repo.mark_digested(conn, [q.id for q in waiting], now)
        log.info("%s: %d unanswered question(s) sent to the operators", run.id, len(waiting))
        self.wake()
        return len(waiting)

    def compose(self, run: CohortRun, waiting: list[repo.WaitingQuestion], now: datetime) -> str:
        tr = self._tr
        minutes = int((now - waiting[0].asked_at).total_seconds() // 60)
        lines = [tr(DIGEST_TITLE).format(group=run.room, n=len(waiting), minutes=minutes)]
        today = run.cal.local(now).date()
        for q in waiting[:DIGEST_LINES]:
            local = run.cal.local(q.asked_at)
            when = f"{local:%H:%M}"
            if local.date() != today:
                when = tr(DATE).format(month=local.month, day=local.day) + " " + when
            line = tr(DIGEST_LINE).format(name=q.name, when=when, text=_short(q.text))
            lines.append(line + (tr(DIGEST_PRIVATE) if q.private else ""))
        if len(waiting) > DIGEST_LINES:
            lines.append(tr(DIGEST_MORE).format(n=len(waiting) - DIGEST_LINES))
        lines.append(tr(DIGEST_HINT))
        return "\n".join(lines)

    def _tr(self, message: str) -> str:
        return i18n.gettext_in(self.language, message)

    def cancel(self) -> None:
        for _, task in self._digests.values():
            task.cancel()

    async def stop(self) -> None:
        self.cancel()
        for _, task in self._digests.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._digests.clear()
