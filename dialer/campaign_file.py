"""The campaign file (issue 14): one YAML file that describes an outbound campaign.

Its keys are read by tools outside the project; keep them::

    name: parcels
    kind: agents                # or message
    list: contacts.csv          # column phone; other columns kept as fields; relative to this file
    region: GB                  # for numbers without a country code
    caller_id: "+442071234567"  # From and P-Asserted-Identity; a campaign without one does not start
    pacing: progressive
    agents: [sip:alice@127.0.0.1:5070]   # or: {from: routing, skills: [...], languages: [...]}
    connect: bridge             # or refer (REFER the called party to the agent)
    flow: outreach.yaml         # message campaigns
    machine_message: "Hello, this is Acme..."       # a WAV path or text spoken by TTS
    safe_harbour_prompt:        # or per language (the contact's language column picks)
      en: "This is Acme, call us back on ..."
      es: safe-harbour-es.wav
    language: en                # the TTS language, and the fallback of per-language prompts
    window: {days: [mon, tue, wed, thu, fri], start: "09:00", end: "20:00"}   # or: always
    ring_timeout: 20            # seconds, at least 15
    max_attempts: 3             # 1: one attempt, no retry
    retries: {busy: 900, no_answer: 7200}

:func:`load_campaign_file` validates it with pydantic and reports every problem with its
file and line (as the flow loader does); :func:`campaign_schema` is its JSON Schema
(``dialtone campaign schema``); :meth:`CampaignFile.to_settings` maps it onto the store's
:class:`~dialer.policy.CampaignSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dialer.errors import DialerError
from dialer.policy import DEFAULT_RETRIES, CampaignSettings
from dialer.prompts import normalise_language
from dialer.windows import DAYS, CallingWindow

__all__ = ["AgentsFromRouting", "CampaignFile", "CampaignFileError", "CampaignProblem", "LoadedCampaign",
           "WindowSpec", "campaign_schema", "load_campaign_file"]

WAV_SUFFIXES = (".wav", ".WAV")


class CampaignProblem:
    """One problem in a campaign file: file, line, message."""

    __slots__ = ("file", "line", "message")

    def __init__(self, file: str, line: int | None, message: str) -> None:
        self.file, self.line, self.message = file, line, message

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"

    def __repr__(self) -> str:
        return f"CampaignProblem({self.file!r}, {self.line!r}, {self.message!r})"


class CampaignFileError(DialerError):
    """A campaign file with problems; ``problems`` lists every one."""

    def __init__(self, problems: list[CampaignProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class WindowSpec(BaseModel):
    """``{days: [mon, ...], start: "HH:MM", end: "HH:MM"}`` in the callee's local time."""

    model_config = ConfigDict(extra="forbid")

    days: list[str] = Field(default_factory=lambda: list(DAYS))
    start: str = "08:00"
    end: str = "21:00"
    holidays: list[str] = Field(default_factory=list)

    @field_validator("days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        out = []
        for d in v:
            key = str(d).strip().lower()[:3]
            if key not in DAYS:
                raise ValueError(f"unknown day {d!r} (mon, tue, wed, thu, fri, sat, sun)")
            out.append(key)
        return out

    @model_validator(mode="after")
    def _spans(self) -> WindowSpec:
        try:
            CallingWindow.parse(self.model_dump())
        except DialerError as exc:
            raise ValueError(str(exc)) from exc
        return self


class AgentsFromRouting(BaseModel):
    """``{from: routing, skills: [...], languages: [...]}``: the routing core's agents (their
    retained presence over MQTT, ``--mqtt``), those with every skill listed and speaking one
    of the languages (none listed: any)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: Literal["routing"] = Field(alias="from")
    skills: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)


class CampaignFile(BaseModel):
    """The campaign file's schema (issue 14's keys, unchanged)."""

    model_config = ConfigDict(extra="forbid", title="Dialtone outbound campaign",
                              populate_by_name=True)

    name: str = Field(min_length=1, max_length=128)
    kind: Literal["agents", "message"] = "agents"
    list_: str | None = Field(None, alias="list")
    """CSV path relative to the campaign file (column ``phone``; other columns are fields)."""
    region: str = Field("US", min_length=2, max_length=2)
    caller_id: str | None = None
    """Presented in From and P-Asserted-Identity (RFC 3325); required to start dialling."""
    pacing: str = "progressive"
    agents: list[str] | AgentsFromRouting = Field(default_factory=list)
    """SIP URIs of the agents (``agents`` campaigns), or ``{from: routing, ...}``."""
    connect: Literal["bridge", "refer"] = "bridge"
    """How a person reaches the agent: the dialer bridges its two legs, or REFERs the
    called party to the agent (RFC 3515; safe harbour if the transfer fails in time)."""
    flow: str | None = None
    """A flow file, relative to the campaign file (``message`` campaigns)."""
    language: str = "en"
    """Language of the TTS prompts, and the fallback of per-language prompts."""
    machine_message: str | dict[str, str] | None = None
    """A WAV path (relative to the file) or a text spoken by TTS, left after the beep; or a
    mapping language -> WAV path or text, chosen by the contact's ``language`` column
    (with an entry for the campaign's ``language``, the fallback)."""
    safe_harbour_prompt: str | dict[str, str] | None = None
    """A WAV path or a text spoken by TTS: who is calling and a number to call back
    (FTC 16 CFR 310.4(b)(4)(iii)); or a mapping language -> WAV path or text, as for
    ``machine_message``."""
    window: Literal["always"] | WindowSpec = Field(default_factory=WindowSpec)
    ring_timeout: float = Field(20.0, ge=15)
    """Seconds of ringing before CANCEL; at least 15 (Ofcom, FTC)."""
    max_attempts: int = Field(3, ge=1)
    retries: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_RETRIES))
    """Seconds before the next attempt, per outcome (an outcome not listed is final)."""
    abandon_target: float = Field(0.03, ge=0, le=1)
    wrap_s: float = Field(0.0, ge=0)
    """Seconds an agent wraps up after a call before the next one."""
    callbacks: Literal["customer_first", "agent_first"] = "customer_first"
    """Scheduled callbacks: dial the customer and connect an agent as for any call, or
    reserve an agent and answer their leg first."""
    lines: int = Field(10, ge=1)
    """Message campaigns: calls at once (IVR ports; the pacer counts each as an agent)."""
    connect_within: float = Field(2.0, ge=0, le=2.0)
    """Seconds a live answer may wait for an agent (FTC: at most 2 s after the greeting)."""
    agent_leg: Literal["early", "on_verdict"] = "early"
    """When an agent's leg is dialled: ``early`` at answer, held (silence) while AMD
    listens, bridged at a human verdict and ended on a machine; ``on_verdict`` only
    after a human verdict (the dial time then adds to the person's wait)."""

    @field_validator("region")
    @classmethod
    def _region(cls, v: str) -> str:
        return v.upper()

    @field_validator("agents")
    @classmethod
    def _agents(cls, v: list[str] | AgentsFromRouting) -> list[str] | AgentsFromRouting:
        for uri in v if isinstance(v, list) else ():
            if not uri.lower().startswith(("sip:", "sips:")):
                raise ValueError(f"agent {uri!r} is not a SIP URI (sip:user@host[:port])")
        return v

    @field_validator("language")
    @classmethod
    def _language(cls, v: str) -> str:
        tag = normalise_language(v)
        if tag is None:
            raise ValueError(f"{v!r} is not a language tag (en, es, pt-BR...)")
        return tag

    @field_validator("machine_message", "safe_harbour_prompt", mode="before")
    @classmethod
    def _prompt_shape(cls, v: Any) -> Any:
        if v is None or isinstance(v, str):
            return v
        if not isinstance(v, Mapping):  # ValueError: pydantic reports it with the key
            raise ValueError("want a WAV path, a text, or a mapping language -> WAV path "  # noqa: TRY004
                             "or text")
        if not v:
            raise ValueError("an empty mapping: give one prompt, or one per language")
        out: dict[str, str] = {}
        for tag, prompt in v.items():
            norm = normalise_language(tag)
            if norm is None:
                raise ValueError(f"{tag!r} is not a language tag (en, es, pt-BR...)")
            if not isinstance(prompt, str) or not prompt.strip():
                raise ValueError(f"{tag}: want a WAV path or a text")
            if norm in out:
                raise ValueError(f"{tag}: language {norm!r} given twice")
            out[norm] = prompt
        return out

    @field_validator("machine_message", "safe_harbour_prompt")
    @classmethod
    def _prompt_fallback(cls, v: str | dict[str, str] | None, info: ValidationInfo
                         ) -> str | dict[str, str] | None:
        language = info.data.get("language")
        if isinstance(v, dict) and language is not None and language not in v:
            raise ValueError(f"no entry for the campaign's language {language!r} (what a "
                             f"contact in another language hears)")
        return v

    @field_validator("retries")
    @classmethod
    def _retries(cls, v: dict[str, float]) -> dict[str, float]:
        for k, s in v.items():
            if s < 0:
                raise ValueError(f"retry delay for {k} is negative")
        return v

    @field_validator("pacing")
    @classmethod
    def _pacing(cls, v: str) -> str:
        from dialer.pacing import PacingError, default_registry
        from dialer.pacing.base import PacerConfig
        try:
            default_registry().create(v, PacerConfig())
        except PacingError as exc:
            raise ValueError(str(exc)) from exc
        return v

    @model_validator(mode="after")
    def _by_kind(self) -> CampaignFile:
        if self.kind == "agents" and not self.agents:
            raise ValueError("an agents campaign lists its agents (SIP URIs)")
        if self.kind == "message" and not self.flow:
            raise ValueError("a message campaign names its flow file")
        return self

    def to_settings(self, base_dir: Path | None = None) -> CampaignSettings:
        """The store's settings; paths resolved against ``base_dir`` (the file's folder)."""
        def path(p: str | None) -> str | None:
            if p is None or base_dir is None:
                return p
            return str((base_dir / p).resolve())

        def one(p: str) -> str:
            return (path(p) or p) if p.endswith(WAV_SUFFIXES) else p

        def prompt(p: str | dict[str, str] | None) -> str | dict[str, str] | None:
            if isinstance(p, dict):
                return {tag: one(v) for tag, v in p.items()}
            return None if p is None else one(p)

        window = CallingWindow.parse("always" if self.window == "always"
                                     else self.window.model_dump())
        extra: dict[str, Any] = {
            "list": path(self.list_), "flow": path(self.flow),
            "agents": (list(self.agents) if isinstance(self.agents, list) else
                       {"from": "routing", "skills": list(self.agents.skills),
                        "languages": list(self.agents.languages)}),
            "connect": self.connect,
            "machine_message": prompt(self.machine_message),
            "safe_harbour_prompt": prompt(self.safe_harbour_prompt),
            "language": self.language, "wrap_s": self.wrap_s,
            "connect_within": self.connect_within, "lines": self.lines,
            "callbacks": self.callbacks, "agent_leg": self.agent_leg,
        }
        return CampaignSettings(region=self.region, kind=self.kind, caller_id=self.caller_id,
                                pacing=self.pacing, window=window,
                                max_attempts=self.max_attempts, retries=dict(self.retries),
                                abandon_target=self.abandon_target,
                                ring_timeout=self.ring_timeout, extra=extra)


