"""Which sources a call's RTP is accepted from, and where its audio goes (sans-IO).

Symmetric RTP (RFC 4961) lets a peer behind NAT be reached at the address its packets
come from rather than the private one in its SDP.  Done naively ("latch to the first
packet") it lets anyone who can reach the port take the call's outgoing audio with one
datagram sent before the caller's first packet.  :class:`RtpLatch` decides, per packet from
a source other than the current one, whether to accept it, to *latch* (send to that source
from now on) or to reject it; the rules are a mode from a registry (``register_latch_mode``):

``sdp-only``
    Media only from the exact address (host and port) in the peer's SDP; never latch.
    For peers on a reachable network and trunks that send from their advertised port.
``strict`` (the default)
    Media from the SDP address, always (it also takes the call back if another source was
    latched).  When that address is reachable (public, or private but the very host the SIP
    came from) nothing else is accepted, as ``sdp-only``.  Behind NAT (the SDP address is
    private or unusable: RFC 1918, RFC 6598 CGNAT, link-local, 0.0.0.0, none; or
    ``latch_nat`` says so) another source may be latched to, once, if its packets are
    plausible (below) and its host is the SIP peer's host (or the SDP's, from another
    port).  A third party on another host can never redirect the audio.
``symmetric``
    Any host may be latched to, with the same plausibility checks, and re-latched for
    ``latch_seconds`` after the first latch (NAT rebinding).  Only for deployments where
    the RTP port is not reachable by untrusted parties (behind an SBC or media relay).

A source is *plausible* when ``latch_packets`` consecutive datagrams from it are RTP
version 2 (not RTCP), carry a negotiated payload type (audio, telephone-event or CN), keep
one SSRC and have consecutive sequence numbers (a gap of up to ``_MAX_SEQ_STEP`` for
loss).  Datagrams from a source that is not accepted are counted by the caller
(``rx_wrong_source``) and dropped.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Collection
from dataclasses import dataclass

from telephony.errors import ConfigError

Addr = tuple[str, int]

_MAX_CANDIDATES = 8
"""Sources whose plausibility is tracked at once (a flood from many ports evicts the oldest)."""
_MAX_SEQ_STEP = 3
"""Largest sequence step between two packets of a candidate (one or two lost in between)."""


class LatchVerdict(enum.Enum):
    """What to do with a datagram from a source other than the current remote."""

    ACCEPT = "accept"
    """Handle it; keep sending where we send."""
    LATCH = "latch"
    """Handle it and send to its source from now on."""
    REJECT = "reject"
    """Drop it (counted)."""


class LatchMode:
    """A latching rule set: which hosts may be latched to, and when (a strategy)."""

    name = ""
    may_latch = True
    """Whether any source other than the SDP address is ever latched to."""

    def allowed_host(self, latch: RtpLatch, host: str) -> bool:
        """Whether a candidate from ``host`` may be latched to."""
        raise NotImplementedError

    def relatch_window(self, latch: RtpLatch) -> float:
        """Seconds after the first latch during which another source may take over."""
        return 0.0


_MODES: dict[str, LatchMode] = {}


def register_latch_mode(mode: LatchMode) -> LatchMode:
    """Register a latching mode under ``mode.name`` (for :attr:`MediaConfig.latch`)."""
    _MODES[mode.name] = mode
    return mode


def get_latch_mode(name: str) -> LatchMode:
    """The registered mode called ``name``; :class:`ConfigError` if there is none."""
    try:
        return _MODES[name]
    except KeyError:
        raise ConfigError(f"unknown RTP latch mode {name!r} (one of: "
                          f"{', '.join(sorted(_MODES))})") from None


def latch_modes() -> list[str]:
    """Names of every registered latch mode."""
    return sorted(_MODES)


class _SdpOnly(LatchMode):
    name = "sdp-only"
    may_latch = False

    def allowed_host(self, latch: RtpLatch, host: str) -> bool:
        return False


class _Strict(LatchMode):
    name = "strict"

    def allowed_host(self, latch: RtpLatch, host: str) -> bool:
        sdp, peer = latch.sdp, latch.signalling_host
        if not latch.nat and _reachable(sdp, peer):
            return False  # the SDP address works as it is: nothing else is the caller
        # behind NAT: the SIP peer's host, or the SDP's host from another port
        return host == peer or (sdp is not None and host == sdp[0])


class _Symmetric(LatchMode):
    name = "symmetric"

    def allowed_host(self, latch: RtpLatch, host: str) -> bool:
        return True

    def relatch_window(self, latch: RtpLatch) -> float:
        return latch.latch_seconds


register_latch_mode(_SdpOnly())
register_latch_mode(_Strict())
register_latch_mode(_Symmetric())


def _reachable(sdp: Addr | None, signalling_host: str | None) -> bool:
    """Whether the SDP address can be sent to as it is: a usable address that is public, or
    private but the very host the SIP came from (a peer on our own network)."""
    if sdp is None:
        return False
    try:
        ip = ipaddress.ip_address(sdp[0])
    except ValueError:
        return False  # a host name in c=: we do not resolve it here; treat as unusable
    if ip.is_unspecified or ip.is_multicast:
        return False
    if ip.is_private or ip.is_link_local or ip in _CGNAT:
        return sdp[0] == signalling_host
    return True


_CGNAT = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598 shared address space


@dataclass(slots=True)
class _Candidate:
    ssrc: int
    seq: int
    count: int


class RtpLatch:
    """One call's latching state; see the module docstring."""

    def __init__(self, mode: str = "strict", *, sdp: Addr | None = None,
                 latch_seconds: float = 5.0, latch_packets: int = 2, nat: bool = False) -> None:
        self.mode = get_latch_mode(mode)
        self.sdp = sdp
        """The address in the peer's SDP (None until known)."""
        self.signalling_host: str | None = None
        """The host the peer's SIP came from (None when unknown, e.g. outbound calls)."""
        self.latch_seconds = latch_seconds
        self.latch_packets = max(1, latch_packets)
        self.nat = nat
        """Treat the SDP address as unreachable (the peers are known to be behind NAT)."""
        self.latched: Addr | None = None
        """The source latched to (not the SDP address), if any."""
        self._latched_at: float | None = None
        self._sdp_seen = False
        self._candidates: dict[Addr, _Candidate] = {}
        self.rejected_sources: list[Addr] = []
        """The first few sources rejected (for the log; bounded)."""

    def set_sdp(self, sdp: Addr | None) -> bool:
        """The peer's SDP gave ``sdp``; True if it changed (the latch starts over)."""
        if sdp == self.sdp:
            return False
        self.sdp = sdp
        self.latched = None
        self._latched_at = None
        self._sdp_seen = False
        self._candidates.clear()
        return True

    @property
    def open(self) -> bool:
        """Whether a packet from the SDP address still changes anything (the caller sends
        from it: no other source may latch from then on)."""
        return not self._sdp_seen

    def sdp_seen(self) -> None:
        """A packet came from the SDP address: the caller is there; latching is over."""
        self._sdp_seen = True
        self._candidates.clear()

    def judge(self, data: bytes, addr: Addr, payload_types: Collection[int], *,
              now: float) -> LatchVerdict:
        """Decide on a datagram from ``addr``, which is not where the call sends now."""
        if addr == self.sdp:
            # the SDP address always wins: it takes the call back from a latched source
            self.sdp_seen()
            self.latched = None
            return LatchVerdict.LATCH  # (remote was None or elsewhere: send to the SDP)
        mode = self.mode
        if not mode.may_latch or self._sdp_seen:
            return self._reject(addr)
        if self.latched is not None:
            at = self._latched_at
            if at is None or now - at >= mode.relatch_window(self):
                return self._reject(addr)
        if not mode.allowed_host(self, addr[0]):
            return self._reject(addr)
        if not self._plausible(data, addr, payload_types):
            return self._reject(addr)
        self._candidates.clear()
        self.latched = addr
        if self._latched_at is None:
            self._latched_at = now
        return LatchVerdict.LATCH

    def _plausible(self, data: bytes, addr: Addr, payload_types: Collection[int]) -> bool:
        """Whether this datagram completes ``latch_packets`` consecutive plausible ones."""
        if len(data) < 12 or data[0] >> 6 != 2 or 192 <= data[1] <= 223 \
                or data[1] & 0x7F not in payload_types:
            self._candidates.pop(addr, None)
            return False
        seq = (data[2] << 8) | data[3]
        ssrc = int.from_bytes(data[8:12], "big")
        cand = self._candidates.get(addr)
        if cand is not None and cand.ssrc == ssrc and 0 < (seq - cand.seq) & 0xFFFF \
                <= _MAX_SEQ_STEP:
            cand.seq = seq
            cand.count += 1
        else:
            if cand is None and len(self._candidates) >= _MAX_CANDIDATES:
                self._candidates.pop(next(iter(self._candidates)))
            cand = self._candidates[addr] = _Candidate(ssrc, seq, 1)
        return cand.count >= self.latch_packets

    def _reject(self, addr: Addr) -> LatchVerdict:
        if len(self.rejected_sources) < _MAX_CANDIDATES and addr not in self.rejected_sources:
            self.rejected_sources.append(addr)
        return LatchVerdict.REJECT
