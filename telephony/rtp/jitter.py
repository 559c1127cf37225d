"""Adaptive jitter buffer with time-based playout, PLC and comfort noise (sans-IO).

``put(packet, now=...)`` as packets arrive, ``get(now=...)`` once per frame tick
(20 ms): each call returns one :class:`Frame` of decoded int16 PCM, whatever
happened on the network.

Playout model.  Every packet gives a transit time ``now - ts / clock_rate``.  With
the default ``"quantile"`` estimator the buffer keeps the last 256 transits (5 s)
and sets the target delay to their 99th percentile above their minimum (plus a
small margin); with ``"jitter"`` the target is ``k * J`` above the mean transit,
``J`` the RFC 3550 A.8 interarrival jitter.  Either is clamped to
``[min_delay, max_delay]``, and timestamp ``ts`` is due at
``ts / clock_rate + reference_transit + target``.  The playout point
only moves where it cannot be heard:

* at a talkspurt start (after silence, comfort noise or a gap longer than
  ``idle_after``) the first packet is scheduled afresh, at the first tick at or
  after its due time (so the delay is the target plus up to one tick);
* during quiet frames of a continuous stream (no DTX), one silent frame is
  inserted when the delay is under target, one frame dropped when it is more than
  a frame over.

One delay spike barely moves a 99th percentile of 256 and leaves the window after
5 s (``J`` likewise decays with every packet), and losses do not count at all, so
the target never stays high for good.  Samples are decoded at ``put`` into a ring indexed by
timestamp, so packets may be reordered, duplicated or of any size (20, 30 ms...);
an SSRC change or a timestamp jump restarts playout.  Lost audio is concealed by
:class:`~telephony.codecs.plc.G711Plc`; RFC 3389 comfort noise (PT 13) becomes
noise at the signalled level until the next talkspurt.
"""

from __future__ import annotations

import array
import enum
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from telephony.codecs.base import Codec, Pcm, codec_for_payload_type
from telephony.codecs.plc import G711Plc, PlcConfig
from telephony.errors import CodecError, ConfigError, RtpError
from telephony.rtp.cn import CN_PAYLOAD_TYPE, ComfortNoise, comfort_noise
from telephony.rtp.packet import RtpPacket


@dataclass(frozen=True, slots=True)
class JitterConfig:
    """Jitter buffer parameters."""

    clock_rate: int = 8000
    frame_ms: int = 20
    min_delay: float = 0.020
    """Lowest target delay above the mean transit, seconds."""
    max_delay: float = 0.200
    """Highest target delay, seconds."""
    estimator: str = "quantile"
    """``"quantile"``: target = a high quantile of recent transit times above their
    minimum (robust to skewed delay); ``"jitter"``: target = k * J (RFC 3550 jitter)."""
    jitter_factor: float = 2.5
    """k in ``target = k * J`` for the ``"jitter"`` estimator."""
    quantile: float = 0.99
    """Share of packets that should arrive in time, for the ``"quantile"`` estimator."""
    window: int = 256
    """Transit times remembered for the ``"quantile"`` estimator (5 s at 50 packets/s)."""
    margin: float = 0.003
    """Added to the quantile, seconds.  Not below 0.002: playout may start that much
    before its due time (timer tolerance).  3 ms was chosen on the issue's netem run
    (benchmarks/bench_jitter_netem.py): uniform 30 ms jitter, 1.85 J at 0.11 % late loss,
    where 5 ms gave 2.18 J at the same loss."""
    playout_align: float = 0.0
    """How far (a fraction of a frame, 0..1) playout may sit *before* the target delay.

    Playout happens on 20 ms ticks, so the delay actually played varies over one frame
    around the target.  With 0 (the default) it is kept in ``[target, target + frame]``
    (a talkspurt starts at the first tick at or after its due time), i.e. on average
    half a tick above the target; with ``a`` it is kept in
    ``[target - a * frame, target + (1 - a) * frame]`` and a talkspurt starts at the
    first tick at or after ``due - a * frame``; 0.5 centres it on the target."""
    transit_alpha: float = 1.0 / 32
    """Weight of a new packet in the mean transit estimate."""
    silence_level: int = 300
    """Mean absolute sample value below which a frame counts as quiet (for adaptation)."""
    idle_after: float = 0.060
    """Concealed time with nothing buffered after which playout waits for a new talkspurt."""
    resync_gap: float = 2.0
    """A timestamp jump larger than this (seconds) restarts playout."""
    seed: int | None = None
    """Seed of the comfort-noise generator (tests)."""
    payload_types: dict[int, Codec] = field(default_factory=dict)
    """Dynamic payload-type map from SDP; static types are looked up in the registry."""


