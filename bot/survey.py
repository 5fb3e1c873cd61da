"""The playbook's questionnaire (`survey:`): questions asked privately, one at a time.

When. `start: on_join` (the default) asks each member as soon as the bot sees them in the
group (a join event, a re-read of the member list, or, when the bot starts, everyone already
there); `start: {day, at}` asks nobody before then, and from then on everyone who has not had
it, later joiners included. Never in quiet hours: a question that falls due then waits for
their end. Nobody new is asked, or reminded, after the cohort's last day.

Answers. While a member's question is open (its message has gone out), a private message from
them is its answer, unless it is a command or a check-in keyword (:func:`taken_as_command`),
which is answered as such. A choice is answered by its number or its text; anything else is
asked again once, politely, and a second such answer is kept as written (nothing is lost) and
the questionnaire goes on. One reminder per member, when a question has waited
`remind_after_hours`. Members the account cannot message privately get the `link` in the
group instead: one post @-mentions everyone who needs it, gathered for LINK_GATHER. A member
who left is asked nothing more.

The database is the record: a member's progress is claimed and the question queued in one
transaction; an answer, the progress and the next question commit together. So a restart
asks nothing twice and loses no answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import checkins, templates
from bot import export as exports
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.export import Cell, Column, Export, Sheet
from bot.i18n import N_, _
from bot.playbook import Playbook, Survey
from bot.transports.base import Member
from storage import repo

log = logging.getLogger(__name__)

# For members, in the playbook's language (Playbook.tr).
INTRO = N_("👋 {name}, a few quick questions ({n} in all) so that we know you better; just reply here.")
NUMBERED = N_("({i}/{n}) ")
PICK = N_("Reply with a number from 1 to {n}.")
AGAIN = N_("Sorry, I did not catch that 🙏 Please reply with a number from 1 to {n}:")
REMINDER = N_("⏰ {name}, a gentle reminder: one question is still waiting for you.")
THANKS = N_("🙏 Thank you, {name}! That was the last question.")
LINK = N_(
    "📝 A short questionnaire for {playbook}: I cannot message you privately, please fill it in here: {link}"
)

LINK_GATHER = timedelta(minutes=30)  # members who need the link within this share one post
MAX_SLEEP = timedelta(hours=1)  # a live edit (a survey added, a new start) is seen within this
MIN_SLEEP = 10.0  # seconds: never a busy loop, whatever the database says
# First questions and reminders are near-identical private messages to many members: at most
# this many an hour (domain.md: an account was logged out after about 100 of 700).
BULK_PER_HOUR = 60
BULK_PAUSE = timedelta(minutes=5)
# After the command or keyword a message starts with, these make it a command ("打卡 第一课",
# "心得：…"); anything else right after it makes it an answer ("完成工作报表").
_AFTER_WORD = " \t\n\u2005\u3000:：,，.。!！?？、"
_NUMBERED_TEXT = re.compile(r"(\d{1,3})\s*[.．、:：)）]?\s*(.*)", re.DOTALL)


def taken_as_command(run: CohortRun, text: str) -> str | None:
    """The command word or check-in keyword a private message is read as, or None: the
    message is an answer. A command is its word alone, or any message starting with a word
    that takes a day ("补卡 2", when the playbook has make-ups or leave), as bot/router.py reads
    them; a check-in keyword counts alone or followed by a space or punctuation."""
    text = checkins.normalize(text).strip()
    if text in run.command_words:
        return text
    if run.command_with_args(text) is not None:
        return next(w for w in run.command_words if text.startswith(w))
    match = checkins.match_track(run, text)
    if match is not None and (text == match[1] or text[len(match[1])] in _AFTER_WORD):
        return match[1]
    return None


def reads_as_command(pb: Playbook, text: str) -> str | None:
    """The same, for a playbook not yet running (`validate`)."""
    from bot.plan import Calendar

    return taken_as_command(
        CohortRun.create("validate", pb, Calendar(date(2000, 1, 1), pb.days, ZoneInfo("UTC")), ""), text
    )


def choice_of(text: str, choices: Sequence[str]) -> int | None:
    """The choice (1: the first) an answer names: by number ("2", "2.", "２"), by its text, or
    both ("2 学过一点"); None if it names none of them."""
    said = checkins.normalize(text).strip().rstrip(".。、)）").strip()
    names = [checkins.normalize(c).strip().casefold() for c in choices]
    if said.casefold() in names:
        return names.index(said.casefold()) + 1
    m = _NUMBERED_TEXT.fullmatch(said)
    if m is None:
        return None
    n = int(m[1])
    if 1 <= n <= len(choices) and (not m[2] or m[2].strip().casefold() == names[n - 1]):
        return n
    return None


def question_text(run: CohortRun, survey: Survey, index: int) -> str:
    """A question as sent: "(1/2) …", then its numbered choices and how to answer."""
    tr = run.playbook.tr
    q = survey.questions[index]
    lines = [tr(NUMBERED).format(i=index + 1, n=len(survey.questions)) + q.text]
    if q.choices:
        lines += [f"{i}. {c}" for i, c in enumerate(q.choices, 1)]
        lines.append(tr(PICK).format(n=len(q.choices)))
    return "\n".join(lines)


class Surveys:
    """Asks, reminds and takes answers, for every cohort whose playbook has a `survey:`."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        outside_quiet: Callable[[CohortRun, datetime], datetime],
        wake: Callable[[], None],
        max_mentions: Callable[[], int],
    ) -> None:
        self.db = db
        self.clock = clock
        self.outside_quiet = outside_quiet
        self.wake = wake  # the outbox: something was queued
        self.max_mentions = max_mentions
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pokes: dict[str, asyncio.Event] = {}

    # --- the timer: one task per cohort, asleep until something falls due ------------------

    def start(self, run: CohortRun) -> None:
        if run.id not in self._tasks:
            self._pokes[run.id] = asyncio.Event()
            self._tasks[run.id] = asyncio.create_task(self._loop(run), name=f"survey-{run.id}")

    def poke(self, run: CohortRun) -> None:
        """Something changed (a join, an answer): look again now."""
        if (event := self._pokes.get(run.id)) is not None:
            event.set()

    def cancel(self) -> None:
        for task in self._tasks.values():
            task.cancel()

    async def stop(self) -> None:
        self.cancel()
        for task in self._tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()

    async def _loop(self, run: CohortRun) -> None:
        poke = self._pokes[run.id]
        while True:
            poke.clear()
            now = self.clock.now()
            try:
                with self.db.begin() as conn:
                    queued = self.due(conn, run, now)
                if queued:
                    self.wake()
                with self.db.connect() as conn:
                    at = self.next_due(conn, run, now)
            except Exception:
                log.exception("%s: the questionnaire could not go on; trying again in a minute", run.id)
                at = now + timedelta(minutes=1)
            wait = min(max((at - self.clock.now()).total_seconds(), MIN_SLEEP), MAX_SLEEP.total_seconds())
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await poke.wait()

    def quiet(self, run: CohortRun, now: datetime) -> bool:
        return self.outside_quiet(run, now) > now

    def started(self, run: CohortRun, now: datetime) -> bool:
        survey = run.playbook.survey
        if survey is None or now >= run.cal.end_utc():
            return False
        return survey.start is None or now >= run.cal.at(survey.start.day, survey.start.at)

    def due(self, conn: Connection, run: CohortRun, now: datetime) -> int:
        """Ask and remind whoever is due now; returns how many messages were queued."""
        survey = run.playbook.survey
        if survey is None or self.quiet(run, now):
            return 0
        if self.started(run, now) and (n := repo.survey_claim_everyone(conn, run.id, survey.id, now)):
            log.info("%s: questionnaire %s: %d member(s) to ask", run.id, survey.id, n)
        budget = self._budget(conn, run, now)
        queued = self._ask(conn, run, survey, now, budget=budget)
        if now < run.cal.end_utc():
            queued += self._remind(conn, run, survey, now, budget=budget - queued)
        return queued

    @staticmethod
    def _budget(conn: Connection, run: CohortRun, now: datetime) -> int:
        """How many first questions and reminders may still go this hour: hundreds of
        near-identical private messages in a row are what WeChat logs an account out for."""
        return max(BULK_PER_HOUR - repo.bulk_sent_since(conn, run.id, "survey", now - timedelta(hours=1)), 0)

    def next_due(self, conn: Connection, run: CohortRun, now: datetime) -> datetime:
        survey = run.playbook.survey
        if survey is None:
            return now + MAX_SLEEP
        if self.quiet(run, now):
            return self.outside_quiet(run, now)
        found = [now + MAX_SLEEP]
        if survey.start is not None and not self.started(run, now):
            found.append(run.cal.at(survey.start.day, survey.start.at))
        oldest = repo.survey_first_unreminded(conn, run.id, survey.id) if now < run.cal.end_utc() else None
        if oldest is not None:
            found.append(oldest + timedelta(hours=survey.remind_after_hours))
        if repo.survey_to_ask(conn, run.id, survey.id, None):
            found.append(now + BULK_PAUSE)  # held back by the hour's budget: look again soon
        return min(found)

    # --- asking -----------------------------------------------------------------------------

    def _ask(
        self,
        conn: Connection,
        run: CohortRun,
        survey: Survey,
        now: datetime,
        member_id: str | None = None,
        priority: int = 2,
        budget: int | None = None,
    ) -> int:
        """The next question to everyone (or one member) whose question waits to be asked;
        the link instead to those the account cannot message. Claimed, then queued. First
        questions sent in bulk stop at ``budget``; the rest wait for the next hour's."""
        queued = 0
        for p in repo.survey_to_ask(conn, run.id, survey.id, member_id):
            m = p.member
            if budget is not None and queued >= budget:
                break
            if p.question >= len(survey.questions):
                repo.survey_finished(conn, run.id, m.member_id, survey.id, now)
                continue
            if not m.reachable:
                queued += self._link(conn, run, survey, m.member_id, now)
                continue
            if not repo.survey_ask(conn, run.id, m.member_id, survey.id, p.question, now):
                continue  # asked already
            text = question_text(run, survey, p.question)
            if p.question == 0:
                intro = survey.intro or run.playbook.tr(INTRO)
                values = {"name": m.shown, "playbook": run.playbook.name, "n": len(survey.questions)}
                text = f"{templates.render(intro, values)}\n\n{text}"
            # Bulk private messages wait behind the group's own traffic (as nudges do).
            row = self._tell(conn, run, m.member_id, text, now, priority)
            repo.survey_asked_in(conn, run.id, m.member_id, survey.id, row)
            queued += 1
        return queued

    def _remind(
        self, conn: Connection, run: CohortRun, survey: Survey, now: datetime, budget: int = 10**6
    ) -> int:
        before = now - timedelta(hours=survey.remind_after_hours)
        waiting = repo.survey_to_remind(conn, run.id, survey.id, before)[: max(budget, 0)]
        for p in waiting:
            head = templates.render(run.playbook.tr(REMINDER), {"name": p.member.shown})
            text = (
                f"{head}\n\n{question_text(run, survey, p.question)}"
                if p.question < len(survey.questions)
                else head
            )
            repo.survey_reminded(conn, run.id, p.member.member_id, survey.id, now)
            self._tell(conn, run, p.member.member_id, text, now, priority=2)
        return len(waiting)

    def _link(self, conn: Connection, run: CohortRun, survey: Survey, member_id: str, now: datetime) -> int:
        """The member gets the link in the group instead, in one post with everyone else who
        needs it meanwhile (never a group post per member); asked privately no more."""
        repo.survey_linked(conn, run.id, member_id, survey.id, now)
        if survey.link is None:
            return 0
        row = repo.pending_group_row(conn, run.id, "survey_link")
        room = row is not None and len(row.mentions) < self.max_mentions()
        if row is not None and room and repo.set_pending_mentions(conn, row.id, [*row.mentions, member_id]):
            return 0
        text = templates.render(run.playbook.tr(LINK), {"playbook": run.playbook.name, "link": survey.link})
        repo.enqueue(
            conn,
            run.id,
            room_id=run.room_id,
            kind="survey_link",
            now=now,
            text=text,
            mentions=[member_id],
            not_before=self.outside_quiet(run, now + LINK_GATHER),
        )
        return 1

    @staticmethod
    def _tell(
        conn: Connection, run: CohortRun, member_id: str, text: str, now: datetime, priority: int
    ) -> int:
        """A private message about the questionnaire; its outbox row."""
        return repo.enqueue(
            conn, run.id, member_id=member_id, kind="survey", now=now, text=text, priority=priority
        )

    def refused(self, conn: Connection, run: CohortRun, member_id: str, now: datetime) -> None:
        """WeChat refused a question (not the account's friend): the link, in the group."""
        survey = run.playbook.survey
        if survey is not None and repo.survey_still_asking(conn, run.id, member_id, survey.id):
            self._link(conn, run, survey, member_id, now)

    # --- answers ----------------------------------------------------------------------------

    def answer(self, runs: Sequence[CohortRun], member: Member, text: str, now: datetime) -> bool:
        """A private message: True if it was the answer to the member's open question (kept,
        and the next question queued); False if it is a command or keyword, or nothing is asked."""
        if not runs or taken_as_command(runs[0], text) is not None:
            return False
        for run in runs:
            survey = run.playbook.survey
            if survey is None:
                continue
            with self.db.begin() as conn:
                p = repo.survey_open(conn, run.id, member.id, survey.id, now)
                if p is None:
                    continue
                self._take(conn, run, survey, p, text, now)
            self.poke(run)  # a next question held for the night is planned for the morning
            return True
        return False

    def _take(
        self, conn: Connection, run: CohortRun, survey: Survey, p: repo.Progress, text: str, now: datetime
    ) -> None:
        m, tr = p.member, run.playbook.tr
        if p.question >= len(survey.questions):  # an edit took questions away
            repo.survey_finished(conn, run.id, m.member_id, survey.id, now)
            return
        choices = survey.questions[p.question].choices
        choice = choice_of(text, choices) if choices else None
        if choices and choice is None and not p.again:
            repo.survey_again(conn, run.id, m.member_id, survey.id, now)
            again = tr(AGAIN).format(n=len(choices))
            body = question_text(run, survey, p.question)
            self._tell(conn, run, m.member_id, f"{again}\n{body}", now, priority=1)
            return
        last = p.question + 1 >= len(survey.questions)
        kept = repo.survey_answered(conn, run.id, m.member_id, survey.id, p.question, text, choice, now, last)
        if not kept:
            return
        if last:
            thanks = survey.thanks or tr(THANKS)
            text = templates.render(thanks, {"name": m.shown, "playbook": run.playbook.name})
            self._tell(conn, run, m.member_id, text, now, priority=1)
        elif not self.quiet(run, now):
            # The next question answers what they just wrote: ahead of bulk messages.
            self._ask(conn, run, survey, now, m.member_id, priority=1)


