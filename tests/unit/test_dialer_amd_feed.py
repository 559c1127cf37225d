"""The dialer engine's AMD: calls' taps feed one bank, run once per media tick (the
after-tick hook, held only while a call is open); each call gets the results a detector
of its own would give, and the level watch the machine-message path waits on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dialer.engine import _AmdBankFeed, _AmdTap
from telephony.dsp.amd import FRAME, AmdConfig, AmdDetector, AmdResult
from telephony.dsp.wavio import read_wav_8k

SOUNDS = Path("/usr/share/asterisk/sounds/en")
pytestmark = pytest.mark.skipif(not SOUNDS.is_dir(), reason="Debian asterisk sounds missing")


def test_taps_share_one_bank_run_after_the_tick() -> None:
    silence = np.zeros(4000, dtype=np.int16)
    machine = np.concatenate([silence, read_wav_8k(SOUNDS / "vm-nobodyavail.wav"),
                              read_wav_8k(SOUNDS / "vm-intro.wav"),
                              read_wav_8k(SOUNDS / "beep.wav"), silence, silence])
    human = np.concatenate([silence, read_wav_8k(SOUNDS / "hello.wav")])
    human = np.concatenate([human, np.zeros(len(machine) - len(human))])  # then silence
    audio = [machine.astype(np.int16), human.astype(np.int16)]
    after_tick: list[Any] = []
    feed = _AmdBankFeed(AmdConfig(), after_tick, level_floor=300.0 ** 2)
    got: list[list[AmdResult]] = [[], []]
    taps = [_AmdTap(0.0, feed, got[i].append) for i in range(2)]
    assert after_tick == [feed.tick]
    frames = len(machine) // FRAME
    quiet_seen = 0
    for k in range(frames):
        for tap, x in zip(taps, audio):
            tap.add(x[k * FRAME:(k + 1) * FRAME], np.zeros(FRAME, np.int16), False)
        for cb in after_tick:
            cb(k * 0.02)
        quiet_seen = max(quiet_seen, taps[1].quiet_frames)
    for i, x in enumerate(audio):
        det = AmdDetector()
        want = [r for k in range(frames)
                if (r := det.process(x[k * FRAME:(k + 1) * FRAME])) is not None]
        assert got[i] == want
        assert taps[i].detector.elapsed_ms == det.elapsed_ms == frames * 20
    assert [r.kind for r in got[0]] == ["decision", "beep"] and got[0][0].result == "machine"
    assert got[1][0].result == "human"
    # the level watch: voice heard, then the silence after "hello" counted frame by frame
    assert taps[1].heard_voice and quiet_seen >= 4 * 4000 // FRAME
    taps[0].close()
    assert after_tick == [feed.tick]
    taps[1].close()
    taps[1].close()  # twice is harmless
    assert after_tick == []  # no call open: the hook is gone
