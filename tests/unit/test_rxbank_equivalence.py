"""The batched receive path (telephony/rtp/rxbank.py) against the per-call objects.

Two mixers get the same calls and the same datagrams at the same instants: one queues them
and steps steady streams in the ReceiveBank's columns (``batch_receive=True``, the default),
the other hands each datagram to the call's own objects on arrival, the code the columns
must match.  Every tick, every call's received frame, events and outgoing packets must be
identical, and at the end so must the RTP statistics and the jitter buffers' state.  (A
mixer uses the columns from ``batch_min`` calls on; here from one.)

The streams are made to leave the steady case often: loss, duplicates, reordering and
bursts, 30 ms packets, an SSRC change, timestamp and sequence jumps, silence with comfort
noise, RFC 4733 key presses, a payload type change (PCMU to PCMA), garbage, RTCP on the RTP
port, a stray source, sequence and timestamp wrap-around, calls that join and leave.
"""

from __future__ import annotations

import random
import struct
from dataclasses import asdict

import numpy as np
import pytest

from telephony.codecs.base import get_codec
from telephony.media import FRAME, CallMedia, MediaConfig, MediaMixer
from telephony.rtp.dtmf import DtmfEventSender
from telephony.rtp.stream import RtpSender

TICK = 0.020
_HEAD = struct.Struct("!BBHII")


