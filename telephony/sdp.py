"""SDP (RFC 4566) parse/serialize and the RFC 3264 offer/answer model for audio calls.

Sans-IO and pure: strings in, dataclasses and strings out.  The model keeps every
line it does not interpret (unknown attributes verbatim, unknown line types per
section) so that parsing and re-serialising a conforming body gives the same bytes.

Lenient where real peers are sloppy (LF-only line ends, blank lines, lines out of
RFC 4566 section 5 order within a section), strict where the meaning would be
guessed (bad numbers, missing ``v=``/``o=``/``m=`` fields): those raise
:class:`~telephony.errors.SdpError`, and nothing else is raised on any input.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Literal

from telephony.errors import SdpError

__all__ = [
    "STATIC_PAYLOAD_TYPES",
    "Attribute",
    "Bandwidth",
    "Connection",
    "Direction",
    "MediaDescription",
    "NegotiatedMedia",
    "Origin",
    "RtcpAttribute",
    "RtpMap",
    "SdpSession",
    "SessionDescription",
    "SsrcAttribute",
    "Timing",
    "answer_offer",
    "build_offer",
    "parse_answer",
]

Direction = Literal["sendrecv", "sendonly", "recvonly", "inactive"]
DIRECTIONS: frozenset[str] = frozenset({"sendrecv", "sendonly", "recvonly", "inactive"})

_CRLF = "\r\n"
_DIGITS = re.compile(r"[0-9]+\Z")
_TYPE_RE = re.compile(r"[a-z]\Z")
# Largest integer we accept in numeric fields: o= ids are "numeric strings" of any
# length in theory, in practice at most 64 bits; more is garbage.
_MAX_INT_DIGITS = 20


@dataclass(frozen=True, slots=True)
class RtpMap:
    """One ``a=rtpmap`` (RFC 4566 6) or a static payload type (RFC 3551 6)."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int | None = None

    def serialize(self) -> str:
        """The attribute value: ``<pt> <encoding>/<clock>[/<channels>]``."""
        tail = f"/{self.channels}" if self.channels is not None else ""
        return f"{self.payload_type} {self.encoding}/{self.clock_rate}{tail}"


# RFC 3551 section 6, table 4: audio payload types usable without an rtpmap.
STATIC_PAYLOAD_TYPES: dict[int, RtpMap] = {
    0: RtpMap(0, "PCMU", 8000, 1),
    3: RtpMap(3, "GSM", 8000, 1),
    4: RtpMap(4, "G723", 8000, 1),
    5: RtpMap(5, "DVI4", 8000, 1),
    6: RtpMap(6, "DVI4", 16000, 1),
    7: RtpMap(7, "LPC", 8000, 1),
    8: RtpMap(8, "PCMA", 8000, 1),
    9: RtpMap(9, "G722", 8000, 1),  # RTP clock 8000 although sampled at 16 kHz
    10: RtpMap(10, "L16", 44100, 2),
    11: RtpMap(11, "L16", 44100, 1),
    12: RtpMap(12, "QCELP", 8000, 1),
    13: RtpMap(13, "CN", 8000, 1),
    14: RtpMap(14, "MPA", 90000, None),
    15: RtpMap(15, "G728", 8000, 1),
    16: RtpMap(16, "DVI4", 11025, 1),
    17: RtpMap(17, "DVI4", 22050, 1),
    18: RtpMap(18, "G729", 8000, 1),
}
_STATIC_BY_NAME: dict[str, int] = {
    m.encoding.upper(): pt for pt, m in STATIC_PAYLOAD_TYPES.items() if m.clock_rate == 8000
}


def _int(text: str, what: str, *, maximum: int | None = None) -> int:
    """A non-negative decimal integer, or SdpError naming ``what``."""
    if not _DIGITS.match(text) or len(text) > _MAX_INT_DIGITS:
        raise SdpError(f"bad {what}: {text[:40]!r}")
    value = int(text)
    if maximum is not None and value > maximum:
        raise SdpError(f"{what} out of range: {value}")
    return value


# ipaddress costs ~10 us a call and every offer and answer asks about the same few
# addresses: both answers are memoised (bounded; addresses come from the network).
_ADDR_MEMO: dict[str, tuple[str, bool]] = {}
_ADDR_MEMO_MAX = 256


def _address_facts(address: str) -> tuple[str, bool]:
    facts = _ADDR_MEMO.get(address)
    if facts is None:
        try:
            ip = ipaddress.ip_address(address)
            facts = ("IP6" if ip.version == 6 else "IP4", ip.is_unspecified)
        except ValueError:
            facts = ("IP4", False)
        if len(_ADDR_MEMO) >= _ADDR_MEMO_MAX:
            _ADDR_MEMO.clear()
        _ADDR_MEMO[address] = facts
    return facts


def _addrtype_of(address: str) -> str:
    """``IP4`` or ``IP6`` for a literal address (``IP4`` for host names)."""
    return _address_facts(address)[0]


def _is_zero_address(address: str) -> bool:
    """RFC 3264 8.4 / RFC 2543 hold: ``c=IN IP4 0.0.0.0`` (and ``::`` for IP6)."""
    return _address_facts(address)[1]


