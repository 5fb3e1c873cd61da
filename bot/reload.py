"""Live edits: while `cohortbot run` runs, a saved config or playbook is read again (the
watcher, SIGHUP, `cohortbot reload`), checked whole, and swapped in in one step.

What changed is told to the operators (one private message) and the log, by item id: items
moved, added, removed, their text changed; tracks and keywords; config settings. The
item_run claims stay the record of what was sent: an item already claimed is never sent
again, whatever the edit did to it; a new (or moved) item whose time has passed follows the
missed-item rule (within the grace window it goes late, older ones are skipped and logged).

A file is read until two reads a moment apart agree, so an editor's half-written save
(truncate, then write; or write a temporary file, then rename) is never what is loaded; and
an edit that does not validate, or deletes a playbook, is not swapped in: the last good
version keeps running and the operators are told the file, the line and the fix, once per
distinct problem.
"""

from __future__ import annotations

import asyncio
import gettext
import logging
import os
import signal
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bot import config as configs
from bot import i18n
from bot.app import Bot
from bot.cohort import CohortRun
from bot.config import Loaded
from bot.i18n import N_, _
from bot.plan import PlannedItem, calendar
from bot.playbook import Playbook, ScheduleItem
from bot.yamlfile import InputError
from storage import repo

log = logging.getLogger(__name__)

# Config settings applied while the bot runs, and those read at start only.
LIVE = ("operators", "pacing", "quiet_hours", "grace_minutes", "alerts")
AT_START = ("database", "transport", "timezone", "bot_name", "reconcile_minutes")
PLAYBOOK_FIELDS_SHOWN = {
    "name": "name",
    "days": "days",
    "timezone": "timezone",
    "rewards": "rewards",
    "commands": "commands",
    "welcome": "welcome",
    "day_starts": "day_starts",
    "ack_every_minutes": "ack_every_minutes",
    "roll_call_mentions": "roll_call_mentions",
}


def pid_file(loaded: Loaded) -> Path:
    """Where `cohortbot run` writes its process id for `cohortbot reload`: next to the
    SQLite database (beside its .lock), else next to the config file."""
    prefix = "sqlite:///"
    url = loaded.database_url
    if url.startswith(prefix) and url != prefix + ":memory:":
        return Path(url[len(prefix) :] + ".pid")
    return loaded.path.resolve().with_name(loaded.path.name + ".pid")


def signal_running(loaded: Loaded) -> int:
    """`cohortbot reload`: SIGHUP to the bot running this config. Returns its pid; raises
    LookupError (with what to do) when none runs."""
    path = pid_file(loaded)
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        raise LookupError(
            _("no cohortbot is running with this config (no process id in {path})").format(path=path)
        ) from None
    try:  # a stale file may name a process that is not ours: SIGHUP would end it
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        cmdline = b"cohortbot"  # no /proc here: trust the file
    if b"cohortbot" not in cmdline and b"bot.cli" not in cmdline:
        raise LookupError(
            _("no cohortbot is running (process {pid} in {path} is something else)").format(
                pid=pid, path=path
            )
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        raise LookupError(
            _("no cohortbot is running (process {pid} in {path} has ended)").format(pid=pid, path=path)
        ) from None
    return pid


def _content(item: ScheduleItem) -> dict[str, Any]:
    """What an item says, without when it says it."""
    return item.model_dump(exclude={"day", "at", "id"})


@dataclass
class PlaybookChange:
    """One cohort's playbook edit, by item id."""

    cohort_id: str
    path: str
    moved: list[tuple[str, datetime]] = field(default_factory=list)  # id, new due (UTC)
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # what the item says
    tracks: list[tuple[str, str]] = field(default_factory=list)  # (added|removed|keywords|changed, id)
    other: list[str] = field(default_factory=list)  # other top-level settings
    # An item without an explicit id is named by its day and time: moved, it gets a new id.
    # new id -> old id, when nothing else about it changed.
    renamed: dict[str, str] = field(default_factory=dict)
    # What the edit means for items already sent or already past (filled before applying).
    not_resent: list[tuple[str, str]] = field(default_factory=list)  # id, "done" | "missed"
    late: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.moved or self.added or self.removed or self.changed or self.tracks or self.other)


