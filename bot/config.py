"""The deployment config (../shared/config-format.md): YAML file -> validated settings, with
``${NAME}`` taken from the environment, and every cohort's playbook loaded and checked, so
the bot never starts half-configured."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from dataclasses import dataclass, field, replace
from datetime import time, timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from bot import notify
from bot import playbook as playbooks
from bot.engine import Settings
from bot.i18n import N_, _
from bot.incidents import AlertSettings, label_for
from bot.outbox import Pacing
from bot.plan import StartDate
from bot.playbook import ID_PATTERN, Playbook, TimeZoneName
from bot.rollcall import QuietHours
from bot.yamlfile import EmptyList, InputError, Loc, Problem, Source, read_yaml, resolved, validate
from storage.db import BadDatabaseURL, check_url, safe_url, url_password

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _shown(value: Any) -> str:
    if isinstance(value, float) and math.isnan(value):
        return ".nan (not a number)"
    if isinstance(value, float) and math.isinf(value):
        return f"{'-' if value < 0 else ''}.inf (infinity)"
    return repr(value)


def _in_range(
    lo: float, hi: float, unit: str, example: float, *, above: bool = False, whole: bool = False
) -> BeforeValidator:
    """A number setting that must be finite and within [lo, hi] (or (lo, hi] with ``above``):
    `.inf`, `.nan`, `1e300` and negatives are refused where they are written, with the range,
    not found later as an overflow or a bot that waits forever."""

    def check(value: Any) -> Any:
        if above:
            hint = _("write a number more than {lo} and at most {hi} ({unit}), e.g. {example}")
        elif whole:
            hint = _("write a whole number from {lo} to {hi} ({unit}), e.g. {example}")
        else:
            hint = _("write a number from {lo} to {hi} ({unit}), e.g. {example}")
        hint = hint.format(lo=f"{lo:g}", hi=f"{hi:g}", unit=_(unit), example=f"{example:g}")
        number: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        elif isinstance(value, str):
            try:
                number = float(value.strip())
            except ValueError:
                number = None
        if number is None:
            raise ValueError(_("{value} is not a number; {hint}").format(value=_shown(value), hint=hint))
        if not math.isfinite(number) or number < lo or number > hi or (above and number == lo):
            raise ValueError(_("{value} is out of range; {hint}").format(value=_shown(value), hint=hint))
        if whole:
            if not number.is_integer():
                raise ValueError(
                    _("{value} is not a whole number; {hint}").format(value=_shown(value), hint=hint)
                )
            return int(number)
        return number

    return BeforeValidator(check)


Seconds = Annotated[float, _in_range(0, 3600, N_("seconds"), 120, above=True)]
PaceSeconds = Annotated[float, _in_range(0, 600, N_("seconds"), 3)]


_HOSTNAME = re.compile(
    r"^[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?$"
)


def _endpoint_hint() -> str:
    return _("write the gateway as host:port, e.g. 127.0.0.1:8788 (an IPv6 address in brackets: [::1]:8788)")


def check_endpoint(value: Any) -> Any:
    """host:port with a port 1..65535, IPv6 in brackets: a gateway address the bot could dial,
    so a missing port is found now, not after two minutes of "no logged-in account"."""
    if not isinstance(value, str):
        return value  # the type check says what is wrong
    text = value.strip()
    if "://" in text:
        raise ValueError(
            _("{value!r}: write it without http:// or grpc://; {hint}").format(
                value=value, hint=_endpoint_hint()
            )
        )
    if text.startswith("["):
        m = re.fullmatch(r"\[([^\]]*)\](?::(.*))?", text)
        host, port = (m[1], m[2]) if m else ("", None)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(
                _("{value!r}: only an IPv6 address goes in brackets [ ]; {hint}").format(
                    value=value, hint=_endpoint_hint()
                )
            ) from None
    else:
        if text.count(":") > 1:
            raise ValueError(
                _("{value!r}: an IPv6 address must be in brackets [ ]; {hint}").format(
                    value=value, hint=_endpoint_hint()
                )
            )
        host, _colon, port = text.partition(":")
        if not host or not _HOSTNAME.match(host):
            raise ValueError(
                _("{value!r}: {host!r} is not a host name or IP address; {hint}").format(
                    value=value, host=host, hint=_endpoint_hint()
                )
            )
    if not port:
        raise ValueError(_("{value!r} has no port; {hint}").format(value=value, hint=_endpoint_hint()))
    if not port.isascii() or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(
            _("{value!r}: port {port} is not a port number (1 to 65535); {hint}").format(
                value=value, port=port, hint=_endpoint_hint()
            )
        )
    return text


class TransportConfig(_Strict):
    kind: Literal["wechaty", "simulated"] = Field(description="wechaty | simulated")
    endpoint: Annotated[str | None, AfterValidator(check_endpoint)] = Field(
        None, description="the puppet-service gateway, host:port"
    )
    token: str | None = Field(None, repr=False, description="the gateway's token")
    connect_timeout_seconds: Seconds = Field(120, description="extension: give up starting after this")
    room_wait_seconds: Seconds = Field(60, description="extension: how long to wait for a room to appear")
    ping_seconds: Seconds = Field(30, description="extension: how often the connection is checked")


def _parse_quiet(value: Any) -> Any:
    """ "22:30-07:30" (across midnight is fine), or off: "off", false, null."""
    if (
        value is None
        or value is False
        or (isinstance(value, str) and value.strip().lower() in ("off", "none", ""))
    ):
        return None
    if isinstance(value, QuietHours):
        return value
    if isinstance(value, str) and (
        m := re.fullmatch(r"\s*(\d{1,2}):(\d{2})\s*[-–~至到]\s*(\d{1,2}):(\d{2})\s*", value)
    ):
        h1, m1, h2, m2 = (int(g) for g in m.groups())
        if h1 < 24 and h2 < 24 and m1 < 60 and m2 < 60 and (h1, m1) != (h2, m2):
            return QuietHours(time(h1, m1), time(h2, m2))
    raise ValueError(
        _(
            '{value!r} is not a span of the day; write it as "HH:MM-HH:MM", e.g. "22:30-07:30", or "off"'
        ).format(value=value)
    )


class PacingConfig(_Strict):
    same_chat_seconds: PaceSeconds = 1.5
    any_chat_seconds: PaceSeconds = 3
    per_minute: Annotated[int, _in_range(1, 1000, N_("sends a minute"), 30, whole=True)] = 30
    max_mentions: Annotated[int, _in_range(1, 500, N_("@-mentions a message"), 20, whole=True)] = 20
    ack_window_seconds: PaceSeconds = Field(
        default=3, description="extension: how long an acknowledgement waits for others"
    )
    ack_every_minutes: Annotated[float, _in_range(1, 720, N_("minutes"), 20)] = Field(
        default=20, description="(1.1) at most one roll call per cohort this often"
    )
    ack_max_wait_minutes: Annotated[float, _in_range(1, 720, N_("minutes"), 25)] | None = Field(
        default=None,
        description="(1.1) a check-in waits at most this long for its roll call; default: by the "
        "group's size (25 minutes in groups of 320 and more, up to 2 hours in small ones)",
    )
    roll_call_mentions: bool = Field(
        default=False, description="(1.1) roll calls @-mention the members they name (small groups only)"
    )


def _check_http_url(value: Any) -> Any:
    """An http(s) URL with a host: a webhook the bot can POST to."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            _("{value!r} is not a web address; write the whole URL, starting with https://").format(
                value=_shown_url(text)
            )
        )
    return text