# --- model -------------------------------------------------------------------------------


@dataclass(slots=True)
class Origin:
    """``o=<username> <sess-id> <sess-version> <nettype> <addrtype> <address>`` (RFC 4566 5.2)."""

    username: str
    sess_id: int
    sess_version: int
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "127.0.0.1"

    @classmethod
    def parse(cls, value: str) -> Origin:
        """Parse the value of an ``o=`` line."""
        parts = value.split(" ")
        if len(parts) != 6 or not all(parts):
            raise SdpError(f"o= needs 6 fields: {value[:80]!r}")
        return cls(
            parts[0],
            _int(parts[1], "o= sess-id"),
            _int(parts[2], "o= sess-version"),
            parts[3],
            parts[4],
            parts[5],
        )

    def serialize(self) -> str:
        """The value of the ``o=`` line."""
        return (
            f"{self.username} {self.sess_id} {self.sess_version} "
            f"{self.nettype} {self.addrtype} {self.address}"
        )


@dataclass(slots=True)
class Connection:
    """``c=<nettype> <addrtype> <address>[/<ttl>][/<count>]`` (RFC 4566 5.7)."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"
    ttl: int | None = None
    count: int | None = None

    @classmethod
    def parse(cls, value: str) -> Connection:
        """Parse the value of a ``c=`` line."""
        parts = value.split(" ")
        if len(parts) != 3 or not all(parts):
            raise SdpError(f"c= needs 3 fields: {value[:80]!r}")
        nettype, addrtype, addr = parts
        pieces = addr.split("/")
        if not pieces[0] or len(pieces) > 3:
            raise SdpError(f"bad c= address: {addr[:80]!r}")
        ttl: int | None = None
        count: int | None = None
        if addrtype == "IP4" and len(pieces) >= 2:
            # RFC 4566 5.7: IP4 multicast carries /ttl then optional /count.
            ttl = _int(pieces[1], "c= ttl", maximum=255)
            if len(pieces) == 3:
                count = _int(pieces[2], "c= address count")
        elif len(pieces) == 2:
            count = _int(pieces[1], "c= address count")
        elif len(pieces) == 3:
            raise SdpError(f"bad c= address: {addr[:80]!r}")
        return cls(pieces[0], addrtype, nettype, ttl, count)

    @classmethod
    def for_address(cls, address: str) -> Connection:
        """An ``IN IP4``/``IN IP6`` connection for a literal address."""
        return cls(address, _addrtype_of(address))

    def serialize(self) -> str:
        """The value of the ``c=`` line."""
        addr = self.address
        if self.ttl is not None:
            addr += f"/{self.ttl}"
        if self.count is not None:
            addr += f"/{self.count}"
        return f"{self.nettype} {self.addrtype} {addr}"

    @property
    def is_hold(self) -> bool:
        """True for the RFC 2543 hold address ``0.0.0.0`` (or ``::``)."""
        return _is_zero_address(self.address)


@dataclass(slots=True)
class Bandwidth:
    """``b=<bwtype>:<bandwidth>`` (RFC 4566 5.8), bandwidth in kbit/s (or bit/s for TIAS)."""

    bwtype: str
    bandwidth: int

    @classmethod
    def parse(cls, value: str) -> Bandwidth:
        """Parse the value of a ``b=`` line."""
        bwtype, sep, amount = value.partition(":")
        if not sep or not bwtype:
            raise SdpError(f"bad b= line: {value[:80]!r}")
        return cls(bwtype, _int(amount, "b= bandwidth"))

    def serialize(self) -> str:
        """The value of the ``b=`` line."""
        return f"{self.bwtype}:{self.bandwidth}"


@dataclass(slots=True)
class Timing:
    """``t=<start> <stop>`` with its ``r=`` repeat lines kept verbatim (RFC 4566 5.9/5.10)."""

    start: int = 0
    stop: int = 0
    repeats: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, value: str) -> Timing:
        """Parse the value of a ``t=`` line."""
        parts = value.split(" ")
        if len(parts) != 2:
            raise SdpError(f"t= needs 2 fields: {value[:80]!r}")
        return cls(_int(parts[0], "t= start"), _int(parts[1], "t= stop"))


@dataclass(slots=True)
class Attribute:
    """``a=<name>`` (property) or ``a=<name>:<value>`` (RFC 4566 5.13), kept verbatim."""

    name: str
    value: str | None = None

    @classmethod
    def parse(cls, text: str) -> Attribute:
        """Parse the value of an ``a=`` line."""
        name, sep, value = text.partition(":")
        if not name:
            raise SdpError(f"bad a= line: {text[:80]!r}")
        return cls(name, value if sep else None)

    def serialize(self) -> str:
        """The value of the ``a=`` line."""
        return self.name if self.value is None else f"{self.name}:{self.value}"


@dataclass(frozen=True, slots=True)
class RtcpAttribute:
    """``a=rtcp:<port> [<nettype> <addrtype> <address>]`` (RFC 3605)."""

    port: int
    nettype: str | None = None
    addrtype: str | None = None
    address: str | None = None


@dataclass(frozen=True, slots=True)
class SsrcAttribute:
    """``a=ssrc:<ssrc-id> <attribute>[:<value>]`` (RFC 5576)."""

    ssrc: int
    attribute: str
    value: str | None = None


class _AttributeMixin:
    """Typed helpers over an ``attributes`` list (shared by session and media level)."""

    __slots__ = ()
    attributes: list[Attribute]

    def get_attribute(self, name: str) -> str | None:
        """Value of the first ``a=name[:value]`` ("" for a property), None if absent."""
        for attr in self.attributes:
            if attr.name == name:
                return "" if attr.value is None else attr.value
        return None

    def get_attributes(self, name: str) -> list[str]:
        """Values of every ``a=name:value`` in order ("" for properties)."""
        return ["" if a.value is None else a.value for a in self.attributes if a.name == name]

    def has_attribute(self, name: str) -> bool:
        """True if an ``a=name`` line is present."""
        return any(a.name == name for a in self.attributes)

    @property
    def direction(self) -> Direction | None:
        """The direction attribute at this level (RFC 4566 6), None if none is given."""
        for attr in self.attributes:
            if attr.name in DIRECTIONS and attr.value is None:
                return attr.name  # type: ignore[return-value]
        return None

    def set_direction(self, direction: Direction | None) -> None:
        """Replace (or with None remove) the direction attribute at this level."""
        if direction is not None and direction not in DIRECTIONS:
            raise SdpError(f"unknown direction {direction!r}")
        kept = [a for a in self.attributes if not (a.name in DIRECTIONS and a.value is None)]
        if direction is not None:
            kept.append(Attribute(direction))
        self.attributes[:] = kept


@dataclass(slots=True)
class MediaDescription(_AttributeMixin):
    """One ``m=`` section (RFC 4566 5.14) with its ``i=``, ``c=``, ``b=``, ``k=``, ``a=`` lines."""

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    title: str | None = None
    connections: list[Connection] = field(default_factory=list)
    bandwidths: list[Bandwidth] = field(default_factory=list)
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)
    """Lines of unknown type, serialised at the end of the section in their order."""

    @classmethod
    def parse_m_line(cls, value: str) -> MediaDescription:
        """Parse ``<media> <port>[/<count>] <proto> <fmt> ...``."""
        parts = value.split(" ")
        if len(parts) < 3 or not all(parts):
            raise SdpError(f"m= needs at least 3 fields: {value[:80]!r}")
        port_text, sep, count_text = parts[1].partition("/")
        port = _int(port_text, "m= port", maximum=65535)
        count = _int(count_text, "m= port count") if sep else None
        return cls(parts[0], port, parts[2], parts[3:], port_count=count)

    @property
    def connection(self) -> Connection | None:
        """The first media-level ``c=`` line, if any."""
        return self.connections[0] if self.connections else None

    @connection.setter
    def connection(self, value: Connection | None) -> None:
        self.connections[:] = [] if value is None else [value]

    def m_line(self) -> str:
        """The value of the ``m=`` line."""
        port = f"{self.port}/{self.port_count}" if self.port_count is not None else str(self.port)
        return " ".join([self.media, port, self.proto, *self.formats])

    def payload_types(self) -> list[int]:
        """The formats as RTP payload types (non-numeric formats are skipped)."""
        return [int(f) for f in self.formats if _DIGITS.match(f) and len(f) <= 3]

    def rtpmaps(self) -> dict[int, RtpMap]:
        """``a=rtpmap`` per payload type (malformed lines raise SdpError)."""
        result: dict[int, RtpMap] = {}
        for value in self.get_attributes("rtpmap"):
            pt_text, _, rest = value.partition(" ")
            pt = _int(pt_text, "rtpmap payload type", maximum=127)
            pieces = rest.strip().split("/")
            if len(pieces) < 2 or not pieces[0]:
                raise SdpError(f"bad rtpmap: {value[:80]!r}")
            channels = _int(pieces[2], "rtpmap channels") if len(pieces) > 2 else None
            result[pt] = RtpMap(pt, pieces[0], _int(pieces[1], "rtpmap clock rate"), channels)
        return result

    def rtpmap(self, payload_type: int) -> RtpMap | None:
        """The mapping of one payload type: its rtpmap, else the RFC 3551 static one."""
        found = self.rtpmaps().get(payload_type)
        if found is None and payload_type in STATIC_PAYLOAD_TYPES:
            return STATIC_PAYLOAD_TYPES[payload_type]
        return found

    def fmtp(self) -> dict[str, str]:
        """``a=fmtp`` parameters per format (RFC 4566 6), values verbatim."""
        result: dict[str, str] = {}
        for value in self.get_attributes("fmtp"):
            fmt, _, params = value.partition(" ")
            result[fmt] = params.strip()
        return result

    @property
    def ptime(self) -> int | None:
        """``a=ptime`` in milliseconds (fractional values rounded)."""
        return self._millis("ptime")

    @property
    def maxptime(self) -> int | None:
        """``a=maxptime`` in milliseconds."""
        return self._millis("maxptime")

    def _millis(self, name: str) -> int | None:
        value = self.get_attribute(name)
        if value is None:
            return None
        whole, _, frac = value.strip().partition(".")
        number = _int(whole, f"a={name}")
        if frac:
            _int(frac, f"a={name}")
            number = round(float(f"{number}.{frac}"))
        return number

    @property
    def rtcp(self) -> RtcpAttribute | None:
        """``a=rtcp`` (RFC 3605 2.1), None if absent."""
        value = self.get_attribute("rtcp")
        if value is None:
            return None
        parts = value.split(" ")
        port = _int(parts[0], "a=rtcp port", maximum=65535)
        if len(parts) == 1:
            return RtcpAttribute(port)
        if len(parts) != 4:
            raise SdpError(f"bad a=rtcp: {value[:80]!r}")
        return RtcpAttribute(port, parts[1], parts[2], parts[3])

    @property
    def ssrcs(self) -> list[SsrcAttribute]:
        """Every ``a=ssrc`` line (RFC 5576 4.1) in order."""
        result = []
        for value in self.get_attributes("ssrc"):
            ssrc_text, _, rest = value.partition(" ")
            name, sep, attr_value = rest.partition(":")
            ssrc = _int(ssrc_text, "ssrc id", maximum=0xFFFFFFFF)
            result.append(SsrcAttribute(ssrc, name, attr_value if sep else None))
        return result

    def effective_connection(self, session: SessionDescription) -> Connection | None:
        """The media-level ``c=`` or else the session-level one (RFC 4566 5.7)."""
        return self.connection or session.connection

    def effective_direction(self, session: SessionDescription) -> Direction:
        """Media direction overriding session direction, sendrecv by default (RFC 3264 5.1)."""
        return self.direction or session.direction or "sendrecv"

    def serialize_lines(self) -> list[str]:
        """The section's lines in RFC 4566 5 order (m= i= c= b= k= a=, then unknown)."""
        lines = [f"m={self.m_line()}"]
        if self.title is not None:
            lines.append(f"i={self.title}")
        lines += [f"c={c.serialize()}" for c in self.connections]
        lines += [f"b={b.serialize()}" for b in self.bandwidths]
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={a.serialize()}" for a in self.attributes]
        lines += [f"{t}={v}" for t, v in self.extra_lines]
        return lines


