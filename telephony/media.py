"""The per-call media pipeline, sans-IO, and the batched mixer that ticks every call at once.

:class:`CallMedia` is one call's media: RTP in (symmetric latching, statistics, jitter
buffer, RFC 4733 events) and out (G.711, RFC 4733, pacing by the caller's tick), playout
of prompts with barge-in, the endpointer, recording taps and the media timeout.  It never
touches a socket or a clock: the asyncio glue (or the flow harness on a virtual clock)
calls :meth:`MediaMixer.tick` every 20 ms with ``now`` and sends what comes back.

:class:`MediaMixer` runs the DSP that pays to batch (in-band DTMF across every call in one
numpy pass; G.711 encoding of every outgoing frame in one lookup) and keeps one shared
tick for all calls.  In a mixer, received datagrams are queued (latched on arrival, with
their arrival time) and handled at the tick: steady streams' RTP statistics and jitter
buffers are stepped together as numpy columns (:mod:`telephony.rtp.rxbank`), anything
unusual by the call's own objects, with the same result either way.
"""

from __future__ import annotations

import heapq
import logging
import random
import wave
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from telephony.codecs.base import Codec, get_codec
from telephony.dsp.bank import check_keep, grow_channels, keep_channels
from telephony.dsp.dtmf import DtmfDetectorBank, InbandDigit
from telephony.dsp.tones import TonalityConfig
from telephony.dsp.vad import Endpointer, EndpointerBank, EndpointerConfig
from telephony.errors import MediaError, RtpError
from telephony.events import (
    CallEvent,
    DtmfReceived,
    MediaFailed,
    MediaTimeout,
    PromptFinished,
    PromptStarted,
    SpeechEnded,
    SpeechStarted,
)
from telephony.rtp.dtmf import DtmfEventReceiver, DtmfEventSender, DtmfStarted
from telephony.rtp.jitter import JitterBuffer, JitterConfig
from telephony.rtp.latch import LatchVerdict, RtpLatch
from telephony.rtp.packet import RTP_HEADER, RtpPacket
from telephony.rtp.rtcp import RtcpBye, RtcpSenderReport, parse_rtcp
from telephony.rtp.rxbank import ReceiveBank
from telephony.rtp.stream import RtcpConfig, RtcpScheduler, RtpReceiveStats, RtpSender

log = logging.getLogger(__name__)

Pcm = npt.NDArray[np.int16]
Addr = tuple[str, int]

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME = SAMPLE_RATE * FRAME_MS // 1000
SILENCE = np.zeros(FRAME, dtype=np.int16)
CN_PAYLOAD_TYPE = 13
IDLE_TX_MODES = ("silence", "suppress")
"""What :attr:`MediaConfig.idle_tx` may be."""
_unpack_rtp_header = RTP_HEADER.unpack_from
_MAX_SOURCES = 8
"""RTP sources (SSRCs) whose statistics a call keeps at once."""

DTMF_FREQS = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}


def dtmf_tone(digit: str, duration_ms: int, *, level_dbm0: float = -7.0,
              sample_rate: int = SAMPLE_RATE) -> Pcm:
    """A DTMF tone pair, each tone at ``level_dbm0`` (mu-law 0 dBm0 = 3.14 dB below full scale)."""
    low, high = DTMF_FREQS[digit.upper()]
    n = int(sample_rate * duration_ms / 1000)
    t = np.arange(n) / sample_rate
    amp = 32768 * 10 ** ((level_dbm0 - 3.14) / 20)
    tone = amp * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    return np.clip(tone, -32768, 32767).astype(np.int16)


@dataclass(frozen=True, slots=True)
class MediaConfig:
    """What was negotiated in SDP plus the knobs of the pipeline."""

    codec: str = "PCMU"
    payload_type: int = 0
    telephone_event_pt: int | None = 101
    ptime_ms: int = FRAME_MS
    media_timeout: float = 30.0
    """Seconds without RTP before :class:`MediaTimeout` (0 disables)."""
    latch: str = "strict"
    """Which sources RTP is accepted from and latched to (RFC 4961 symmetric RTP):
    ``strict`` (default), ``sdp-only`` or ``symmetric``; see :mod:`telephony.rtp.latch`."""
    latch_seconds: float = 5.0
    """``symmetric`` mode: how long after the first latch another source may take over."""
    latch_packets: int = 2
    """Consecutive plausible packets (negotiated payload type, one SSRC, consecutive
    sequence numbers) a source must send before it is latched to."""
    latch_nat: bool = False
    """``strict`` mode: peers are behind NAT; latch to the SIP peer's host even when the SDP
    address looks reachable."""
    inband_dtmf: bool = True
    endpointer: EndpointerConfig = field(default_factory=EndpointerConfig)
    jitter_min_ms: int = 20
    jitter_max_ms: int = 200
    idle_tx: str = "silence"
    """What is sent while there is nothing to play (no prompt, no DTMF, no bridge):
    ``silence`` (default: a packet of G.711 silence every 20 ms, a line never silent on the
    wire) or ``suppress`` (after ``idle_burst`` packets, nothing but a keep-alive packet every
    ``idle_keepalive`` seconds until there is audio; as Asterisk's AMD and ``Wait`` without
    ``transmit_silence``).  Suppressed, the RTP timestamp keeps advancing by 160 a tick and
    the first packet after the gap carries the marker bit (RFC 3550 5.1, RFC 3551 4.1)."""
    idle_burst: int = 5
    """``suppress``: packets of silence sent first all the same (100 ms), so that a NAT or an
    SBC that latches to the first packet it gets (symmetric RTP) opens its pinhole at once."""
    idle_keepalive: float = 10.0
    """``suppress``: a silence packet after this many seconds with nothing sent (0: none),
    for NAT bindings and SBC media timers; RTCP reports go on every ~5 s either way."""

    def __post_init__(self) -> None:
        if self.idle_tx not in IDLE_TX_MODES:
            raise MediaError(f"idle_tx must be one of {', '.join(IDLE_TX_MODES)}, "
                             f"not {self.idle_tx!r}")


@dataclass(slots=True)
class _Playout:
    prompt: str
    pcm: Pcm
    barge_in: bool
    pos: int = 0
    started: bool = False