def _shown_url(url: str) -> str:
    """A URL as an error may show it: no password, no query values (the WeCom key)."""
    for secret in notify.url_secrets(url):
        url = url.replace(secret, "***")
    return url


def _check_address(value: Any) -> Any:
    """An e-mail address, bare or as ``Name <address>``."""
    if not isinstance(value, str):
        return value
    _name, address = parseaddr(value)
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+", address):
        raise ValueError(
            _("{value!r} is not an e-mail address; write it like ops@example.com").format(value=value)
        )
    return value.strip()


WebURL = Annotated[str, AfterValidator(_check_http_url)]
Address = Annotated[str, AfterValidator(_check_address)]


class WeComAlerts(_Strict):
    webhook: WebURL = Field(repr=False, description="the group robot's webhook URL (its key is a secret)")


class WebhookAlerts(_Strict):
    url: WebURL = Field(repr=False, description="POSTed {event, state, cohort, text, at} as JSON")
    headers: dict[str, str] = Field(default_factory=dict, repr=False, description="e.g. Authorization")


class EmailAlerts(_Strict):
    host: Annotated[str, AfterValidator(lambda v: _check_host(v))] = Field(description="the SMTP server")
    port: Annotated[int, _in_range(1, 65535, N_("port number"), 587, whole=True)] | None = Field(
        None, description="default: 587 with starttls, 465 with ssl, 25 with none"
    )
    security: Literal["starttls", "ssl", "none"] = "starttls"
    user: str | None = None
    password: str | None = Field(None, repr=False)
    from_: Address = Field(alias="from", description="the sender's address")
    to: list[Address] = Field(min_length=1, description="who gets the alerts")