@dataclass(slots=True)
class SessionDescription(_AttributeMixin):
    """A whole SDP body (RFC 4566 5)."""

    origin: Origin
    session_name: str = "-"
    version: int = 0
    information: str | None = None
    uri: str | None = None
    emails: list[str] = field(default_factory=list)
    phones: list[str] = field(default_factory=list)
    connection: Connection | None = None
    bandwidths: list[Bandwidth] = field(default_factory=list)
    timings: list[Timing] = field(default_factory=lambda: [Timing()])
    zone: str | None = None
    key: str | None = None
    attributes: list[Attribute] = field(default_factory=list)
    media: list[MediaDescription] = field(default_factory=list)
    extra_lines: list[tuple[str, str]] = field(default_factory=list)
    """Session-level lines of unknown type, serialised before the first ``m=``."""

    @classmethod
    def parse(cls, text: str | bytes) -> SessionDescription:
        """Parse an SDP body; raises SdpError (and nothing else) on malformed input."""
        if isinstance(text, bytes):
            try:
                text = text.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise SdpError(f"SDP is not UTF-8: {exc.reason}") from None
        lines = [ln.removesuffix("\r") for ln in text.split("\n")]
        lines = [ln for ln in lines if ln]
        if not lines or lines[0] != "v=0":
            raise SdpError("SDP must start with v=0")
        origin: Origin | None = None
        name: str | None = None
        draft = cls(Origin("-", 0, 0), timings=[])
        current: MediaDescription | None = None
        for line in lines[1:]:
            kind, sep, value = line.partition("=")
            if not sep or not _TYPE_RE.match(kind):
                raise SdpError(f"bad SDP line: {line[:80]!r}")
            if kind == "m":
                current = MediaDescription.parse_m_line(value)
                draft.media.append(current)
            elif current is not None:
                _media_line(current, kind, value)
            elif kind == "o":
                if origin is not None:
                    raise SdpError("more than one o= line")
                origin = Origin.parse(value)
            elif kind == "s":
                if name is not None:
                    raise SdpError("more than one s= line")
                name = value
            else:
                _session_line(draft, kind, value)
        if origin is None:
            raise SdpError("SDP has no o= line")
        if name is None:
            raise SdpError("SDP has no s= line")
        draft.origin = origin
        draft.session_name = name
        return draft

    def serialize(self) -> str:
        """The body, CRLF line ends, lines in RFC 4566 5 order."""
        lines = [f"v={self.version}", f"o={self.origin.serialize()}", f"s={self.session_name}"]
        for kind, value in (("i", self.information), ("u", self.uri)):
            if value is not None:
                lines.append(f"{kind}={value}")
        lines += [f"e={e}" for e in self.emails]
        lines += [f"p={p}" for p in self.phones]
        if self.connection is not None:
            lines.append(f"c={self.connection.serialize()}")
        lines += [f"b={b.serialize()}" for b in self.bandwidths]
        for timing in self.timings:
            lines.append(f"t={timing.start} {timing.stop}")
            lines += [f"r={r}" for r in timing.repeats]
        if self.zone is not None:
            lines.append(f"z={self.zone}")
        if self.key is not None:
            lines.append(f"k={self.key}")
        lines += [f"a={a.serialize()}" for a in self.attributes]
        lines += [f"{t}={v}" for t, v in self.extra_lines]
        for media in self.media:
            lines += media.serialize_lines()
        return _CRLF.join(lines) + _CRLF

    def __bytes__(self) -> bytes:
        return self.serialize().encode("utf-8")

    def copy(self) -> SessionDescription:
        """A deep copy (the model is mutable)."""
        return SessionDescription.parse(self.serialize())

    def audio_streams(self) -> list[tuple[int, MediaDescription]]:
        """(index, m-line) of every ``m=audio`` section."""
        return [(i, m) for i, m in enumerate(self.media) if m.media == "audio"]


