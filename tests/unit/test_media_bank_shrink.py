"""The mixer's channel bank gives its memory back when calls have gone (issue 12: RSS must
return within 10% of its pre-flood level), and the calls that stay keep all their state.

A burst of calls grows the bank to its peak (about 87 kB per channel: DTMF, endpointer and
receive columns); once it has been bigger than room for 1.5 times the calls up for
``_SHRINK_TICKS`` ticks, the calls up move to its first channels and the arrays are
reallocated at that size.  The survivors'
outgoing packets and events must be bit-identical to those of a mixer that never shrinks.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from telephony import media as media_mod
from telephony.codecs.base import get_codec
from telephony.dsp import testsignals
from telephony.dsp.bank import check_keep, keep_channels
from telephony.dsp.dtmf import DtmfConfig, DtmfDetectorBank, InbandDigit
from telephony.dsp.vad import EndpointerBank
from telephony.errors import MediaError
from telephony.events import DtmfReceived
from telephony.media import FRAME, CallMedia, MediaConfig, MediaMixer, dtmf_tone
from telephony.rtp.stream import RtpSender
from tests.unit.test_dsp_dtmf import _voice

TICK = 0.020
ULAW = get_codec("PCMU")
SHRINK_TICKS = media_mod._SHRINK_TICKS


def caller_audio(seed: int, ticks: int) -> np.ndarray:
    """Noise with in-band DTMF digits and bursts of louder noise (speech-like levels)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 40, ticks * FRAME)
    at = 0
    while at < len(x) - 8000:
        at += int(rng.integers(2000, 9000))
        if rng.random() < 0.6:
            tone = dtmf_tone("0123456789*#"[int(rng.integers(12))], int(rng.choice([80, 200])))
            x[at:at + len(tone)] += tone[:len(x) - at]
        else:
            n = int(rng.integers(1600, 6000))
            x[at:at + n] += rng.normal(0, 3000, len(x[at:at + n]))
    return np.clip(x, -32768, 32767).astype(np.int16)


def run(n_calls: int, survivors: list[int], ticks: int, leave_at: int, batch_min: int,
        ) -> tuple[MediaMixer, dict[int, list[object]], list[CallMedia]]:
    """``n_calls`` calls fed their audio at 50 packets/s; all but ``survivors`` leave at
    tick ``leave_at``.  Returns the mixer, each survivor's packets and events, the calls."""
    mixer = MediaMixer()
    mixer.batch_min = batch_min
    calls = []
    senders = []
    audio = {}
    for i in range(n_calls):
        m = CallMedia(MediaConfig(media_timeout=5.0), now=0.0, rng=random.Random(i),
                      remote=("127.0.0.1", 40000 + 2 * i))
        mixer.add(m)
        if i in survivors:
            m.set_listening(True, now=0.0)
        calls.append(m)
        senders.append(RtpSender(0, rng=random.Random(1000 + i)))
    shrink_tick = leave_at + SHRINK_TICKS - 1
    for i in survivors:
        audio[i] = x = caller_audio(i, ticks)
        # a digit pressed across the shrink: 200 ms from 100 ms before it
        start = (shrink_tick - 5) * FRAME
        x[start - 800:start + 2400] = np.random.default_rng(i).normal(0, 40, 3200)
        x[start:start + 1600] += dtmf_tone("5", 200)
    silence = ULAW.encode(np.zeros(FRAME, np.int16))
    out: dict[int, list[object]] = {i: [] for i in survivors}
    index = {id(m): i for i, m in enumerate(calls)}
    now = 0.0
    for k in range(ticks):
        now += TICK
        if k == leave_at:
            for i, m in enumerate(calls):
                if i not in survivors:
                    mixer.remove(m)
        for i, m in enumerate(calls):
            if k >= leave_at and i not in survivors:
                continue
            payload = ULAW.encode(audio[i][k * FRAME:(k + 1) * FRAME]) if i in audio else silence
            m.receive_rtp(senders[i].packetize(payload, timestamp_advance=FRAME),
                          ("127.0.0.1", 40000 + 2 * i), now=now - 0.004)
        for m, data, _addr in mixer.tick(now=now):
            i = index[id(m)]
            if i in out:
                out[i].append(data)
        for i in survivors:
            while (ev := calls[i].next_event()) is not None:
                out[i].append(ev)
    return mixer, out, calls