class Recording:
    """Frames of both directions, aligned by tick, until stopped."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.end: float | None = None
        self.rx: list[Pcm] = []
        self.tx: list[Pcm] = []
        self.silence_s = 0.0
        self.stop_reason = ""

    def add(self, rx: Pcm, tx: Pcm, speech: bool) -> None:
        self.rx.append(rx)
        self.tx.append(tx)
        self.silence_s = 0.0 if speech else self.silence_s + FRAME_MS / 1000

    @property
    def duration_s(self) -> float:
        return len(self.rx) * FRAME_MS / 1000

    def caller_audio(self) -> Pcm:
        return np.concatenate(self.rx) if self.rx else np.zeros(0, np.int16)

    def write_wav(self, path: Path, *, both_directions: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        rx = self.caller_audio()
        with wave.open(str(path), "wb") as w:
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            if both_directions:
                tx = np.concatenate(self.tx) if self.tx else np.zeros(0, np.int16)
                w.setnchannels(2)
                w.writeframes(np.stack([rx, tx], axis=1).astype("<i2").tobytes())
            else:
                w.setnchannels(1)
                w.writeframes(rx.astype("<i2").tobytes())


class CallMedia:
    """One call's media, driven by :class:`MediaMixer` ticks (sans-IO)."""

    def __init__(self, config: MediaConfig, *, now: float, rng: random.Random | None = None,
                 remote: Addr | None = None, wallclock_offset: float = 0.0) -> None:
        self.config = config
        self.codec: Codec = get_codec(config.codec)
        self.rng = rng or random.Random()
        self.remote: Addr | None = remote
        """Where the call's RTP goes: the SDP address, or the source latched to."""
        self._latch = RtpLatch(config.latch, sdp=remote, latch_seconds=config.latch_seconds,
                               latch_packets=config.latch_packets, nat=config.latch_nat)
        self._latch_open = True
        """Packets from ``remote`` still tell the latch that the caller is at its SDP address."""
        self._payload_types = self._negotiated_pts(config)
        self._first_rx: float | None = None
        self._last_rx = now
        self.sender = RtpSender(payload_type=config.payload_type, rng=self.rng)
        self._rx_stats = RtpReceiveStats()
        # (``rx_stats``: reception statistics of the audio source, the SSRC of the latest
        # audio packet; ``jitter``: its jitter buffer; both live in the mixer's ReceiveBank
        # columns while the stream is steady, see telephony/rtp/rxbank.py)
        # RFC 3550 8: one RTP session may carry several sources; SIPp, for one, sends RFC 4733
        # events under their own SSRC between the audio packets.  One statistics object per
        # SSRC keeps them from restarting each other (a few kept, oldest dropped).
        self._rx_by_ssrc: dict[int, RtpReceiveStats] = {}
        # RFC 3550 6: SR/RR + SDES every ~5 s to the peer's RTCP address, BYE at the end.
        # ``wallclock_offset`` maps ``now`` (monotonic) to Unix time for SR NTP timestamps.
        self.rtcp = RtcpScheduler(ssrc=self.sender.ssrc, cname=f"dialtone-{self.sender.ssrc:08x}",
                                  sender=self.sender, stats=self._rx_stats,
                                  config=RtcpConfig(wallclock_offset=wallclock_offset),
                                  rng=self.rng, now=now)
        self.remote_rtcp: Addr | None = None if remote is None else (remote[0], remote[1] + 1)
        self._jitter = JitterBuffer(self._jitter_config(config))
        self._dtmf_rx = DtmfEventReceiver()
        self._dtmf_tx = DtmfEventSender(self.sender, payload_type=config.telephone_event_pt or 101)
        self._dtmf_tx_queue: deque[tuple[str, int]] = deque()
        self._inband_tx: deque[Pcm] = deque()
        self._endpointer: Endpointer | None = None
        # Endpointing state as the mixer's batched VAD reports it (or the own Endpointer's):
        self._speaking = False
        self._utt_seen = False
        # _utt_seen: the utterance in progress started on a tick this call was listening (or
        # had a barge-in prompt playing), as a per-call endpointer would have seen it.
        self._vad_reset = True
        self._vad_was_active = False
        self._own_vad = True
        self.listening = False
        self.sending = True
        self._tx_idle = False
        """The latest :meth:`tx_frame` had nothing to play (silence of our own)."""
        self._tx_burst = config.idle_burst
        """``idle_tx: suppress``: silence packets still to send before suppressing."""
        self._tx_quiet = 0
        """Ticks in a row with nothing sent while idle (0: the last tick sent a packet)."""
        self._queue: deque[_Playout] = deque()
        self._events: deque[CallEvent] = deque()
        self._recordings: list[Recording] = []
        self._timed_out = False
        self._digit_keys: deque[tuple[str, float]] = deque(maxlen=32)
        self.slot: int | None = None
        """The mixer's channel for this call (None when not in a mixer)."""
        self._rxbank: ReceiveBank | None = None
        self._rx_queue: _RxQueue | None = None
        """The mixer's queue of received datagrams (None: handle each on arrival)."""
        self._counters = {"rx_packets": 0, "rx_bad": 0, "rx_wrong_source": 0, "tx_packets": 0,
                         "rx_rtcp": 0, "rx_pt_changes": 0}
        self._rx_pt: int | None = None
        self._logged_sources: set[Addr] = set()

    # --- state the mixer's ReceiveBank may hold in its columns --------------------------------

    def handle_queued(self) -> None:
        """Handle the datagrams queued for the mixer's next tick now, every call's at once
        (the state is what the tick would make of them; readers of the state call this)."""
        queue = self._rx_queue
        if queue is not None and queue.media:
            queue.drain()

    @property
    def rx_stats(self) -> RtpReceiveStats:
        """Reception statistics of the audio source (the SSRC of the latest audio packet)."""
        if self._rxbank is not None:
            self.handle_queued()
            self._rxbank.sync_stats(self.slot)  # type: ignore[arg-type]
        return self._rx_stats

    @property
    def jitter(self) -> JitterBuffer:
        """The jitter buffer of the audio source."""
        if self._rxbank is not None:
            self.handle_queued()
            self._rxbank.sync_jitter(self.slot)  # type: ignore[arg-type]
        return self._jitter

    @jitter.setter
    def jitter(self, jitter: JitterBuffer) -> None:
        self._jitter = jitter
        if self._rxbank is not None:
            self._rxbank.set_jitter(self.slot, jitter)  # type: ignore[arg-type]

    @property
    def counters(self) -> dict[str, int]:
        """Packet counters (rx_packets, rx_bad, rx_wrong_source, tx_packets, rx_rtcp...)."""
        bank = self._rxbank
        if bank is not None:
            self.handle_queued()
            ch = self.slot
            self._counters["rx_packets"] += int(bank.rx_count[ch])
            bank.rx_count[ch] = 0
            self._last_rx = max(self._last_rx, float(bank.last_rx[ch]))
        return self._counters

    # --- network side ----------------------------------------------------------------------

    def receive_rtp(self, data: bytes, addr: Addr, *, now: float) -> None:
        """A datagram from the RTP port: latch, then parse and route it to the jitter buffer
        or DTMF (at once, or at the mixer's next tick with its arrival time)."""
        if self.remote != addr:
            # RFC 4961 symmetric RTP under a latch policy (telephony/rtp/latch.py): only
            # the SDP address, or a plausible source the mode allows, ever gets our audio.
            verdict = self._latch.judge(data, addr, self._payload_types, now=now)
            if verdict is LatchVerdict.REJECT:
                self._reject_source(addr)
                return
            if verdict is LatchVerdict.LATCH:
                if addr != self._latch.sdp:
                    log.info("RTP latched to %s:%d (SDP address %s)", addr[0], addr[1],
                             self._latch.sdp)
                self.remote = addr
                self._latch_open = self._latch.open
        elif self._latch_open:
            if addr == self._latch.sdp:
                self._latch.sdp_seen()
            self._latch_open = False
        queue = self._rx_queue
        if queue is not None:
            queue.media.append(self)
            queue.data.append(data)
            queue.now.append(now)
            return
        self.receive_now(data, now)

    def receive_now(self, data: bytes, now: float) -> None:
        """A datagram from the latched source, parsed and routed now.

        Bytes that are not a valid packet (the parsers raise only
        :class:`~telephony.errors.RtpError`/:class:`~telephony.errors.MediaError`) are
        counted in ``rx_bad`` and dropped; nothing a peer sends makes this raise."""
        try:
            if len(data) > 12 and data[0] == 0x80:
                # Fast path: more audio from the current source, no CSRC, extension or padding
                # (nearly every packet).  The general path below does the same for it.
                _, b1, seq, ts, ssrc = _unpack_rtp_header(data)
                if b1 & 0x7F == self._rx_pt and ssrc == self._rx_stats.ssrc \
                        and not 192 <= b1 <= 223 and b1 & 0x7F != self.config.telephone_event_pt:
                    self._last_rx = now
                    self._counters["rx_packets"] += 1
                    self._rx_stats.update_fields(seq, ssrc, ts, len(data) - 12, now)
                    self._jitter.put_fields(ssrc, ts, b1 & 0x7F, data[12:], now)
                    return
            if len(data) >= 2 and 192 <= data[1] <= 223:  # RFC 5761 RTCP on the RTP port (is_rtcp)
                self.receive_rtcp(data, self.remote, now=now)  # type: ignore[arg-type]
                return
            try:
                packet = RtpPacket.parse(data)
            except RtpError:
                self._counters["rx_bad"] += 1
                return
            if self._first_rx is None:
                self._first_rx = now
            self._last_rx = now
            self._counters["rx_packets"] += 1
            pt = packet.payload_type
            stats = self._rx_stats
            if packet.ssrc != stats.ssrc:
                stats = self._stats_for(packet.ssrc)
            stats.update(packet, now=now)
            if pt != self.config.telephone_event_pt and stats is not self._rx_stats:
                self._rx_stats = stats
                self.rtcp.stats = stats
                if self._rxbank is not None:
                    self._rxbank.set_stats(self.slot, stats)  # type: ignore[arg-type]
            if pt == self.config.telephone_event_pt:
                try:
                    self._dtmf_rx.feed(packet, now=now)
                except RtpError:
                    self._counters["rx_bad"] += 1
                    return
                self._drain_rfc4733(now)
                return
            if pt != self._rx_pt:
                if self._rx_pt is not None:
                    self._counters["rx_pt_changes"] += 1
                self._rx_pt = pt
            self._jitter.put(packet, now=now)
        except MediaError:
            # RFC 3550 leaves invalid packets to the receiver: count and drop
            self._counters["rx_bad"] += 1

    def receive_rtcp(self, data: bytes, addr: Addr, *, now: float) -> None:
        """A compound RTCP packet (from the RTCP port, or multiplexed on the RTP port)."""
        try:
            packets = parse_rtcp(data)
        except RtpError:
            self._counters["rx_bad"] += 1
            return
        self._counters["rx_rtcp"] += 1
        self._last_rx = now  # RTCP keeps a call on hold alive (no media timeout)
        for packet in packets:
            if isinstance(packet, RtcpSenderReport):
                stats = self._rx_by_ssrc.get(packet.ssrc)
                if stats is not None:
                    stats.on_sender_report(packet, now=now)
            elif isinstance(packet, RtcpBye):
                self._counters["rx_rtcp_bye"] = self._counters.get("rx_rtcp_bye", 0) + 1

    def set_remote_rtcp(self, addr: Addr) -> None:
        self.remote_rtcp = addr

    def rtcp_bye(self, *, now: float, reason: str = "") -> bytes | None:
        """The final report with BYE (RFC 3550 6.6) for the peer's RTCP address, once."""
        if self.remote_rtcp is None or self.rtcp.get_timer() is None:
            return None
        self.rtcp.stats = self.rx_stats  # (out of the mixer's columns first)
        return self.rtcp.bye(now=now, reason=reason)

    def _stats_for(self, ssrc: int) -> RtpReceiveStats:
        stats = self._rx_by_ssrc.get(ssrc)
        if stats is None:
            if not self._rx_by_ssrc and self._rx_stats.ssrc is None:
                stats = self._rx_stats  # the first source fills the initial object
            else:
                stats = RtpReceiveStats()
            if len(self._rx_by_ssrc) >= _MAX_SOURCES:
                self._rx_by_ssrc.pop(next(iter(self._rx_by_ssrc)))
            self._rx_by_ssrc[ssrc] = stats
        return stats

    def _drain_rfc4733(self, now: float) -> None:
        while (ev := self._dtmf_rx.next_event()) is not None:
            if isinstance(ev, DtmfStarted):
                self._barge(now)
            elif isinstance(ev, DtmfReceived):
                self._digit(ev, now)

    def receive_info_dtmf(self, digit: str, duration_ms: int, *, now: float) -> None:
        self._digit(DtmfReceived(digit, duration_ms, "info", at=now), now)

    def _digit(self, ev: DtmfReceived, now: float) -> None:
        # One key press may reach us twice (RFC 4733 and in-band tones of the same press in
        # the audio, or INFO and RFC 4733 from a confused gateway): report it once.
        for digit, at in self._digit_keys:
            if digit == ev.digit and abs(at - ev.at) < 0.120:
                return
        self._digit_keys.append((ev.digit, ev.at))
        self._barge(now)
        self._events.append(ev)

    def set_remote(self, addr: Addr, *, signalling_host: str | None = None) -> None:
        """Where SDP says to send (``signalling_host``: where the peer's SIP came from, for
        the ``strict`` latch behind NAT).  A new address starts the latch over; the same
        address again (a re-INVITE) keeps a source already latched to."""
        if signalling_host is not None:
            self._latch.signalling_host = signalling_host
        if self._latch.set_sdp(addr) or self.remote is None:
            self.remote = addr
            self._latch_open = True

    def _reject_source(self, addr: Addr) -> None:
        self._counters["rx_wrong_source"] += 1
        if addr not in self._logged_sources and len(self._logged_sources) < 8:
            # once per source, a few sources per call: a flood must not flood the log
            self._logged_sources.add(addr)
            # before the peer's SDP (an outbound call's callee may send RTP before its 200 OK
            # is processed) a rejection is routine: counted, logged at debug level only
            level = logging.WARNING if self._latch.sdp is not None else logging.DEBUG
            log.log(level, "RTP from %s:%d rejected (sending to %s, SDP %s, latch %s)",
                    addr[0], addr[1], self.remote, self._latch.sdp, self._latch.mode.name)

    @staticmethod
    def _negotiated_pts(config: MediaConfig) -> frozenset[int]:
        pts = {config.payload_type, CN_PAYLOAD_TYPE}
        if config.telephone_event_pt is not None:
            pts.add(config.telephone_event_pt)
        return frozenset(pts)

    def _jitter_config(self, config: MediaConfig) -> JitterConfig:
        return JitterConfig(min_delay=config.jitter_min_ms / 1000,
                            max_delay=config.jitter_max_ms / 1000,
                            payload_types={config.payload_type: get_codec(config.codec)})

    def reconfigure(self, config: MediaConfig) -> None:
        """Apply a (re-)negotiated codec / payload types, keeping the RTP stream numbering."""
        if (config.codec, config.payload_type) != (self.config.codec, self.config.payload_type):
            self.jitter = JitterBuffer(self._jitter_config(config))  # (the bank follows)
        self.config = config
        self._payload_types = self._negotiated_pts(config)
        if self._rxbank is not None:
            self._rxbank.timeout[self.slot] = config.media_timeout or np.inf
        self.codec = get_codec(config.codec)
        self.sender.payload_type = config.payload_type
        self._dtmf_tx.payload_type = config.telephone_event_pt or 101

    bridged_to: CallMedia | None = None
    _last_rx_pcm: Pcm = SILENCE

    def bridge(self, other: CallMedia) -> None:
        """Each side hears the other (prompts still play over the bridge when queued)."""
        self.bridged_to = other
        other.bridged_to = self

    def unbridge(self) -> None:
        other = self.bridged_to
        self.bridged_to = None
        if other is not None and other.bridged_to is self:
            other.bridged_to = None

    # --- app side --------------------------------------------------------------------------

    def play(self, prompt: str, pcm: Pcm, *, barge_in: bool = True, now: float) -> None:
        """Queue ``pcm`` (8 kHz int16) after whatever is playing."""
        self._queue.append(_Playout(prompt, np.asarray(pcm, dtype=np.int16), barge_in))

    def stop_playback(self, *, now: float, interrupted: bool = True) -> None:
        while self._queue:
            p = self._queue.popleft()
            if p.started:
                self._events.append(PromptFinished(p.prompt, interrupted=interrupted, at=now))

    @property
    def is_playing(self) -> bool:
        return bool(self._queue)

    @property
    def endpointer(self) -> Endpointer:
        """This call's own endpointer (used when :meth:`after_dsp` is not given VAD events)."""
        if self._endpointer is None:
            self._endpointer = Endpointer(self.config.endpointer)
        return self._endpointer

    @property
    def vad_active(self) -> bool:
        """The endpointer hears this call: it listens, or a barge-in prompt is playing."""
        q = self._queue
        return self.listening or bool(q and q[0].barge_in and q[0].started)

    def set_listening(self, enabled: bool, *, now: float) -> None:
        if enabled and not self.listening and not (self._speaking and self._utt_seen):
            # a fresh endpointer, unless an utterance it heard is still in progress
            self._vad_reset = True
            self._endpointer = None
        self.listening = enabled

    def send_dtmf(self, digit: str, duration_ms: int = 100, *, inband: bool = False,
                  now: float) -> None:
        if inband or self.config.telephone_event_pt is None:
            self._inband_tx.append(dtmf_tone(digit, duration_ms))
        else:
            self._dtmf_tx_queue.append((digit, duration_ms))

    def start_recording(self, *, now: float) -> Recording:
        rec = Recording(now)
        self._recordings.append(rec)
        return rec

    def attach_recording(self, rec: Recording) -> Recording:
        """Feed ``rec`` (a :class:`Recording`, or a subclass whose ``add`` consumes each
        frame as it comes: the dialer's streaming AMD tap) from the next tick on; stop
        with :meth:`stop_recording`."""
        self._recordings.append(rec)
        return rec

    def stop_recording(self, rec: Recording, *, now: float) -> None:
        rec.end = now
        if rec in self._recordings:
            self._recordings.remove(rec)

    def next_event(self) -> CallEvent | None:
        return self._events.popleft() if self._events else None

    def _barge(self, now: float) -> None:
        if self._queue and self._queue[0].barge_in:
            self.stop_playback(now=now, interrupted=True)

    # --- the tick, in three steps so the mixer can batch between them ---------------------

    def rx_frame(self, *, now: float, check_timeout: bool = True) -> Pcm:
        """Step 1: the caller's next 20 ms (jitter buffer, decode, concealment)."""
        if self._dtmf_rx.in_progress is not None:  # a key held: end it if its packets stopped
            self._dtmf_rx.handle_timer(now=now)
            self._drain_rfc4733(now)
        if check_timeout:
            self.check_media_timeout(self._last_rx, now=now)
        return self._jitter.get(now=now).pcm

    def check_media_timeout(self, last_rx: float, *, now: float) -> None:
        """:class:`MediaTimeout` (once) if nothing arrived since ``last_rx`` for too long."""
        if self.config.media_timeout and not self._timed_out \
                and now - last_rx > self.config.media_timeout:
            self._timed_out = True
            self._events.append(MediaTimeout(self.config.media_timeout))

    def after_dsp(self, rx: Pcm, digits: Iterable[InbandDigit], tone_active: bool,
                  *, now: float) -> None:
        """Step 2: in-band digits found by the batched detector; endpointing (with this
        call's own :class:`Endpointer`); recording."""
        self.apply_digits(digits, now=now)
        events: list[CallEvent] = []
        active = self.vad_active
        if active:
            if self._vad_reset or self._endpointer is None:
                self._endpointer = Endpointer(self.config.endpointer)
                self._vad_reset = False
            events = self._endpointer.process(rx, now=now, tone_active=tone_active)
            self._speaking = self._endpointer.speaking
        self.apply_vad(rx, events, active, now=now)

    def apply_digits(self, digits: Iterable[InbandDigit], *, now: float) -> None:
        """Step 2a: in-band digits found by the batched detector (a start barges in)."""
        for d in digits:
            if d.kind == "start":
                self._barge(now)
            else:
                self._digit(d.to_call_event(), now)

    def apply_vad(self, rx: Pcm, events: Iterable[CallEvent], active: bool, *,
                  now: float) -> None:
        """Step 2b: the endpointer's events for this frame (``active``: it heard the frame,
        see :attr:`vad_active`); recording taps."""
        self._last_rx_pcm = rx
        speech = False
        for ev in events:
            if isinstance(ev, SpeechStarted):
                self._utt_seen = active
                if active:
                    self._barge(now)
            elif isinstance(ev, SpeechEnded):
                self._utt_seen = False
            if active and self.listening:
                self._events.append(ev)
        if active:
            speech = self._speaking
        if self._recordings:
            tx = self._last_tx
            for rec in self._recordings:
                rec.add(rx, tx, speech)

    _last_tx: Pcm = SILENCE

    def tx_frame(self, *, now: float) -> Pcm:
        """Step 3a: what we play in the next 20 ms (prompt, in-band DTMF or silence)."""
        self._tx_idle = False
        if self._inband_tx:
            tone = self._inband_tx[0]
            frame, rest = tone[:FRAME], tone[FRAME:]
            if len(rest):
                self._inband_tx[0] = rest
            else:
                self._inband_tx.popleft()
            if len(frame) < FRAME:
                frame = np.concatenate([frame, np.zeros(FRAME - len(frame), np.int16)])
            self._last_tx = frame
            return frame
        while self._queue:
            p = self._queue[0]
            if not p.started:
                p.started = True
                self._events.append(PromptStarted(p.prompt, at=now))
            chunk = p.pcm[p.pos:p.pos + FRAME]
            p.pos += FRAME
            if p.pos >= len(p.pcm):
                self._queue.popleft()
                self._events.append(PromptFinished(p.prompt, interrupted=False,
                                                   at=now + len(chunk) / SAMPLE_RATE))
            if len(chunk) == FRAME:
                self._last_tx = chunk
                return chunk
            if len(chunk):
                # the prompt ends inside this frame: pad with silence (no gap, no splice)
                frame = np.zeros(FRAME, np.int16)
                frame[: len(chunk)] = chunk
                self._last_tx = frame
                return frame
        if self.bridged_to is not None:
            self._last_tx = self.bridged_to._last_rx_pcm
            return self._last_tx
        self._last_tx = SILENCE
        self._tx_idle = True
        return SILENCE

    def packets(self, payload: bytes, *, now: float) -> list[bytes]:
        """Step 3b: RTP packets for this tick (the encoded frame, or RFC 4733 events)."""
        if not self.sending or self.remote is None:
            self.sender.advance(FRAME)
            return []
        dtmf = self._dtmf_tx
        if self._dtmf_tx_queue and not dtmf.active:
            digit, duration = self._dtmf_tx_queue.popleft()
            dtmf.start(digit, duration, now=now)
        if dtmf.active:
            # RFC 4733 2.5.1.1: the events replace the audio while a key is pressed; the
            # sender advanced the stream's timestamp by the event's duration already.
            out = dtmf.due(now=now + 1e-6)
            self._tx_quiet = 0  # (an event starts with its own marker, RFC 4733 2.5.1.1)
            self._counters["tx_packets"] += len(out)
            return out
        marker = False
        if self._tx_idle and self.config.idle_tx == "suppress":
            if self._tx_burst > 0:
                self._tx_burst -= 1
            elif self._tx_quiet < self._keepalive_ticks:
                # RFC 3550 5.1: the timestamp advances across the gap (the sequence number
                # does not); RFC 3551 4.1: the next packet starts a talkspurt (marker)
                self._tx_quiet += 1
                self.sender.advance(FRAME)
                return []
        if self._tx_quiet:
            marker = True
            self._tx_quiet = 0
        self._counters["tx_packets"] += 1
        return [self.sender.packetize(payload, timestamp_advance=FRAME, marker=marker)]

    @property
    def _keepalive_ticks(self) -> float:
        keepalive = self.config.idle_keepalive
        return keepalive * 1000 / FRAME_MS if keepalive > 0 else float("inf")