# --- the figures: for the report, `cohortbot survey` and its files ----------------------------


@dataclass(frozen=True)
class QuestionFigures:
    number: int  # 1: the first
    text: str  # as the playbook has it ("" without the playbook)
    choices: tuple[str, ...]  # () for a free-text question (or without the playbook)
    answers: tuple[repo.SurveyRow, ...]

    @property
    def answered(self) -> int:
        return len(self.answers)

    def counts(self) -> list[int]:
        """How many chose each choice, in order."""
        return [sum(1 for a in self.answers if a.choice == i) for i in range(1, len(self.choices) + 1)]

    def label(self, choice: int) -> str:
        """ "2. 学过一点"; "2" when the playbook is not at hand."""
        known = self.choices[choice - 1] if 0 < choice <= len(self.choices) else ""
        return f"{choice}. {known}" if known else str(choice)

    def share(self, count: int) -> int:
        """``count`` as a whole percentage of the answers."""
        return round(100 * count / self.answered) if self.answered else 0

    @property
    def others(self) -> tuple[repo.SurveyRow, ...]:
        """Answers kept as written: free text, or none of the choices."""
        return tuple(a for a in self.answers if a.choice is None or a.choice > len(self.choices))


@dataclass(frozen=True)
class SurveyFigures:
    survey_id: str
    invited: int  # members who had the questionnaire
    asked: int  # ...asked privately
    linked: int  # ...given the link in the group instead
    answered: int  # members who answered at least one question
    done: int  # members who answered every question
    questions: tuple[QuestionFigures, ...]


