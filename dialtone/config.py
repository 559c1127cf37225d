"""The node's configuration: one typed value, filled from a YAML file, the environment and
command-line flags, in that order of precedence (a flag beats the environment, which beats the
file, which beats the defaults here).

* YAML (``dialtone serve --config node.yaml``): the sections below, e.g.::

      node_id: edge-1
      db: sqlite:///var/dialtone.db
      sip: {listen: 0.0.0.0:5060, advertise: 192.0.2.10, trusted: [192.0.2.1]}
      media: {rtp_ports: 20000-30000, timeout: 30}
      flow: {path: ivr_flows/examples/contact_centre/flow.yaml, recognizer: template}
      routing: {mqtt: mqtt://127.0.0.1:1883}

* Environment: ``DIALTONE_<FIELD>`` for top-level fields and ``DIALTONE_<SECTION>__<FIELD>``
  inside a section (``DIALTONE_SIP__LISTEN=0.0.0.0:5060``, ``DIALTONE_ROUTING__MQTT=...``).
  Lists are comma-separated (or JSON); mappings are JSON.
* Flags: each ``dialtone serve`` flag names one field (:data:`SERVE_FLAGS`); only flags given on
  the command line take part, so a flag's default never hides the file or the environment.

Unknown keys are refused (a typo in a YAML key is an error, not a silently ignored option), and
so are options that cannot apply to the chosen mode (``--router-config`` with ``--mqtt``, a
recogniser without a flow, ...): the message names the flag and the field.

pydantic-settings was considered: its YAML source is fixed per class, while a node takes the file
from its command line, and we want every error to name where the value came from; the merge
below is short.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from dialtone_errors import ConfigError, DialtoneError

ENV_PREFIX = "DIALTONE_"
MASK = "**********"


def parse_hostport(text: str, default_port: int = 5080) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) as a pair; a bare host takes ``default_port``."""
    host, sep, port = text.rpartition(":")
    if not sep or (":" in host and not host.startswith("[")):
        return text.strip("[]"), default_port
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"bad address {text!r}: want HOST:PORT (port 0: the OS picks one)")
    return host, int(port)


def parse_port_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not sep or not lo.isdigit() or not hi.isdigit() or not 0 < int(lo) < int(hi) < 65536:
        raise ConfigError(f"bad port range {text!r}: want LOW-HIGH")
    return int(lo), int(hi)


