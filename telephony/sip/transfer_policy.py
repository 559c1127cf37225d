"""Which targets the node may be made to call: the node-wide transfer policy (sans-IO, pure).

A transfer makes Dialtone place a call to a URI somebody else chose: the peer of an inbound
REFER (RFC 3515), a flow's ``transfer`` node, a routing decision, or the bridge the Call
API falls back to when a peer refuses REFER.  Left open, that lets any caller make the node
dial premium numbers or open TCP connections to arbitrary hosts (request forgery), so every
such target is checked here first.

A policy is a tuple of :class:`TransferRule` patterns; a target is permitted when one rule
matches its scheme, host, port, transport and number.  Rules are written as URI-shaped
patterns (``sip:queue-*@pbx.example.com:5060;transport=udp``, ``tel:+4420*``) so they read
like the targets they admit; ``*`` globs (``fnmatch``); a missing number, host or port
means "any", a missing ``transport=`` means the scheme's default (udp for sip).

Inbound REFER is a separate switch (:attr:`TransferPolicy.inbound_refer`, off by default:
the REFER is answered 403) because it is the one path where an outside party, not the
node's own configuration, picks the target.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from telephony.errors import ConfigError, SipParseError

from .headers import SipUri

__all__ = ["TransferDecision", "TransferPolicy", "TransferRule", "normalise_number"]

# RFC 3966 5.1.1 visual separators, ignored when numbers are compared.
_VISUAL_SEPARATORS = str.maketrans("", "", "-.() ")
_SCHEMES = ("sip", "sips", "tel")


def normalise_number(text: str) -> str:
    """``+44 (20) 7946-0000`` -> ``+442079460000`` (RFC 3966 5.1.1 visual separators out)."""
    return text.translate(_VISUAL_SEPARATORS)


@dataclass(frozen=True, slots=True)
class _Target:
    """The parts of a target URI that rules compare (all lower case but the number)."""

    scheme: str
    number: str
    host: str
    port: int
    transport: str


def _target_parts(uri: str | SipUri) -> _Target:
    """Split a target; raises :class:`SipParseError` for what is not a sip/sips/tel URI."""
    parsed = uri if isinstance(uri, SipUri) else SipUri.parse(str(uri).strip().strip("<>"))
    scheme = parsed.scheme.lower()
    if scheme == "tel":
        # RFC 3966 3: tel:number;params - no host, port or transport.
        number = (parsed.opaque or "").split(";", 1)[0]
        return _Target("tel", normalise_number(number), "", 0, "")
    if scheme not in ("sip", "sips"):
        raise SipParseError(f"transfer target scheme {scheme!r} is not sip, sips or tel", 416)
    host, port = parsed.host_port
    return _Target(scheme, normalise_number(parsed.user or ""), host.lower(), port,
                   parsed.transport)


@dataclass(frozen=True, slots=True)
class TransferRule:
    """One allowed pattern.  ``None`` fields match anything; strings are ``fnmatch`` globs."""

    scheme: str = "sip"
    """``sip``, ``sips``, ``tel`` or ``*``."""
    number: str | None = None
    """Glob on the user part / telephone number, visual separators removed (``+4420*``)."""
    host: str | None = None
    """Glob on the host (lower case); ignored for ``tel:``."""
    port: int | None = None
    """Exact port (the scheme's default, 5060/5061, when the target names none)."""
    transport: str | None = None
    """``udp``, ``tcp``, ``tls`` or ``*`` (any), compared with the target's ``transport=``
    parameter.  None (no ``transport=`` in the pattern) admits the scheme's default only
    (udp for sip, tls for sips): a TCP target must be allowed explicitly, since a TCP
    connection to an arbitrary host:port is the request-forgery case."""

    def __post_init__(self) -> None:
        if self.scheme != "*" and self.scheme not in _SCHEMES:
            raise ConfigError(f"transfer rule scheme must be sip, sips, tel or *: {self.scheme!r}")
        if self.scheme != "tel" and self.number in (None, "*") and self.host in (None, "*"):
            # A rule that admits every SIP host is the open relay this policy exists to stop.
            raise ConfigError("a sip transfer rule must name a host (or a number pattern)")

    @classmethod
    def parse(cls, pattern: str) -> TransferRule:
        """``sip:+4420*@10.0.0.5:5060;transport=tcp``, ``sip:queue-*@pbx``, ``tel:+4420*``.

        Raises :class:`ConfigError` on a malformed pattern (this is configuration).
        """
        text = pattern.strip()
        scheme, colon, rest = text.partition(":")
        scheme = scheme.lower()
        if not colon or not rest:
            raise ConfigError(f"transfer rule {pattern!r}: expected scheme:pattern")
        if scheme == "tel":
            return cls("tel", normalise_number(rest.split(";", 1)[0]) or None)
        if scheme not in ("sip", "sips", "*"):
            raise ConfigError(f"transfer rule {pattern!r}: scheme must be sip, sips or tel")
        rest, _, params = rest.partition(";")
        transport: str | None = None
        for param in filter(None, params.split(";")):
            name, _, value = param.partition("=")
            if name.lower() != "transport" or not value:
                raise ConfigError(f"transfer rule {pattern!r}: only transport= is understood")
            transport = value.lower()
        number: str | None = None
        if "@" in rest:
            user, _, rest = rest.rpartition("@")
            number = normalise_number(user) or None
        host, port_text = rest, ""
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise ConfigError(f"transfer rule {pattern!r}: bad IPv6 reference")
            host, port_text = rest[1:end], rest[end + 1:].lstrip(":")
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
        port: int | None = None
        if port_text and port_text != "*":
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise ConfigError(f"transfer rule {pattern!r}: bad port {port_text!r}")
            port = int(port_text)
        return cls(scheme, number, host.lower() or None, port, transport)

    def matches(self, target: str | SipUri) -> bool:
        """True if ``target`` fits this rule; a target that does not parse never fits."""
        try:
            parts = _target_parts(target)
        except SipParseError:
            return False
        return self._matches(parts)

    def _matches(self, t: _Target) -> bool:
        if self.scheme != "*" and self.scheme != t.scheme:
            return False
        if self.number is not None and not fnmatchcase(t.number, self.number):
            return False
        if t.scheme == "tel":
            return True
        if self.host is not None and not fnmatchcase(t.host, self.host):
            return False
        if self.port is not None and self.port != t.port:
            return False
        if self.transport == "*":
            return True
        wanted = self.transport or ("tls" if t.scheme == "sips" else "udp")
        return wanted == t.transport

    def __str__(self) -> str:
        if self.scheme == "tel":
            return f"tel:{self.number or '*'}"
        user = f"{self.number}@" if self.number else ""
        port = f":{self.port}" if self.port is not None else ""
        transport = f";transport={self.transport}" if self.transport else ""
        host = self.host or "*"
        if ":" in host:
            host = f"[{host}]"  # RFC 3261 25.1 IPv6reference
        return f"{self.scheme}:{user}{host}{port}{transport}"


@dataclass(frozen=True, slots=True)
class TransferDecision:
    """Whether a target may be called, and why (for the log and the event)."""

    allowed: bool
    reason: str
    status: int = 403
    """The SIP status to refuse with when not allowed (403; 416 for an unusable scheme)."""

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class TransferPolicy:
    """The node-wide transfer policy (a configuration value).

    ``rules=None`` leaves transfers the node's own flows and routing ask for unrestricted
    (flows are already checked against their ``transfer_allow_list`` when loaded); a tuple,
    even empty, restricts every transfer, bridge and REFER-driven call to targets matching
    one rule.  ``inbound_refer`` must be set, with rules, before a peer's REFER is obeyed.
    """

    rules: tuple[TransferRule, ...] | None = None
    inbound_refer: bool = False
    """Obey inbound REFER (RFC 3515) for targets the rules permit; off: answer 403."""

    def __post_init__(self) -> None:
        if self.inbound_refer and self.rules is None:
            raise ConfigError("inbound REFER needs transfer rules (targets the peer may pick)")

    @classmethod
    def from_patterns(cls, patterns: list[str] | tuple[str, ...] | None, *,
                      inbound_refer: bool = False) -> TransferPolicy:
        """Build from rule patterns as written in configuration (see :meth:`TransferRule.parse`)."""
        rules = None if patterns is None else tuple(TransferRule.parse(p) for p in patterns)
        return cls(rules, inbound_refer)

    def permits(self, target: str | SipUri) -> TransferDecision:
        """May the node call ``target`` on behalf of a transfer?"""
        try:
            parts = _target_parts(target)
        except SipParseError as exc:
            return TransferDecision(False, f"unusable target: {exc.reason}", exc.status_hint)
        if self.rules is None:
            return TransferDecision(True, "no transfer rules configured")
        for rule in self.rules:
            if rule._matches(parts):
                return TransferDecision(True, f"matches {rule}")
        return TransferDecision(False, "no transfer rule matches the target")

    def permits_refer(self, target: str | SipUri) -> TransferDecision:
        """May a peer's REFER make the node call ``target``?  (403 unless enabled and permitted.)"""
        if not self.inbound_refer:
            return TransferDecision(False, "inbound REFER is disabled")
        return self.permits(target)