def _session_line(sdp: SessionDescription, kind: str, value: str) -> None:
    """Store one session-level line (RFC 4566 5.3 - 5.13)."""
    if kind == "i":
        sdp.information = value
    elif kind == "u":
        sdp.uri = value
    elif kind == "e":
        sdp.emails.append(value)
    elif kind == "p":
        sdp.phones.append(value)
    elif kind == "c":
        if sdp.connection is not None:
            raise SdpError("more than one session-level c= line")
        sdp.connection = Connection.parse(value)
    elif kind == "b":
        sdp.bandwidths.append(Bandwidth.parse(value))
    elif kind == "t":
        sdp.timings.append(Timing.parse(value))
    elif kind == "r":
        if not sdp.timings:
            raise SdpError("r= line without a t= line")
        sdp.timings[-1].repeats.append(value)
    elif kind == "z":
        sdp.zone = value
    elif kind == "k":
        sdp.key = value
    elif kind == "a":
        sdp.attributes.append(Attribute.parse(value))
    elif kind == "v":
        raise SdpError("v= line not at the start")
    else:
        sdp.extra_lines.append((kind, value))


def _media_line(media: MediaDescription, kind: str, value: str) -> None:
    """Store one media-level line (RFC 4566 5.14)."""
    if kind == "i":
        media.title = value
    elif kind == "c":
        media.connections.append(Connection.parse(value))
    elif kind == "b":
        media.bandwidths.append(Bandwidth.parse(value))
    elif kind == "k":
        media.key = value
    elif kind == "a":
        media.attributes.append(Attribute.parse(value))
    elif kind in "vostrzuep":
        raise SdpError(f"{kind}= line inside a media section")
    else:
        media.extra_lines.append((kind, value))