_DEFAULT_ALGORITHMS: tuple[Literal["SHA-256", "MD5"], ...] = ("SHA-256", "MD5")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SipSection(_Section):
    """Where the node listens for SIP and who may call it."""

    listen: str = "127.0.0.1:5080"
    """HOST:PORT for UDP (and TCP unless ``tcp`` is false)."""
    advertise: str | None = None
    """Host written into Via, Contact and SDP (default: the listening host)."""
    tcp: bool = True
    t1: float = Field(default=0.5, gt=0)
    """RFC 3261 T1 in seconds, the base of every retransmission timer."""
    trace: str | None = None
    """Append every SIP message sent and received to this file."""
    trusted: list[str] | None = None
    """Source addresses trusted without digest authentication (None: everyone)."""
    auth_realm: str = "dialtone"
    auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    """user -> password: INVITEs from untrusted sources must authenticate as one of these."""
    auth_algorithms: list[Literal["SHA-256", "MD5"]] = Field(
        default_factory=lambda: list(_DEFAULT_ALGORITHMS))
    transfer_allow: list[str] | None = None
    """Transfer targets the node may dial (patterns such as ``sip:queue-*@pbx:5060`` or
    ``tel:+4420*``); None: a flow's own allow-list decides (see docs/security.md)."""
    accept_refer: bool = False
    """Honour inbound REFER (to ``transfer_allow`` targets only); off: REFER gets 403."""
    tel_gateway: str | None = None
    """host[:port] that ``tel:`` transfer targets are sent to (None: they are refused)."""
    max_calls: int | None = Field(default=2000, ge=1)
    """Concurrent calls; new INVITEs beyond get 503 with Retry-After (None: no cap)."""
    max_cps: float | None = Field(default=100.0, gt=0)
    """New calls per second, node-wide (None: no limit).  100 by default: far above what a
    contact centre's node sees (500 calls of 3 minutes are 2.8 calls/s), and the rate at
    which held calls kept their 20 ms grid through a 2,000 INVITE/s flood on 2 vCPU
    (BENCHMARKS.md, Defences: SIP); at 500 their p99 reached 33 ms."""
    max_cps_per_source: float | None = Field(default=None, gt=0)
    """New calls per second from one source address (None: off; a trunk sends all from one)."""
    max_tick_lateness: float | None = Field(default=0.010, gt=0)
    """Refuse new calls while the media tick runs this late (s, smoothed); None: ignore."""
    tcp_message_timeout: float = Field(default=20.0, gt=0)
    tcp_idle_timeout: float = Field(default=120.0, gt=0)
    tcp_max_per_source: int = Field(default=100, ge=1)
    registrar: str | None = None
    """Register to this registrar URI (with ``user`` and ``password``)."""
    user: str | None = None
    password: SecretStr | None = None
    """The registration password: from ``DIALTONE_SIP__PASSWORD``, the YAML file or
    ``password_file``.  ``--password`` still works but is discouraged: a command line is
    visible to every user through ``ps`` and stays in the shell's history."""
    password_file: str | None = None
    """A file whose first line is the registration password (``--password-file``)."""

    def password_value(self) -> str:
        """The registration password (``password``, else the first line of
        ``password_file``; empty without either)."""
        return _secret_value(self.password, self.password_file, "sip.password_file")

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        try:
            parse_hostport(value)
        except ConfigError as exc:  # as ValueError, pydantic names the field
            raise ValueError(str(exc)) from None
        return value

    @field_validator("transfer_allow")
    @classmethod
    def _transfer_rules(cls, value: list[str] | None) -> list[str] | None:
        from telephony.sip.transfer_policy import TransferRule

        for pattern in value or ():
            try:
                TransferRule.parse(pattern)
            except DialtoneError as exc:
                raise ValueError(f"{pattern!r}: {exc}") from None
        return value

    @property
    def host(self) -> str:
        return parse_hostport(self.listen)[0]

    @property
    def port(self) -> int:
        return parse_hostport(self.listen)[1]


class MediaSection(_Section):
    rtp_ports: str = "20000-30000"
    """RTP port range LOW-HIGH (each call takes an even port and the next for RTCP)."""
    timeout: float = Field(default=30.0, ge=0)
    """End a call after this many seconds without RTP (0: never)."""
    answer_delay: float = Field(default=0.0, ge=0)
    """Ring (180) this long before answering."""
    latch: Literal["strict", "sdp-only", "symmetric"] = "strict"
    """Whose RTP a call accepts (docs/security.md, Media): strict (the SDP address, or behind
    NAT the SIP peer's host sending plausible packets), sdp-only, symmetric (first sender)."""

    @field_validator("rtp_ports")
    @classmethod
    def _ports(cls, value: str) -> str:
        try:
            parse_port_range(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return value

    @property
    def port_range(self) -> tuple[int, int]:
        return parse_port_range(self.rtp_ports)


class FlowSection(_Section):
    path: str | None = None
    """The IVR flow (YAML/JSON) run on every call; None: answer and hold until BYE."""
    recognizer: Literal["template", "pocketsphinx", "vosk"] = "template"
    vosk_model: str | None = None


class RoutingSection(_Section):
    mqtt: str | None = None
    """mqtt://[USER:PASSWORD@]HOST:PORT of the routing core; None: the in-process router."""
    router_config: str | None = None
    """YAML of the in-process reference router (default routing/examples/router.yaml)."""


class HttpSection(_Section):
    """The campaign console: the HTTP API and the page (issue 15); off unless ``listen``."""

    listen: str | None = None
    """HOST:PORT of the console (``--http 127.0.0.1:8080``); None: no console."""
    secure_cookies: bool = False
    """Mark the session cookie Secure (the console is behind TLS; a request over https sets
    it anyway)."""
    session_ttl: float = Field(default=12 * 3600.0, gt=0)
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1024)
    """Largest list upload; a bigger file is refused (413) and nothing imported."""
    login_per_source: int = Field(default=20, ge=1)
    """Failed logins from one address within ``login_window`` before 429."""
    login_per_user: int = Field(default=5, ge=1)
    login_window: float = Field(default=300.0, gt=0)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_hostport(value, 8080)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value


