"""Typed SIP header values (RFC 3261 section 20 and 25.1): URIs, name-addr, Via, CSeq.

Each type has ``parse(text)`` and ``__str__`` (the serialisation).  Parsing is strict
enough to reject garbage with :class:`SipParseError` naming the header, lenient about
whitespace, and keeps unknown parameters in order so a value re-serialises as it came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from telephony.errors import SipParseError

# Parameters keep their order; a flag parameter (";lr") has the value None.
Params = dict[str, str | None]

_TOKEN_RE = re.compile(r"^[A-Za-z0-9\-.!%*_+`'~]+$")
_HOST_RE = re.compile(r"^[A-Za-z0-9\-.]+$")
_SCHEME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*$")


def uint(text: str | None, max_digits: int = 10) -> int | None:
    """A non-negative ASCII decimal of at most ``max_digits`` digits, else None (no
    Unicode digits, no 5000-digit numbers that ``int()`` refuses)."""
    if text is None:
        return None
    text = text.strip()
    if not text or len(text) > max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def split_params(text: str) -> tuple[str, Params]:
    """Split ``value;a=b;c`` into ``("value", {"a": "b", "c": None})``, honouring quotes."""
    parts = split_quoted(text, ";")
    head = parts[0].strip()
    params: Params = {}
    for part in parts[1:]:
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        params[name.strip().lower() if name.strip().lower() in _CASELESS_PARAMS else name.strip()] = (
            value.strip() if eq else None
        )
    return head, params


# Parameter names compared case-insensitively (RFC 3261 19.1.4, 20.42); we store them lower-cased.
_CASELESS_PARAMS = {"tag", "branch", "received", "rport", "transport", "lr", "maddr", "ttl",
                    "user", "method", "expires", "q", "ob"}


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())


def split_quoted(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside double quotes and angle brackets (RFC 3261 7.3.1)."""
    if '"' not in text and "<" not in text:
        return text.split(sep)
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == sep and depth == 0:
            out.append(text[start:i])
            start = i + 1
        i += 1
    out.append(text[start:])
    return out


def split_comma_list(text: str) -> list[str]:
    """Split a comma-separated header value (RFC 3261 7.3.1) into its elements."""
    return [p.strip() for p in split_quoted(text, ",") if p.strip()]


