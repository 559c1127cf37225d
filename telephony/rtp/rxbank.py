"""Batched receive: every call's RTP statistics and jitter buffer stepped as numpy columns.

:class:`~telephony.rtp.stream.RtpReceiveStats` and :class:`~telephony.rtp.jitter.JitterBuffer`
are per-stream objects: exact, general, and about 8 µs of Python per packet and per frame.
With hundreds of calls that per-call Python is what limits a core, so
:class:`ReceiveBank` keeps the state their *steady case* touches in columns (one row per
channel of the mixer) and steps every call's packets and frames at once:

* a packet is handled in the columns when its source is established (A.1 probation done,
  same SSRC), its sequence number is new and within the A.1 window (in order, with a gap,
  or slightly reordered), it is G.711 audio of the negotiated payload type, and it lands
  wholly in the jitter ring ahead of the playout point;
* a frame is played from the columns when it was received whole and the playout point
  needs no adaptation (the same hysteresis test as the object).

Anything else (a new or changed source, a lost frame to conceal, comfort noise, a
timestamp jump, an RFC 4733 event, a payload type change...) *leaves* the columns: the
state is written back into the channel's objects (:meth:`exit_stats`, :meth:`exit_jitter`)
and the object code runs as before, until the stream is steady again and the channel
re-enters (:meth:`enter_stats`, :meth:`enter_jitter`).  The columns compute exactly what
the objects compute, with the same float64 operations in the same order, so either way
gives bit-identical frames and statistics (tests/unit/test_rxbank_equivalence.py drives
both on the same random streams).

The jitter buffer's sample ring is a row of :attr:`ring` in both modes (the object holds a
view of it), so entering and leaving copy only the scalar state, the fill map and the
transit window.  Sans-IO: no clock, no sockets; ``now`` comes with every packet and frame.
"""

from __future__ import annotations

import array

import numpy as np
import numpy.typing as npt

from telephony.codecs.g711 import ALAW_DECODE_TABLE, ULAW_DECODE_TABLE
from telephony.dsp.bank import Channels, check_keep, grow_channels, keep_channels, keep_items
from telephony.rtp.jitter import _EPSILON, JitterBuffer, JitterConfig
from telephony.rtp.stream import DUP_WINDOW, MAX_DROPOUT, MAX_MISORDER, RtpReceiveStats

_I64 = npt.NDArray[np.int64]
_F64 = npt.NDArray[np.float64]
_B = npt.NDArray[np.bool_]

_G711 = {"PCMU": 0, "PCMA": 1}
_HISTORY = 3
"""Frames of fast playout kept for the PLC history (3 x 160 >= its 390 samples)."""

# (name, dtype, initial value) of the per-channel scalar columns
_COLUMNS: tuple[tuple[str, type, object], ...] = (
    # jitter buffer
    ("j_fast", np.bool_, False), ("j_ssrc", np.int64, -1), ("j_ref", np.int64, 0),
    ("j_next", np.int64, 0), ("j_high", np.int64, 0), ("j_transit", np.float64, 0.0),
    ("j_last_transit", np.float64, 0.0), ("j_jitter", np.float64, 0.0),
    ("j_win_i", np.int64, 0), ("j_win_n", np.int64, 0), ("j_since", np.int64, 0),
    ("j_base", np.float64, 0.0), ("j_spread", np.float64, 0.0), ("j_target", np.float64, 0.0),
    ("j_min", np.float64, 0.0), ("j_max", np.float64, 0.0), ("j_quiet", np.bool_, True),
    ("j_received", np.int64, 0), ("j_played", np.int64, 0), ("j_got", np.int64, 0),
    ("j_dropped", np.int64, 0), ("j_inserted", np.int64, 0), ("j_silence", np.int64, 0),
    ("j_law", np.int8, 0),
    # RTP statistics (RFC 3550 A.1/A.8)
    ("s_fast", np.bool_, False), ("s_ssrc", np.int64, -1), ("s_max_seq", np.int64, 0),
    ("s_cycles", np.int64, 0), ("s_received", np.int64, 0), ("s_octets", np.int64, 0),
    ("s_jitter", np.float64, 0.0), ("s_transit", np.float64, 0.0),
    ("s_arrival", np.float64, 0.0),
    # the call: packets counted, the latest arrival and the media timeout (inf: none)
    ("rx_count", np.int64, 0), ("last_rx", np.float64, 0.0), ("timeout", np.float64, np.inf),
    ("pt", np.int64, -1),
)