class DialerSection(_Section):
    trunk: str | None = None
    """``sip:HOST[:PORT]`` the node's outbound campaigns dial through; with it the node runs
    an engine for every campaign whose status is ``running`` (dialtone/dialing.py)."""
    register_as: str | None = None
    """``sip:USER@HOST[:PORT]``: the dialer registers to this PBX as USER before its first
    call, keeps the binding refreshed, and its calls carry that identity (dialer.registration).
    The node's own ``sip.registrar`` (inbound calls) is separate."""
    auth_user: str | None = None
    """Digest user for the PBX's challenges (default: USER of ``register``)."""
    password: SecretStr | None = None
    """The PBX password: from the YAML file or ``DIALTONE_DIALER__PASSWORD``; there is no
    flag (a password on a command line is seen by ``ps``).  Or ``password_file``."""
    password_file: str | None = None
    """A file whose first line is the PBX password."""
    register_expires: int = Field(default=300, ge=60)
    """Seconds asked for the binding (refreshed before it expires)."""

    @field_validator("trunk")
    @classmethod
    def _trunk(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("sip:", "sips:")):
            raise ValueError(f"{value!r}: want sip:HOST[:PORT]")
        return value

    @field_validator("register_as")
    @classmethod
    def _register(cls, value: str | None) -> str | None:
        from dialer.errors import DialerError
        from dialer.registration import PbxAccount

        if value is not None:
            try:
                PbxAccount.parse(value, password="-")
            except DialerError as exc:
                raise ValueError(str(exc)) from None
        return value

    def password_value(self) -> str:
        """The PBX password (``password``, else the first line of ``password_file``)."""
        return _secret_value(self.password, self.password_file, "dialer.password_file")


def _secret_value(value: SecretStr | None, file: str | None, path: str) -> str:
    """A password given as a value, else the first line of a file (empty without either)."""
    if value is not None:
        return value.get_secret_value()
    if file is None:
        return ""
    try:
        text = Path(file).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{describe(path)}: cannot read {file}: {exc.strerror}") from exc
    return text.splitlines()[0] if text.strip() else ""