_MAX_CN_PENDING = 64
"""RFC 3389 CN packets kept ahead of the playout point (more is a flood: the oldest go)."""

_EPSILON = 0.002
"""Tolerance on delays, seconds (timers and float rounding)."""


class FrameKind(enum.Enum):
    """What a played frame is made of."""

    AUDIO = "audio"
    """Received audio."""
    CONCEALED = "concealed"
    """Synthesised by packet-loss concealment (or partly, if a packet covered part)."""
    COMFORT_NOISE = "comfort_noise"
    """Generated from an RFC 3389 CN packet."""
    SILENCE = "silence"
    """Nothing to play: before the stream starts, or between talkspurts."""


class Frame(NamedTuple):
    """One playout frame (a named tuple: made for every call every 20 ms, it must be cheap)."""

    pcm: Pcm
    """int16 samples, ``clock_rate * frame_ms / 1000`` of them."""
    kind: FrameKind
    timestamp: int | None = None
    """RTP timestamp of the first sample (None when not playing a stream)."""


@dataclass(slots=True)
class JitterStats:
    """Counters (cumulative)."""

    received: int = 0
    played: int = 0
    concealed: int = 0
    comfort_noise: int = 0
    silence: int = 0
    late: int = 0
    """Packets that arrived after their slot was played ("late loss")."""
    duplicates: int = 0
    resyncs: int = 0
    dropped_frames: int = 0
    """Frames skipped to shrink the delay."""
    inserted_frames: int = 0
    """Silent frames inserted to grow the delay."""
    unknown_payload: int = 0
    oversize: int = 0
    """Packets dropped because their audio is longer than the buffer."""