@pytest.mark.parametrize("batch_min", [1, 48], ids=["receive-columns", "receive-objects"])
def test_the_bank_shrinks_after_calls_end_and_the_survivors_keep_their_state(
        monkeypatch: pytest.MonkeyPatch, batch_min: int) -> None:
    survivors = [3, 20, 21, 38]  # spread over the bank: they move to channels 0-3
    n, ticks, leave_at = 40, 420, 60
    shrunk, got, calls = run(n, survivors, ticks, leave_at, batch_min)
    # the bank grew to 64 channels for 40 calls, then shrank to the smallest step, 16
    assert shrunk.bank_shrinks == 1
    assert shrunk.channels == 16
    assert [calls[i].slot for i in survivors] == [0, 1, 2, 3]
    rx = shrunk._bank.rx  # type: ignore[union-attr]
    for i in survivors:  # each jitter ring is still a row of the (new) bank
        jb = calls[i]._jitter
        assert jb._ring.base is rx.ring or jb._ring.base is None
    # a mixer that never shrinks, fed the same: the same packets, events and counters
    monkeypatch.setattr(media_mod, "_SHRINK_TICKS", 10**9)
    kept, want, ref_calls = run(n, survivors, ticks, leave_at, batch_min)
    assert kept.bank_shrinks == 0 and kept.channels == 64
    for i in survivors:
        assert len(got[i]) == len(want[i])
        assert got[i] == want[i], f"call {i} changed when the bank shrank"
        assert calls[i].counters == ref_calls[i].counters
    shrink_at = (leave_at + SHRINK_TICKS - 5) * TICK
    digits = [e for i in survivors for e in got[i] if isinstance(e, DtmfReceived)]
    across = [e for e in digits if e.digit == "5" and shrink_at < e.at < shrink_at + 0.5]
    assert len(across) == len(survivors), "each survivor's digit pressed across the shrink"
    if batch_min == 1:  # the survivors' streams were in the receive columns when it shrank
        assert rx.entries >= len(survivors) and rx.j_fast[:4].all()
    # new calls after the shrink take the free channels and the bank grows again as needed
    more = [CallMedia(MediaConfig(), now=0.0, remote=("127.0.0.1", 50000 + 2 * j))
            for j in range(20)]
    for m in more:
        shrunk.add(m)
    assert sorted(m.slot for m in more) == list(range(4, 24))
    assert shrunk.channels == 32


def test_a_bank_does_not_shrink_while_calls_come_and_go() -> None:
    """Hysteresis: a bank with room for no more than 1.5 times the calls up, or bigger for
    less than _SHRINK_TICKS ticks, keeps its size (no grow-shrink-grow churn in a burst)."""
    mixer = MediaMixer()
    calls = [CallMedia(MediaConfig(), now=0.0, remote=("127.0.0.1", 40000 + 2 * i))
             for i in range(40)]
    for m in calls:
        mixer.add(m)
    assert mixer.channels == 64
    for m in calls[32:]:
        mixer.remove(m)  # 32 calls: room for 1.5 times them is the bank's 64 channels
    now = 0.0
    for _ in range(media_mod._SHRINK_TICKS + 10):
        now += TICK
        mixer.tick(now=now)
    assert mixer.channels == 64 and mixer.bank_shrinks == 0
    for m in calls[16:32]:
        mixer.remove(m)  # 16 calls: room for 1.5 times them is 32 channels, it has 64...
    for _ in range(media_mod._SHRINK_TICKS - 1):
        now += TICK
        mixer.tick(now=now)
    assert mixer.channels == 64  # ... but not for long enough yet
    now += TICK
    mixer.tick(now=now)
    assert mixer.channels == 32 and mixer.bank_shrinks == 1
    assert sorted(m.slot for m in calls[:16]) == list(range(16))