class NodeConfig(_Section):
    """Everything ``dialtone serve`` needs; built once, passed down, never mutated."""

    node_id: str | None = None
    """This node's id on the routing bus (default: derived from the SIP address)."""
    db: str = "sqlite:///var/dialtone.db"
    """SQLAlchemy URL (callbacks, the MQTT outbox, the dialer's campaigns)."""
    events: str | None = None
    """Append call events as JSON lines here (see ``dialtone events schema``)."""
    workers: int = Field(default=1, ge=1, le=256)
    """Node processes on consecutive SIP ports behind a dispatcher (dialtone.workers)."""
    log_format: Literal["text", "json"] = "text"
    """Log lines for a person (text) or one JSON object per line with the call id (json)."""
    sip: SipSection = SipSection()
    media: MediaSection = MediaSection()
    flow: FlowSection = FlowSection()
    routing: RoutingSection = RoutingSection()
    http: HttpSection = HttpSection()
    dialer: DialerSection = DialerSection()

    @model_validator(mode="after")
    def _options_apply(self) -> NodeConfig:
        """Refuse an option that the chosen mode would silently ignore."""
        problems: list[str] = []

        def refuse(path: str, why: str) -> None:
            problems.append(f"{describe(path)} {why}")

        flow_set = self.flow.model_fields_set
        if self.flow.path is None:
            for name in ("recognizer", "vosk_model"):
                if name in flow_set and getattr(self.flow, name) is not None:
                    refuse(f"flow.{name}", "applies only with a flow (--flow)")
        elif self.flow.vosk_model is not None and self.flow.recognizer != "vosk":
            refuse("flow.vosk_model", "applies only with --recognizer vosk")
        elif self.flow.recognizer == "vosk" and self.flow.vosk_model is None:
            refuse("flow.recognizer", "vosk needs a model directory (--vosk-model)")
        if self.routing.mqtt is not None and self.routing.router_config is not None:
            refuse("routing.router_config",
                   "applies only to the in-process router, not with --mqtt")
        sip = self.sip
        if sip.registrar is None:
            for name in ("user", "password", "password_file"):
                if getattr(sip, name) is not None:
                    refuse(f"sip.{name}", "applies only with --register")
        elif sip.password is not None and sip.password_file is not None:
            refuse("sip.password_file", "and sip.password: give one")
        if sip.accept_refer and not sip.transfer_allow:
            refuse("sip.accept_refer", "needs --transfer-allow (which targets REFER may name)")
        if sip.trusted is None:
            if sip.auth_users:
                refuse("sip.auth_users", "applies only with --trusted (who is challenged)")
            for name in ("auth_realm", "auth_algorithms"):
                if name in sip.model_fields_set:
                    refuse(f"sip.{name}", "applies only with --trusted and --auth-user")
        if self.http.listen is None:
            for name in sorted(self.http.model_fields_set - {"listen"}):
                refuse(f"http.{name}", "applies only with the console (--http)")
        dialer = self.dialer
        if dialer.register_as is None:
            # (the password alone is let be: the environment variable is also what
            # `dialtone campaign run --register` reads, so it may be exported for that)
            for name in sorted(dialer.model_fields_set - {"trunk", "register_as", "password"}):
                refuse(f"dialer.{name}", "applies only with --trunk-register")
        else:
            if dialer.trunk is None:
                refuse("dialer.register_as", "applies only with --trunk (the node dials then)")
            if dialer.password is None and dialer.password_file is None:
                refuse("dialer.register_as", "needs a password: DIALTONE_DIALER__PASSWORD, "
                       "dialer.password in the file, or --trunk-password-file")
            elif dialer.password is not None and dialer.password_file is not None:
                refuse("dialer.password_file", "and dialer.password: give one")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def effective_node_id(self) -> str:
        if self.node_id:
            return self.node_id
        # port 0 (the OS picks) is not known yet: the process id keeps ids apart on one host
        port = self.sip.port or f"p{os.getpid()}"
        return f"{self.sip.host}-{port}".replace(".", "-").replace(":", "-")

    def masked(self) -> dict[str, Any]:
        """The configuration as plain data with every secret replaced by ``**********``."""
        data = self.model_dump(mode="python")
        sip = data["sip"]
        sip["auth_users"] = {user: MASK for user in sip["auth_users"]}
        if sip["password"] is not None:
            sip["password"] = MASK
        if data["routing"]["mqtt"]:
            data["routing"]["mqtt"] = mask_url(data["routing"]["mqtt"])
        if data["dialer"]["password"] is not None:
            data["dialer"]["password"] = MASK
        data["db"] = mask_url(data["db"])
        return data


