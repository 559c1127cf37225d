"""Streaming AMD for many calls at once (sans-IO): one numpy pass per 20 ms frame.

An :class:`AmdBank` holds a channel per call.  Each call's frame goes into its row
(:meth:`AmdBank.feed`); :meth:`AmdBank.process` then computes the frame's features for
every call fed in one pass (:class:`~telephony.dsp.amd.AmdFeatures`: power, noise floor,
the beep detector over all rows, webrtcvad for the frames past its gates) and hands each
call's features to its own :class:`~telephony.dsp.amd.AmdDecider`, the state machine
:class:`~telephony.dsp.amd.AmdDetector` uses: a call's results and their stream times are
those a detector of its own would give (``tests/unit/test_dsp_amd_bank.py`` checks it on
the labelled sets).  One detector per call costs about 100 us a frame, mostly the beep
detector's numpy calls on one row; in the bank that fixed cost is paid once per frame.
"""

from __future__ import annotations

import heapq

import numpy as np
import numpy.typing as npt

from telephony.dsp.amd import FRAME, FRAME_MS, AmdConfig, AmdDecider, AmdFeatures, AmdResult
from telephony.dsp.bank import grow_channels
from telephony.errors import MediaError

_STEP = 32
"""Channels the bank grows by beyond 16."""


def _capacity(n: int) -> int:
    """Channels for ``n`` calls: 4, 16, then the next multiple of ``_STEP``."""
    if n <= 4:
        return 4
    if n <= 16:
        return 16
    return -(-n // _STEP) * _STEP


class AmdBank:
    """AMD for the calls of a process, fed in lock-step, one channel per call.

    ``ch = bank.open()`` gives a call a channel and its :class:`AmdDecider` (``bank.decider(ch)``);
    every 20 ms ``bank.feed(ch, frame)`` for each call that has a frame, then
    ``bank.process()`` returns ``(channel, result)`` pairs; ``bank.close(ch)`` when the call
    ends.  A channel not fed before a pass skips that frame (its decider does not step).
    The bank grows as calls arrive (4, 16, then by 32 channels) and keeps its size;
    freed channels are reused lowest first.
    """

    def __init__(self, config: AmdConfig | None = None, n_channels: int = 4) -> None:
        if n_channels < 1:
            raise MediaError(f"an AmdBank needs at least one channel, got {n_channels}")
        self.config = config = config or AmdConfig()
        self.n_channels = n_channels
        self.features = AmdFeatures(n_channels, config)
        self.frames = np.zeros((n_channels, FRAME), dtype=np.int16)
        """The frames fed since the last pass, a row per channel (others silent)."""
        self.fed = np.zeros(n_channels, dtype=bool)
        self._deciders: list[AmdDecider | None] = [None] * n_channels
        self._free = list(range(n_channels))
        """Free channels (a heap: the lowest is reused first)."""
        self.passes = 0

    @property
    def calls(self) -> int:
        """Channels open."""
        return self.n_channels - len(self._free)

    def open(self) -> int:
        """A channel for a new call (the bank grows if every channel is taken)."""
        if not self._free:
            self._grow(_capacity(self.n_channels + 1))
        ch = heapq.heappop(self._free)
        self.features.reset_channel(ch)
        self._deciders[ch] = AmdDecider(self.config)
        return ch

    def decider(self, channel: int) -> AmdDecider:
        """The state machine of the call on ``channel`` (its verdict, beep, stream time)."""
        dec = self._deciders[channel]
        if dec is None:
            raise MediaError(f"AMD channel {channel} is not open")
        return dec

    def close(self, channel: int) -> None:
        """The call on ``channel`` ended: the channel is free for another."""
        if self._deciders[channel] is None:
            return
        self._deciders[channel] = None
        self.frames[channel] = 0
        self.fed[channel] = False
        heapq.heappush(self._free, channel)

    def feed(self, channel: int, frame: npt.NDArray[np.int16]) -> None:
        """The call's next 160 samples, for the next :meth:`process`."""
        if self._deciders[channel] is None:
            raise MediaError(f"AMD channel {channel} is not open")
        self.frames[channel] = frame
        self.fed[channel] = True

    def process(self, tone_active: npt.NDArray[np.bool_] | None = None
                ) -> list[tuple[int, AmdResult]]:
        """One pass over the frames fed since the last: the results of the calls whose
        decider returned one (a decision, a beep, a late machine), by channel."""
        fed = self.fed
        if not fed.any():
            return []
        self.passes += 1
        voiced, beeps = self.features.process(self.frames, fed, tone_active)
        out: list[tuple[int, AmdResult]] = []
        deciders = self._deciders
        flags = voiced.tolist()
        tones = self.features.tone.tolist()
        for ch in np.flatnonzero(fed).tolist():
            dec = deciders[ch]
            assert dec is not None  # a fed channel is open
            ago = beeps.get(ch)
            r = dec.step(flags[ch], None if ago is None else dec.elapsed_ms + FRAME_MS - ago,
                         tones[ch])
            if r is not None:
                out.append((ch, r))
        self.frames[fed] = 0
        fed[:] = False
        return out

    def _grow(self, n_channels: int) -> None:
        old = self.n_channels
        self.features.grow(n_channels)
        self.frames = grow_channels(self.frames, n_channels, 0)
        self.fed = grow_channels(self.fed, n_channels, False)
        self._deciders.extend([None] * (n_channels - old))
        for ch in range(old, n_channels):
            heapq.heappush(self._free, ch)
        self.n_channels = n_channels