def _check_host(value: str) -> str:
    text = value.strip()
    if not _HOSTNAME.match(text):
        raise ValueError(
            _("{value!r} is not a host name; write the SMTP server, e.g. smtp.example.com").format(
                value=value
            )
        )
    return text


class AlertsConfig(_Strict):
    wecom: WeComAlerts | None = None
    webhook: WebhookAlerts | None = None
    email: EmailAlerts | None = None
    gateway_down_minutes: Annotated[float, _in_range(1, 24 * 60, N_("minutes"), 5)] = Field(
        5, description="the gateway unreachable this long is an incident"
    )
    failing_sends: Annotated[int, _in_range(1, 1000, N_("messages"), 3, whole=True)] = Field(
        3, description="this many messages failed for good, with none going out since, is an incident"
    )
    timeout_seconds: Annotated[float, _in_range(1, 120, N_("seconds"), 10)] = Field(
        10, description="each attempt to deliver an alert"
    )
    language: Literal["zh", "en"] | None = Field(None, description="default: the config's language, else zh")


class ReportConfig(_Strict):
    active_min_messages: Annotated[int, _in_range(1, 100_000, N_("messages"), 3, whole=True)] = Field(
        default=3, description="a member with at least this many group messages is active"
    )
    key_members: Annotated[int, _in_range(0, 500, N_("members"), 5, whole=True)] = Field(
        default=5, description="the active members with the most messages and check-ins: this many are key"
    )


def _bind_hint() -> str:
    return _("write the address to serve on as host:port, e.g. 127.0.0.1:8080")


def check_bind(value: Any) -> Any:
    """host:port for the web console (IPv6 in brackets), as a gateway address is written."""
    if not isinstance(value, str):
        return value
    try:
        return check_endpoint(value)
    except ValueError:
        raise ValueError(
            _("{value!r} is not host:port; {hint}").format(value=value, hint=_bind_hint())
        ) from None


def split_bind(bind: str) -> tuple[str, int]:
    """ "127.0.0.1:8080" -> ("127.0.0.1", 8080); "[::1]:8080" -> ("::1", 8080)."""
    host, _colon, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class WebConfig(_Strict):
    bind: Annotated[str, AfterValidator(check_bind)] = Field(
        "127.0.0.1:8080", description="where the console listens, host:port; loopback by default"
    )
    public: bool = Field(
        False, description="true to listen on an address other than loopback (behind a TLS proxy)"
    )
    language: Literal["zh", "en"] | None = Field(
        None, description="the console's default language; default: the config's language, else zh"
    )


class CohortConfig(_Strict):
    id: str = Field(pattern=ID_PATTERN, description="[a-z0-9_-]+, unique")
    playbook: str = Field(min_length=1, description="playbook file, relative to the config file")
    room: str = Field(min_length=1, description="the group's name (topic) or its room id")
    start: StartDate


class Config(_Strict):
    timezone: TimeZoneName = "Asia/Shanghai"
    database: str = Field(
        repr=False, default="sqlite:///cohortbot.db", min_length=1, description="SQLAlchemy URL"
    )
    operators: EmptyList[str] = Field(default_factory=list)
    bot_name: str | None = None
    transport: TransportConfig
    pacing: PacingConfig = Field(default_factory=lambda: PacingConfig())
    grace_minutes: Annotated[float, _in_range(0, 7 * 24 * 60, N_("minutes"), 10)] = Field(
        10, description="extension: items missed while down are sent this late"
    )
    quiet_hours: Annotated[QuietHours | None, BeforeValidator(_parse_quiet)] = Field(
        default=QuietHours(time(22, 30), time(7, 30)),
        description='(1.1) local times with no roll calls or welcomes in the group, "22:30-07:30"; '
        '"off" for none',
    )
    reconcile_minutes: Annotated[float, _in_range(0, 24 * 60, N_("minutes"), 5, above=True)] = Field(
        5, description="extension: how often the member list is re-read"
    )
    cohorts: list[CohortConfig] = Field(min_length=1)
    language: Literal["zh", "en"] | None = Field(
        None, description="the operator's language for `run`'s log and alerts; default: the locale"
    )
    alerts: AlertsConfig | None = Field(
        None, description="(1.1) alerts outside WeChat: WeCom robot, webhook, e-mail"
    )
    report: ReportConfig = Field(
        default_factory=lambda: ReportConfig(), description="(1.1) `cohortbot report`: the tiers' thresholds"
    )
    web: WebConfig | None = Field(
        None, description="(1.2) the operators' web console, served by `run`; `web:` alone: the defaults"
    )