# --- offer / answer (RFC 3264) ----------------------------------------------------------------


_NOT_A_CODEC = frozenset({"TELEPHONE-EVENT", "CN", "RED", "ULPFEC", "RTX"})
_ACCEPTED_PROTOS = frozenset({"RTP/AVP", "RTP/AVPF"})
_DYNAMIC_FIRST = 96


@dataclass(frozen=True, slots=True)
class NegotiatedMedia:
    """What an offer/answer exchange settled for the audio stream (RFC 3264 6, 7)."""

    remote_address: str
    """Where to send RTP: the stream's effective ``c=`` address."""
    remote_port: int
    """The peer's RTP port."""
    remote_rtcp_port: int
    """The peer's RTCP port: ``a=rtcp`` (RFC 3605) or RTP port + 1."""
    codec: str
    """Encoding name as the peer wrote it (``PCMU``, ``PCMA``, ``opus``...)."""
    payload_type: int
    """Payload type to put in the RTP we send (the one in the answer)."""
    clock_rate: int
    """RTP clock rate of the codec."""
    telephone_event_pt: int | None
    """RFC 4733 payload type, None when DTMF events were not negotiated."""
    ptime: int
    """Packetisation time in milliseconds."""
    direction: Direction
    """Our direction: sendrecv, sendonly (we only send), recvonly or inactive."""
    on_hold: bool
    """The peer put the stream on hold (sendonly/inactive or ``c=`` 0.0.0.0)."""
    channels: int = 1
    """Audio channels of the codec."""
    remote_rtcp_address: str = ""
    """Where to send RTCP (the ``a=rtcp`` address or ``remote_address``)."""
    media_index: int = 0
    """Index of the audio m-line in the SDP."""
    telephone_event_fmtp: str | None = None
    """The events the peer accepts (``0-15``, ``0-16``), None if not said."""


def _codec_spec(spec: str) -> tuple[str, int | None, int | None]:
    """``"PCMU"`` or ``"opus/48000/2"`` -> (NAME, clock or None, channels or None)."""
    pieces = spec.split("/")
    name = pieces[0].upper()
    clock = _int(pieces[1], "codec clock rate") if len(pieces) > 1 else None
    channels = _int(pieces[2], "codec channels") if len(pieces) > 2 else None
    return name, clock, channels