_HEADER = np.arange(12, dtype=np.int64)


_BATCH_MIN = 48
"""Calls from which the ReceiveBank's columns pay (measured with bench_media_inprocess.py:
equal cost at about 48 calls; at 1 call the columns cost 50 us more per tick; below, the
fixed cost of its numpy passes exceeds the per-call Python it saves)."""

_ENTRIES_PER_TICK = 48
"""Channels that may enter the ReceiveBank's columns per tick (an entry copies state: when
many streams settle at once, the cost is spread over ticks; meanwhile the objects work)."""


class _RxQueue:
    """Datagrams received since the mixer's last tick, in arrival order, as three lists
    (appending to them allocates no tuple: nothing for the garbage collector to count)."""

    __slots__ = ("data", "drain", "media", "now")

    def __init__(self, drain: Callable[[], None]) -> None:
        self.media: list[CallMedia] = []
        self.data: list[bytes] = []
        self.now: list[float] = []
        self.drain = drain
        """Handles everything queued now (the mixer's receive step without the playout)."""

_QUIET_TICKS = 2
"""Silent frames after which the DTMF bank's history (8 sub-blocks of 40 samples) is all zero."""

_BANK_STEP = 32
"""Channels the bank grows by beyond 16 (growth copies its state arrays: cheap, and rare)."""