def diff(old: CohortRun, new: CohortRun) -> PlaybookChange:
    change = PlaybookChange(old.id, new.playbook.path)
    before = {p.item_id: p for p in old.plan}
    after = {p.item_id: p for p in new.plan}
    gone = [i for i in before if i not in after]
    came = [i for i in after if i not in before]
    # An id derived from day and time changes when the item moves: the same item, moved.
    for new_id in list(came):
        a = after[new_id]
        match = next(
            (
                o
                for o in gone
                if not before[o].item.id
                and not a.item.id
                and before[o].item.kind == a.item.kind
                and _content(before[o].item) == _content(a.item)
            ),
            None,
        )
        if match is not None:
            gone.remove(match)
            came.remove(new_id)
            change.renamed[new_id] = match
            change.moved.append((new_id, a.due))
    change.added = came
    change.removed = gone
    for item_id, a in after.items():
        b = before.get(item_id)
        if b is None:
            continue
        if a.due != b.due:
            change.moved.append((item_id, a.due))
        if _content(a.item) != _content(b.item):
            change.changed.append(item_id)
    change.moved.sort(key=lambda m: m[1])
    old_tracks, new_tracks = old.playbook.tracks, new.playbook.tracks
    for tid in sorted(new_tracks.keys() - old_tracks.keys()):
        change.tracks.append(("added", tid))
    for tid in sorted(old_tracks.keys() - new_tracks.keys()):
        change.tracks.append(("removed", tid))
    for tid in sorted(new_tracks.keys() & old_tracks.keys()):
        a_track, b_track = new_tracks[tid], old_tracks[tid]
        if a_track.keywords != b_track.keywords:
            change.tracks.append(("keywords", tid))
        if a_track.model_dump(exclude={"keywords"}) != b_track.model_dump(exclude={"keywords"}):
            change.tracks.append(("changed", tid))
    for name in PLAYBOOK_FIELDS_SHOWN:
        if getattr(old.playbook, name) != getattr(new.playbook, name):
            change.other.append(name)
    return change


def _ids(ids: Iterable[str]) -> str:
    return ", ".join(ids)


# What an edit changed: for the operators (config's language) and the log (operator's).
MOVED_TO = N_("{item} to {when}")
WHEN = N_("day {day} {time}")
ADDED = N_("{n} added ({ids})")
REMOVED = N_("{n} removed ({ids})")
TEXT_CHANGED = N_("the text of {item} changed")
ITEM_CHANGED = N_("{item} changed")
TRACK_CHANGES = {
    "added": N_("track {track} added"),
    "removed": N_("track {track} removed"),
    "keywords": N_("the keywords of track {track} changed"),
    "changed": N_("track {track} changed"),
}
OTHER_CHANGED = N_("{names} changed")
PARTS_SEPARATOR = N_(", ")
EDIT_APPLIED = N_("🔄 [{cohort}] The playbook edit is live ({file}): {what}")
WAS_MISSED = N_("· {item} was missed and skipped before; it will not be sent")
WAS_SENT = N_("· {item} was already sent; it is not sent again after the edit. Resend it by hand if needed")
SENT_LATE = N_("· {item}: its time has passed; sending it now")
TOO_LATE = N_("· {item}: its time passed too long ago; not sent (skipped)")
SETTINGS_APPLIED = N_("🔄 The config edit is live: {names}")
NEEDS_RESTART = N_("ℹ️ These config edits take effect when the bot is restarted: {names}")
NOT_APPLIED = N_(
    "⚠️ The edit was not applied; the bot keeps running the last good version. Fix what is "
    "said below and save again:"
)