def _matches(rtpmap: RtpMap, spec: tuple[str, int | None, int | None]) -> bool:
    name, clock, channels = spec
    if rtpmap.encoding.upper() != name:
        return False
    if clock is not None and rtpmap.clock_rate != clock:
        return False
    return channels is None or (rtpmap.channels or 1) == channels


def _offered_maps(media: MediaDescription) -> list[RtpMap]:
    """The offered formats as RtpMaps, in preference order, unknown dynamic PTs dropped."""
    maps = media.rtpmaps()
    result = []
    for pt in media.payload_types():
        found = maps.get(pt) or STATIC_PAYLOAD_TYPES.get(pt)
        if found is not None:
            result.append(found)
    return result


def _can_send(direction: str) -> bool:
    return direction in ("sendrecv", "sendonly")


def _can_receive(direction: str) -> bool:
    return direction in ("sendrecv", "recvonly")


def _direction_from(send: bool, receive: bool) -> Direction:
    if send and receive:
        return "sendrecv"
    if send:
        return "sendonly"
    return "recvonly" if receive else "inactive"


def _peer_direction(media: MediaDescription, sdp: SessionDescription) -> tuple[Direction, bool]:
    """The peer's effective direction and whether it means hold.

    RFC 3264 8.4: ``c=0.0.0.0`` is the RFC 2543 way to hold; the peer then receives
    nothing whatever the attribute says, so we treat it as not receiving.
    """
    direction = media.effective_direction(sdp)
    conn = media.effective_connection(sdp)
    zero = conn is not None and conn.is_hold
    if zero:
        direction = _direction_from(_can_send(direction), False)
    return direction, zero or direction in ("sendonly", "inactive")


def _rtcp_of(media: MediaDescription, address: str) -> tuple[str, int]:
    rtcp = media.rtcp
    if rtcp is None:
        return address, media.port + 1
    return (rtcp.address or address), rtcp.port


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise SdpError(f"unknown direction {direction!r}")


def build_offer(
    *,
    address: str,
    port: int,
    session_id: int,
    version: int,
    codecs: tuple[str, ...] | list[str] = ("PCMU", "PCMA"),
    telephone_event_pt: int | None = 101,
    ptime: int | None = 20,
    direction: Direction = "sendrecv",
    username: str = "-",
    rtcp_port: int | None = None,
) -> SessionDescription:
    """An audio offer (RFC 3264 5) in the order of ``codecs``.

    Static codecs (``PCMU``, ``PCMA``, ``G722``...) use their RFC 3551 numbers;
    others are given as ``name/clock[/channels]`` and get dynamic numbers from 96
    (skipping ``telephone_event_pt``).  Telephone-event is offered at 8000 Hz with
    ``0-16`` (RFC 4733 2.5.1) unless ``telephone_event_pt`` is None.
    """
    _check_direction(direction)
    if not codecs:
        raise SdpError("an offer needs at least one codec")
    formats: list[str] = []
    attributes: list[Attribute] = []
    next_dynamic = _DYNAMIC_FIRST
    for spec in codecs:
        name, clock, channels = _codec_spec(spec)
        static = _STATIC_BY_NAME.get(name)
        if static is not None and clock in (None, 8000):
            rtpmap = STATIC_PAYLOAD_TYPES[static]
            rtpmap = RtpMap(rtpmap.payload_type, rtpmap.encoding, rtpmap.clock_rate)
        else:
            if clock is None:
                raise SdpError(f"codec {spec!r} needs name/clock[/channels]")
            while next_dynamic == telephone_event_pt:
                next_dynamic += 1
            if next_dynamic > 127:
                raise SdpError("too many dynamic codecs")
            rtpmap = RtpMap(next_dynamic, spec.split("/")[0], clock, channels)
            next_dynamic += 1
        formats.append(str(rtpmap.payload_type))
        attributes.append(Attribute("rtpmap", rtpmap.serialize()))
    if telephone_event_pt is not None:
        formats.append(str(telephone_event_pt))
        attributes.append(Attribute("rtpmap", f"{telephone_event_pt} telephone-event/8000"))
        attributes.append(Attribute("fmtp", f"{telephone_event_pt} 0-16"))
    if rtcp_port is not None:
        attributes.append(Attribute("rtcp", str(rtcp_port)))
    if ptime is not None:
        attributes.append(Attribute("ptime", str(ptime)))
    attributes.append(Attribute(direction))
    connection = Connection.for_address(address)
    return SessionDescription(
        origin=Origin(username, session_id, version, "IN", connection.addrtype, address),
        session_name="-",
        connection=connection,
        media=[MediaDescription("audio", port, "RTP/AVP", formats, attributes=attributes)],
    )