_SHRINK_TICKS = 250
"""Ticks (5 s) the bank must have been bigger than :func:`_bank_target` before it shrinks:
a dip between two bursts of calls does not make it shrink and grow again."""


def _bank_capacity(n: int) -> int:
    """Channels for ``n`` calls: 4, 16, then the next multiple of ``_BANK_STEP``."""
    if n <= 4:
        return 4
    if n <= 16:
        return 16
    return -(-n // _BANK_STEP) * _BANK_STEP


def _bank_target(n: int) -> int:
    """Channels to shrink to with ``n`` calls up: room for half as many again, so that it
    grows again only when they are 1.5 times as many (the hysteresis between growing and
    shrinking; 20 calls: 32 channels, regrown at 33, shrunk again at 21 or fewer)."""
    return _bank_capacity(n + n // 2)


def _vad_settle_ticks(config: EndpointerConfig) -> int:
    """Silent frames after which another silent frame leaves an idle endpointer unchanged.

    By then every window holds only silence (the music window, the pre-roll/start window
    and the tonality history), a pending start has been confirmed or dropped, and silence
    is never voiced; so, while no utterance is in progress, feeding silence is a no-op.
    """
    tonality = TonalityConfig()
    return 2 + max(config.music_window_ms // 20,
                   (config.pre_roll_ms + config.start_window_ms + config.confirm_ms) // 20 + 1,
                   config.confirm_ms // 20 + 1,
                   tonality.lag_frames + tonality.span_frames)


class _Bank:
    """The mixer's channels: DTMF detectors, endpointers, and the frames of both directions.

    One bank serves every call of the process (a channel per call), so each numpy pass
    covers all calls at once: the fixed cost of a pass is paid once per tick, not once per
    group of calls.  It grows as calls arrive (see :func:`_bank_capacity`); freed channels
    are reused lowest first, and when the calls have gone it shrinks (:meth:`keep`, see
    :meth:`MediaMixer._maybe_shrink`): about 87 kB per channel, so a bank left at the peak of
    a burst (576 channels after an INVITE flood) would hold ~50 MB for nothing.
    """

    __slots__ = ("dtmf", "frames", "inband", "quiet", "rx", "size", "tx", "used", "users",
                 "vad", "vad_quiet")

    def __init__(self, size: int, config: EndpointerConfig) -> None:
        self.size = size
        self.rx = ReceiveBank(size)
        self.used = np.zeros(size, dtype=np.bool_)
        self.dtmf = DtmfDetectorBank(size)
        self.vad = EndpointerBank(size, config)
        self.frames = np.zeros((size, FRAME), dtype=np.int16)
        """Received frames, a row per channel (rows of free channels are zero)."""
        self.tx = np.zeros((size, FRAME), dtype=np.int16)
        """Frames to send, a row per channel."""
        self.inband = np.zeros(size, dtype=bool)
        self.quiet = 0
        self.vad_quiet = 0
        self.users: list[CallMedia | None] = [None] * size

    def grow(self, size: int) -> None:
        """Room for ``size`` channels; the existing channels keep all their state."""
        self.rx.grow(size)
        self.used = grow_channels(self.used, size, False)
        self.dtmf.grow(size)
        self.vad.grow(size)
        self.frames = grow_channels(self.frames, size, 0)
        self.tx = grow_channels(self.tx, size, 0)
        self.inband = grow_channels(self.inband, size, False)
        self.users.extend([None] * (size - self.size))
        self.size = size

    def keep(self, keep: list[int], size: int) -> None:
        """Resize to ``size`` channels, channel ``keep[i]`` becoming channel ``i`` with all
        its state (DTMF, endpointer, receive columns, frames); the channels after them are
        free.  The caller re-points its calls' ``slot``."""
        idx = check_keep(self.size, keep, size)
        self.rx.keep_channels(idx, size)
        self.used = keep_channels(self.used, idx, size, False)
        self.dtmf.keep_channels(idx, size)
        self.vad.keep_channels(idx, size)
        self.frames = keep_channels(self.frames, idx, size, 0)
        self.tx = keep_channels(self.tx, idx, size, 0)
        self.inband = keep_channels(self.inband, idx, size, False)
        self.users = [self.users[i] for i in keep] + [None] * (size - len(keep))
        self.size = size


class MediaMixer:
    """Every call's media, ticked together every 20 ms (sans-IO).

    ``tick(now)`` returns ``(media, packet, addr)`` triples to send.  The in-band DTMF
    detector and the endpointer (VAD) run over all calls in one numpy pass (one bank of
    channels, grown as calls arrive: 4, 16, then by 32), G.711 encoding in one lookup per
    codec.  When every call's frame is digital silence and no digit is in progress the DTMF
    pass is skipped (it would change nothing); when no call listens, or every listening call
    has been silent long enough, the endpointer pass is skipped.

    Received datagrams wait in a queue for the tick (``batch_receive``): there, the packets
    of steady streams update their RTP statistics and jitter buffers in the
    :class:`~telephony.rtp.rxbank.ReceiveBank`'s columns, one numpy pass per packet of a
    call, and their frames play from there; the other calls' objects do the rest.  Reading
    a call's statistics, jitter buffer or counters first handles what is queued.
    """

    def __init__(self, endpointer: EndpointerConfig | None = None, *,
                 batch_receive: bool = True) -> None:
        self.calls: list[CallMedia] = []
        self.batch_receive = batch_receive
        """Queue received datagrams and step the steady streams in the ReceiveBank's columns
        at the tick (False: each call's objects handle each datagram on arrival)."""
        self._rx_queue = _RxQueue(self._drain_now)
        self.batch_min = _BATCH_MIN
        """Fewer calls than this are received through their own objects."""
        self._bank: _Bank | None = None
        self._free: list[int] = []
        """Free channels of the bank (a heap: the lowest is reused first)."""
        self._endpointer_config = endpointer
        self._oversized = 0
        """Consecutive ticks the bank has been bigger than :func:`_bank_target`."""
        self.bank_shrinks = 0
        """Times the bank was compacted and shrunk (its calls gone)."""
        self.ticks = 0
        self.dtmf_skipped = 0
        """Passes of the DTMF detector skipped because every frame was silent."""
        self.vad_skipped = 0
        """Passes of the endpointer skipped (settled silence, no utterance)."""
        self._vad_settle = 0
        self._retired: Counter[str] = Counter()
        """Counters of the calls that left the mixer (for the node-wide :attr:`counters`)."""
        self._failed: dict[CallMedia, str] = {}
        """Calls whose media raised during this tick, with the cause."""
        self.calls_failed = 0
        """Calls taken out of the mixer because their media raised."""
        self.tick_errors = 0
        """Batched passes that raised (the tick went on without them)."""

    @property
    def channels(self) -> int:
        """Channels of the bank (its capacity)."""
        return 0 if self._bank is None else self._bank.size

    def add(self, media: CallMedia) -> None:
        if self._endpointer_config is None:
            self._endpointer_config = media.config.endpointer
        self._vad_settle = _vad_settle_ticks(self._endpointer_config)
        # a call with other endpointer settings than the bank's keeps its own Endpointer
        media._own_vad = media.config.endpointer != self._endpointer_config
        bank = self._bank
        if not self._free:
            old = 0 if bank is None else bank.size
            size = _bank_capacity(len(self.calls) + 1)
            if bank is None:
                bank = self._bank = _Bank(size, self._endpointer_config)
            else:
                bank.grow(size)
            for ch in range(old, size):
                heapq.heappush(self._free, ch)
        assert bank is not None
        ch = heapq.heappop(self._free)
        bank.dtmf.reset_channel(ch)
        bank.vad.reset_channel(ch)
        bank.vad_quiet = 0
        bank.inband[ch] = media.config.inband_dtmf
        bank.users[ch] = media
        bank.used[ch] = True
        media.slot = ch
        if self.batch_receive:
            bank.rx.attach(ch, media._jitter, media._rx_stats)
            bank.rx.last_rx[ch] = media._last_rx
            bank.rx.timeout[ch] = media.config.media_timeout or np.inf
            media._rxbank = bank.rx
            media._rx_queue = self._rx_queue
        media._vad_reset = False  # the channel is fresh
        media._vad_was_active = False
        self.calls.append(media)

    def remove(self, media: CallMedia) -> None:
        """Take ``media`` out of the mixer (its state goes back into its own objects)."""
        if media in self.calls:
            self.calls.remove(media)
            ch = media.slot
            if ch is not None and self._bank is not None:
                bank = self._bank
                if media._rxbank is not None:
                    try:
                        # its queued datagrams are handled now; the bank's counts folded in
                        media.counters  # noqa: B018
                        bank.rx.detach(ch)
                    except Exception as exc:  # noqa: BLE001 - a broken call still leaves
                        log.error("media of channel %d failed to leave the mixer: %r", ch, exc)
                        bank.rx.jitters[ch] = None
                        bank.rx.stats[ch] = None
                        bank.rx.j_fast[ch] = bank.rx.s_fast[ch] = False
                    media._rxbank = None
                    media._rx_queue = None
                bank.used[ch] = False
                bank.inband[ch] = False
                bank.frames[ch] = 0
                bank.tx[ch] = 0
                bank.users[ch] = None
                heapq.heappush(self._free, ch)
                media.slot = None
            self._retired.update(media._counters)

    @property
    def counters(self) -> dict[str, int]:
        """Node-wide counters: every call's packet counters (live calls and those that left)
        summed, plus the mixer's own (``calls_failed``, ``tick_errors``)."""
        total: Counter[str] = Counter(self._retired)
        for m in self.calls:
            total.update(m.counters)
        total["calls_failed"] = self.calls_failed
        total["tick_errors"] = self.tick_errors
        return dict(total)

    def _fail(self, media: CallMedia, exc: BaseException, step: str) -> None:
        """A call's media raised: it leaves the mixer at the end of this tick and gets
        :class:`MediaFailed`; the other calls go on (one call must not silence the node)."""
        if media in self._failed:
            return
        cause = f"{step}: {type(exc).__name__}: {exc}"
        self._failed[media] = cause
        log.error("media of call on channel %s failed (%s); ending that call", media.slot, cause,
                  exc_info=exc)

    def _evict_failed(self) -> None:
        failed, self._failed = self._failed, {}
        for media, cause in failed.items():
            self.calls_failed += 1
            self.remove(media)
            media.sending = False
            media._events.append(MediaFailed(cause))

    def tick(self, *, now: float) -> list[tuple[CallMedia, bytes, Addr]]:
        """One 20 ms tick of every call; returns ``(media, packet, addr)`` to send.

        An exception from one call's code fails that call alone (:meth:`_fail`: it leaves
        the mixer with :class:`MediaFailed`); an exception of a batched pass is logged and
        counted in ``tick_errors``, and the tick carries on without that pass."""
        self.ticks += 1
        try:
            return self._tick(now)
        finally:
            if self._failed:
                self._evict_failed()

    def _maybe_shrink(self) -> None:
        """Shrink the bank to :func:`_bank_target` once it has been bigger for
        ``_SHRINK_TICKS`` ticks: the calls up move to its first channels with all their
        state, in their order, and the arrays are reallocated at the smaller size."""
        bank = self._bank
        if bank is None:
            return
        target = _bank_target(len(self.calls))
        if bank.size <= target:
            self._oversized = 0
            return
        self._oversized += 1
        if self._oversized < _SHRINK_TICKS:
            return
        self._oversized = 0
        self.shrink_bank(target)

    def shrink_bank(self, size: int) -> None:
        """Compact the bank's channels to the calls up and resize it to ``size`` (at least
        their number); each call keeps its state under its new channel."""
        bank = self._bank
        if bank is None:
            return
        if self._rx_queue.media:
            self._drain_now()  # queued datagrams are handled under the channels they knew
        live = sorted(m.slot for m in self.calls if m.slot is not None)
        size = max(size, len(live))
        bank.keep(live, size)
        for new, old in enumerate(live):
            user = bank.users[new]
            assert user is not None and user.slot == old
            user.slot = new
        self._free = list(range(len(live), size))  # sorted: already a heap
        self.bank_shrinks += 1
        log.info("media bank compacted: %d calls, %d channels", len(live), size)

    def _tick(self, now: float) -> list[tuple[CallMedia, bytes, Addr]]:
        self._maybe_shrink()
        calls = self.calls
        bank = self._bank
        if not calls or bank is None:
            return []
        # step 1: every call's received frame, into its row of the bank
        frames = bank.frames
        if self.batch_receive:
            try:
                self._receive_step(bank, now)
            except Exception:  # a batched pass: log, and each call's objects
                self.tick_errors += 1
                log.exception("batched receive failed; this tick's frames by each call")
                self._receive_each(bank, now)
        else:
            for m in calls:
                try:
                    frames[m.slot] = m.rx_frame(now=now)
                except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                    frames[m.slot] = 0
                    self._fail(m, exc, "receive")
        rx = [frames[m.slot] for m in calls]
        # step 2a: in-band DTMF, one pass
        try:
            found = self._dtmf_pass(bank, now)
        except Exception:  # a batched pass: skip it this tick
            self.tick_errors += 1
            log.exception("in-band DTMF pass failed")
            found = {}
        if found:
            users = bank.users
            for ch, digits in found.items():
                user = users[ch]
                if user is not None and user.config.inband_dtmf:
                    try:
                        user.apply_digits(digits, now=now)
                    except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                        self._fail(user, exc, "dtmf")
        # step 2b: the endpointer, one pass if some call is heard; then per call its events
        # and recording taps
        active = [m.vad_active for m in calls]
        try:
            heard, own = self._vad_pass(bank, calls, rx, active, now)
        except Exception:  # a batched pass: skip it this tick
            self.tick_errors += 1
            log.exception("endpointer pass failed")
            heard, own = {}, {}
        for i, m in enumerate(calls):
            # (rx[i] is a row of the bank, rewritten next tick: what is kept is a copy)
            try:
                events = own.get(i, ()) if m._own_vad else heard.get(m.slot, ())  # type: ignore[arg-type]
                if events or m._recordings:
                    m.apply_vad(rx[i].copy(), events, active[i], now=now)
                elif m.bridged_to is not None:
                    m._last_rx_pcm = rx[i].copy()
            except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                self._fail(m, exc, "endpointer")
        # step 3: every outgoing frame into its row, encoded in one lookup per codec
        tx = bank.tx
        for m in calls:
            try:
                tx[m.slot] = m.tx_frame(now=now)
            except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                tx[m.slot] = 0
                self._fail(m, exc, "playout")
        first = calls[0].codec
        blob = first.encode_batch(tx).tobytes()
        out: list[tuple[CallMedia, bytes, Addr]] = []
        failed = self._failed
        for m in calls:
            if failed and m in failed:
                continue
            row: int = m.slot  # type: ignore[assignment]  # set while in the mixer
            try:
                if m.codec.name == first.name:
                    payload = blob[row * FRAME:(row + 1) * FRAME]
                else:
                    payload = m.codec.encode_batch(tx[row:row + 1]).tobytes()
                remote = m.remote
                for pkt in m.packets(payload, now=now):
                    if remote is not None:
                        out.append((m, pkt, remote))
            except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                self._fail(m, exc, "send")
        # step 4: RTCP reports that are due (the engine sends them from the RTCP port)
        for m in calls:
            due = m.rtcp.get_timer()
            if due is not None and now >= due and m.remote_rtcp is not None:
                try:
                    if m._rxbank is not None:
                        m._rxbank.sync_stats(m.slot)  # type: ignore[arg-type]
                    report = m.rtcp.handle_timer(now=now)
                except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                    self._fail(m, exc, "rtcp")
                    continue
                if report is not None:
                    out.append((m, report, m.remote_rtcp))
        if failed:
            out = [o for o in out if o[0] not in failed]
        return out

    def _receive_step(self, bank: _Bank, now: float) -> None:
        """Step 1 with the ReceiveBank: the queued datagrams, media timeouts, playout (the
        columns for steady streams, each call's objects for the rest), then channels whose
        streams became steady enter the columns."""
        rx = bank.rx
        users = bank.users
        if len(self.calls) < self.batch_min:
            self._receive_each(bank, now)
            return
        if self._rx_queue.media:
            self._drain(bank)
        # RFC 3550 has no keep-alive: no RTP or RTCP for media_timeout seconds ends the call
        stale = np.nonzero(bank.used & (now - rx.last_rx > rx.timeout))[0]
        for ch in stale.tolist():
            m = users[ch]
            assert m is not None  # a used channel has its call
            m.check_media_timeout(max(m._last_rx, float(rx.last_rx[ch])), now=now)
        frames = bank.frames
        fast = np.nonzero(rx.j_fast)[0]
        played = rx.playout(fast, now, frames)
        slow = bank.used.copy()
        slow[fast[played]] = False
        budget = _ENTRIES_PER_TICK
        for ch in np.nonzero(slow)[0].tolist():
            m = users[ch]
            assert m is not None
            try:
                frames[ch] = m.rx_frame(now=now, check_timeout=False)
            except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                frames[ch] = 0
                self._fail(m, exc, "receive")
                continue
            if budget <= 0:
                continue
            if not rx.s_fast[ch] and self._try_enter_stats(rx, m, ch):
                budget -= 1
            if rx.s_fast[ch] and m._rx_pt is not None and m._dtmf_rx.in_progress is None \
                    and rx.enter_jitter(ch, m._rx_pt):
                budget -= 1

    def _receive_each(self, bank: _Bank, now: float) -> None:
        """Step 1 for a few calls: each call's objects (numpy's fixed cost per pass would
        exceed what the columns save)."""
        rx = bank.rx
        self._handle_each(bank)
        frames = bank.frames
        for m in self.calls:
            ch: int = m.slot  # type: ignore[assignment]
            last = m._last_rx
            if rx.last_rx[ch] > last:
                last = float(rx.last_rx[ch])
            m.check_media_timeout(last, now=now)
            try:
                frames[ch] = m.rx_frame(now=now, check_timeout=False)
            except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                frames[ch] = 0
                self._fail(m, exc, "receive")

    @staticmethod
    def _try_enter_stats(rx: ReceiveBank, m: CallMedia, ch: int) -> bool:
        pt = m._rx_pt
        if pt is None or pt == m.config.telephone_event_pt or m._rx_stats is not rx.stats[ch]:
            return False
        if rx.enter_stats(ch):
            rx.pt[ch] = pt
            rx.last_rx[ch] = max(m._last_rx, float(rx.last_rx[ch]))
            return True
        return False

    def _drain_now(self) -> None:
        if self._bank is not None and self._rx_queue.media:
            if len(self.calls) < self.batch_min:
                self._handle_each(self._bank)
            else:
                self._drain(self._bank)

    def _handle_each(self, bank: _Bank) -> None:
        """The queued datagrams through each call's objects (the columns emptied first)."""
        rx = bank.rx
        if rx.j_fast.any() or rx.s_fast.any():
            for ch in np.nonzero(rx.j_fast | rx.s_fast)[0].tolist():
                rx.exit_stats(ch)
                rx.exit_jitter(ch)
                rx.pt[ch] = -1
        queue = self._rx_queue
        if queue.media:
            owners, datas, nows = queue.media, queue.data, queue.now
            queue.media, queue.data, queue.now = [], [], []
            for m, data, at in zip(owners, datas, nows):
                try:
                    m.receive_now(data, at)
                except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                    self._fail(m, exc, "receive")
                    continue
                if m._rxbank is rx and m.slot is not None:
                    rx.last_rx[m.slot] = max(m._last_rx, float(rx.last_rx[m.slot]))

    def _drain(self, bank: _Bank) -> None:
        """The datagrams received since the last tick: steady streams' packets in the
        ReceiveBank's columns (a round per packet of a call, in arrival order), the others
        through their call's objects."""
        queue = self._rx_queue
        owners, datas, nows_l = queue.media, queue.data, queue.now
        queue.media, queue.data, queue.now = [], [], []
        rx = bank.rx
        slots_l = [-1 if m.slot is None or m._rxbank is not rx else m.slot for m in owners]
        n = len(owners)
        slots = np.array(slots_l, dtype=np.int64)
        nows = np.array(nows_l, dtype=np.float64)
        lens = np.fromiter(map(len, datas), dtype=np.int64, count=n)
        blob = np.frombuffer(b"".join(datas), dtype=np.uint8)
        starts = np.zeros(n, dtype=np.int64)
        np.cumsum(lens[:-1], out=starts[1:])
        head = blob[np.minimum(starts[:, None] + _HEADER, max(blob.shape[0] - 1, 0))].astype(
            np.int64) if blob.shape[0] else np.zeros((n, 12), dtype=np.int64)
        pt = rx.pt[np.maximum(slots, 0)]
        cand = (slots >= 0) & (lens > 12) & (head[:, 0] == 0x80) & (
            (head[:, 1] & 0x7F) == pt) & (pt >= 0)
        seq = (head[:, 2] << 8) | head[:, 3]
        ts = (head[:, 4] << 24) | (head[:, 5] << 16) | (head[:, 6] << 8) | head[:, 7]
        ssrc = (head[:, 8] << 24) | (head[:, 9] << 16) | (head[:, 10] << 8) | head[:, 11]
        size = lens - 12
        payload_at = starts + 12
        # rounds: the k-th packet of every call together (one packet per call per round)
        if n > 1 and np.bincount(np.maximum(slots, 0)).max() > 1:
            order = np.argsort(slots, kind="stable")
            sorted_slots = slots[order]
            first = np.r_[True, sorted_slots[1:] != sorted_slots[:-1]]
            group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0))
            rank = np.empty(n, dtype=np.int64)
            rank[order] = np.arange(n) - group_start
            rounds = [np.nonzero(rank == r)[0] for r in range(int(rank.max()) + 1)]
        else:
            rounds = [np.arange(n)]
        scalar: dict[int, list[int]] = {}
        for idx in rounds:
            ok = cand[idx]
            if scalar:
                ok &= ~np.isin(slots[idx], np.fromiter(scalar, dtype=np.int64))
            for k in idx[~ok].tolist():
                scalar.setdefault(slots_l[k], []).append(k)
            idx = idx[ok]
            if not idx.shape[0]:
                continue
            st_ok, j_ok = rx.receive(slots[idx], seq[idx], ts[idx], ssrc[idx], size[idx],
                                     nows[idx], payload_at[idx], blob)
            for k in idx[~st_ok].tolist():
                scalar.setdefault(slots_l[k], []).append(k)
            for k in idx[st_ok & ~j_ok].tolist():
                data = datas[k]
                try:
                    owners[k]._jitter.put_fields(int(ssrc[k]), int(ts[k]), data[1] & 0x7F,
                                                 data[12:], float(nows[k]))
                except MediaError:  # e.g. a malformed CN payload: counted and dropped
                    owners[k]._counters["rx_bad"] += 1
        for ch, ks in scalar.items():
            try:
                if ch < 0:  # the call left the mixer meanwhile: its datagrams go to it directly
                    for k in ks:
                        owners[k].receive_now(datas[k], float(nows[k]))
                    continue
                rx.exit_stats(ch)
                rx.exit_jitter(ch)
                rx.pt[ch] = -1
                m = owners[ks[0]]
                for k in ks:
                    m.receive_now(datas[k], float(nows[k]))
                rx.last_rx[ch] = max(m._last_rx, float(rx.last_rx[ch]))
            except Exception as exc:  # noqa: BLE001 - that call fails, not the tick
                self._fail(owners[ks[0]], exc, "receive")

    def _dtmf_pass(self, bank: _Bank, now: float) -> dict[int, list[InbandDigit]]:
        det = bank.dtmf
        if not bank.inband.any():
            # No call wants in-band digits (a dialer's calls): what the pass would find goes
            # nowhere (apply_digits and the endpointer's tone gate are masked by ``inband``),
            # and a call that joins gets a fresh channel (reset_channel in add).
            det.skip(FRAME)
            self.dtmf_skipped += 1
            return {}
        if not bank.frames.any():
            if bank.quiet >= _QUIET_TICKS and not det.tone_active.any():
                # Zero history, idle tracks, zero input: the pass would only advance the
                # sample count (the DTMF phase reference), so advance it and go on.
                det.skip(FRAME)
                self.dtmf_skipped += 1
                return {}
            bank.quiet += 1
        else:
            bank.quiet = 0
        found: dict[int, list[InbandDigit]] = {}
        for ch, digit in det.process(bank.frames, now=now):
            found.setdefault(ch, []).append(digit)
        return found

    def _vad_pass(self, bank: _Bank, calls: list[CallMedia], rx: list[Pcm], active: list[bool],
                  now: float) -> tuple[dict[int, list[CallEvent]], dict[int, list[CallEvent]]]:
        """Endpointer events: by channel (the bank's pass) and by call index (calls with
        their own endpointer)."""
        busy = False
        own: dict[int, list[CallEvent]] = {}
        tone_active = bank.dtmf.tone_active
        for i, m in enumerate(calls):
            act = active[i]
            if m._own_vad:
                if act:
                    if m._vad_reset or m._endpointer is None:
                        m._endpointer = Endpointer(m.config.endpointer)
                        m._vad_reset = False
                    flag = m.config.inband_dtmf and bool(tone_active[m.slot])
                    own[i] = m._endpointer.process(rx[i], now=now, tone_active=flag)
                    m._speaking = m._endpointer.speaking
                continue
            if act:
                busy = True
                if m._vad_reset or (not m._vad_was_active and m._speaking and not m._utt_seen):
                    # set_listening asked for a fresh endpointer, or an utterance it did not
                    # hear (begun while the call was not heard) is in progress
                    bank.vad.reset_channel(m.slot)  # type: ignore[arg-type]
                    bank.vad_quiet = 0
                    m._speaking = m._utt_seen = False
                m._vad_reset = False
            m._vad_was_active = act
        heard: dict[int, list[CallEvent]] = {}
        if not busy:
            return heard, own
        if bank.frames.any():
            bank.vad_quiet = 0
        elif bank.vad_quiet < self._vad_settle:
            bank.vad_quiet += 1
        elif not any(u is not None and u._speaking for u in bank.users):
            self.vad_skipped += 1
            return heard, own
        vad = bank.vad
        for ch, ev in vad.process(bank.frames, now=now, tone_active=tone_active & bank.inband):
            heard.setdefault(ch, []).append(ev)
        speaking = vad.speaking_mask.tolist()
        for ch, user in enumerate(bank.users):
            if user is not None and not user._own_vad:
                user._speaking = speaking[ch]
        return heard, own
