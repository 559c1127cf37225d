"""Packet-loss concealment for narrow-band PCM, after ITU-T G.711 Appendix I.

The method of G.711 Appendix I, reworked for a frame API with no algorithmic delay:

* keep the last 48.75 ms of output as history;
* at the first lost frame, estimate the pitch period (40..120 samples, 66..200 Hz)
  by normalised cross-correlation of the last 20 ms against the history;
* synthesise by repeating the last pitch period, whose last quarter is
  overlap-added with the period before it so that the repetitions join smoothly;
* after 10 ms of loss use the last two periods, after 20 ms the last three
  (less "buzzy" than one period repeated), with a quarter-period overlap-add at
  each switch;
* from 10 ms on, attenuate linearly by 20 % per 10 ms, so the output is silence
  after 60 ms;
* at the first good frame, overlap-add the synthetic continuation into the real
  signal over a quarter period plus 4 ms per extra 10 ms lost (at most 10 ms).

Appendix I delays the output by 3.75 ms to overlap-add the start of the erasure;
this version avoids that delay (the pipeline is already paced by the jitter
buffer) and relies on the smooth period join instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from telephony.codecs.base import Pcm

_F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class PlcConfig:
    """Parameters of :class:`G711Plc` (defaults follow G.711 Appendix I at 8 kHz)."""

    sample_rate: int = 8000
    pitch_min_hz: float = 200.0
    """Highest pitch searched (shortest period)."""
    pitch_max_hz: float = 66.6
    """Lowest pitch searched (longest period)."""
    correlation_ms: float = 20.0
    attenuation_start_ms: float = 10.0
    attenuation_per_10ms: float = 0.2
    """Gain lost per 10 ms after ``attenuation_start_ms``: silence after 60 ms."""


class G711Plc:
    """Concealment state for one audio stream (one per call and direction)."""

    def __init__(self, config: PlcConfig | None = None) -> None:
        self.config = cfg = config or PlcConfig()
        self._p_min = round(cfg.sample_rate / cfg.pitch_min_hz)
        self._p_max = round(cfg.sample_rate / cfg.pitch_max_hz)
        self._corr_len = int(cfg.sample_rate * cfg.correlation_ms / 1000)
        self._hist_len = 3 * self._p_max + self._p_max // 4
        # History as int16 (every pushed frame is int16, so float32 of it is exact) in a
        # buffer several frames long: a push writes the frame after the previous one and
        # the buffer is compacted only when full, instead of shifting it every frame.
        self._buf: Pcm = np.zeros(self._hist_len + 8 * self._corr_len, dtype=np.int16)
        self._end = self._hist_len
        self._ms = cfg.sample_rate / 1000.0
        self._atten_start = int(cfg.attenuation_start_ms * self._ms)
        self._atten_slope = cfg.attenuation_per_10ms / (10.0 * self._ms)
        self._erased = 0
        """Samples concealed in the current erasure (0 when not in an erasure)."""
        self._pitch = self._p_min
        self._cycles: list[_F32 | None] = [None, None, None]
        """Repetition buffers using 1, 2 and 3 periods, built when first needed."""
        self._history_at_start: _F32 = self._history
        self._silent_from = 0
        self._phase = 0
        """Position in the synthetic signal (samples since the erasure started)."""

    @property
    def erased_ms(self) -> float:
        """Length of the erasure in progress, ms (0 if the last frame was good)."""
        return self._erased / self._ms

    @property
    def pitch(self) -> int:
        """Pitch period (samples) estimated at the start of the last erasure."""
        return self._pitch

    def good(self, pcm: Pcm) -> Pcm:
        """Feed a received frame; returns it, smoothed into the concealment if one preceded it."""
        frame = pcm
        if self._erased:
            frame = self._recover(pcm)
        self._push(frame)
        return frame

    def conceal(self, n_samples: int) -> Pcm:
        """Synthesise ``n_samples`` for a lost frame."""
        if not self._erased:
            self._start_erasure()
        out = self._synth(self._phase, n_samples)
        self._phase += n_samples
        self._erased += n_samples
        pcm = np.clip(np.rint(out), -32768, 32767).astype(np.int16)
        self._push(pcm)
        return pcm

    # -- internals ---------------------------------------------------------------------

    @property
    def _history(self) -> _F32:
        """The last ``_hist_len`` samples played, as float32 (built when an erasure starts)."""
        return self._buf[self._end - self._hist_len : self._end].astype(np.float32)

    def _push(self, frame: npt.NDArray[np.int16]) -> None:
        n = frame.shape[0]
        buf = self._buf
        hist = self._hist_len
        end = self._end
        if n >= hist:
            buf[:hist] = frame[-hist:]
            self._end = hist
            return
        if end + n > buf.shape[0]:
            buf[:hist] = buf[end - hist : end]
            end = hist
        buf[end : end + n] = frame
        self._end = end + n

    def _estimate_pitch(self) -> int:
        """Lag (p_min..p_max) maximising the normalised cross-correlation of the last 20 ms."""
        h = self._history
        n = h.shape[0]
        seg = h[n - self._corr_len :]
        # Windows starting `lag` samples before `seg`, for every lag from p_max down to p_min.
        region = h[n - self._corr_len - self._p_max : n - self._p_min]
        corr = np.correlate(region, seg, mode="valid")  # corr[j]: lag p_max - j
        csum = np.concatenate(([0.0], np.cumsum(region.astype(np.float64) ** 2)))
        energy = csum[self._corr_len :] - csum[: -self._corr_len]
        score = corr / np.sqrt(np.maximum(energy, 1e-9))
        score[energy <= 0] = -np.inf
        return self._p_min + int(np.argmax(score[::-1]))

    def _start_erasure(self) -> None:
        self._pitch = self._estimate_pitch()
        self._history_at_start = self._history
        self._cycles = [None, None, None]
        self._phase = 0
        self._silent_from = self._atten_start + int(np.ceil(1.0 / self._atten_slope))

    def _cycle(self, k: int) -> _F32:
        """The last ``k`` pitch periods, their end faded into what preceded them (built lazily)."""
        cyc = self._cycles[k - 1]
        if cyc is None:
            p = self._pitch
            q = max(1, p // 4)
            h = self._history_at_start
            cyc = h[-k * p :].copy()
            ramp = np.arange(1, q + 1, dtype=np.float32) / np.float32(q + 1)
            # Fade the end into the samples just before the buffer, so that wrapping from
            # its end to its start is continuous.
            before = h[-k * p - q : -k * p]
            cyc[-q:] = cyc[-q:] * (1.0 - ramp) + before * ramp
            self._cycles[k - 1] = cyc
        return cyc

    def _synth(self, start: int, n: int) -> _F32:
        if start >= self._silent_from:
            return np.zeros(n, dtype=np.float32)
        out = np.empty(n, dtype=np.float32)
        atten = max(1, self._atten_start)
        q = max(1, self._pitch // 4)
        pos = start
        stop = start + n
        while pos < stop:
            # G.711 I: one period for the first 10 ms, two up to 20 ms, three after.
            k = min(3, 1 + pos // atten)
            seg_end = stop if k == 3 else min(stop, k * atten)
            idx = np.arange(pos, seg_end)
            o = pos - start
            out[o : o + idx.shape[0]] = self._cycle(k).take(idx, mode="wrap")
            switch = (k - 1) * atten
            if k > 1 and pos < switch + q:
                # Overlap-add a quarter period at the switch from k-1 to k periods.
                m = min(seg_end, switch + q) - pos
                w = ((idx[:m] - switch + 1) / (q + 1)).astype(np.float32)
                prev = self._cycle(k - 1).take(idx[:m], mode="wrap")
                out[o : o + m] = prev * (1 - w) + out[o : o + m] * w
            pos = seg_end
        if stop > atten:
            phase = np.arange(start, stop, dtype=np.float32)
            out *= np.clip(1.0 - (phase - atten) * self._atten_slope, 0.0, 1.0)
        return out

    def _recover(self, pcm: Pcm) -> Pcm:
        extra_10ms = max(0, self._erased - self._atten_start) // max(1, self._atten_start)
        q = max(1, self._pitch // 4)
        length = min(q + int(4 * self._ms) * extra_10ms, int(10 * self._ms), pcm.shape[0])
        syn = self._synth(self._phase, length)
        w = np.arange(1, length + 1, dtype=np.float32) / (length + 1)
        real = pcm[:length].astype(np.float32)
        mixed = syn * (1 - w) + real * w
        out = pcm.copy()
        out[:length] = np.clip(np.rint(mixed), -32768, 32767).astype(np.int16)
        self._erased = 0
        self._phase = 0
        return out