def answer_offer(
    offer: SessionDescription,
    *,
    address: str,
    port: int,
    session_id: int,
    version: int,
    supported: tuple[str, ...] | list[str] = ("PCMU", "PCMA"),
    prefer: Literal["offer", "local"] = "offer",
    direction: Direction = "sendrecv",
    telephone_event: bool = True,
    ptime: int = 20,
    username: str = "-",
) -> tuple[SessionDescription, NegotiatedMedia]:
    """Answer an offer (RFC 3264 6) with one audio codec plus telephone-event.

    The first ``m=audio`` over RTP/AVP(F) with a codec in common is accepted; every
    other m-line is rejected with port 0, keeping its formats (RFC 3264 6).  The
    codec is the offerer's first one we support (``prefer="offer"``) or our first one
    offered (``prefer="local"``); the offer's payload type numbers are kept (6.1).
    Direction follows 6.1: we send only if the offerer receives, receive only if it
    sends.  ``ptime`` applies only when the offer gives none.  Raises
    ``SdpError(status_hint=488)`` when there is no audio stream or no common codec.
    """
    _check_direction(direction)
    specs = [_codec_spec(s) for s in supported]
    chosen: tuple[int, RtpMap] | None = None
    saw_audio = False
    for index, media in offer.audio_streams():
        saw_audio = True
        if media.port == 0 or media.proto.upper() not in _ACCEPTED_PROTOS:
            continue
        codec = _choose_codec(_offered_maps(media), specs, prefer)
        if codec is not None:
            chosen = (index, codec)
            break
    if not saw_audio:
        raise SdpError("offer has no audio stream", status_hint=488)
    if chosen is None:
        raise SdpError("no audio codec in common with the offer", status_hint=488)
    index, codec = chosen
    offered = offer.media[index]
    conn = offered.effective_connection(offer)
    if conn is None:
        raise SdpError("offered audio stream has no c= address")
    te = _telephone_event(offered, codec.clock_rate) if telephone_event else None
    offer_dir, on_hold = _peer_direction(offered, offer)
    ours = _direction_from(
        _can_send(direction) and _can_receive(offer_dir),
        _can_receive(direction) and _can_send(offer_dir),
    )
    use_ptime = offered.ptime or ptime

    formats = [str(codec.payload_type)]
    attrs = [Attribute("rtpmap", codec.serialize())]
    codec_fmtp = offered.fmtp().get(str(codec.payload_type))
    if codec_fmtp:
        attrs.append(Attribute("fmtp", f"{codec.payload_type} {codec_fmtp}"))
    if te is not None:
        formats.append(str(te.payload_type))
        attrs.append(Attribute("rtpmap", te.serialize()))
        te_fmtp = offered.fmtp().get(str(te.payload_type))
        if te_fmtp:
            attrs.append(Attribute("fmtp", f"{te.payload_type} {te_fmtp}"))
    attrs.append(Attribute("ptime", str(use_ptime)))
    attrs.append(Attribute(ours))

    answer_media: list[MediaDescription] = []
    for i, media in enumerate(offer.media):
        if i == index:
            answer_media.append(
                MediaDescription("audio", port, offered.proto, formats, attributes=attrs)
            )
        else:
            # RFC 3264 6: a rejected stream keeps its m-line with port 0.
            answer_media.append(
                MediaDescription(media.media, 0, media.proto, list(media.formats) or ["0"])
            )
    connection = Connection.for_address(address)
    answer = SessionDescription(
        origin=Origin(username, session_id, version, "IN", connection.addrtype, address),
        session_name="-",
        connection=connection,
        media=answer_media,
    )
    rtcp_address, rtcp_port = _rtcp_of(offered, conn.address)
    negotiated = NegotiatedMedia(
        remote_address=conn.address,
        remote_port=offered.port,
        remote_rtcp_port=rtcp_port,
        codec=codec.encoding,
        payload_type=codec.payload_type,
        clock_rate=codec.clock_rate,
        telephone_event_pt=None if te is None else te.payload_type,
        ptime=use_ptime,
        direction=ours,
        on_hold=on_hold,
        channels=codec.channels or 1,
        remote_rtcp_address=rtcp_address,
        media_index=index,
        telephone_event_fmtp=None if te is None else offered.fmtp().get(str(te.payload_type)),
    )
    return answer, negotiated


def _choose_codec(
    offered: list[RtpMap], specs: list[tuple[str, int | None, int | None]], prefer: str
) -> RtpMap | None:
    audio = [m for m in offered if m.encoding.upper() not in _NOT_A_CODEC]
    if prefer == "local":
        for spec in specs:
            for rtpmap in audio:
                if _matches(rtpmap, spec):
                    return rtpmap
        return None
    for rtpmap in audio:
        if any(_matches(rtpmap, spec) for spec in specs):
            return rtpmap
    return None


def _telephone_event(media: MediaDescription, clock_rate: int) -> RtpMap | None:
    """The offered telephone-event format at the codec's clock rate (RFC 4733 7.1.1)."""
    for rtpmap in _offered_maps(media):
        if rtpmap.encoding.upper() == "TELEPHONE-EVENT" and rtpmap.clock_rate == clock_rate:
            return rtpmap
    return None