class JitterBuffer:
    """Per-stream jitter buffer; see the module docstring."""

    def __init__(self, config: JitterConfig | None = None) -> None:
        self.config = cfg = config or JitterConfig()
        self.frame_samples = cfg.clock_rate * cfg.frame_ms // 1000
        size = 1
        while size < 2 * cfg.clock_rate:
            size <<= 1
        self._size = size
        self._mask = size - 1
        self._ring = np.zeros(size, dtype=np.int16)
        # The fill map is a bytearray (0/1 per sample) for the per-packet / per-frame hot
        # path (C-level find and slice assignment, no numpy call) with a numpy bool view
        # of the same memory for the rare masked cases.
        self._fill = bytearray(size)
        self._filled = np.frombuffer(self._fill, dtype=np.bool_)
        self._zeros_frame = bytes(self.frame_samples)
        self._ones: dict[int, bytes] = {}
        """``b"\\x01" * n`` by packet size ``n``."""
        self._frame_s = self.frame_samples / cfg.clock_rate
        if not 0.0 <= cfg.playout_align <= 1.0:
            raise ConfigError("JitterConfig.playout_align must be within 0..1")
        self._early = cfg.playout_align * self._frame_s
        """How far before the target playout may be (0 unless ``playout_align``), seconds."""
        self._late = (1.0 - cfg.playout_align) * self._frame_s
        """How far after the target playout may be before a frame is dropped, seconds."""
        self._jitter_mode = cfg.estimator == "jitter"
        self._resync_samples = cfg.resync_gap * cfg.clock_rate
        self._plc = G711Plc(PlcConfig(sample_rate=cfg.clock_rate))
        self._rng = np.random.default_rng(cfg.seed)
        self._silence = np.zeros(self.frame_samples, dtype=np.int16)
        self._silence.setflags(write=False)
        self._codecs: dict[int, Codec] = dict(cfg.payload_types)
        self.stats = JitterStats()
        self._ssrc: int | None = None
        self._ref: int | None = None
        """Extended timestamp of the latest packet (unwrapping reference)."""
        self._next: int | None = None
        """Extended timestamp of the next slot to play; None while idle."""
        self._pending: int | None = None
        """Earliest timestamp buffered while idle (where the next talkspurt starts)."""
        self._high = 0
        """End (extended timestamp) of the latest buffered audio."""
        self._cn: list[tuple[int, int]] = []
        """Pending CN packets as (extended timestamp, level)."""
        self._cn_level: int | None = None
        self._empty_run = 0
        self._last_quiet: bool | None = True
        """Whether the last frame was quiet (None: not yet computed from ``_last_audio``)."""
        self._last_audio: Pcm = self._silence
        self._transit: float | None = None
        self._last_transit: float | None = None
        self.jitter = 0.0
        """RFC 3550 A.8 interarrival jitter, seconds."""
        self._window = array.array("d", bytes(8 * cfg.window))
        """Recent transit times, a ring (an array.array: a Python float store per packet is
        cheaper than a numpy scalar store; numpy reads it without a copy)."""
        self._window_size = cfg.window
        self._rate = float(cfg.clock_rate)
        self._alpha = cfg.transit_alpha
        self._window_n = 0
        self._window_i = 0
        self._since_estimate = 0
        self._base = 0.0
        """Lowest recent transit (quantile estimator), seconds."""
        self._spread = 0.0
        """Quantile of recent transit above ``_base``, seconds."""
        self._target = 0.0
        """``target_delay``, recomputed whenever the estimate it depends on changes."""
        self._retarget()

    # -- estimates -----------------------------------------------------------------------

    @property
    def target_delay(self) -> float:
        """Current target delay above the reference transit, seconds (clamped)."""
        return self._target

    def _retarget(self) -> None:
        """Recompute the cached target delay (after the jitter or the quantile changed)."""
        cfg = self.config
        if self._jitter_mode:
            raw = cfg.jitter_factor * self.jitter
        else:
            raw = self._spread + cfg.margin
        self._target = min(cfg.max_delay, max(cfg.min_delay, raw))

    @property
    def reference_transit(self) -> float | None:
        """Transit the target is counted from: the mean (jitter) or the minimum (quantile)."""
        if self._transit is None:
            return None
        return self._transit if self._jitter_mode else self._base

    @property
    def playout_offset(self) -> float | None:
        """``now - ts / clock_rate`` at which a timestamp should play (None before any packet)."""
        ref = self.reference_transit
        return None if ref is None else ref + self.target_delay

    def current_delay(self, *, now: float) -> float | None:
        """How far behind the reference transit the next slot plays, seconds (None if idle)."""
        ref = self.reference_transit
        if self._next is None or ref is None:
            return None
        return now - self._next / self.config.clock_rate - ref

    # -- input ---------------------------------------------------------------------------

    def put(self, packet: RtpPacket, *, now: float) -> None:
        """Accept one received RTP packet (audio or CN) at time ``now``."""
        self.put_fields(packet.ssrc, packet.timestamp, packet.payload_type, packet.payload, now)

    def put_fields(self, ssrc: int, raw: int, pt: int, payload: bytes, now: float) -> None:
        """:meth:`put` from the packet's SSRC, timestamp, payload type and payload (the
        receive hot path parses no object).

        Raises :class:`~telephony.errors.RtpError` (and changes nothing) for a payload that
        is not valid: a malformed RFC 3389 CN payload, or audio longer than the buffer.
        """
        cn_level = -1
        if pt == CN_PAYLOAD_TYPE:
            # parsed before any state changes: a malformed CN payload is dropped whole
            cn_level = ComfortNoise.parse(payload).level
        self.stats.received += 1
        if ssrc != self._ssrc:
            if self._ssrc is not None:
                self._restart()
            self._ssrc = ssrc
        ref = self._ref
        if ref is None:
            ts = raw + (1 << 32)  # keep extended timestamps positive after a backward wrap
            self._ref = ts
        else:
            # unwrap(raw, ref, 32), inline: this runs for every packet
            delta = (raw - ref) & 0xFFFFFFFF
            if delta >= 0x80000000:
                delta -= 0x100000000
            ts = ref + delta
            if abs(delta) > self._resync_samples:
                self._restart()
                ts = raw + (1 << 32)
                self._ref = ts
            elif delta > 0:
                self._ref = ts
        # The transit window and RFC 3550 A.8 jitter, inline (this runs for every packet).
        transit = now - ts / self._rate
        i = self._window_i
        self._window[i] = transit
        i += 1
        self._window_i = 0 if i == self._window_size else i
        if self._window_n < self._window_size:
            self._window_n += 1
        self._since_estimate += 1
        if self._since_estimate >= 16 or self._window_n <= 16:
            self._estimate()
        last = self._transit
        if last is None:
            self._transit = transit
        else:
            self._transit = last + (transit - last) * self._alpha
        last = self._last_transit
        if last is not None:
            # RFC 3550 A.8: J += (|D| - J) / 16
            d = transit - last
            self.jitter += ((d if d >= 0 else -d) - self.jitter) / 16.0
            if self._jitter_mode:
                self._retarget()
        self._last_transit = transit

        if cn_level >= 0:
            if self._next is None or ts >= self._next:
                if len(self._cn) >= _MAX_CN_PENDING:
                    # a flood of CN packets ahead of playout: keep the latest levels only
                    del self._cn[0]
                self._cn.append((ts, cn_level))
                if self._next is None and self._pending is None:
                    self._cn_level = cn_level
            return
        codec = self._codecs.get(pt)
        if codec is None:
            try:
                codec = codec_for_payload_type(pt)
            except CodecError:
                self.stats.unknown_payload += 1
                return
            self._codecs[pt] = codec
        nxt = self._next
        if nxt is not None and ts >= nxt:
            # Fast path: an on-time packet that fits the ring in one piece and is new, the
            # common case: decode straight into the ring.  Anything else takes the general
            # path below (which decodes first, as this one would have, then decides).
            n = codec.samples_for_payload(len(payload))
            i = ts & self._mask
            j = i + n
            fill = self._fill
            if (
                n > 0
                and j <= self._size
                and ts + n - nxt <= self._size - self.frame_samples
                and not (fill[i] and fill[j - 1])
            ):
                codec.decode_into(payload, self._ring[i:j])
                ones = self._ones.get(n)
                if ones is None:
                    ones = self._ones[n] = b"\x01" * n
                fill[i:j] = ones
                if ts + n > self._high:  # noqa: PLR1730 - hot path: no max() call
                    self._high = ts + n
                return
        n = codec.samples_for_payload(len(payload))
        if n > self._size - self.frame_samples:
            # longer than the ring can hold ahead of playout (a 64 KB datagram of G.711)
            self.stats.oversize += 1
            raise RtpError(f"RTP payload of {n} samples exceeds the jitter buffer")
        pcm = codec.decode(payload)
        n = pcm.shape[0]
        if n == 0:
            return
        nxt = self._next
        if nxt is not None:
            if ts + n <= nxt:
                self.stats.late += 1
                return
            if ts < nxt:  # partly late: keep the part still to come
                pcm = pcm[nxt - ts :]
                n = pcm.shape[0]
                ts = nxt
            if ts + n - nxt > self._size - self.frame_samples:
                # Too far ahead to fit: the sender jumped; play from this packet on.
                self._flush()
                self._pending = ts
        elif self._pending is None or ts < self._pending:
            self._pending = ts
        self._store(ts, pcm, n)
        if ts + n > self._high:  # noqa: PLR1730 - hot path: no max() call
            self._high = ts + n

    def _store(self, ts: int, pcm: Pcm, n: int) -> None:
        i = ts & self._mask
        j = i + n
        fill = self._fill
        ones = self._ones.get(n)
        if ones is None:
            ones = self._ones[n] = b"\x01" * n
        if j <= self._size:
            if fill[i] and fill[j - 1]:  # the same span again
                self.stats.duplicates += 1
                return
            self._ring[i:j] = pcm
            fill[i:j] = ones
        else:
            k = self._size - i
            self._ring[i:] = pcm[:k]
            self._ring[: n - k] = pcm[k:]
            fill[i:] = ones[:k]
            fill[: n - k] = ones[k:]

    def _estimate(self) -> None:
        """Recompute base and spread from the transit window (every 16 packets)."""
        self._since_estimate = 0
        recent = np.frombuffer(self._window, dtype=np.float64, count=self._window_n)
        n = recent.shape[0]
        k = min(n - 1, int(np.ceil(self.config.quantile * n)) - 1)
        part = np.partition(recent, (0, max(k, 0)))
        self._base = float(part[0])
        self._spread = float(part[max(k, 0)]) - self._base
        if not self._jitter_mode:
            self._retarget()

    def _restart(self) -> None:
        """Forget the stream (SSRC change or timestamp jump); keep the jitter estimate."""
        self._flush()
        self._ref = None
        self._transit = None
        self._last_transit = None
        self._window_n = 0
        self._window_i = 0

    def _flush(self) -> None:
        self.stats.resyncs += 1
        self._fill[:] = bytes(self._size)
        self._next = None
        self._pending = None
        self._high = 0
        self._cn.clear()

    # -- output --------------------------------------------------------------------------

    def get(self, *, now: float) -> Frame:
        """The frame to play at this tick."""
        n = self.frame_samples
        nxt = self._next
        if nxt is None:
            nxt = self._try_start(now)
            if nxt is None:
                return self._idle_frame()
        elif self._last_quiet is not False and self._transit is not None:
            # The hysteresis test of _adapt, inline: most frames are in band.
            ref = self._transit if self._jitter_mode else self._base
            delay = now - nxt / self.config.clock_rate - ref
            target = self._target
            if delay > target + self._late + _EPSILON or delay < target - self._early - _EPSILON:
                nxt = self._adapt(nxt, now)
                if nxt is None:  # a silent frame was inserted
                    self.stats.inserted_frames += 1
                    return self._quiet_fill(self._next)
        self._next = nxt + n
        i = nxt & self._mask
        j = i + n
        fill = self._fill
        if j <= self._size and fill.find(0, i, j) < 0:
            # Fast path: a complete frame in one piece of the ring (the common case).
            fill[i:j] = self._zeros_frame
            if self._cn:
                self._check_cn(nxt, n)
            self._empty_run = 0
            self._cn_level = None
            pcm = self._plc.good(self._ring[i:j].copy())
            self._last_quiet = None  # worked out from _last_audio only if adaptation needs it
            self._last_audio = pcm
            self.stats.played += 1
            return Frame(pcm, FrameKind.AUDIO, nxt & 0xFFFFFFFF)
        return self._get_slow(nxt, i, j, n)

    def _get_slow(self, nxt: int, i: int, j: int, n: int) -> Frame:
        """The rest of :meth:`get`: a frame partly or not at all received, or wrapping the ring."""
        if j <= self._size:
            fill = self._fill
            empty = fill.find(1, i, j) < 0
            complete = not empty and fill.find(0, i, j) < 0
            partial = not empty and not complete
            filled = self._filled[i:j].copy() if partial else None
            pcm = self._ring[i:j].copy() if not empty else None
            fill[i:j] = self._zeros_frame
        else:
            idx = np.arange(i, j) & self._mask
            filled = self._filled[idx]
            count = int(np.count_nonzero(filled))
            complete = count == n
            partial = 0 < count < n
            pcm = self._ring[idx] if complete or partial else None
            self._filled[idx] = False
        self._check_cn(nxt, n)
        ts32 = nxt & 0xFFFFFFFF
        if complete:
            assert pcm is not None
            self._empty_run = 0
            self._cn_level = None
            pcm = self._plc.good(pcm)
            self._last_quiet = None  # worked out from _last_audio only if adaptation needs it
            self._last_audio = pcm
            self.stats.played += 1
            return Frame(pcm, FrameKind.AUDIO, ts32)
        if partial:
            assert pcm is not None and filled is not None
            self._empty_run = 0
            self._cn_level = None
            syn = self._plc.conceal(n)
            pcm = np.where(filled, pcm, syn)
            self._last_quiet = False
            self.stats.concealed += 1
            return Frame(pcm, FrameKind.CONCEALED, ts32)
        if self._cn_level is not None:
            self._last_quiet = True
            if self._high <= nxt + n:
                self._next = None  # silence period: resync at the next talkspurt
            self.stats.comfort_noise += 1
            return Frame(comfort_noise(self._cn_level, n, self._rng), FrameKind.COMFORT_NOISE, ts32)
        self._empty_run += n
        pcm = self._plc.conceal(n)
        self.stats.concealed += 1
        self._last_quiet = False
        if self._empty_run >= self.config.idle_after * self.config.clock_rate and (
            self._high <= nxt + n
        ):
            self._next = None  # a long gap with nothing buffered: wait for the next talkspurt
            self._last_quiet = True
        return Frame(pcm, FrameKind.CONCEALED, ts32)

    def _try_start(self, now: float) -> int | None:
        start = self._pending
        offset = self.playout_offset
        if start is None or offset is None:
            return None
        due = start / self.config.clock_rate + offset
        if now < due - self._early - _EPSILON:
            return None
        self._pending = None
        self._empty_run = 0
        self._last_quiet = False
        # Discard comfort noise that the new talkspurt supersedes.
        self._cn = [c for c in self._cn if c[0] >= start]
        self._cn_level = None
        return start

    def _adapt(self, nxt: int, now: float) -> int | None:
        """In a quiet moment, move the playout point one frame toward the target."""
        delay = self.current_delay(now=now)
        assert delay is not None
        n = self.frame_samples
        target = self._target
        # Hysteresis: grow as soon as the delay is under target, shrink only when a whole
        # frame over it, so that one step (a frame) never overshoots into the other rule
        # (with playout_align, the band of one frame is shifted earlier by that much).
        too_late = delay > target + self._late + _EPSILON
        if not too_late and delay >= target - self._early - _EPSILON:
            return nxt
        if self._last_quiet is None:
            # int(mean |x|), as a sum: the mean's float64 division, without np.mean's overhead
            audio = self._last_audio
            total = int(np.abs(audio, dtype=np.int32).sum())
            self._last_quiet = int(total / audio.shape[0]) < self.config.silence_level
            if not self._last_quiet:
                return nxt
        if too_late and self._high > nxt + n:
            # Too late: drop the quiet slot (clear it) and play the next one.
            i = nxt & self._mask
            if i + n <= self._size:
                self._fill[i : i + n] = self._zeros_frame
            else:
                self._filled[np.arange(i, i + n) & self._mask] = False
            self.stats.dropped_frames += 1
            return nxt + n
        if not too_late:
            return None
        return nxt

    def _check_cn(self, start: int, n: int) -> None:
        if not self._cn:
            return
        end = start + n
        due = [c for c in self._cn if c[0] < end]
        if due:
            self._cn_level = due[-1][1]
            self._cn = [c for c in self._cn if c[0] >= end]

    def _quiet_fill(self, nxt: int | None) -> Frame:
        ts = None if nxt is None else nxt & 0xFFFFFFFF
        if self._cn_level is not None:
            self.stats.comfort_noise += 1
            pcm = comfort_noise(self._cn_level, self.frame_samples, self._rng)
            return Frame(pcm, FrameKind.COMFORT_NOISE, ts)
        self.stats.silence += 1
        return Frame(self._silence, FrameKind.SILENCE, ts)

    def _idle_frame(self) -> Frame:
        return self._quiet_fill(None)

    @property
    def buffered_ms(self) -> float:
        """Audio buffered ahead of the playout point, milliseconds."""
        start = self._next if self._next is not None else self._pending
        if start is None:
            return 0.0
        return max(0, self._high - start) * 1000.0 / self.config.clock_rate