@dataclass(frozen=True, slots=True)
class LoadedCampaign:
    """A validated campaign file and where it lives."""

    path: Path
    spec: CampaignFile

    @property
    def base_dir(self) -> Path:
        """The folder relative paths are resolved against."""
        return self.path.parent

    @property
    def list_path(self) -> Path | None:
        """The contact list, resolved."""
        return (self.base_dir / self.spec.list_).resolve() if self.spec.list_ else None

    def settings(self) -> CampaignSettings:
        """The store's settings."""
        return self.spec.to_settings(self.base_dir)


def campaign_schema() -> dict[str, Any]:
    """JSON Schema of the campaign file (for editors and outside tools)."""
    schema = CampaignFile.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _problems(err: ValidationError, file: str, raw: Any) -> list[CampaignProblem]:
    from ivr_flows.yaml_lines import line_at
    out = []
    errors = err.errors(include_url=False)
    # ``agents`` is a list or a mapping: report the errors of the branch the file wrote.
    agents_branch = ("AgentsFromRouting" if isinstance(raw.get("agents"), Mapping)
                     else "list[str]")
    errors = [e for e in errors if not (e["loc"][:1] == ("agents",) and len(e["loc"]) > 1
                                        and e["loc"][1] in ("list[str]", "AgentsFromRouting")
                                        and e["loc"][1] != agents_branch)]
    for e in errors:
        if any(str(p).startswith("literal[") for p in e["loc"]) and any(
                x is not e and x["loc"][:1] == e["loc"][:1] for x in errors):
            continue  # the 'always' branch of window: the mapping branch's errors say more
        loc = tuple(p for p in e["loc"] if not str(p).startswith(("function-", "literal[")))
        loc = tuple(p for p in loc if p not in ("WindowSpec", "list[str]", "AgentsFromRouting"))
        where = ".".join(str(p) for p in loc)
        msg = e["msg"].removeprefix("Value error, ")
        out.append(CampaignProblem(file, line_at(raw, loc),
                                   f"{where}: {msg}" if where else msg))
    return out