def parse_answer(offer: SessionDescription, answer: SessionDescription) -> NegotiatedMedia:
    """The offerer's view of an answer to ``offer`` (RFC 3264 7).

    Checks that the answer has as many m-lines as the offer (RFC 3264 6), that the
    audio stream was accepted and that its codec was offered (matched by name and
    clock rate; the answer's payload type number is the one to send with).
    """
    if len(answer.media) != len(offer.media):
        raise SdpError(f"answer has {len(answer.media)} m-lines, the offer had {len(offer.media)}")
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media)):
        if ours.media != "audio" or ours.port == 0 or theirs.port == 0:
            continue
        if theirs.media != ours.media:
            raise SdpError(f"answer m-line {index} is {theirs.media}, offered {ours.media}")
        offered_maps = _offered_maps(ours)
        answered = [m for m in _offered_maps(theirs) if m.encoding.upper() not in _NOT_A_CODEC]
        if not answered:
            raise SdpError("answer has no audio codec", status_hint=488)
        codec = answered[0]
        if not any(
            _matches(m, (codec.encoding.upper(), codec.clock_rate, None)) for m in offered_maps
        ):
            raise SdpError(f"answer codec {codec.encoding} was not offered", status_hint=488)
        conn = theirs.effective_connection(answer)
        if conn is None:
            raise SdpError("answered audio stream has no c= address")
        te = _telephone_event(theirs, codec.clock_rate)
        their_dir, on_hold = _peer_direction(theirs, answer)
        our_offer_dir = ours.effective_direction(offer)
        direction = _direction_from(
            _can_send(our_offer_dir) and _can_receive(their_dir),
            _can_receive(our_offer_dir) and _can_send(their_dir),
        )
        rtcp_address, rtcp_port = _rtcp_of(theirs, conn.address)
        return NegotiatedMedia(
            remote_address=conn.address,
            remote_port=theirs.port,
            remote_rtcp_port=rtcp_port,
            codec=codec.encoding,
            payload_type=codec.payload_type,
            clock_rate=codec.clock_rate,
            telephone_event_pt=None if te is None else te.payload_type,
            ptime=theirs.ptime or ours.ptime or 20,
            direction=direction,
            on_hold=on_hold,
            channels=codec.channels or 1,
            remote_rtcp_address=rtcp_address,
            media_index=index,
            telephone_event_fmtp=None if te is None else theirs.fmtp().get(str(te.payload_type)),
        )
    raise SdpError("the audio stream was rejected", status_hint=488)


class SdpSession:
    """Our side of one SDP session: keeps the ``o=`` id and version (RFC 3264 5, 8).

    Every SDP we send goes through :meth:`stamp`: the version goes up by one when
    the body differs from the last one sent (hold, unhold, new port or codec) and
    stays when the same body is sent again (RFC 3264 8: "the version MUST be
    incremented ... only if the session description has changed").
    """

    __slots__ = ("_last", "session_id", "username", "version")

    def __init__(self, *, session_id: int, version: int = 0, username: str = "-") -> None:
        self.session_id = session_id
        self.version = version
        self.username = username
        self._last: str | None = None

    def stamp(self, sdp: SessionDescription) -> SessionDescription:
        """A copy of ``sdp`` with our o= username, id and the right version."""
        return self._stamp(sdp.copy())

    def _stamp(self, stamped: SessionDescription) -> SessionDescription:
        """:meth:`stamp` in place, for a description built here that nobody else holds
        (a deep copy is a serialise and a parse: most of the cost of an offer)."""
        stamped.origin.username = self.username
        stamped.origin.sess_id = self.session_id
        stamped.origin.sess_version = 0
        body = stamped.serialize()
        if self._last is not None and body != self._last:
            self.version += 1
        self._last = body
        stamped.origin.sess_version = self.version
        return stamped

    def build_offer(
        self,
        *,
        address: str,
        port: int,
        codecs: tuple[str, ...] | list[str] = ("PCMU", "PCMA"),
        telephone_event_pt: int | None = 101,
        ptime: int | None = 20,
        direction: Direction = "sendrecv",
    ) -> SessionDescription:
        """:func:`build_offer` stamped with this session's o= line."""
        return self._stamp(
            build_offer(
                address=address,
                port=port,
                session_id=self.session_id,
                version=self.version,
                codecs=codecs,
                telephone_event_pt=telephone_event_pt,
                ptime=ptime,
                direction=direction,
                username=self.username,
            )
        )

    def answer_offer(
        self,
        offer: SessionDescription,
        *,
        address: str,
        port: int,
        supported: tuple[str, ...] | list[str] = ("PCMU", "PCMA"),
        prefer: Literal["offer", "local"] = "offer",
        direction: Direction = "sendrecv",
        telephone_event: bool = True,
        ptime: int = 20,
    ) -> tuple[SessionDescription, NegotiatedMedia]:
        """:func:`answer_offer` with the answer stamped with this session's o= line."""
        answer, negotiated = answer_offer(
            offer,
            address=address,
            port=port,
            session_id=self.session_id,
            version=self.version,
            supported=supported,
            prefer=prefer,
            direction=direction,
            telephone_event=telephone_event,
            ptime=ptime,
            username=self.username,
        )
        return self._stamp(answer), negotiated