def describe(change: PlaybookChange, run: CohortRun, words: gettext.NullTranslations | None = None) -> str:
    """What changed, one line: "2 items moved (...), 1 added (...), the text of d2-tea
    changed"; in ``words``' language (default: the operator's)."""
    t = words or i18n.translation(i18n.current())
    parts: list[str] = []
    n = len(change.moved)
    if n:
        where = t.gettext(PARTS_SEPARATOR).join(
            t.gettext(MOVED_TO).format(item=i, when=_when(run, due, t)) for i, due in change.moved
        )
        parts.append(
            t.ngettext("{n} item moved ({where})", "{n} items moved ({where})", n).format(n=n, where=where)
        )
    if change.added:
        parts.append(t.gettext(ADDED).format(n=len(change.added), ids=_ids(change.added)))
    if change.removed:
        parts.append(t.gettext(REMOVED).format(n=len(change.removed), ids=_ids(change.removed)))
    for item_id in change.changed:
        kind = next(p.item.kind for p in run.plan if p.item_id == item_id)
        said = TEXT_CHANGED if kind == "post" else ITEM_CHANGED
        parts.append(t.gettext(said).format(item=item_id))
    parts += [t.gettext(TRACK_CHANGES[what]).format(track=tid) for what, tid in change.tracks]
    if change.other:
        parts.append(t.gettext(OTHER_CHANGED).format(names=_ids(change.other)))
    return t.gettext(PARTS_SEPARATOR).join(parts)


def _when(run: CohortRun, due: datetime, words: gettext.NullTranslations) -> str:
    return words.gettext(WHEN).format(day=run.cal.date_day(due), time=f"{run.cal.local(due):%H:%M}")


def _tell_change(change: PlaybookChange, run: CohortRun, language: str) -> str:
    """The operators' message, in the config's language (ids as written in the playbook)."""
    t = i18n.translation(i18n.normalize(language) or "zh")
    what = describe(change, run, t)
    lines = [t.gettext(EDIT_APPLIED).format(cohort=change.cohort_id, file=Path(change.path).name, what=what)]
    for item_id, status in change.not_resent:
        said = WAS_MISSED if status == "missed" else WAS_SENT
        lines.append(t.gettext(said).format(item=item_id))
    lines += [t.gettext(SENT_LATE).format(item=i) for i in change.late]
    lines += [t.gettext(TOO_LATE).format(item=i) for i in change.skipped]
    return "\n".join(lines)


@dataclass
class Reloaded:
    """What one reload did (for tests and the log)."""

    changes: list[PlaybookChange] = field(default_factory=list)
    settings: list[str] = field(default_factory=list)  # config settings applied
    restart: list[str] = field(default_factory=list)  # config changes that wait for a restart