def survey_figures(conn: Connection, cohort_id: str, playbook: Playbook | None) -> SurveyFigures | None:
    """The questionnaire's figures for one cohort: who was asked, answered and finished, and
    each question's tallies and answers. The playbook's survey (by its id) when there is one,
    else the one the database last started; None if there is neither."""
    survey = playbook.survey if playbook is not None else None
    ids = repo.survey_ids(conn, cohort_id)
    survey_id = survey.id if survey is not None else (ids[0] if ids else None)
    if survey_id is None:
        return None
    counts = repo.survey_counts(conn, cohort_id, survey_id)
    answers = repo.survey_answers(conn, cohort_id, survey_id)
    asked = list(survey.questions) if survey is not None else []
    total = max([len(asked), *(a.question + 1 for a in answers)])
    questions = []
    for i in range(total):
        theirs = tuple(a for a in answers if a.question == i)
        if i < len(asked):
            text, choices = asked[i].text, tuple(asked[i].choices or ())
        else:  # without the playbook: the choices by the numbers members chose
            text, choices = "", ("",) * max((a.choice or 0 for a in theirs), default=0)
        questions.append(QuestionFigures(i + 1, text, choices, theirs))
    return SurveyFigures(survey_id, questions=tuple(questions), **counts)


TALLIES = (
    Column(N_("question")),
    Column(N_("question text")),
    Column(N_("choice")),
    Column(N_("count")),
    Column(N_("share (%)")),
)
ANSWERS = (
    Column(N_("question")),
    Column(N_("member id")),
    Column(N_("name")),
    Column(N_("answered at"), time=True),
    Column(N_("choice")),
    Column(N_("answer")),
)
FREE_TEXT = N_("(written answers)")
OTHER = N_("(none of the choices)")