@dataclass(frozen=True)
class Loaded:
    config: Config
    path: Path
    database_url: str = field(repr=False)  # with its password: print safe_database_url
    playbooks: dict[str, Playbook]  # by cohort id
    database_line: int = 1  # where `database:` is written, for errors found at start-up
    web_line: int = 1  # where `web:`'s bind is written (or `web:`), for a port already taken

    @property
    def safe_database_url(self) -> str:
        return safe_url(self.database_url)

    def settings(self) -> Settings:
        p = self.config.pacing
        return Settings(
            operators=frozenset(self.config.operators),
            bot_name=self.config.bot_name,
            pacing=Pacing(
                p.same_chat_seconds,
                p.any_chat_seconds,
                p.per_minute,
                p.max_mentions,
                p.ack_window_seconds,
                ack_every_minutes=p.ack_every_minutes,
                roll_call_mentions=p.roll_call_mentions,
                ack_max_wait_minutes=p.ack_max_wait_minutes,
            ),
            grace=timedelta(minutes=self.config.grace_minutes),
            quiet_hours=self.config.quiet_hours,
            language=self.config.language or "zh",
        )

    def alert_settings(self) -> AlertSettings:
        """The `alerts:` section, ready for bot/incidents.py (no channels without it)."""
        cfg = self.config
        a = cfg.alerts
        ids = [c.id for c in cfg.cohorts]
        label, cohorts = label_for(ids), ",".join(ids)
        language = (a.language if a else None) or cfg.language or "zh"
        if a is None:
            return AlertSettings(language=language, label=label, cohorts=cohorts, timezone=cfg.timezone)
        channels: list[notify.Channel] = []
        if a.wecom is not None:
            channels.append(notify.WeComRobot(a.wecom.webhook))
        if a.webhook is not None:
            channels.append(notify.JsonWebhook(a.webhook.url, dict(a.webhook.headers)))
        if a.email is not None:
            e = a.email
            port = e.port or {"starttls": 587, "ssl": 465, "none": 25}[e.security]
            channels.append(notify.Email(e.host, port, e.security, e.from_, tuple(e.to), e.user, e.password))
        return AlertSettings(
            channels=tuple(channels),
            delivery=notify.Delivery(timeout=a.timeout_seconds),
            gateway_down=timedelta(minutes=a.gateway_down_minutes),
            failing_sends=a.failing_sends,
            language=language,
            label=label,
            cohorts=cohorts,
            timezone=cfg.timezone,
        )


def _expand(value: Any, loc: Loc, src: Source, env: dict[str, str], problems: list[Problem]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, k), src, env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i), src, env, problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            if m[1] not in env:
                problems.append(
                    src.problem(
                        loc,
                        _("environment variable {name} is not set; export {name}=... before starting").format(
                            name=m[1]
                        ),
                    )
                )
                return ""
            return env[m[1]]

        # `${TOKEN` or `${}`: kept as written it would be a token or room that silently never works.
        if broken := re.search(r"\$\{[^}\s]*\}?", _ENV.sub("", value)):
            problems.append(
                src.problem(
                    loc,
                    _(
                        '"{written}" is not an environment variable; write it as ${{NAME}}: a name of '
                        "letters, digits and _, in braces"
                    ).format(written=broken[0]),
                )
            )
        return _ENV.sub(sub, value)
    return value