@dataclass(frozen=True, slots=True)
class SipUri:
    """A SIP or SIPS URI (RFC 3261 19.1).  Other schemes (tel:, urn:) keep their text in ``opaque``."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = field(default_factory=dict)
    headers: str | None = None
    opaque: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip()
        scheme, colon, rest = text.partition(":")
        if not colon or not scheme:
            raise SipParseError(f"Bad URI {text!r}")
        scheme_l = scheme.lower()
        if scheme_l not in ("sip", "sips"):
            if not _SCHEME_RE.match(scheme):
                raise SipParseError(f"Bad URI scheme in {text!r}")
            return cls(scheme=scheme_l, opaque=rest)
        hdrs: str | None = None
        if "?" in rest:
            rest, _, hdrs = rest.partition("?")
        userinfo: str | None = None
        if "@" in rest:
            userinfo, _, rest = rest.rpartition("@")
        hostport, params = split_params(rest)
        user = password = None
        if userinfo is not None:
            user, pc, pw = userinfo.partition(":")
            password = pw if pc else None
            if not user:
                raise SipParseError(f"Bad URI user in {text!r}")
        host, port = parse_hostport(hostport, what="URI")
        return cls(scheme_l, user, password, host, port, params, hdrs)

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(self.user)
            if self.password is not None:
                out.append(":" + self.password)
            out.append("@")
        out.append(format_hostport(self.host, self.port))
        out.append(format_params(self.params))
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)

    def with_params(self, **params: str | None) -> SipUri:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)

    @property
    def transport(self) -> str:
        t = self.params.get("transport")
        return (t or ("tls" if self.scheme == "sips" else "udp")).lower()

    @property
    def host_port(self) -> tuple[str, int]:
        """Where to send (RFC 3263 without DNS: an address or name, default port 5060/5061)."""
        return self.host.strip("[]"), self.port or (5061 if self.scheme == "sips" else 5060)


def parse_hostport(text: str, *, what: str) -> tuple[str, int | None]:
    text = text.strip()
    if not text:
        raise SipParseError(f"Missing host in {what}")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise SipParseError(f"Bad IPv6 reference in {what}")
        host, rest = text[: end + 1], text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise SipParseError(f"Bad host in {what}")
        port_s = rest[1:] if rest else ""
    else:
        host, _, port_s = text.partition(":")
        if not host or not _HOST_RE.match(host):
            raise SipParseError(f"Bad host {host!r} in {what}")
    port: int | None = None
    if port_s:
        port = uint(port_s, 5)
        if port is None or not 0 < port < 65536:
            raise SipParseError(f"Bad port {port_s!r} in {what}")
    return host, port


def format_hostport(host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``"Display" <uri>;params`` as used by From, To, Contact, Route, Refer-To (RFC 3261 20.10)."""

    uri: SipUri
    display_name: str | None = None
    params: Params = field(default_factory=dict)
    wildcard: bool = False
    """``Contact: *`` (RFC 3261 10.2.2)."""

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        if text == "*":
            return cls(uri=SipUri(), wildcard=True)
        display: str | None = None
        if "<" in text:
            before, _, after = text.partition("<")
            uri_text, close, tail = after.partition(">")
            if not close:
                raise SipParseError(f"Unclosed '<' in {text!r}")
            before = before.strip()
            if before.startswith('"'):
                if len(before) < 2 or not before.endswith('"'):
                    raise SipParseError(f"Bad display name in {text!r}")
                display = before[1:-1].replace('\\"', '"').replace("\\\\", "\\")
            elif before:
                display = before
            _, params = split_params(tail)
            uri = SipUri.parse(uri_text)
        else:
            # addr-spec form: parameters after the URI belong to the header, not the URI.
            uri_text, params = split_params(text)
            uri = SipUri.parse(uri_text)
        return cls(uri=uri, display_name=display, params=params)

    def __str__(self) -> str:
        if self.wildcard:
            return "*"
        out = ""
        if self.display_name is not None:
            dn = self.display_name
            if _TOKEN_RE.match(dn.replace(" ", "")) and dn == dn.strip():
                out = f'"{dn}" '
            else:
                out = '"' + dn.replace("\\", "\\\\").replace('"', '\\"') + '" '
        return f"{out}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def with_tag(self, tag: str) -> NameAddr:
        params = dict(self.params)
        params["tag"] = tag
        return replace(self, params=params)


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop (RFC 3261 20.42): ``SIP/2.0/UDP host:port;branch=z9hG4bK...;rport``."""

    transport: str
    host: str
    port: int | None = None
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> Via:
        sent, params = split_params(text)
        proto, _, sent_by = sent.strip().partition(" ")
        if not sent_by:
            # tolerate "SIP/2.0/UDP\thost"
            proto, _, sent_by = sent.strip().partition("\t")
        pieces = [p.strip() for p in proto.split("/")]
        if len(pieces) != 3 or pieces[0].upper() != "SIP" or not pieces[2]:
            raise SipParseError(f"Bad Via protocol {proto!r}")
        host, port = parse_hostport(sent_by.strip(), what="Via")
        return cls(pieces[2].upper(), host, port, params)

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {format_hostport(self.host, self.port)}{format_params(self.params)}"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def with_params(self, **params: str | None) -> Via:
        merged = dict(self.params)
        merged.update(params)
        return replace(self, params=merged)


@dataclass(frozen=True, slots=True)
class CSeq:
    seq: int
    method: str

    @classmethod
    def parse(cls, text: str) -> CSeq:
        num, _, method = text.strip().partition(" ")
        method = method.strip()
        seq = uint(num)
        if seq is None or not method or not _TOKEN_RE.match(method):
            raise SipParseError(f"Bad CSeq {text!r}")
        if seq >= 2**31:  # RFC 3261 8.1.1.5
            raise SipParseError("CSeq number too large")
        return cls(seq, method)

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


@dataclass(frozen=True, slots=True)
class ContentType:
    type: str
    subtype: str
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ContentType:
        head, params = split_params(text)
        t, slash, s = head.partition("/")
        if not slash or not t.strip() or not s.strip():
            raise SipParseError(f"Bad Content-Type {text!r}")
        return cls(t.strip().lower(), s.strip().lower(), params)

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}"

    def __str__(self) -> str:
        return f"{self.mime}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class ValueWithParams:
    """A token with parameters: Event, Subscription-State, Session-Expires, Reason, Retry-After."""

    value: str
    params: Params = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> ValueWithParams:
        head, params = split_params(text)
        if not head:
            raise SipParseError(f"Empty value in {text!r}")
        return cls(head, params)

    def __str__(self) -> str:
        return f"{self.value}{format_params(self.params)}"


def unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