def mask_url(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:**********@host``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{netloc[1]}"))


@dataclass(frozen=True, slots=True)
class Flag:
    """One ``dialtone serve`` flag and the configuration field it sets."""

    flag: str
    path: str
    help: str
    kind: Literal["value", "true", "false", "append", "user_password"] = "value"
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    convert: type | None = None


SERVE_FLAGS: tuple[Flag, ...] = (
    Flag("--sip", "sip.listen", "HOST:PORT to listen on (UDP+TCP); default 127.0.0.1:5080"),
    Flag("--advertise", "sip.advertise", "host to put in Via/Contact/SDP"),
    Flag("--no-tcp", "sip.tcp", "UDP only", kind="false"),
    Flag("--sip-t1", "sip.t1", "SIP timer T1 in seconds (RFC 3261 17.1.1.1)", convert=float),
    Flag("--sip-trace", "sip.trace", "append every SIP message sent and received to this file"),
    Flag("--trusted", "sip.trusted",
         "comma-separated source addresses trusted without digest auth"),
    Flag("--auth-user", "sip.auth_users", "with --trusted: INVITEs from other sources must "
         "authenticate (digest) as one of these users (repeatable; discouraged: a command "
         "line is visible in ps; use sip.auth_users in --config or DIALTONE_SIP__AUTH_USERS)",
         kind="user_password",
         metavar="USER:PASSWORD"),
    Flag("--auth-realm", "sip.auth_realm", "realm of those challenges"),
    Flag("--auth-algorithm", "sip.auth_algorithms", "digest algorithms offered, strongest "
         "first (default SHA-256 and MD5; SIPp fails on SHA-256)", kind="append",
         choices=("SHA-256", "MD5")),
    Flag("--transfer-allow", "sip.transfer_allow", "a transfer target pattern the node may "
         "dial, e.g. sip:queue-*@pbx.example:5060 or tel:+4420* (repeatable)", kind="append",
         metavar="PATTERN"),
    Flag("--accept-refer", "sip.accept_refer", "honour inbound REFER to --transfer-allow targets "
         "(default: 403)", kind="true"),
    Flag("--tel-gateway", "sip.tel_gateway", "HOST[:PORT] that tel: transfer targets go to"),
    Flag("--max-calls", "sip.max_calls", "concurrent calls before 503 (default 2000)",
         convert=int),
    Flag("--max-cps", "sip.max_cps", "new calls per second, node-wide (default 100)",
         convert=float),
    Flag("--max-cps-per-source", "sip.max_cps_per_source",
         "new calls per second from one source address (default: off)", convert=float),
    Flag("--register", "sip.registrar", "register to this registrar URI (with --user/--password)"),
    Flag("--user", "sip.user", "registration user"),
    Flag("--password", "sip.password", "registration password (discouraged: a command line "
         "is visible in ps; use --password-file or DIALTONE_SIP__PASSWORD)"),
    Flag("--password-file", "sip.password_file", "a file whose first line is the "
         "registration password", metavar="FILE"),
    Flag("--rtp-ports", "media.rtp_ports", "RTP port range LOW-HIGH (default 20000-30000)"),
    Flag("--media-timeout", "media.timeout",
         "end a call after this many seconds without RTP (0: never; default 30)", convert=float),
    Flag("--latch", "media.latch", "whose RTP a call accepts: strict (default), sdp-only, "
         "symmetric", choices=("strict", "sdp-only", "symmetric")),
    Flag("--answer-delay", "media.answer_delay", "ring (180) this many seconds before answering",
         convert=float),
    Flag("--flow", "flow.path", "IVR flow file (YAML/JSON) to run on calls"),
    Flag("--recognizer", "flow.recognizer", "speech engine for menus: template (offline DTW over "
         "espeak-ng renderings, default), pocketsphinx (English), vosk (needs --vosk-model)",
         choices=("template", "pocketsphinx", "vosk")),
    Flag("--vosk-model", "flow.vosk_model", "path of a Vosk model directory", metavar="DIR"),
    Flag("--mqtt", "routing.mqtt", "mqtt://HOST:PORT of the routing core (default: in-process "
         "reference router)"),
    Flag("--router-config", "routing.router_config",
         "YAML of the in-process reference router (not with --mqtt)"),
    Flag("--db", "db", "SQLAlchemy URL (default sqlite:///var/dialtone.db)"),
    Flag("--node-id", "node_id", "this node's id (default: host-port)"),
    Flag("--events", "events", "append call events as JSON lines here"),
    Flag("--trunk", "dialer.trunk", "sip:HOST[:PORT] outbound campaigns dial through: the node "
         "then dials every campaign whose status is running (console, campaign start)"),
    Flag("--trunk-register", "dialer.register_as", "with --trunk: register the dialer to the PBX "
         "as this sip:USER@HOST[:PORT] before dialling; calls carry that identity (password: "
         "DIALTONE_DIALER__PASSWORD or --trunk-password-file)", metavar="URI"),
    Flag("--trunk-user", "dialer.auth_user", "digest user for the PBX (default: USER of "
         "--trunk-register)"),
    Flag("--trunk-password-file", "dialer.password_file", "a file whose first line is the PBX "
         "password", metavar="FILE"),
    Flag("--http", "http.listen", "HOST:PORT of the campaign console and its API "
         "(default: none)"),
    Flag("--workers", "workers", "run N node processes on SIP ports PORT..PORT+N-1 with "
         "disjoint RTP ranges, supervised; prints Kamailio's dispatcher list", convert=int),
    Flag("--log-format", "log_format", "text (default) or json: one JSON object per log line, "
         "with the call id", choices=("text", "json")),
)

_FLAG_OF = {f.path: f.flag for f in SERVE_FLAGS}


def describe(path: str) -> str:
    """``--router-config (routing.router_config)``: how the user can name a field."""
    flag = _FLAG_OF.get(path)
    env = ENV_PREFIX + path.upper().replace(".", "__")
    return f"{flag} ({path}, {env})" if flag else f"{path} ({env})"


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[leaf] = value


def _merge(into: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in other.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
    return into


def read_yaml(path: str | os.PathLike[str]) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the configuration: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: want a mapping of settings at the top level")
    return data


def _list_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


def from_environment(env: Mapping[str, str]) -> dict[str, Any]:
    """``DIALTONE_SIP__LISTEN=...`` -> ``{"sip": {"listen": ...}}`` for known fields only;
    an unknown ``DIALTONE_*`` name is an error (a typo must not be silently ignored)."""
    out: dict[str, Any] = {}
    sections = {name: info.annotation for name, info in NodeConfig.model_fields.items()}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name in _NOT_CONFIG:
            continue
        path = name[len(ENV_PREFIX):].lower().replace("__", ".")
        head, _, leaf = path.partition(".")
        model = sections.get(head)
        if model is None or (leaf and not (isinstance(model, type)
                                           and issubclass(model, BaseModel)
                                           and leaf in model.model_fields)):
            raise ConfigError(f"environment variable {name}: no such setting")
        field_type = model.model_fields[leaf].annotation if leaf else model
        text = str(field_type)
        value: Any = raw
        try:
            if "list[" in text:
                value = _list_value(raw)
            elif "dict[" in text:
                value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"environment variable {name}: not JSON: {exc}") from exc
        _set(out, path, value)
    return out


# DIALTONE_* variables that are not node settings (read elsewhere, e.g. the console's first
# admin password): the environment check leaves them alone.
_NOT_CONFIG = frozenset({"DIALTONE_ADMIN_PASSWORD"})


def load_config(*, yaml_path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None,
                flags: Mapping[str, Any] | None = None) -> NodeConfig:
    """Defaults < YAML file < environment < flags (a mapping of dotted field paths)."""
    data: dict[str, Any] = {}
    if yaml_path is not None:
        _merge(data, read_yaml(yaml_path))
    _merge(data, from_environment(os.environ if env is None else env))
    for path, value in (flags or {}).items():
        if isinstance(value, dict) and isinstance(_get(data, path), dict):
            value = {**_get(data, path), **value}
        _set(data, path, value)
    try:
        return NodeConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, yaml_path)) from exc


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _explain(exc: ValidationError, yaml_path: str | os.PathLike[str] | None) -> str:
    lines = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            where = f" in {yaml_path}" if yaml_path else ""
            lines.append(f"unknown setting {path!r}{where}")
        elif path:
            lines.append(f"{describe(path)}: {msg}")
        else:
            lines.append(msg)
    return "bad configuration: " + "; ".join(lines)
