"""SIP messages (RFC 3261 section 7): parse and serialise requests and responses.

Headers are kept as an ordered list of ``(name, value)`` pairs exactly as received
(unknown headers survive untouched); typed views (:class:`Via`, :class:`NameAddr`,
:class:`CSeq`...) are parsed on demand.  Compact forms are recognised on lookup
(``v`` is ``Via``) and folded lines are unfolded.  One parser serves UDP datagrams
(:func:`parse_datagram`) and TCP streams (:class:`SipStreamParser`), framing by
Content-Length (RFC 3261 18.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from telephony.errors import MessageTooLarge, SipParseError

from .headers import (
    ContentType,
    CSeq,
    NameAddr,
    SipUri,
    ValueWithParams,
    Via,
    split_comma_list,
    uint,
)

SIP_VERSION = "SIP/2.0"
DEFAULT_MAX_MESSAGE_SIZE = 65535

# RFC 3261 7.3.3, RFC 3515, RFC 3265/6665, RFC 4028, RFC 3892, RFC 4474.
COMPACT_FORMS = {
    "i": "Call-ID", "m": "Contact", "e": "Content-Encoding", "l": "Content-Length",
    "c": "Content-Type", "f": "From", "s": "Subject", "k": "Supported", "t": "To", "v": "Via",
    "r": "Refer-To", "b": "Referred-By", "o": "Event", "u": "Allow-Events", "x": "Session-Expires",
    "a": "Accept-Contact", "j": "Reject-Contact", "d": "Request-Disposition", "y": "Identity",
    "n": "Identity-Info",
}

# Canonical spelling for well-known headers (lookups are case-insensitive).
_CANONICAL = {name.lower(): name for name in (
    "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards", "Route", "Record-Route",
    "Content-Type", "Content-Length", "Content-Encoding", "Allow", "Supported", "Require",
    "Proxy-Require", "Unsupported", "Authorization", "WWW-Authenticate", "Proxy-Authorization",
    "Proxy-Authenticate", "Refer-To", "Referred-By", "Event", "Subscription-State", "Reason",
    "Session-Expires", "Min-SE", "Expires", "Min-Expires", "User-Agent", "Server", "Accept",
    "Allow-Events", "Subject", "Date", "Timestamp", "Warning", "Retry-After", "RSeq", "RAck",
    "Privacy", "P-Asserted-Identity", "Diversion", "Replaces", "Organization", "Accept-Language",
)}
_CANONICAL["www-authenticate"] = "WWW-Authenticate"
_CANONICAL["call-id"] = "Call-ID"
_CANONICAL["cseq"] = "CSeq"

# Headers whose value may be a comma-separated list of elements (RFC 3261 7.3.1).
# Authorization-family headers and Date are not: their values contain commas.
LIST_HEADERS = frozenset({
    "via", "contact", "route", "record-route", "allow", "supported", "require", "proxy-require",
    "unsupported", "accept", "accept-encoding", "accept-language", "allow-events", "content-encoding",
    "in-reply-to", "warning", "p-asserted-identity", "diversion",
})

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 200: "OK", 202: "Accepted", 204: "No Notification",
    300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
    410: "Gone", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 422: "Session Interval Too Small", 423: "Interval Too Brief",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable", 500: "Server Internal Error",
    501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large",
    600: "Busy Everywhere", 603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


# Header name -> lookup key (lower case, compact form expanded).  A bounded memo: names
# come from the network, so it stops growing at _KEY_CACHE_MAX entries.
_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 1024
_NAMES: dict[str, str] = {}
"""Header names as parsed -> one shared string each (bounded as ``_KEY_CACHE``): every
message kept (ended calls linger 32 s) would otherwise hold its own copy of each name."""


def header_key(name: str) -> str:
    """The case-insensitive, compact-form-expanded lookup key of a header name."""
    key = _KEY_CACHE.get(name)
    if key is None:
        low = name.lower()
        key = COMPACT_FORMS[low].lower() if len(low) == 1 and low in COMPACT_FORMS else low
        if len(_KEY_CACHE) < _KEY_CACHE_MAX:
            _KEY_CACHE[name] = key
    return key


def canonical_name(name: str) -> str:
    """The canonical spelling of a header name, expanding compact forms."""
    low = name.lower()
    if len(low) == 1 and low in COMPACT_FORMS:
        return COMPACT_FORMS[low]
    return _CANONICAL.get(low, name)


class Headers:
    """An ordered multi-map of header fields, case-insensitive, compact-form aware.

    ``items`` holds ``(name_as_written, value)``; a header line carrying a comma list stays
    one item (so it re-serialises as it came) while :meth:`get_all` returns its elements.
    Change ``items`` through the methods, or call :meth:`changed` after editing it in place:
    lookups go through an index (key -> raw values) built on the first one.
    """

    __slots__ = ("_index", "items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self.items: list[tuple[str, str]] = list(items)
        self._index: dict[str, list[str]] | None = None

    _key = staticmethod(header_key)

    def _build_index(self) -> dict[str, list[str]]:
        # A message is looked up ~10 times (mandatory headers, transaction and dialog
        # matching): one pass over the lines instead of one per lookup.
        index: dict[str, list[str]] = {}
        cache = _KEY_CACHE
        for n, v in self.items:
            key = cache.get(n) or header_key(n)
            values = index.get(key)
            if values is None:
                index[key] = [v]
            else:
                values.append(v)
        self._index = index
        return index

    def changed(self) -> None:
        """``items`` was edited in place: forget the lookup index."""
        self._index = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of the header (the whole line if it is a comma list)."""
        index = self._index
        if index is None:
            index = self._build_index()
        values = index.get(_KEY_CACHE.get(name) or header_key(name))
        return default if values is None else values[0]

    def get_all(self, name: str) -> list[str]:
        """Every element, across repeated lines and comma lists (for list headers)."""
        index = self._index
        if index is None:
            index = self._build_index()
        key = _KEY_CACHE.get(name) or header_key(name)
        values = index.get(key)
        if values is None:
            return []
        if key not in LIST_HEADERS:
            return list(values)
        out: list[str] = []
        for v in values:
            out.extend(split_comma_list(v))
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def add(self, name: str, value: str) -> None:
        self.items.append((name, value))
        self._index = None

    def prepend(self, name: str, value: str) -> None:
        self.items.insert(0, (name, value))
        self._index = None

    def set(self, name: str, value: str | None) -> None:
        """Replace every line of ``name`` by one (kept at the first one's place), or remove them."""
        key = self._key(name)
        pos = None
        kept: list[tuple[str, str]] = []
        for n, v in self.items:
            if self._key(n) == key:
                if pos is None:
                    pos = len(kept)
            else:
                kept.append((n, v))
        if value is not None:
            kept.insert(len(kept) if pos is None else pos, (canonical_name(name), value))
        self.items = kept
        self._index = None

    def remove(self, name: str) -> None:
        self.set(name, None)

    def copy(self) -> Headers:
        return Headers(self.items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"Headers({self.items!r})"


# Typed header values shared between messages, keyed by (kind, raw text): the responses of
# a call repeat its Via, From, To and CSeq byte for byte (100, 180, 200; the BYE's 200), and
# "1 INVITE" is every call's CSeq, so each is parsed once, not once per message.  The
# values are frozen (their params dicts are never changed after parsing), so sharing is
# safe.  The memo is bounded, as two generations of at most _SHARED_VIEWS_MAX entries (raw
# texts come from the network): when the young one is full it becomes the old one and the
# previous old one is dropped; a hit in the old one moves the entry back to the young one.
# An entry so lives at least _SHARED_VIEWS_MAX insertions after its last use: at 100 call
# attempts a second and ~5 new texts an attempt, about 4 s, as long as a dialer's machine
# call holds its line before the BYE (a miss only costs a parse).  Full, the two hold up to
# ~3.3 MiB of parsed values (unique Vias and name-addrs, tracemalloc).
_SHARED_VIEWS: dict[tuple[str, str], Any] = {}
_OLD_VIEWS: dict[tuple[str, str], Any] = {}
_SHARED_VIEWS_MAX = 2048


def share_view(kind: str, raw: str, value: Any) -> None:
    """Remember ``value`` as the parse of header text ``raw`` (a :meth:`SipMessage._view`
    kind: "via", "na", "cseq"); the endpoint primes it with the values it formats itself."""
    global _SHARED_VIEWS, _OLD_VIEWS
    if len(_SHARED_VIEWS) >= _SHARED_VIEWS_MAX:
        _OLD_VIEWS = _SHARED_VIEWS
        _SHARED_VIEWS = {}
    _SHARED_VIEWS[(kind, raw)] = value


def shared_view(key: tuple[str, str]) -> Any:
    """The remembered parse of ``key`` (kind, raw text), or None."""
    value = _SHARED_VIEWS.get(key)
    if value is None:
        value = _OLD_VIEWS.get(key)
        if value is not None:
            share_view(key[0], key[1], value)
    return value


def _parse_top_via(value: str) -> Via:
    parts = split_comma_list(value)
    if not parts:
        raise SipParseError("Empty Via")
    return Via.parse(parts[0])


class SipMessage:
    """What requests and responses share: headers, body and typed header views."""

    __slots__ = ("_views", "body", "headers")
    is_request: ClassVar[bool]

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = headers if headers is not None else Headers()
        self.body = body
        self._views: dict[tuple[str, str], Any] | None = None

    # --- typed views (RFC 3261 section 20) ---------------------------------------------------
    # Parsed values are memoised per message, keyed by the raw text they came from, so a
    # header edited afterwards is simply parsed again (no invalidation needed).

    def drop_views(self) -> None:
        """Forget the parsed header values (asked for again, they are parsed again).

        A message kept only to match retransmissions (an ended call's INVITE, an answered
        request's transaction lingering for timer J or L) need not hold them: they are
        most of its memory (issue 12: thousands of ended calls linger 32 s after a burst).
        The header lookup index goes too."""
        self._views = None
        self.headers.changed()

    def _view(self, kind: str, raw: str, parser: Callable[[str], Any]) -> Any:
        views = self._views
        if views is None:
            views = self._views = {}
        key = (kind, raw)
        value = views.get(key)
        if value is None:
            value = shared_view(key)
            if value is None:
                value = parser(raw)
                share_view(kind, raw, value)
            views[key] = value
        return value

    @property
    def vias(self) -> list[Via]:
        return [self._view("via", v, Via.parse) for v in self.headers.get_all("Via")]

    @property
    def top_via(self) -> Via:
        value = self.headers.get("Via")
        if value is None:
            raise SipParseError("Missing Via")
        if "," not in value:  # one hop on the line: the same value as vias[0]
            return self._view("via", value, Via.parse)  # type: ignore[no-any-return]
        return self._view("top_via", value, _parse_top_via)  # type: ignore[no-any-return]

    @property
    def from_(self) -> NameAddr:
        return self._view("na", self._required("From"), NameAddr.parse)  # type: ignore[no-any-return]

    @property
    def to(self) -> NameAddr:
        return self._view("na", self._required("To"), NameAddr.parse)  # type: ignore[no-any-return]

    @property
    def call_id(self) -> str:
        return self._required("Call-ID").strip()

    @property
    def cseq(self) -> CSeq:
        return self._view("cseq", self._required("CSeq"), CSeq.parse)  # type: ignore[no-any-return]

    @property
    def contacts(self) -> list[NameAddr]:
        return [self._view("na", v, NameAddr.parse) for v in self.headers.get_all("Contact")]

    @property
    def routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Route")]

    @property
    def record_routes(self) -> list[NameAddr]:
        return [NameAddr.parse(v) for v in self.headers.get_all("Record-Route")]

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        if value is None:
            return None
        value = value.strip()
        hops = uint(value, 3)
        if hops is None or hops > 255:
            raise SipParseError(f"Bad Max-Forwards {value!r}")
        return hops

    @property
    def content_type(self) -> ContentType | None:
        value = self.headers.get("Content-Type")
        return None if value is None else ContentType.parse(value)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        if value is None:
            return None
        value = value.strip()
        seconds = uint(value)
        if seconds is None:
            raise SipParseError(f"Bad Expires {value!r}")
        return seconds

    def tokens(self, name: str) -> list[str]:
        """A token-list header (Allow, Supported, Require...), lower-cased for options."""
        values = self.headers.get_all(name)
        if name.lower() in ("allow",):
            return [v.upper() for v in values]
        return [v.lower() for v in values]

    def param_header(self, name: str) -> ValueWithParams | None:
        """Event, Subscription-State, Session-Expires, Reason, Min-SE..."""
        value = self.headers.get(name)
        return None if value is None else ValueWithParams.parse(value)

    @property
    def refer_to(self) -> NameAddr | None:
        value = self.headers.get("Refer-To")
        return None if value is None else NameAddr.parse(value)

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise SipParseError(f"Missing {name}")
        return value

    # --- serialisation -----------------------------------------------------------------------

    def start_line(self) -> str:
        raise NotImplementedError

    def serialize(self) -> bytes:
        """The message as bytes; Content-Length is (re)written to match the body."""
        lines = [self.start_line()]
        has_length = False
        length = str(len(self.body))
        for name, value in self.headers.items:
            # only "Content-Length" and its compact form "l" can be the length header
            if name[:1] in "CcLl" and header_key(name) == "content-length":
                if has_length:
                    continue
                has_length = True
                if value.strip() != length:
                    value = length
            lines.append(f"{name}: {value}" if value else f"{name}:")
        if not has_length:
            lines.append("Content-Length: " + length)
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8") + self.body

    __bytes__ = serialize

    def check_mandatory(self) -> None:
        """Raise :class:`SipParseError` naming the first missing or malformed mandatory header
        (RFC 3261 8.1.1: To, From, CSeq, Call-ID, Max-Forwards (requests), Via)."""
        _ = (self.top_via, self.vias, self.from_, self.to, self.call_id, self.cseq)
        if self.is_request:
            _ = self.max_forwards


class SipRequest(SipMessage):
    """A SIP request.  ``uri`` is the Request-URI."""

    __slots__ = ("method", "uri", "version")
    is_request = True

    def __init__(self, method: str, uri: SipUri | str, headers: Headers | None = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        super().__init__(headers, body)
        self.method = method
        self.uri = uri if isinstance(uri, SipUri) else SipUri.parse(uri)
        self.version = version

    def start_line(self) -> str:
        return f"{self.method} {self.uri} {self.version}"

    def check_mandatory(self) -> None:
        super().check_mandatory()
        cseq = self.cseq
        if cseq.method != self.method and not (self.method == "ACK" and cseq.method == "INVITE"):
            # RFC 3261 8.1.1.5: the CSeq method must match the request method.
            raise SipParseError("CSeq method does not match request method")

    def __repr__(self) -> str:
        return f"<SipRequest {self.method} {self.uri}>"


class SipResponse(SipMessage):
    __slots__ = ("reason", "status", "version")
    is_request = False

    def __init__(self, status: int, reason: str | None = None, headers: Headers | None = None,
                 body: bytes = b"", version: str = SIP_VERSION) -> None:
        super().__init__(headers, body)
        self.status = status
        self.reason = REASON_PHRASES.get(status, "Unknown") if reason is None else reason
        self.version = version

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<SipResponse {self.status} {self.reason}>"


# --- parsing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ParseLimits:
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    max_headers: int = 256


DEFAULT_LIMITS = ParseLimits()

_METHOD_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~")


def _parse_head(head: bytes, limits: ParseLimits) -> tuple[SipMessage, int | None]:
    """Parse the start line and headers; returns the message and the Content-Length (or None)."""
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    # CRLF ends a line (RFC 3261 7.3.1); a bare LF is tolerated as one too, everywhere, so no
    # header value can carry a line break that a response echoing it (Call-ID, Via, From,
    # To, CSeq) would send on as a header of its own.
    raw_lines = text.replace("\r\n", "\n").split("\n")
    # RFC 3261 7.5: tolerate leading CRLFs (keep-alives on streams are handled by the framer).
    while raw_lines and raw_lines[0] == "":
        raw_lines.pop(0)
    if not raw_lines:
        raise SipParseError("Empty message")
    start = raw_lines[0]
    headers = Headers()
    items = headers.items
    bad_line: SipParseError | None = None
    for line in raw_lines[1:]:
        if not line:
            continue
        if line[0] in " \t":  # RFC 3261 7.3.1 folded line: continuation of the previous value.
            if not items:
                raise SipParseError("Continuation line before any header")
            name, value = items[-1]
            items[-1] = (name, value + " " + line.strip())
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip()
        if not colon or not name or " " in name or "\t" in name or "\r" in line:
            # Keep going: enough may parse to answer 400 naming this line (RFC 3261 8.2).
            if bad_line is None:
                bad_line = SipParseError(f"Malformed header line {line[:40]!r}")
            continue
        shared = _NAMES.get(name)
        if shared is not None:
            name = shared
        elif len(_NAMES) < _KEY_CACHE_MAX:
            _NAMES[name] = name
        # Keep extra leading spaces (sipp pads Content-Length) so the line re-serialises
        # byte for byte; readers strip.
        items.append((name, value[1:].rstrip() if value[:1] == " " else value.strip()))
        if len(items) > limits.max_headers:
            raise SipParseError("Too many headers")

    msg: SipMessage
    if start.startswith("SIP/"):
        parts = start.split(" ", 2)
        code = parts[1] if len(parts) >= 2 else ""
        # RFC 3261 25.1: Status-Code = 3DIGIT (ASCII; not "\x1c80", which str.strip() and so
        # uint() would take for "80" while int() refuses it).
        if len(code) != 3 or not code.isascii() or not code.isdigit():
            raise SipParseError(f"Malformed status line {start[:60]!r}")
        if parts[0] != SIP_VERSION:
            raise SipParseError(f"Unsupported SIP version {parts[0]!r}", status_hint=505)
        status = int(code)
        if not 100 <= status <= 699:
            raise SipParseError(f"Status code out of range: {status}")
        msg = SipResponse(status, parts[2] if len(parts) > 2 else "", headers)
    else:
        parts = start.split(" ")
        if len(parts) != 3 or not parts[0] or not set(parts[0]) <= _METHOD_CHARS:
            raise SipParseError(f"Malformed request line {start[:60]!r}")
        method, uri_text, version = parts
        if not version.startswith("SIP/"):
            raise SipParseError(f"Malformed request line {start[:60]!r}")
        try:
            uri = SipUri.parse(uri_text)
        except SipParseError as exc:
            # Answerable: keep the text so a 400 can still be built from the headers.
            msg = SipRequest(method, SipUri(scheme="invalid", opaque=uri_text), headers,
                             version=version)
            raise IncompleteParse(msg, SipParseError(f"Bad Request-URI: {exc.reason}")) from exc
        msg = SipRequest(method, uri, headers, version=version)
        if version != SIP_VERSION:
            raise IncompleteParse(msg, SipParseError(f"Unsupported SIP version {version!r}", 505))

    if bad_line is not None:
        raise IncompleteParse(msg, bad_line)
    length_text = headers.get("Content-Length")
    length: int | None = None
    if length_text is not None:
        length_text = length_text.strip()
        parsed = uint(length_text)
        if parsed is None:
            raise IncompleteParse(msg, SipParseError(f"Bad Content-Length {length_text!r}"))
        length = parsed
        if length > limits.max_message_size:
            raise MessageTooLarge()
    return msg, length


class IncompleteParse(SipParseError):
    """A message whose start line and headers parsed but which is still bad.

    ``message`` holds what parsed, so a server can answer it (400/505 with the request's
    Via, From, To, Call-ID and CSeq copied) rather than drop it.
    """

    def __init__(self, message: SipMessage, cause: SipParseError) -> None:
        super().__init__(cause.reason, cause.status_hint)
        self.message = message


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    idx = data.find(b"\r\n\r\n")
    if idx >= 0:
        return data[:idx], data[idx + 4 :]
    idx = data.find(b"\n\n")  # bare-LF peers
    if idx >= 0:
        return data[:idx], data[idx + 2 :]
    return None


def parse_datagram(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMessage:
    """Parse one SIP message from a UDP datagram (RFC 3261 18.3).

    Without Content-Length the body is the rest of the datagram; with one, a longer
    datagram is truncated to it and a shorter one is an error.
    Raises :class:`SipParseError` (or :class:`IncompleteParse` carrying what parsed).
    """
    if len(data) > limits.max_message_size:
        raise MessageTooLarge()
    parts = _split_head(data)
    if parts is None:
        # A datagram with headers but no blank line: accept if it ends the header block.
        head, rest = data.rstrip(b"\r\n"), b""
    else:
        head, rest = parts
    msg, length = _parse_head(head, limits)
    if length is None:
        msg.body = rest
    elif length > len(rest):
        raise IncompleteParse(msg, SipParseError("Content-Length larger than body"))
    else:
        msg.body = rest[:length]
    return msg


def parse_message(data: bytes, limits: ParseLimits = DEFAULT_LIMITS) -> SipMessage:
    """Parse exactly one complete message (tests and fixtures)."""
    return parse_datagram(data, limits)


class SipStreamParser:
    """Frames SIP messages out of a byte stream (TCP/TLS) by Content-Length (RFC 3261 18.3).

    ``feed(data)`` then iterate :meth:`messages`; a framing error is raised once and the
    stream must then be closed (there is no way to resynchronise).  CRLF keep-alives
    (RFC 5626 4.4.1) are skipped and counted in ``keepalives``.
    """

    def __init__(self, limits: ParseLimits = DEFAULT_LIMITS) -> None:
        self._buf = bytearray()
        self._limits = limits
        self.keepalives = 0

    def feed(self, data: bytes) -> None:
        self._buf += data
        if len(self._buf) > 2 * self._limits.max_message_size:
            raise MessageTooLarge()

    @property
    def buffered(self) -> int:
        """Bytes held of a message not yet complete (0 between messages)."""
        return len(self._buf)

    def next_message(self) -> SipMessage | None:
        """The next complete message, or None if more bytes are needed."""
        buf = self._buf
        while buf[:2] == b"\r\n":
            del buf[:2]
            self.keepalives += 1
        if not buf:
            return None
        idx = buf.find(b"\r\n\r\n")
        sep = 4
        if idx < 0:
            idx = buf.find(b"\n\n")
            sep = 2
        if idx < 0:
            if len(buf) > self._limits.max_message_size:
                raise MessageTooLarge()
            return None
        head = bytes(buf[:idx])
        msg, length = _parse_head(head, self._limits)
        if length is None:
            # RFC 3261 18.3: Content-Length is mandatory on streams.
            raise SipParseError("Missing Content-Length on stream transport")
        end = idx + sep + length
        if len(buf) < end:
            return None
        msg.body = bytes(buf[idx + sep : end])
        del buf[:end]
        return msg

    def messages(self) -> Iterator[SipMessage]:
        while (msg := self.next_message()) is not None:
            yield msg


# --- building --------------------------------------------------------------------------------


def make_response(request: SipRequest, status: int, reason: str | None = None, *,
                  to_tag: str | None = None, headers: Iterable[tuple[str, str]] = (),
                  body: bytes = b"") -> SipResponse:
    """A response to ``request`` (RFC 3261 8.2.6.2): Via, From, To, Call-ID, CSeq copied
    verbatim (so this works for requests whose other headers are malformed), a To tag added
    when given and absent, Record-Route copied for 18x/2xx to dialog-creating requests."""
    hdrs = Headers()
    req = request.headers
    for name, value in req.items:
        key = Headers._key(name)
        if key in ("via", "from", "call-id", "cseq"):
            hdrs.add(canonical_name(name), value)
        elif key == "to":
            if to_tag and status != 100 and ";tag=" not in value.replace(" ", "").lower():
                value = f"{value};tag={to_tag}"
            hdrs.add("To", value)
        elif key == "record-route" and 100 < status < 300:
            hdrs.add("Record-Route", value)
    for name, value in headers:
        hdrs.add(name, value)
    return SipResponse(status, reason, hdrs, body)