def _database_url(url: str, base: Path) -> str:
    """A relative SQLite path is relative to the config file, like the playbooks."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != prefix + ":memory:":
        return prefix + str(resolved(base / url[len(prefix) :]))
    return url


def load(path: str | Path, env: dict[str, str] | None = None, source: Source | None = None) -> Loaded:
    """Read (or take ``source``, already read from ``path``) and check a config. No message
    it raises holds the database password or the gateway token."""
    src = read_yaml(path) if source is None else source
    env = dict(os.environ) if env is None else env
    try:
        return _load(path, env, src)
    except InputError as exc:
        secrets = _secrets(src.data, env)
        raise InputError(
            [
                replace(p, message=_hide(p.message, secrets), where=_hide(p.where, secrets))
                for p in exc.problems
            ]
        ) from None


def _secrets(data: Any, env: dict[str, str]) -> list[str]:
    """The database password and the gateway token, as written or from the environment."""
    if not isinstance(data, dict):
        return []
    found: list[str] = []
    values = [data.get("database"), _get(data, "transport", "token")]
    for i, value in enumerate(values):
        if not isinstance(value, str):
            continue
        value = _ENV.sub(lambda m: env.get(m[1], ""), value)
        secret = url_password(value) if i == 0 else value
        if secret and len(secret) >= 3:  # a 1-2 character "secret" would blot out the message
            found.append(secret)
    return found + _alert_secrets(data, env)


def _get(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _alert_secrets(data: dict[str, Any], env: dict[str, str]) -> list[str]:
    """The webhooks' keys and passwords, the headers' values, the e-mail password."""
    urls = [_get(data, "alerts", "wecom", "webhook"), _get(data, "alerts", "webhook", "url")]
    headers = _get(data, "alerts", "webhook", "headers")
    values = [_get(data, "alerts", "email", "password")]
    if isinstance(headers, dict):
        values += [v for v in headers.values() if isinstance(v, str)]
        values += [v.split(None, 1)[1] for v in headers.values() if isinstance(v, str) and " " in v.strip()]
    found: list[str] = []
    for url in urls:
        if isinstance(url, str):
            found += notify.url_secrets(_ENV.sub(lambda m: env.get(m[1], ""), url))
    for value in values:
        if isinstance(value, str):
            value = _ENV.sub(lambda m: env.get(m[1], ""), value).strip()
            if len(value) >= 3:
                found.append(value)
    return found


def _hide(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _load(path: str | Path, env: dict[str, str], src: Source) -> Loaded:
    problems: list[Problem] = []
    src.data = _expand(src.data, (), src, env, problems)
    if problems:
        raise InputError(problems)
    if isinstance(src.data, dict) and "web" in src.data and src.data["web"] is None:
        src.data["web"] = {}  # `web:` alone: served with the defaults
    cfg = validate(src, Config)
    base = resolved(Path(path)).parent
    seen: dict[str, int] = {}
    for i, c in enumerate(cfg.cohorts):
        if c.id in seen:
            problems.append(
                src.problem(
                    ("cohorts", i, "id"),
                    _("cohort id `{id}` is used twice; give each cohort its own id").format(id=c.id),
                )
            )
        seen.setdefault(c.id, i)
    rooms: dict[str, str] = {}
    for i, c in enumerate(cfg.cohorts):
        if c.room in rooms:
            problems.append(
                src.problem(
                    ("cohorts", i, "room"),
                    _(
                        "room {room!r} already runs cohort `{cohort}`; a group runs one cohort "
                        "(give this cohort its own group, or remove the finished one)"
                    ).format(room=c.room, cohort=rooms[c.room]),
                )
            )
        rooms.setdefault(c.room, c.id)
    database_url = _database_url(cfg.database, base)
    try:
        check_url(database_url)
    except BadDatabaseURL as exc:
        problems.append(src.problem(("database",), str(exc)))
    a = cfg.alerts
    if a is not None and a.wecom is None and a.webhook is None and a.email is None:
        problems.append(
            src.problem(
                ("alerts",),
                _("no channel to send alerts to; add wecom, webhook or email (or remove `alerts:`)"),
            )
        )
    if a is not None and a.email is not None and a.email.user and not a.email.password:
        problems.append(
            src.problem(
                ("alerts", "email"),
                _("`user` is set but `password` is missing; add it, e.g. password: ${SMTP_PASSWORD}"),
            )
        )
    w = cfg.web
    if w is not None and not w.public and not is_loopback(split_bind(w.bind)[0]):
        problems.append(
            src.problem(
                ("web", "bind"),
                _(
                    "{bind} is reachable from other machines; serve the console on 127.0.0.1 behind a "
                    "TLS reverse proxy, or add `public: true` under `web:` if you mean it"
                ).format(bind=w.bind),
            )
        )
    if cfg.transport.kind == "wechaty" and not cfg.transport.token:
        problems.append(src.problem(("transport",), _("`token` is missing; add the gateway's token")))
    if cfg.transport.kind == "wechaty" and not cfg.transport.endpoint:
        problems.append(
            src.problem(("transport",), _("`endpoint` is missing; add the gateway, e.g. 127.0.0.1:8788"))
        )
    if problems:
        raise InputError(problems)
    loaded: dict[str, Playbook] = {}
    cache: dict[Path, Playbook] = {}
    for i, c in enumerate(cfg.cohorts):
        pb_path = resolved(base / c.playbook)
        if not pb_path.is_file():
            problems.append(
                src.problem(
                    ("cohorts", i, "playbook"),
                    _("no playbook at {path}; the path is relative to this file").format(path=pb_path),
                )
            )
            continue
        if pb_path not in cache:
            cache[pb_path] = playbooks.load(pb_path)  # its own errors name its own file
        loaded[c.id] = cache[pb_path]
    if problems:
        raise InputError(problems)
    return Loaded(cfg, Path(path), database_url, loaded, src.line(("database",)), src.line(("web", "bind")))
