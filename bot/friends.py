"""Members the account cannot message privately: a personal WeChat account reaches only its
friends, and a trial-course group always has some members who never added the assistant.

When WeChat refuses a private message, the member is recorded as not reachable and later
private messages to them are not attempted: an earned reward is held and a short group post
asks them to add the assistant as a friend (never the reward's link or code in the group); a
nudge is dropped (the group reminder covers them); the answer to a command goes to the group
with an @, a "did not count" notice into the next roll call's footer; the operators get one
list a day of members to add. Once a private message from them arrives (they added the assistant), they
are reachable again and what was held goes out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection
from sqlalchemy import Engine as Database

from bot import i18n, templates
from bot.clock import Clock
from bot.cohort import CohortRun
from bot.i18n import N_
from storage import repo
from storage.repo import OutRow

if TYPE_CHECKING:
    from bot.survey import Surveys

log = logging.getLogger(__name__)

ADD_FRIEND = N_(  # for members, in the playbook's language
    "🎁 {name}, a reward is waiting to be sent to you privately, but you are not the assistant's "
    "friend yet: add the assistant as a friend, then send me any message and I will send it"
)
TO_ADD = N_(  # for the operators, in the config's language
    "📇 [{cohort}] These members are not the assistant's friends yet, so private messages "
    "(reminders, rewards) cannot reach them; please add them as friends ({n} in all):\n{names}"
)
LIST_SEPARATOR = N_(", ")
LIST_AT = time(9, 0)  # the operators' daily list of members to add goes out at this local time


def ask_to_add(
    conn: Connection, run: CohortRun, member_id: str, shown: str, now: datetime, not_before: datetime
) -> None:
    """The group post, with an @, asking a member to add the assistant (never the reward)."""
    repo.enqueue(
        conn,
        run.id,
        room_id=run.room_id,
        kind="friend",
        mentions=[member_id],
        now=now,
        not_before=not_before,
        text=templates.render(
            run.playbook.messages.add_friend or run.playbook.tr(ADD_FRIEND), {"name": shown}
        ),
    )


class Friends:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        operators: frozenset[str],
        runs: dict[str, CohortRun],
        outside_quiet: Callable[[CohortRun, datetime], datetime],
        wake: Callable[[], None],
        language: str = "zh",
    ) -> None:
        self.language = language  # the operators'
        self.db = db
        self.clock = clock
        self.operators = operators
        self.runs = runs  # by room id, shared with the engine
        self.outside_quiet = outside_quiet
        self.wake = wake
        self._lists: dict[str, tuple[list[int], list[str]]] = {}  # cohort -> (alert rows, names)
        self.surveys: Surveys | None = None  # set by the engine: a refused question gets the link

    def _run(self, cohort_id: str) -> CohortRun | None:
        return next((r for r in self.runs.values() if r.id == cohort_id), None)

    def _mine(self) -> set[str]:
        # Friendship is one account's: other processes on the database (other accounts) keep
        # their own members' state.
        return {r.id for r in self.runs.values()}

    def refused(self, row: OutRow) -> None:
        """WeChat refused a private message: not a friend."""
        assert row.member_id is not None
        run = self._run(row.cohort_id)
        now = self.clock.now()
        with self.db.begin() as conn:
            repo.set_reachable(conn, row.member_id, False, self._mine())
            if run is None:
                return
            m = repo.member(conn, run.id, row.member_id)
            if m is None or not m.present:
                return  # refused for someone who has left: nothing to say in the group
            if row.kind == "reward":
                self.hold_reward(conn, run, row.member_id, m.shown, now)
            elif row.kind == "reply":
                # The answer to a command asked in the group goes back there, with an @.
                repo.enqueue(
                    conn,
                    run.id,
                    room_id=run.room_id,
                    kind="reply",
                    mentions=[row.member_id],
                    now=now,
                    text=row.text,
                )
            elif row.kind == "notice":
                repo.notices_to_footer(conn, run.id, row.member_id)  # told in the next roll call
            elif row.kind == "survey" and self.surveys is not None:
                self.surveys.refused(conn, run, row.member_id, now)  # the link, in the group
            self._list(conn, run, m.shown, now)
        self.wake()

    def notified(self, member_id: str) -> None:
        """WeChat's "not a friend" notice arrived after a private message it had accepted: the
        message just sent to them did not arrive. Treated as a refusal of it."""
        now = self.clock.now()
        with self.db.begin() as conn:
            row = repo.last_private_sent(conn, member_id, now - timedelta(minutes=10), self._mine())
            if row is None:
                repo.set_reachable(conn, member_id, False, self._mine())
                return
            repo.mark(conn, [row.id], "unreachable", error="WeChat: not the account's friend")
        self.refused(row)

    def hold_reward(
        self, conn: Connection, run: CohortRun, member_id: str, shown: str, now: datetime
    ) -> None:
        """The reward waits (its row stays `unreachable`); the group is asked, with an @, that
        the member add the assistant."""
        ask_to_add(conn, run, member_id, shown, now, self.outside_quiet(run, now))

    def _list(self, conn: Connection, run: CohortRun, shown: str, now: datetime) -> None:
        if not self.operators:
            return
        ids, names = self._lists.get(run.id, ([], []))
        if shown in names:
            return
        if ids and repo.still_pending(conn, ids) != len(ids):
            ids, names = [], []  # the last list went out: start the next day's
        names = [*names, shown]
        text = (
            i18n.gettext_in(self.language, TO_ADD)
            .replace("{cohort}", run.room)
            .replace("{n}", str(len(names)))
            .replace("{names}", i18n.gettext_in(self.language, LIST_SEPARATOR).join(names))
        )
        if ids and repo.update_pending_text(conn, ids, text) == len(ids):
            self._lists[run.id] = (ids, names)
            return
        local = run.cal.local(now)
        at = local.replace(hour=LIST_AT.hour, minute=LIST_AT.minute, second=0, microsecond=0)
        if at <= local:
            at += timedelta(days=1)
        ids = [
            repo.enqueue(
                conn,
                run.id,
                member_id=op,
                kind="alert",
                now=now,
                text=text,
                not_before=at.astimezone(now.tzinfo),
            )
            for op in sorted(self.operators)
        ]
        self._lists[run.id] = (ids, names)

    def heard_from(self, conn: Connection, member_id: str, now: datetime) -> int:
        """A private message from the member arrived: they are a friend now. Returns how
        many held rewards were released."""
        if not repo.set_reachable(conn, member_id, True, self._mine()):
            return 0
        held = repo.held_rewards(conn, member_id, self._mine())
        if held:
            repo.release(conn, held, now)
            log.info("%s added the assistant; %d held reward message(s) go out", member_id, len(held))
        return len(held)