def load_campaign_file(path: str | Path) -> LoadedCampaign:
    """Load and validate a campaign file; raise :class:`CampaignFileError` with every problem
    (file:line), including referenced files (list, flow, WAV prompts) that do not exist."""
    from ivr_flows.yaml_lines import line_at, load_text
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise CampaignFileError([CampaignProblem(file, None, f"cannot read: {e}")]) from e
    try:
        raw = load_text(text)
    except yaml.MarkedYAMLError as e:
        line = e.problem_mark.line + 1 if e.problem_mark else None
        raise CampaignFileError([CampaignProblem(file, line, f"bad YAML: {e.problem}")]) from e
    except yaml.YAMLError as e:
        raise CampaignFileError([CampaignProblem(file, None, f"bad YAML: {e}")]) from e
    if not isinstance(raw, Mapping):
        raise CampaignFileError([CampaignProblem(file, 1, "a campaign file is a mapping")])
    try:
        spec = CampaignFile.model_validate(dict(raw))
    except ValidationError as e:
        raise CampaignFileError(_problems(e, file, raw)) from e
    problems: list[CampaignProblem] = []
    base = path.parent
    for key in ("list", "flow", "machine_message", "safe_harbour_prompt"):
        value = getattr(spec, "list_" if key == "list" else key)
        given = raw.get(key)
        # (location in the file, value): a per-language prompt is checked entry by entry
        entries: list[tuple[tuple[str, ...], str | None]] = (
            [((key, str(tag)), str(v)) for tag, v in given.items()]
            if isinstance(value, dict) and isinstance(given, Mapping) else [((key,), value)])
        for loc, item in entries:
            is_file = key in ("list", "flow") or (item or "").endswith(WAV_SUFFIXES)
            if item and is_file and not (base / item).is_file():
                where = ".".join(loc)
                problems.append(CampaignProblem(file, line_at(raw, loc),
                                                f"{where}: no file {item!r} (relative to "
                                                f"{base})"))
    if problems:
        raise CampaignFileError(problems)
    return LoadedCampaign(path, spec)