def span_only_digit() -> np.ndarray:
    """A weak short digit in a voice as loud as it: a 45 ms "6" at -17 dBm0 per tone, 4 dB
    reverse twist, through A-law, 100 ms of silence each side (the pair at sample 800).  A
    streaming bank finds it only by measuring its run of windows over their span (from
    the channel's ring of past samples), whatever its alignment to the frames."""
    rng = np.random.default_rng(3)
    pair = testsignals.dtmf_tone("6", 45, level=-17, twist=-4,
                                 phases=rng.uniform(0, 2 * np.pi, 2))
    x = np.concatenate([np.zeros(800), pair, np.zeros(800)])
    return testsignals.g711_round_trip(x + _voice(rng, len(x), -17), "alaw")


def test_dsp_banks_keep_channels_as_an_unchanged_bank_would() -> None:
    """DtmfDetectorBank and EndpointerBank: channel keep[i] goes on as channel i did.

    Channels 4 and 5 (moving to 0 and 2) each have a digit that only the span check finds
    in flight at the cut: its run of windows starts before it and is measured after it
    over samples that the compaction must carry in the channel's ring."""
    ticks, cut = 500, 230
    x = np.stack([caller_audio(50 + s, ticks) for s in range(6)])
    keep = [4, 1, 5]
    weak = span_only_digit()
    for ch, lead in ((4, 280), (5, 330)):
        at = cut * FRAME - 800 - lead
        x[ch, at - 2000:at + len(weak) + 2000] = np.random.default_rng(ch).normal(
            0, 40, len(weak) + 4000).astype(np.int16)
        x[ch, at:at + len(weak)] += weak
    no_span = DtmfDetectorBank(6, config=DtmfConfig(span_windows=1_000_000))
    without: list[tuple[int, int, object]] = []
    ref_d, ref_v = DtmfDetectorBank(6), EndpointerBank(6)
    dtmf, vad = DtmfDetectorBank(6), EndpointerBank(6)
    want: list[tuple[int, int, object]] = []
    got: list[tuple[int, int, object]] = []
    for k in range(ticks):
        if k == cut:
            dtmf.keep_channels(keep, 4)
            vad.keep_channels(keep, 4)
        frames = x[:, k * FRAME:(k + 1) * FRAME]
        now = (k + 1) * TICK
        want += [(k, ch, ev) for ch, ev in ref_d.process(frames, now=now)]
        without += [(k, ch, ev) for ch, ev in no_span.process(frames, now=now)]
        want += [(k, ch, ev) for ch, ev in ref_v.process(frames, now=now,
                                                         tone_active=ref_d.tone_active)]
        if k >= cut:
            frames = np.concatenate([frames[keep], np.zeros((1, FRAME), np.int16)])
        got += [(k, ch, ev) for ch, ev in dtmf.process(frames, now=now)]
        got += [(k, ch, ev) for ch, ev in vad.process(frames, now=now,
                                                      tone_active=dtmf.tone_active)]
    for new, old in enumerate(keep):
        mine = [(k, ev) for k, ch, ev in got if (ch == new if k >= cut else ch == old)]
        theirs = [(k, ev) for k, ch, ev in want if ch == old]
        assert mine == theirs, f"channel {old} -> {new}"
    assert any(k >= cut for k, _ in mine)
    assert not [ev for k, ch, ev in got if k >= cut and ch == 3]  # the fresh channel: silence
    for ch in (4, 5):  # the weak digits: found over their span after the cut, started before
        only_span = [(k, ev) for k, c, ev in want if c == ch and isinstance(ev, InbandDigit)
                     and (k, c, ev) not in without]
        assert [(ev.digit, ev.kind) for _, ev in only_span] == [("6", "start"), ("6", "end")]
        assert all(k >= cut and ev.onset_sample < cut * FRAME for k, ev in only_span)


def test_keep_checks_its_arguments() -> None:
    with pytest.raises(MediaError):
        check_keep(4, [0, 0], 4)
    with pytest.raises(MediaError):
        check_keep(4, [4], 4)
    with pytest.raises(MediaError):
        check_keep(4, [0, 1, 2], 2)
    a = np.arange(12).reshape(2, 6)
    out = keep_channels(a, np.array([5, 2]), 3, -1, axis=1)
    assert out.tolist() == [[5, 2, -1], [11, 8, -1]]
