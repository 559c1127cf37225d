"""The mixer's batched endpointer and silence skipping give the per-call results."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

import telephony.media as media_mod
from telephony.codecs.base import get_codec
from telephony.dsp.vad import Endpointer
from telephony.dsp.wavio import read_wav_8k
from telephony.events import CallEvent, DtmfReceived, SpeechEnded, SpeechStarted
from telephony.media import FRAME, CallMedia, MediaConfig, MediaMixer, dtmf_tone
from telephony.rtp.stream import RtpSender

SOUNDS = Path("/usr/share/asterisk/sounds/en")
MOH = Path("/usr/share/asterisk/moh")
pytestmark = pytest.mark.skipif(not SOUNDS.is_dir(), reason="Debian asterisk sounds missing")


def speech(name: str) -> np.ndarray:
    return read_wav_8k(SOUNDS / f"{name}.wav")


def gap(seconds: float) -> np.ndarray:
    return np.zeros(int(8000 * seconds), np.int16)


def caller_audio(seed: int) -> np.ndarray:
    """Speech, silences, an in-band digit and (if installed) a little hold music."""
    rng = np.random.default_rng(seed)
    parts = [gap(0.3 + 0.1 * seed), speech("hello-world"), gap(1.0), dtmf_tone("5", 120),
             gap(0.5), speech("vm-goodbye"), gap(1.2)]
    music = sorted(MOH.glob("*.wav"))
    if music:
        parts += [read_wav_8k(music[0])[: 8000 * 2], gap(1.0)]
    parts.append((rng.normal(0, 40, 8000)).astype(np.int16))  # low noise: not silent
    parts.append(gap(1.5))
    x = np.concatenate(parts)
    return x[: len(x) // FRAME * FRAME]


def test_slot_bank_reset_matches_a_new_endpointer() -> None:
    """A bank channel reset mid-stream behaves as a new one-call Endpointer from there on."""
    a = caller_audio(0)
    b = caller_audio(1)
    n = min(len(a), len(b)) // FRAME
    bank = media_mod.EndpointerBank(2)
    fresh: Endpointer | None = None
    got_bank: list[CallEvent] = []
    got_single: list[CallEvent] = []
    reset_at = 40
    for i in range(n):
        now = (i + 1) * 0.02
        if i == reset_at:
            bank.reset_channel(1)
            fresh = Endpointer()
        block = np.stack([a[i * FRAME:(i + 1) * FRAME], b[i * FRAME:(i + 1) * FRAME]])
        for ch, ev in bank.process(block, now=now):
            if ch == 1 and i >= reset_at:
                got_bank.append(ev)
        if fresh is not None:
            got_single += fresh.process(block[1], now=now)
    assert got_bank == got_single
    assert any(isinstance(e, SpeechEnded) for e in got_bank)


class _Line:
    """One caller feeding one CallMedia with G.711 RTP."""

    def __init__(self, media: CallMedia, audio: np.ndarray, port: int) -> None:
        self.media = media
        self.audio = audio
        self.addr = ("127.0.0.1", port)
        self.sender = RtpSender(0, rng=random.Random(port))
        self.codec = get_codec("PCMU")
        self.events: list[CallEvent] = []

    def send(self, k: int, now: float) -> None:
        frame = self.audio[(k * FRAME) % len(self.audio):][:FRAME]
        if len(frame) < FRAME:
            frame = np.zeros(FRAME, np.int16)
        pkt = self.sender.packetize(self.codec.encode(frame), timestamp_advance=FRAME)
        self.media.receive_rtp(pkt, self.addr, now=now)

    def drain(self) -> None:
        while (ev := self.media.next_event()) is not None:
            if isinstance(ev, DtmfReceived) and ev.source == "inband":
                # an in-band onset time comes from float32 sums that numpy's SIMD kernels
                # may round differently for banks of other sizes (1e-9 s apart on an AMD
                # EPYC); the digit, its duration and the onset sample stay exact
                ev = dataclasses.replace(ev, at=round(ev.at, 6))
            self.events.append(ev)


def run_mixer(n_calls: int, ticks: int, *, batched: bool, skip: bool,
              toggle: bool = False) -> list[list[CallEvent]]:
    mixer = MediaMixer()
    lines = []
    prompt = speech("vm-intro")
    for i in range(n_calls):
        m = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, remote=("127.0.0.1", 9000 + i))
        mixer.add(m)
        if not batched:
            m._own_vad = True  # the per-call Endpointer inside the same mixer
        if i % 3 == 0:
            m.play("p", prompt, barge_in=True, now=0.0)
        else:
            m.set_listening(True, now=0.0)
        lines.append(_Line(m, caller_audio(i % 4), 9000 + i))
    if not skip:
        mixer._vad_settle = 10 ** 9
    for k in range(ticks):
        now = (k + 1) * 0.02
        for line in lines:
            line.send(k, now - 0.004)
        mixer.tick(now=now)
        for i, line in enumerate(lines):
            line.drain()
            if toggle and i % 3 == 1 and k % 150 == 149:
                line.media.set_listening(not line.media.listening, now=now)
    return [line.events for line in lines]


def test_batched_vad_gives_the_per_call_events() -> None:
    ticks = 700
    batched = run_mixer(6, ticks, batched=True, skip=True)
    single = run_mixer(6, ticks, batched=False, skip=True)
    assert batched == single
    flat = [e for evs in batched for e in evs]
    assert sum(isinstance(e, SpeechStarted) for e in flat) >= 4
    assert sum(isinstance(e, DtmfReceived) for e in flat) >= 4


def test_silence_skipping_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    ticks = 700
    skipped = run_mixer(5, ticks, batched=True, skip=True, toggle=True)
    monkeypatch.setattr(media_mod, "_QUIET_TICKS", 10 ** 9)
    full = run_mixer(5, ticks, batched=True, skip=False, toggle=True)
    assert skipped == full
    assert any(isinstance(e, DtmfReceived) and e.source == "inband"
               for evs in skipped for e in evs)


def test_skipping_happens_on_a_silent_call() -> None:
    mixer = MediaMixer()
    m = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, remote=("127.0.0.1", 9000))
    mixer.add(m)
    m.set_listening(True, now=0.0)
    line = _Line(m, gap(1.0), 9000)
    for k in range(200):
        line.send(k, k * 0.02 + 0.016)
        mixer.tick(now=(k + 1) * 0.02)
    assert mixer.dtmf_skipped > 150
    assert mixer.vad_skipped > 100


def test_listening_after_unheard_speech_starts_afresh() -> None:
    """Speech that began while the call was not listening is not half-reported later."""
    mixer = MediaMixer()
    a = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, remote=("127.0.0.1", 9000))
    b = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, remote=("127.0.0.1", 9002))
    mixer.add(a)
    mixer.add(b)
    b.set_listening(True, now=0.0)  # keeps the bank's endpointer pass running
    talk = np.concatenate([gap(0.2), speech("vm-intro"), gap(1.5)])
    la, lb = _Line(a, talk, 9000), _Line(b, talk, 9002)
    for k in range(len(talk) // FRAME):
        now = (k + 1) * 0.02
        la.send(k, now - 0.004)
        lb.send(k, now - 0.004)
        mixer.tick(now=now)
        if k == 60:  # mid-utterance
            a.set_listening(True, now=now)
        la.drain()
        lb.drain()
    kinds = [type(e) for e in la.events if isinstance(e, (SpeechStarted, SpeechEnded))]
    assert kinds and kinds[0] is SpeechStarted
    assert kinds.count(SpeechStarted) == kinds.count(SpeechEnded)


def test_calls_joining_and_leaving_a_growing_bank_hear_what_they_would_alone() -> None:
    """One bank serves every call and grows as calls arrive (4, 16, then by 32 channels):
    a call added late, after growth, or into a freed channel gets exactly the events it
    gets alone in its own mixer."""
    ticks = 260
    shared = MediaMixer()
    lines: list[tuple[_Line, int, int]] = []  # (line, first tick, last tick)
    alone: list[tuple[MediaMixer, _Line]] = []
    plan = [(i, 3 * i, ticks if i % 5 else 120 + i) for i in range(40)]
    plan += [(40 + j, 150 + 2 * j, ticks) for j in range(5)]  # reuse channels freed at 120+
    for i, first, last in plan:
        audio = caller_audio(i % 4)[FRAME * (7 * i):]
        for mixer, store in ((shared, None), (MediaMixer(), alone)):
            m = CallMedia(MediaConfig(media_timeout=0.0), now=0.0, remote=("127.0.0.1", 9000 + i))
            line = _Line(m, audio, 9000 + i)
            if store is None:
                lines.append((line, first, last))
            else:
                store.append((mixer, line))
    channels_seen = set()
    for k in range(ticks):
        now = (k + 1) * 0.02
        for (line, first, last), (own_mixer, own_line) in zip(lines, alone):
            if k == first:
                for mixer, ln in ((shared, line), (own_mixer, own_line)):
                    mixer.add(ln.media)
                    ln.media.set_listening(True, now=now - 0.02)
                channels_seen.add(line.media.slot)
            if k == last:
                shared.remove(line.media)
            if first <= k < last:
                line.send(k - first, now - 0.004)
                own_line.send(k - first, now - 0.004)
        shared.tick(now=now)
        for (line, first, last), (own_mixer, own_line) in zip(lines, alone):
            if first <= k < last:
                own_mixer.tick(now=now)
                line.drain()
                own_line.drain()
    assert shared.channels == 64
    assert len(channels_seen) < len(plan)  # freed channels were reused
    for (line, _, _), (_, own_line) in zip(lines, alone):
        assert line.events == own_line.events
    flat = [e for line, _, _ in lines for e in line.events]
    assert sum(isinstance(e, SpeechStarted) for e in flat) >= 20
    assert sum(isinstance(e, DtmfReceived) for e in flat) >= 5