# (column, attribute of the object, Python type) of the state that moves both ways
_STATS_STATE: tuple[tuple[str, str, type], ...] = (
    ("s_max_seq", "max_seq", int), ("s_cycles", "cycles", int), ("s_received", "received", int),
    ("s_octets", "octets", int), ("s_jitter", "jitter", float), ("s_transit", "_transit", float),
)
_JITTER_STATE: tuple[tuple[str, str, type], ...] = (
    ("j_ref", "_ref", int), ("j_next", "_next", int), ("j_high", "_high", int),
    ("j_transit", "_transit", float), ("j_last_transit", "_last_transit", float),
    ("j_jitter", "jitter", float), ("j_win_i", "_window_i", int), ("j_win_n", "_window_n", int),
    ("j_since", "_since_estimate", int), ("j_base", "_base", float),
    ("j_spread", "_spread", float), ("j_target", "_target", float),
)
_JITTER_COUNTS: tuple[tuple[str, str, type], ...] = (
    ("j_received", "received", int), ("j_played", "played", int),
    ("j_dropped", "dropped_frames", int), ("j_inserted", "inserted_frames", int),
    ("j_silence", "silence", int),
)


class ReceiveBank:
    """Receive state of ``size`` channels as columns; see the module docstring."""

    # the per-channel columns of _COLUMNS (made in __init__, grown in grow)
    j_fast: _B
    j_ssrc: _I64
    j_ref: _I64
    j_next: _I64
    j_high: _I64
    j_transit: _F64
    j_last_transit: _F64
    j_jitter: _F64
    j_win_i: _I64
    j_win_n: _I64
    j_since: _I64
    j_base: _F64
    j_spread: _F64
    j_target: _F64
    j_min: _F64
    j_max: _F64
    j_quiet: _B
    j_received: _I64
    j_played: _I64
    j_got: _I64
    j_dropped: _I64
    j_inserted: _I64
    j_silence: _I64
    j_law: npt.NDArray[np.int8]
    s_fast: _B
    s_ssrc: _I64
    s_max_seq: _I64
    s_cycles: _I64
    s_received: _I64
    s_octets: _I64
    s_jitter: _F64
    s_transit: _F64
    s_arrival: _F64
    rx_count: _I64
    last_rx: _F64
    timeout: _F64
    pt: _I64

    def __init__(self, size: int, config: JitterConfig | None = None) -> None:
        self.config = cfg = config or JitterConfig()
        probe = JitterBuffer(cfg)
        self.ring_size = probe._size
        self.frame = probe.frame_samples
        self._mask = probe._mask
        self._rate = float(cfg.clock_rate)
        self._window = cfg.window
        self._resync = probe._resync_samples
        self._early = probe._early
        self._late = probe._late
        self.size = size
        self.ring = np.zeros((size, self.ring_size), dtype=np.int16)
        """Every channel's jitter ring (a channel's JitterBuffer holds a view of its row)."""
        self.fill = np.zeros((size, self.ring_size), dtype=np.bool_)
        """Fill maps of channels in fast playout (the object's own bytearray otherwise)."""
        self.window = np.zeros((size, cfg.window), dtype=np.float64)
        self.seen = np.full((size, DUP_WINDOW), -1, dtype=np.int64)
        for name, dtype, init in _COLUMNS:
            setattr(self, name, np.full(size, init, dtype=dtype))
        self.played = np.zeros((size, _HISTORY, self.frame), dtype=np.int16)
        """The last frames played from the columns, a ring per channel (frame ``k`` since the
        channel entered in ``played[ch, k % 3]``): the concealment history on exit."""
        self.jitters: list[JitterBuffer | None] = [None] * size
        self.stats: list[RtpReceiveStats | None] = [None] * size
        self._arange = np.arange(self.frame, dtype=np.int64)
        self.entries = 0
        """Channels that entered the columns (stats or jitter), cumulative."""
        self.exits = 0

    # -- channels ------------------------------------------------------------------------

    def grow(self, size: int) -> None:
        """Room for ``size`` channels; attached buffers are re-pointed at the new ring."""
        old = self.size
        self.ring = grow_channels(self.ring, size, 0)
        self.fill = grow_channels(self.fill, size, False)
        self.window = grow_channels(self.window, size, 0.0)
        self.seen = grow_channels(self.seen, size, -1)
        for name, _dtype, init in _COLUMNS:
            setattr(self, name, grow_channels(getattr(self, name), size, init))
        self.played = grow_channels(self.played, size, 0)
        self.jitters.extend([None] * (size - old))
        self.stats.extend([None] * (size - old))
        self.size = size
        for ch, jb in enumerate(self.jitters):
            if jb is not None:
                jb._ring = self.ring[ch]

    def keep_channels(self, keep: Channels, size: int) -> None:
        """Resize to ``size`` channels, channel ``keep[i]`` becoming channel ``i`` with its
        columns, its ring (its buffer re-pointed at the new row) and its objects; the
        channels after them are free.  The mixer compacts its bank this way when calls have
        gone, so the bank's memory follows the calls up, not their peak."""
        idx = check_keep(self.size, keep, size)
        old_ring = self.ring
        self.ring = keep_channels(self.ring, idx, size, 0)
        self.fill = keep_channels(self.fill, idx, size, False)
        self.window = keep_channels(self.window, idx, size, 0.0)
        self.seen = keep_channels(self.seen, idx, size, -1)
        for name, _dtype, init in _COLUMNS:
            setattr(self, name, keep_channels(getattr(self, name), idx, size, init))
        self.played = keep_channels(self.played, idx, size, 0)
        self.jitters = keep_items(self.jitters, idx, size, lambda: None)
        self.stats = keep_items(self.stats, idx, size, lambda: None)
        self.size = size
        for ch, jb in enumerate(self.jitters):
            if jb is not None and jb._ring.base is old_ring:
                jb._ring = self.ring[ch]

    def attach(self, ch: int, jitter: JitterBuffer, stats: RtpReceiveStats) -> None:
        """Give channel ``ch`` to a call's buffer and statistics (both in object mode)."""
        self.detach(ch)
        if jitter._size == self.ring_size:
            self.ring[ch] = jitter._ring
            jitter._ring = self.ring[ch]
        self.jitters[ch] = jitter
        self.stats[ch] = stats
        self.pt[ch] = -1
        self.rx_count[ch] = 0

    def detach(self, ch: int) -> None:
        """Write the channel back into its objects and let them go (they keep working alone)."""
        jb = self.jitters[ch]
        if jb is None:
            return
        self.exit_jitter(ch)
        self.exit_stats(ch)
        if jb._size == self.ring_size:
            jb._ring = self.ring[ch].copy()
        self.jitters[ch] = None
        self.stats[ch] = None
        self.pt[ch] = -1

    def set_stats(self, ch: int, stats: RtpReceiveStats) -> None:
        """The call's audio source changed to ``stats`` (object mode)."""
        self.exit_stats(ch)
        self.stats[ch] = stats

    def set_jitter(self, ch: int, jitter: JitterBuffer) -> None:
        """The call replaced its jitter buffer (a new codec)."""
        old = self.jitters[ch]
        stats = self.stats[ch]
        if old is not None:
            self.exit_jitter(ch)
            if old._size == self.ring_size:
                old._ring = self.ring[ch].copy()
            self.jitters[ch] = None
        if stats is not None:
            self.jitters[ch] = jitter
            if jitter._size == self.ring_size:
                self.ring[ch] = jitter._ring
                jitter._ring = self.ring[ch]

    # -- entering and leaving the columns -------------------------------------------------

    def enter_stats(self, ch: int) -> bool:
        """Move the channel's statistics into the columns if the source is established."""
        st = self.stats[ch]
        if st is None or self.s_fast[ch]:
            return False
        if not st._started or st.probation or st.ssrc is None or st._transit is None \
                or st.clock_rate != 8000:
            return False
        self.s_ssrc[ch] = st.ssrc
        self.s_arrival[ch] = st.last_arrival if st.last_arrival is not None else 0.0
        for column, attr, _kind in _STATS_STATE:
            getattr(self, column)[ch] = getattr(st, attr)
        self.seen[ch] = st._seen
        self.s_fast[ch] = True
        self.entries += 1
        return True

    def sync_stats(self, ch: int) -> None:
        """Write the columns into the statistics object (it stays in the columns)."""
        st = self.stats[ch]
        if st is None or not self.s_fast[ch]:
            return
        for column, attr, kind in _STATS_STATE:
            setattr(st, attr, kind(getattr(self, column)[ch]))
        st.last_arrival = float(self.s_arrival[ch])
        st._seen = self.seen[ch].tolist()

    def exit_stats(self, ch: int) -> None:
        if self.s_fast[ch]:
            self.sync_stats(ch)
            self.s_fast[ch] = False
            self.exits += 1

    def enter_jitter(self, ch: int, payload_type: int) -> bool:
        """Move the jitter buffer into the columns if it is playing a steady stream of
        ``payload_type`` (G.711) with the bank's configuration."""
        jb = self.jitters[ch]
        if jb is None or self.j_fast[ch]:
            return False
        codec = jb._codecs.get(payload_type)
        law = None if codec is None else _G711.get(codec.name)
        if law is None or jb._next is None or jb._ssrc is None or jb._ref is None \
                or jb._pending is not None or jb._cn or jb._cn_level is not None \
                or jb._transit is None or jb._last_transit is None or jb._empty_run \
                or jb._jitter_mode or jb._plc._erased or jb._size != self.ring_size:
            return False
        cfg, mine = jb.config, self.config
        if (cfg.clock_rate, cfg.frame_ms, cfg.margin, cfg.quantile, cfg.window,
                cfg.transit_alpha, cfg.playout_align, cfg.silence_level, cfg.resync_gap) != (
                mine.clock_rate, mine.frame_ms, mine.margin, mine.quantile, mine.window,
                mine.transit_alpha, mine.playout_align, mine.silence_level, mine.resync_gap):
            return False
        quiet = jb._last_quiet
        if quiet is None:
            audio = jb._last_audio
            total = int(np.abs(audio, dtype=np.int32).sum())
            quiet = int(total / audio.shape[0]) < cfg.silence_level
        self.j_ssrc[ch] = jb._ssrc
        for column, attr, _kind in _JITTER_STATE:
            getattr(self, column)[ch] = getattr(jb, attr)
        for column, attr, _kind in _JITTER_COUNTS:
            getattr(self, column)[ch] = getattr(jb.stats, attr)
        self.j_min[ch] = cfg.min_delay
        self.j_max[ch] = cfg.max_delay
        self.j_quiet[ch] = quiet
        self.j_got[ch] = 0
        self.j_law[ch] = law
        self.window[ch] = np.frombuffer(jb._window, dtype=np.float64)
        self.fill[ch] = jb._filled
        self.j_fast[ch] = True
        self.entries += 1
        return True

    def sync_jitter(self, ch: int) -> None:
        """Write the columns into the jitter buffer object (it stays in the columns)."""
        jb = self.jitters[ch]
        if jb is None or not self.j_fast[ch]:
            return
        for column, attr, kind in _JITTER_STATE:
            setattr(jb, attr, kind(getattr(self, column)[ch]))
        for column, attr, kind in _JITTER_COUNTS:
            setattr(jb.stats, attr, kind(getattr(self, column)[ch]))
        jb._window = array.array("d", self.window[ch].tobytes())
        jb._filled[:] = self.fill[ch]
        got = int(self.j_got[ch])
        if got:
            # the frames played from the columns, in order, into the concealment history
            plc = jb._plc
            for k in range(max(0, got - _HISTORY), got):
                plc._push(self.played[ch, k % _HISTORY])
            jb._last_audio = self.played[ch, (got - 1) % _HISTORY].copy()
            jb._last_quiet = bool(self.j_quiet[ch])
            self.j_got[ch] = 0

    def exit_jitter(self, ch: int) -> None:
        if self.j_fast[ch]:
            self.sync_jitter(ch)
            self.j_fast[ch] = False
            self.exits += 1

    # -- packets ---------------------------------------------------------------------------

    def receive(self, ch: _I64, seq: _I64, ts: _I64, ssrc: _I64, size: _I64, now: _F64,
                payload_at: _I64, blob: npt.NDArray[np.uint8]) -> tuple[_B, _B]:
        """Account packets of distinct channels (at most one per channel): audio of the
        channel's negotiated payload type, checked by the caller.

        Returns ``(stats_done, jitter_done)``: the statistics of ``stats_done`` packets were
        updated in the columns (the others need the object path, with the statistics taken
        out of the columns first); the payloads of ``jitter_done`` packets went into the ring
        (the others of ``stats_done`` go to the channel's :class:`JitterBuffer` object, which
        is out of the columns: :meth:`exit_jitter` was called for those that were in).
        """
        # RFC 3550 A.1, the cases of RtpReceiveStats.update_fields that need no object
        max_seq = self.s_max_seq[ch]
        udelta = (seq - max_seq) & 0xFFFF
        sdelta = np.where(udelta >= 0x8000, udelta - 0x10000, udelta)
        ext = self.s_cycles[ch] + max_seq + sdelta
        slot = ext & (DUP_WINDOW - 1)
        inorder = (udelta > 0) & (udelta < MAX_DROPOUT)
        st_ok = self.s_fast[ch] & (ssrc == self.s_ssrc[ch]) & (self.seen[ch, slot] != ext) & (
            inorder | (udelta > 0x10000 - MAX_MISORDER))
        # the jitter buffer's fast path of put_fields
        ref = self.j_ref[ch]
        delta = (ts - ref) & 0xFFFFFFFF
        delta = np.where(delta >= 0x80000000, delta - 0x100000000, delta)
        ets = ref + delta
        nxt = self.j_next[ch]
        i = ets & self._mask
        j = i + size
        # a packet that ends past the ring's end wraps round (JitterBuffer._store: no
        # duplicate test there); one that fits is new unless both its ends are filled
        whole = j <= self.ring_size
        last = np.minimum(j, self.ring_size) - 1
        j_in = self.j_fast[ch]
        j_ok = st_ok & j_in & (ssrc == self.j_ssrc[ch]) & (np.abs(delta) <= self._resync) & (
            ets >= nxt) & (size > 0) & (ets + size - nxt <= self.ring_size - self.frame) & ~(
            whole & self.fill[ch, i] & self.fill[ch, last])
        if st_ok.any():
            self._account(ch[st_ok], seq[st_ok], ts[st_ok], size[st_ok], now[st_ok],
                          inorder[st_ok], ext[st_ok])
        out_j = np.nonzero(st_ok & j_in & ~j_ok)[0]
        for k in out_j.tolist():
            self.exit_jitter(int(ch[k]))
        if j_ok.any():
            self._put(ch[j_ok], ets[j_ok], delta[j_ok], size[j_ok], now[j_ok],
                      payload_at[j_ok], blob)
        return st_ok, j_ok

    def _account(self, ch: _I64, seq: _I64, ts: _I64, size: _I64, now: _F64, inorder: _B,
                 ext: _I64) -> None:
        max_seq = self.s_max_seq[ch]
        self.s_cycles[ch] += np.where(inorder & (seq < max_seq), 0x10000, 0)
        self.s_max_seq[ch] = np.where(inorder, seq, max_seq)
        self.s_received[ch] += 1
        self.seen[ch, ext & (DUP_WINDOW - 1)] = ext
        self.s_octets[ch] += size
        self.s_arrival[ch] = now
        # A.8 in timestamp units, as RtpReceiveStats._account
        transit = now * 8000 - ts
        d = transit - self.s_transit[ch]
        d = np.where(d > 0x80000000, d - 0x100000000, np.where(d < -0x80000000, d + 0x100000000, d))
        jit = self.s_jitter[ch]
        self.s_jitter[ch] = jit + (np.abs(d) - jit) / 16.0
        self.s_transit[ch] = transit
        self.rx_count[ch] += 1
        self.last_rx[ch] = now

    def _put(self, ch: _I64, ets: _I64, delta: _I64, size: _I64, now: _F64, payload_at: _I64,
             blob: npt.NDArray[np.uint8]) -> None:
        cfg = self.config
        self.j_received[ch] += 1
        self.j_ref[ch] = np.where(delta > 0, ets, self.j_ref[ch])
        transit = now - ets / self._rate
        wi = self.j_win_i[ch]
        self.window[ch, wi] = transit
        wi = wi + 1
        self.j_win_i[ch] = np.where(wi == self._window, 0, wi)
        wn = np.minimum(self.j_win_n[ch] + 1, self._window)
        self.j_win_n[ch] = wn
        since = self.j_since[ch] + 1
        self.j_since[ch] = since
        due = (since >= 16) | (wn <= 16)
        if due.any():
            self._estimate(ch[due], wn[due])
        last = self.j_transit[ch]
        self.j_transit[ch] = last + (transit - last) * cfg.transit_alpha
        last = self.j_last_transit[ch]
        d = transit - last
        jit = self.j_jitter[ch]
        self.j_jitter[ch] = jit + (np.abs(d) - jit) / 16.0
        self.j_last_transit[ch] = transit
        # decode into the ring and mark it filled
        start = ets & self._mask
        if (size == size[0]).all():
            n = int(size[0])
            offs = np.arange(n, dtype=np.int64)
            rows = ch[:, None]
            cols = (start[:, None] + offs) & self._mask
            src = blob[payload_at[:, None] + offs]
            law = self.j_law[ch]
            if law.any():
                pcm = np.where(law[:, None] == 1, ALAW_DECODE_TABLE[src],
                               ULAW_DECODE_TABLE[src])
            else:
                pcm = ULAW_DECODE_TABLE[src]
            self.ring[rows, cols] = pcm
            self.fill[rows, cols] = True
        else:
            for k in range(ch.shape[0]):
                c, n, s = int(ch[k]), int(size[k]), int(start[k])
                table = ALAW_DECODE_TABLE if self.j_law[c] else ULAW_DECODE_TABLE
                at = int(payload_at[k])
                cols = np.arange(s, s + n) & self._mask
                self.ring[c, cols] = table[blob[at:at + n]]
                self.fill[c, cols] = True
        self.j_high[ch] = np.maximum(self.j_high[ch], ets + size)

    def _estimate(self, ch: _I64, wn: _I64) -> None:
        """JitterBuffer._estimate for channels ``ch`` with ``wn`` transits remembered."""
        cfg = self.config
        self.j_since[ch] = 0
        for n in np.unique(wn).tolist():
            sel = ch[wn == n]
            k = max(min(n - 1, int(np.ceil(cfg.quantile * n)) - 1), 0)
            part = np.partition(self.window[sel, :n], (0, k), axis=1)
            base = part[:, 0]
            spread = part[:, k] - base
            self.j_base[sel] = base
            self.j_spread[sel] = spread
            self.j_target[sel] = np.minimum(self.j_max[sel],
                                            np.maximum(self.j_min[sel], spread + cfg.margin))

    # -- frames ------------------------------------------------------------------------------

    def playout(self, ch: _I64, now: float, frames: npt.NDArray[np.int16]) -> _B:
        """Play the next frame of channels ``ch`` (in the columns) into their rows of
        ``frames``; returns which were played (the others left the columns and need the
        object's :meth:`JitterBuffer.get`).

        As JitterBuffer.get: after a quiet frame, a playout point more than a frame late
        drops a quiet frame (if more is buffered), one early inserts a silent frame."""
        if ch.shape[0] == 0:
            return np.zeros(0, dtype=np.bool_)
        n = self.frame
        nxt = self.j_next[ch]
        target = self.j_target[ch]
        delay = now - nxt / self._rate - self.j_base[ch]
        too_late = delay > target + self._late + _EPSILON
        adapt = self.j_quiet[ch] & (too_late | (delay < target - self._early - _EPSILON))
        drop = adapt & too_late & (self.j_high[ch] > nxt + n)
        insert = adapt & ~too_late
        at = np.where(drop, nxt + n, nxt)
        rows = ch[:, None]
        cols = ((at & self._mask)[:, None] + self._arange) & self._mask
        play = ~insert & self.fill[rows, cols].all(axis=1)
        done = play | insert
        if not done.all():
            for k in np.nonzero(~done)[0].tolist():
                self.exit_jitter(int(ch[k]))
        if insert.any():
            sel = ch[insert]
            frames[sel] = 0
            self.j_inserted[sel] += 1
            self.j_silence[sel] += 1
        if drop.any():
            dropped = drop & play
            gone = ((nxt[dropped] & self._mask)[:, None] + self._arange) & self._mask
            self.fill[ch[dropped][:, None], gone] = False
            self.j_dropped[ch[dropped]] += 1
        ch, rows, cols, at = ch[play], rows[play], cols[play], at[play]
        pcm = self.ring[rows, cols]
        frames[ch] = pcm
        got = self.j_got[ch]
        self.played[ch, got % _HISTORY] = pcm
        self.j_got[ch] = got + 1
        self.fill[rows, cols] = False
        self.j_next[ch] = at + n
        self.j_played[ch] += 1
        # JitterBuffer: int(sum |x| / n) < silence_level (computed there when needed)
        total = np.abs(pcm, dtype=np.int32).sum(axis=1)
        self.j_quiet[ch] = (total // n) < self.config.silence_level
        played: _B = done
        return played