class Reloader:
    """Reads the config (and its playbooks) again and swaps a valid edit in."""

    def __init__(
        self, bot: Bot, loaded: Loaded, settle: float = 0.3, env: dict[str, str] | None = None
    ) -> None:
        self.bot = bot
        self.started = loaded  # as the bot started: what needs a restart is compared to it
        self.current = loaded  # the last good version
        self.settle = settle
        self.env = env
        self._lock = asyncio.Lock()
        self._told: set[str] = set()  # problems told since the last good version
        self._restart_told: list[str] = []
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- what is watched ----------------------------------------------------------------

    def files(self, loaded: Loaded | None = None) -> set[Path]:
        loaded = loaded or self.current
        base = loaded.path.resolve().parent
        return {loaded.path.resolve()} | {(base / c.playbook).resolve() for c in loaded.config.cohorts}

    @staticmethod
    def _snapshot(paths: Iterable[Path]) -> dict[Path, bytes | None]:
        out: dict[Path, bytes | None] = {}
        for p in paths:
            try:
                out[p] = p.read_bytes()
            except OSError:
                out[p] = None
        return out

    async def _read(self) -> Loaded | InputError | None:
        """The config as saved: read until two reads ``settle`` apart agree (and agree with
        what was loaded), so a save in two steps is never caught half-way. None if the
        files would not hold still."""
        paths = self.files()
        for _attempt in range(10):
            first = self._snapshot(paths)
            await asyncio.sleep(self.settle)
            second = self._snapshot(paths)
            if first != second:
                continue
            result: Loaded | InputError
            try:
                result = configs.load(self.current.path, env=self.env)
            except InputError as exc:
                result = exc
            now_paths = self.files(result) if isinstance(result, Loaded) else paths
            if now_paths == paths and self._snapshot(paths) == second:
                return result
            paths = now_paths
        log.warning("%s: the files kept changing; looking again at the next save", self.current.path)
        return None

    # --- entry points -------------------------------------------------------------------

    def request(self) -> None:
        """SIGHUP (and `cohortbot reload`): reload soon, in the background."""
        log.info("reload asked for: reading %s again", self.current.path)
        task = asyncio.create_task(self.reload(), name="reload")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> Reloaded | None:
        """Read the files again; a valid edit is swapped in and told, an invalid one told.
        Returns what was applied (None: nothing)."""
        async with self._lock:
            try:
                result = await self._read()
                if result is None:
                    return None
                if isinstance(result, InputError):
                    self._invalid(result)
                    return None
                return await self._apply(result)
            except Exception:
                log.exception("reloading %s failed; the last good version keeps running", self.current.path)
                return None

    async def watch(self) -> None:
        """Reload whenever the config or one of its playbooks is saved (watchfiles; the
        folders are watched, so a save by rename is seen too)."""
        import watchfiles

        while True:
            files = self.files()
            names = frozenset(str(f) for f in files)

            def ours(_change: watchfiles.Change, path: str, names: frozenset[str] = names) -> bool:
                return path in names

            folders = sorted({str(f.parent) for f in files if f.parent.is_dir()})
            try:
                async for _ in watchfiles.awatch(
                    *folders,
                    watch_filter=ours,
                    recursive=False,
                    step=100,
                ):
                    await self.reload()
                    if self.files() != files:
                        break  # a playbook path changed: watch the new one
            except (FileNotFoundError, RuntimeError) as exc:
                log.warning("watching %s failed (%s); trying again in 5 s", _ids(folders), exc)
                await asyncio.sleep(5)

    # --- invalid ------------------------------------------------------------------------

    def _invalid(self, exc: InputError) -> None:
        problems = [str(p) for p in exc.problems]
        new = [p for p in problems if p not in self._told]
        if not new:
            log.info("the edit is still not valid (already told); the last good version keeps running")
            return
        for p in new:
            log.error("the edit was not applied, the last good version keeps running: %s", p)
        self._told.update(new)
        self.bot.alerting.edit_invalid(new)  # and outside WeChat, once per incident
        self._tell(self._say(NOT_APPLIED) + "\n" + "\n".join(f"· {p}" for p in new))

    def _language(self) -> str:
        return self.bot.engine.settings.language

    def _say(self, message: str) -> str:
        return i18n.gettext_in(self._language(), message)

    def _tell(self, text: str, cohort_id: str | None = None) -> None:
        operators = sorted(self.bot.engine.settings.operators)
        runs = list(self.bot.engine.runs.values())
        if not operators or not runs:
            return
        cohort_id = cohort_id or runs[0].id
        now = self.bot.clock.now()
        with self.bot.db.begin() as conn:
            for op in operators:
                repo.enqueue(conn, cohort_id, member_id=op, kind="alert", now=now, text=text)
        self.bot.outbox.wake()

    # --- valid --------------------------------------------------------------------------

    async def _apply(self, new: Loaded) -> Reloaded:
        engine, scheduler = self.bot.engine, self.bot.scheduler
        self.bot.alerting.edit_applied()
        done = Reloaded()
        old_cfg, new_cfg = self.current.config, new.config
        done.settings = [k for k in LIVE if getattr(old_cfg, k) != getattr(new_cfg, k)]
        restart = self._needs_restart(new)
        settings = replace(new.settings(), bot_name=engine.settings.bot_name)
        grace = settings.grace

        # Worked out and swapped in in one step (no await), between two items firing.
        async with engine.items_lock:
            now = self.bot.clock.now()
            pending: list[tuple[CohortRun, CohortRun, PlaybookChange]] = []
            by_id = {c.id: c for c in new_cfg.cohorts}
            for run in list(engine.runs.values()):
                if run.id not in by_id:
                    continue  # removed from the config: runs on until a restart (told below)
                pb: Playbook = new.playbooks[run.id]
                cal = calendar(pb, run.cal.start, self.started.config.timezone)
                fresh = CohortRun.create(run.id, pb, cal, run.room)
                change = diff(run, fresh)
                if not change:
                    continue
                with self.bot.db.connect() as conn:
                    claimed = repo.claimed_items(conn, run.id)
                moved = {i for i, _ in change.moved}
                for p in fresh.plan:
                    old_id = change.renamed.get(p.item_id, p.item_id)
                    if old_id in claimed and (p.item_id in moved or p.item_id in change.changed):
                        change.not_resent.append((p.item_id, claimed[old_id]))
                    elif old_id not in claimed and p.due <= now and p.item_id in moved | set(change.added):
                        (change.late if now - p.due <= grace else change.skipped).append(p.item_id)
                pending.append((run, fresh, change))

            if done.settings:
                engine.apply_settings(settings)
                self.bot.settings = settings
            if "alerts" in done.settings:
                self.bot.alerting.configure(new.alert_settings())
            late: list[tuple[CohortRun, PlannedItem]] = []
            for run, fresh, change in pending:
                with self.bot.db.begin() as conn:
                    claimed = repo.claimed_items(conn, run.id)
                    for new_id, old_id in change.renamed.items():
                        # The same item moved: sent (or skipped) already under its old id.
                        if old_id in claimed:
                            due = next(p.due for p in fresh.plan if p.item_id == new_id)
                            repo.claim_item(conn, run.id, new_id, due, now, status=claimed[old_id])
                run.adopt(fresh)
                late += [(run, p) for p in scheduler.reschedule(run)]
            self.current = new
            self._told.clear()

        for run, _old, change in pending:
            log.info(_("%s: the playbook %s was reloaded: %s"), run.id, change.path, describe(change, run))
            for item_id, status in change.not_resent:
                log.info(
                    "%s: %s was %s before the edit; not sent again",
                    run.id,
                    item_id,
                    "sent" if status == "done" else "skipped",
                )
        # What is late goes out first,
        for run, p in sorted(late, key=lambda rp: rp[1].due):
            log.info(
                "%s: %s was due at %s, before the edit took effect; sending it now",
                run.id,
                p.item_id,
                run.cal.local(p.due).strftime("%H:%M"),
            )
            await engine.fire(run, p)
        # Then told (the operators' message waits behind the group's).
        for run, _old, change in pending:
            self._tell(_tell_change(change, run, self._language()), run.id)
            done.changes.append(change)
        if done.settings:
            log.info("config %s reloaded: %s applied", new.path, _ids(done.settings))
            self._tell(self._say(SETTINGS_APPLIED).format(names=_ids(done.settings)))
        if restart and restart != self._restart_told:
            log.warning("config %s: %s changed; takes effect at the next restart", new.path, _ids(restart))
            self._tell(self._say(NEEDS_RESTART).format(names=_ids(restart)))
        self._restart_told = restart
        done.restart = restart
        if not (pending or done.settings or restart):
            log.info("%s saved; nothing that matters changed", new.path)
        return done

    def _needs_restart(self, new: Loaded) -> list[str]:
        old, cfg = self.started.config, new.config
        out = [k for k in AT_START if getattr(old, k) != getattr(cfg, k)]
        before = {c.id: c for c in old.cohorts}
        after = {c.id: c for c in cfg.cohorts}
        out += [f"cohort {i} added" for i in after if i not in before]
        out += [f"cohort {i} removed" for i in before if i not in after]
        for i in before.keys() & after.keys():
            out += [
                f"cohort {i} {k}" for k in ("room", "start") if getattr(before[i], k) != getattr(after[i], k)
            ]
        return out