class Peer:
    """One far end: makes each tick's datagrams, with the impairments of its ``profile``."""

    def __init__(self, index: int, rng: random.Random, profile: str) -> None:
        self.rng = rng
        self.profile = profile
        self.addr = ("127.0.0.1", 40000 + 2 * index)
        self.codec = get_codec("PCMU")
        self.ptime = 240 if profile == "30ms" else FRAME
        self.sender = RtpSender(0, rng=random.Random(index))
        if profile == "wrap":
            self.sender.sequence_number = 65530
            self.sender.timestamp = 0xFFFFFFFF - 5 * FRAME
        self.dtmf = DtmfEventSender(self.sender, payload_type=101)
        self.phase = rng.uniform(0.0, 0.019)
        self.held: list[tuple[float, bytes]] = []
        self.t = 0.0
        self.silent_until = -1.0
        self.samples = 0

    def audio(self, n: int) -> bytes:
        k = np.arange(self.samples, self.samples + n)
        self.samples += n
        level = 3000 if (self.samples // 4000) % 3 else 40  # talk, then near silence
        x = level * np.sin(2 * np.pi * (180 + 40 * (self.samples // 8000 % 5)) * k / 8000)
        x += np.array([self.rng.gauss(0, 30) for _ in range(n)])
        return self.codec.encode(np.clip(x, -32768, 32767).astype(np.int16))

    def datagrams(self, t: float) -> list[tuple[float, bytes, tuple[str, int]]]:
        """What arrives in ``(t - TICK, t]``: (arrival time, datagram, source)."""
        rng, out = self.rng, []
        at = t - TICK + self.phase
        p = self.profile
        if p == "dtmf" and rng.random() < 0.01 and not self.dtmf.active:
            self.dtmf.start(rng.choice("0123456789#*"), rng.choice([60, 120, 200]), now=at)
        if self.dtmf.active:
            for pkt in self.dtmf.due(now=at):
                out.append((at, pkt))
        elif at < self.silent_until:
            self.sender.advance(FRAME)
        else:
            if p == "cn" and rng.random() < 0.02:
                # silence suppression: one CN packet (RFC 3389), then nothing for a while
                out.append((at, self.sender.packetize(bytes([40]), timestamp_advance=FRAME,
                                                      payload_type=13)))
                self.silent_until = at + rng.uniform(0.1, 1.0)
            elif self.ptime == FRAME or round(t / TICK) % 3 != 0:
                # 30 ms packets: two of every three ticks carry one
                if p == "pt_change" and t > 3.0:
                    self.codec = get_codec("PCMA")
                    self.sender.payload_type = 8
                out.append((at, self.sender.packetize(self.audio(self.ptime),
                                                      timestamp_advance=self.ptime)))
        if p == "jumps" and rng.random() < 0.01:
            kind = rng.choice(["ssrc", "ts", "seq"])
            if kind == "ssrc":
                self.sender.ssrc = rng.getrandbits(32)
            elif kind == "ts":
                self.sender.timestamp = (self.sender.timestamp + rng.choice([8000 * 5, 400])) \
                    & 0xFFFFFFFF
            else:
                self.sender.sequence_number = (self.sender.sequence_number + 5000) & 0xFFFF
        if p == "junk" and rng.random() < 0.05:
            out.append((at, rng.choice([b"", b"\x80", b"\x00" * 12, b"\x80\x00\x00",
                                         b"\x80\xc8" + bytes(26), b"\x90" + bytes(30)])))
        # network: loss, duplicates, delay (reorders and bursts)
        final: list[tuple[float, bytes]] = []
        for when, pkt in out:
            r = rng.random()
            lossy = p in ("lossy", "jumps", "dtmf", "wrap", "30ms")
            if lossy and r < 0.05:
                continue
            if lossy and r < 0.08:
                final.append((when + 0.001, pkt))
            delay = rng.choice([0.0, 0.0, 0.0, 0.015, 0.035, 0.06]) if p == "lossy" else 0.0
            final.append((when + delay, pkt))
        self.held.extend(final)
        self.held.sort(key=lambda e: e[0])
        due = [e for e in self.held if e[0] <= t]
        self.held = [e for e in self.held if e[0] > t]
        src = self.addr
        if p == "junk" and t > 6.0 and rng.random() < 0.05:
            src = ("127.0.0.1", 49999)  # a stray source after the latching period
        return [(when, pkt, src) for when, pkt in due]


PROFILES = ["clean", "lossy", "jumps", "dtmf", "cn", "pt_change", "30ms", "junk", "wrap"]


def make_call(index: int, now: float) -> CallMedia:
    cfg = MediaConfig(media_timeout=1.0, jitter_max_ms=200 if index % 2 else 120)
    media = CallMedia(cfg, now=now, rng=random.Random(1000 + index),
                      remote=("127.0.0.1", 40000 + 2 * index))
    media._jitter._rng = np.random.default_rng(index)  # the same comfort noise in both
    media.set_listening(index % 3 != 0, now=now)
    return media


def state(media: CallMedia) -> dict[str, object]:
    st, jb = media.rx_stats, media.jitter
    keep = {k: v for k, v in vars(st).items()}
    jstate = {k: getattr(jb, k) for k in (
        "_ssrc", "_ref", "_next", "_pending", "_high", "_cn", "_cn_level", "_empty_run",
        "_transit", "_last_transit", "jitter", "_window_n", "_window_i", "_since_estimate",
        "_base", "_spread", "_target")}
    jstate["window"] = bytes(jb._window)
    jstate["fill"] = bytes(jb._fill)
    jstate["plc"] = jb._plc._history.tobytes()
    quiet = jb._last_quiet
    if quiet is None:  # the object works it out when it needs it; the columns did already
        audio = jb._last_audio
        quiet = int(np.abs(audio, dtype=np.int32).sum() / audio.shape[0]) < 300
    jstate["last_quiet"] = quiet
    jstate["last_audio"] = jb._last_audio.tobytes()
    jstate["stats"] = asdict(jb.stats)
    return {"stats": keep, "jitter": jstate, "counters": dict(media.counters),
            "sources": sorted(media._rx_by_ssrc)}


@pytest.mark.parametrize(("seed", "batch_min"), [(s, 1) for s in range(6)] + [(6, 10), (7, 10)])
def test_batched_receive_matches_the_per_call_objects(seed: int, batch_min: int) -> None:
    """(``batch_min`` 10: the call count crosses it as calls join and leave, so the mixer
    moves every channel into and out of the columns on the way.)"""
    rng = random.Random(seed)
    ticks = 400
    n_calls = 14
    # each call: its profile and the ticks it is in the mixer
    plan = []
    for i in range(n_calls):
        first = 0 if i < 8 else rng.randrange(10, 150)
        last = ticks if i % 4 else rng.randrange(first + 100, ticks)
        plan.append((PROFILES[(i + seed) % len(PROFILES)], first, last))
    batched, reference = MediaMixer(), MediaMixer(batch_receive=False)
    batched.batch_min = batch_min  # the columns even for a few calls
    sides = []
    for mixer in (batched, reference):
        peers = [Peer(i, random.Random(seed * 100 + i), plan[i][0]) for i in range(n_calls)]
        sides.append((mixer, peers, [None] * n_calls))
    fast_ticks = 0
    for k in range(ticks):
        t = (k + 1) * TICK
        results = []
        for mixer, peers, calls in sides:
            for i, (_profile, first, last) in enumerate(plan):
                if k == first:
                    calls[i] = make_call(i, t - TICK)
                    mixer.add(calls[i])
                    calls[i].play("p", np.zeros(FRAME * 30, np.int16), now=t - TICK)
                if k == last and calls[i] is not None:
                    mixer.remove(calls[i])
                    calls[i] = None
                if calls[i] is not None:
                    for when, pkt, src in peers[i].datagrams(t):
                        calls[i].receive_rtp(pkt, src, now=when)
            out = [(m.slot, pkt, addr) for m, pkt, addr in mixer.tick(now=t)]
            bank = mixer._bank
            frames = {i: bank.frames[c.slot].copy() for i, c in enumerate(calls) if c is not None}
            events = {i: list(iter(c.next_event, None)) for i, c in enumerate(calls)
                      if c is not None}
            results.append((out, frames, events))
        (out_b, frames_b, ev_b), (out_r, frames_r, ev_r) = results
        assert out_b == out_r, ("out", k, [(a, b) for a, b in zip(out_b, out_r) if a != b][:2], len(out_b), len(out_r))
        assert frames_b.keys() == frames_r.keys()
        for i in frames_b:
            assert np.array_equal(frames_b[i], frames_r[i]), (k, i, plan[i][0])
        assert ev_b == ev_r, ("events", k, ev_b, ev_r)
        fast_ticks += int(batched._bank.rx.j_fast.sum())
        if k % 50 == 49:
            for (i, cb), cr in zip(enumerate(sides[0][2]), sides[1][2]):
                if cb is not None:
                    assert state(cb) == state(cr), (k, i, plan[i][0])
    for (i, cb), cr in zip(enumerate(sides[0][2]), sides[1][2]):
        if cb is not None:
            assert state(cb) == state(cr), (i, plan[i][0])
    # the columns did carry most of the streams
    assert fast_ticks > 0.5 * ticks * n_calls * 0.6
    assert batched._bank.rx.exits > 10


def test_a_call_leaving_keeps_working_alone() -> None:
    """A call removed from the mixer takes its state out of the columns, queued datagrams
    included, and its objects go on by themselves."""
    mixer, alone = MediaMixer(), MediaMixer(batch_receive=False)
    mixer.batch_min = 1
    a, b = make_call(0, 0.0), make_call(0, 0.0)
    mixer.add(a)
    alone.add(b)
    pa, pb = Peer(0, random.Random(5), "lossy"), Peer(0, random.Random(5), "lossy")
    for k in range(300):
        t = (k + 1) * TICK
        for media, peer in ((a, pa), (b, pb)):
            for when, pkt, src in peer.datagrams(t):
                media.receive_rtp(pkt, src, now=when)
        if k == 200:
            mixer.remove(a)
            alone.remove(b)
        if k < 200:
            mixer.tick(now=t)
            alone.tick(now=t)
        else:
            assert np.array_equal(a.rx_frame(now=t), b.rx_frame(now=t))
    assert state(a) == state(b)


def test_a_renegotiated_media_timeout_applies_in_the_columns() -> None:
    """The mixer's vectorised media-timeout check follows ``reconfigure``."""
    mixer = MediaMixer()
    mixer.batch_min = 1
    media = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, remote=("127.0.0.1", 40000))
    mixer.add(media)
    got = []
    for k in range(100):
        t = (k + 1) * TICK
        if k == 10:
            media.reconfigure(MediaConfig(media_timeout=0.5))
        mixer.tick(now=t)
        got += [(k, ev) for ev in iter(media.next_event, None)]
    assert [type(ev).__name__ for _, ev in got] == ["MediaTimeout"]
    assert got[0][0] == 25  # the first tick more than 0.5 s after the call began (t = 0)