def export_of(figures: SurveyFigures, cohort_id: str, zone: str) -> Export:
    """The figures as sheets for bot/export.py's writers: the tallies, and every answer whole
    (times in the cohort's zone, labels in the operator's language)."""
    try:
        tz = ZoneInfo(zone)
    except (ValueError, KeyError):
        tz = ZoneInfo("UTC")
    tallies: list[tuple[Cell, ...]] = []
    rows: list[tuple[Cell, ...]] = []
    for q in figures.questions:
        for i, n in enumerate(q.counts(), 1):
            tallies.append((q.number, q.text, q.label(i), n, q.share(n)))
        if q.others or not q.choices:
            label = _(OTHER) if q.choices else _(FREE_TEXT)
            tallies.append((q.number, q.text, label, len(q.others), q.share(len(q.others))))
        for a in q.answers:
            local = a.at.astimezone(tz).replace(tzinfo=None, microsecond=0)
            rows.append((q.number, a.member_id, a.name, local, q.label(a.choice) if a.choice else "", a.text))
    key = f"survey-{figures.survey_id}"
    return Export(
        cohort_id,
        tz.key,
        (
            Sheet(key, N_("survey"), TALLIES, exports.clean(tallies)),
            Sheet(f"{key}-answers", N_("answers"), ANSWERS, exports.clean(rows)),
        ),
    )


@dataclass(frozen=True)
class Found:
    """A cohort's questionnaire as read for `cohortbot survey`."""

    cohort_id: str
    zone: str
    figures: SurveyFigures


def read(engine: Database, url: str, cohort: str | None, playbooks: Mapping[str, Playbook]) -> Found:
    """The figures of one cohort, read in one transaction (storage/readonly.py's engine).
    ``playbooks`` (by cohort id, from --config) give the questions and choices their words;
    without one they are numbers. Raises ExportError when there is nothing to show."""
    from sqlalchemy import select

    from storage.readonly import location

    with engine.connect() as conn:
        cohort_id = exports.pick_cohort(conn, cohort, location(url))
        zone = conn.execute(select(repo.cohort_t.c.timezone).where(repo.cohort_t.c.id == cohort_id)).scalar()
        figures = survey_figures(conn, cohort_id, playbooks.get(cohort_id))
    if figures is None:
        raise exports.ExportError(
            _(
                "cohort {cohort} has no questionnaire: its playbook has no `survey:` and {where} holds "
                "no answers"
            ).format(cohort=cohort_id, where=location(url))
        )
    return Found(cohort_id, str(zone or "UTC"), figures)
