"""In-band DTMF detection (ITU-T Q.23 frequencies, Q.24 acceptance), batched over calls.

How it works
------------
Audio is cut into 5 ms sub-blocks (40 samples at 8 kHz).  One real matrix product per
call of :meth:`DtmfDetectorBank.process` gives, for every channel and sub-block, the
complex DFT at the eight DTMF frequencies with the phase referred to the sample index
(counted from the channel's start), so the DFT of any window made of consecutive
sub-blocks is just their sum.  Every 5 ms a 20 ms window (4 sub-blocks, 50 Hz
resolution) is judged:

* the strongest row and column tone, the others in each group well below;
* each tone's frequency offset from the phase advance between the window's halves
  (unwrapped with the advance between sub-blocks), within ``freq_tolerance``
  (2 %: between Q.24's 1.5 % must-accept and 3.5 % must-reject);
* each tone's power, re-measured coherently at the estimated frequency (so a tone
  1.5 % off loses nothing), at or above ``min_level_dbm0``;
* twist within limits (the two tones' powers solved jointly, so that neither one's leakage
  into the other's bin moves it), and the two tones holding ``purity`` of the window energy, or
  ``band_purity`` of the energy of its first difference (a high-pass that leaves out a
  voice's fundamental) (this is what keeps speech and music from talking off);
* both halves of the window alike (the tone fills the window);
* the column tone not an octave of the row tone (a harmonic of one voiced sound).

The onset is located inside the window from how full its first half is (within about
1 ms), so a tone is reported once it has lasted ``min_tone_ms`` (23.5 ms) over at least
two accepted windows, or one *clean* window (both tones within 1.6 % and steady across the
window): with 20 ms frames, at most 45 ms after it starts; tones of 21 ms or less are never
reported.  The twist of the digit is also judged on its windows together
(``tone_twist_db``): a pair near the reverse twist limit waits for five of them or for its
end.  A weak digit under speech as loud as it, which fails the purity tests on every
window, is a digit when six windows in a row pass every test with a lower band purity
(``steady_purity``).  A run of candidate windows of one pair (``span_windows``, 40 ms and
more) holding a window that passed the tests, or all of them but twist or purity, over which
no digit was reported, is measured again over its whole span: the two tones' frequencies,
twist, steadiness and share of the band power, with tighter limits than a window's
(``span_*``; issue 17: weak short digits in speech as loud as them).  Gaps shorter than
``merge_gap_ms`` are bridged; a longer pause separates digits.  Once reported, a digit
goes on through windows that fail the acceptance tests while its own two tones hold
their level (``hold_drop_db``): speech over a weak digit no longer splits it in two.

The numpy part runs for every channel; the per-channel state machine only runs for
channels that have a tone in the current frame, so idle calls cost a few microseconds.
A bank grows (:meth:`DtmfDetectorBank.grow`) as calls arrive, without disturbing the
calls it has.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from telephony.dsp.bank import (
    Channels,
    check_grow,
    check_keep,
    grow_channels,
    keep_channels,
    keep_items,
)
from telephony.errors import MediaError
from telephony.events import DtmfReceived

SAMPLE_RATE = 8000
SUB = 40
"""Sub-block length in samples (5 ms): the hop between analysis windows."""
WIN_SUBS = 4
"""Sub-blocks per analysis window (20 ms)."""
HIST_SUBS = 8
RAW_HIST = SUB * (WIN_SUBS - 1)
"""Samples read from the previous calls for the band purity (a window less one sub-block)."""
"""Sub-blocks kept from one call to the next (window overlap plus onset look-back)."""

RING = 1024
"""Samples kept per channel (128 ms): the band purity's and the span measurement's."""

_MATMUL_ROWS = 1024
_WIN_OFFSETS = np.arange(WIN_SUBS)[None, :]
_STEP_SAMPLES = SUB * np.arange(WIN_SUBS)
_WIN_SAMPLES = np.arange(SUB * WIN_SUBS)[None, :]

ROW_FREQS = (697, 770, 852, 941)
COL_FREQS = (1209, 1336, 1477, 1633)
FREQS = np.array(ROW_FREQS + COL_FREQS, dtype=np.int64)
KEYS = "123A456B789C*0#D"
"""Digit for ``row * 4 + col``."""

DBM0_REF_POWER = (32768.0 * 10 ** (-3.14 / 20)) ** 2 / 2
"""Mean power of a 0 dBm0 sine in int16 units (mu-law convention: 3.14 dB below full scale)."""

Int16Array = npt.NDArray[np.int16]
F32 = npt.NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class DtmfConfig:
    """Acceptance limits of the DTMF detector (defaults follow ITU-T Q.24)."""

    min_tone_ms: float = 23.5
    """Shortest tone reported (Q.24: accept 40 ms, reject below about 23 ms).  With 20 ms
    frames a digit is reported at most ``min_tone_ms + 20`` (+ ~1.5 ms) after its onset."""
    min_windows: int = 2
    """Accepted windows (5 ms apart) a tone needs before it is reported, unless one of
    them is *clean* (``clean_freq_tolerance``, ``clean_fill``).  A 20 ms window can be
    filled by two formant harmonics of a voice for an instant; the onset look-back then
    stretches that one window past ``min_tone_ms``.  Every false digit on 16 h of speech
    and music (issue 17: the 31 ms "4" in Spanish, the 180 ms "C" in Italian, held by the
    hold test after its one accepted window) was one window.  Q.24's shortest accepted
    tone (40 ms) fills four or five."""
    clean_freq_tolerance: float = 0.016
    """A window alone is enough when both tones are within this of nominal (Q.24's 1.5 %
    plus estimation noise; the ``freq_tolerance`` margin up to 2 % is for tones whose
    other windows confirm them) ..."""
    clean_fill: float = 0.9
    """... and its halves are this alike (a steady tone; speech ramps up and down)."""
    pending_gap: int = 3
    """Windows that may fail between the accepted windows of a digit not yet reported
    (15 ms): a weak tone under speech, or at a Q.24 limit through G.711, fails every
    other window or two."""
    soft_twist_db: float = 1.5
    """A window of a pending digit that passes every test but reverse twist, and misses
    ``max_twist_db`` by less than this, confirms it (never starts one): a pair at Q.24's
    8 dB limit measures 7.5 to 9 dB under speech."""
    band_purity: float = 0.9
    """Or: the share of the window's energy *above the voice's fundamental* the two tones
    hold, measured on the first difference of the signal (gain 2 sin(pi f / 8000): -22 dB
    at 100 Hz, -5 dB at 697 Hz) with the tones weighted by the same gain.  Speech under a
    weak digit puts most of its energy in its fundamental and first formant, below the
    DTMF band, which ``purity`` counts against the tones (issue 17: 16 -> 9 digits missed
    on the hard set, the clean set all exact).  0.8 let 4 false digits through on 16 h of
    speech and music; 0.85 none."""
    tone_twist_db: float = 8.8
    """Reverse twist limit on the digit's windows together (their tone powers summed, from
    the window before its start on): the twist of one 20 ms window varies by +-1 dB
    under speech (a voice harmonic in the weak tone's bin beats with it): a 9.5 dB pair was
    reported in 3 % of the trials, one window inside ``max_twist_db`` and the windows that
    miss by a little (``soft_twist_db``) confirming it.  Summed over the tone, the 9.5 dB
    pairs under speech measured mostly 8.9 dB or more, the 8 dB pairs 8.7 dB or less (256
    trials each, both laws; 2 in 512 of the 9.5 dB pairs are still reported)."""
    near_twist_db: float = 7.5
    """A digit whose windows together measure more reverse twist than this is reported
    only once ``tone_windows`` windows agree, or when the tone ends: near the limit, one or
    two windows do not tell an 8 dB pair from a 9.5 dB one."""
    tone_windows: int = 5
    """Windows of the tone (a 40 ms tone has about five) that decide a digit near the twist
    limit before it ends."""
    steady_purity: float = 0.75
    """Band purity (``band_purity``) enough for a window in a steady run: a weak digit
    under speech as loud as it fails the purity tests on every window while its two tones
    hold (two of the hard set's misses: band purity 0.75 to 0.89 over 30 and 50 ms) ..."""
    steady_windows: int = 6
    """... when this many consecutive windows (the tone lasting 45 ms) pass every test with
    it.  Speech and music that fill single windows with two harmonics do not hold them
    for that long."""
    span_windows: int = 8
    """A weak digit in speech as loud as it can fail every window's tests (issue 17's
    hard set: group rejection, fill, the 2 % tolerance, purity): a run of at least this many
    consecutive windows whose strongest row and column tones are one pair (the cheap
    candidate test passed), one of them passing the window tests or all of them but the
    twist or the purity (a candidate that failed narrowly: most runs of speech and music have
    none, and are not measured), is, when no digit was reported over it, measured again over
    the run's whole span (:func:`span_features`, :func:`span_verdict`) ..."""
    span_max_windows: int = 20
    """... unless it lasts longer than this (a long tone passes the window tests; the
    samples kept hold 22 windows)."""
    span_band_purity: float = 0.80
    """The two tones, fitted over the span (their frequency searched within 2.5 %, constant
    amplitude), must hold this share of the power of the span's first difference (as
    ``band_purity``, over 25-60 ms instead of 20 ms).  Measured over 16 h of speech and
    music, the candidate spans that pass the other span tests reach 0.76; the hard set's
    digits 0.63 and more (the misses 0.39 to 0.93)."""
    span_freq_tolerance: float = 0.0165
    """Both tones within this of nominal, estimated over the span (Q.24: 1.5 %; the search
    steps by 0.1 %, so a tone at 1.5 % may read 1.6 %)."""
    span_max_twist_db: float = 8.0
    """Reverse twist limit over the span (Q.24 accepts 8 dB; a 9.5 dB pair under speech
    measures 8.4 dB or more over its span) ..."""
    span_max_forward_db: float = 4.0
    """... and forward twist (Q.24 accepts 4 dB)."""
    span_stability: float = 0.5
    """Each tone's amplitude in the span's thirds within this ratio (a steady tone)."""
    merge_gap_ms: float = 20.0
    """Interruptions shorter than this belong to the same digit (pauses >= 40 ms separate)."""
    freq_tolerance: float = 0.02
    """Largest accepted frequency offset, as a fraction of nominal (accept 1.5 %, reject
    3.5 %).  2 % (2.5 % before issue 17): half of the false digits left on hours of
    speech and music were pairs between 2 and 2.5 % off."""
    max_twist_db: float = 8.5
    """How much louder the low (row) group may be than the high group: *reverse* twist
    (Q.24: 8 dB must be accepted).  The margin is for measurement error under speech;
    at 9 dB a clean 941 + 1209 Hz pair 10 dB apart still passed (issue 17's false "*")."""
    max_reverse_twist_db: float = 4.3
    """How much louder the high (column) group may be than the low group: *forward*
    twist (Q.24: 4 dB must be accepted).  The attribute names predate issue 17 and are
    kept for callers; "reverse" here means the opposite of ``max_twist_db``.  4.3 dB
    (4.5 before the second pass of issue 17): with two accepted windows needed, a clean
    4 dB pair through either law still passes (256 of 256), and a 5.5 dB pair with speech
    under is no longer reported (2 of 64 were)."""
    min_level_dbm0: float = -36.0
    """Weakest tone accepted, per tone (Q.24: down to -30 dBm0)."""
    purity: float = 0.80
    """Share of the window's energy the two tones must hold."""
    group_rejection_db: float = 8.0
    """The other tones of each group together must be this far below the chosen one."""
    harmonic_hz: float = 10.0
    """A column tone this close to twice the row tone is a harmonic, not a digit."""
    fill_ratio: float = 0.70
    """Smallest amplitude ratio between the window's halves (the tone must fill the window)."""
    hold_drop_db: float = 6.0
    """Once a digit is reported, a window that fails the acceptance tests still continues
    it while both of its tones stay within this many dB of their strongest level in the
    digit and each stays the strongest of its group (Q.24's interruption tolerance: speech
    over a weak digit fails the purity test for a window or two without the tone going
    away).  A real pause takes both tones away (far more than 6 dB; a window half filled
    by the tone is 6 dB down), so two presses of one key stay two digits."""


@dataclass(frozen=True, slots=True)
class InbandDigit:
    """A digit heard in the audio: ``kind`` is ``start`` (reported while the key is held)
    or ``end`` (with the full duration)."""

    digit: str
    """One of ``0123456789*#ABCD``."""
    kind: Literal["start", "end"]
    onset: float
    """Time the tone started, on the clock of ``now`` (seconds)."""
    duration_ms: int
    """Tone length so far (``start``) or in full (``end``)."""
    onset_sample: int
    """Sample index of the onset counted from the channel's first sample (the first the
    detector saw, or the first after the channel's ``reset_channel`` or ``grow``)."""

    def to_call_event(self) -> DtmfReceived:
        """The call event for this digit (source ``inband``)."""
        return DtmfReceived(self.digit, self.duration_ms, "inband", at=self.onset)


_IDLE, _PENDING, _ON, _ENDING = 0, 1, 2, 3


class _Track:
    """Per-channel digit state (plain attributes: touched only when a tone is around)."""

    __slots__ = ("acc_c", "acc_d", "acc_end", "acc_n", "acc_r", "digit", "done", "gap",
                 "last_end", "onset", "ready", "ref_c", "ref_r", "run_d", "run_end", "run_n",
                 "state", "wins")

    def __init__(self) -> None:
        self.state = _IDLE
        self.wins = 0
        """Accepted windows of the pending digit so far (a clean one counts as enough)."""
        self.gap = 0
        """Failed windows since the pending digit's last accepted one."""
        self.digit = -1
        self.onset = 0.0
        self.last_end = 0.0
        self.ref_r = 0.0
        """Strongest raw window power of the digit's row tone so far (hold reference)."""
        self.ref_c = 0.0
        self.acc_d = -1
        """Digit of the run of tone windows being summed (every test passed but twist)."""
        self.acc_r = 0.0
        """Row and column tone powers summed over that run (``tone_twist_db``)."""
        self.acc_c = 0.0
        self.acc_n = 0
        self.acc_end = -1e9
        """End sample of the run's last window."""
        self.run_d = -1
        """Digit of the run of consecutive windows passing with ``steady_purity``."""
        self.run_n = 0
        self.run_end = -1e9
        """End sample of the steady run's last window."""
        self.done: list[list[float]] = []
        """The digits reported that a run measured over its span may still overlap:
        ``[onset, end]`` samples (end 1e18 while in progress)."""
        self.ready = False
        """The pending digit passed every test but waits for more windows (near the twist
        limit): reported when its tone ends if its windows together still pass."""


_SUB_M = np.arange(SUB)


def _joint_powers(xr: npt.NDArray[np.complex128], fnom: npt.NDArray[np.int64],
                  df: npt.NDArray[np.float64], n0: npt.NDArray[np.int64]
                  ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Powers of the row and column tones of ``m`` windows, solved jointly.

    ``xr`` ``(m, 2)``: each tone's window DFT, measured coherently at its estimated
    frequency (nominal ``fnom`` plus ``df`` Hz, the correction applied per sub-block) with
    the phase referred to the channel's sample index; ``n0``: the window's first sample.
    A 20 ms rectangular window lets each tone into the other's bin: a 941 Hz tone 9.5 dB
    over a 1209 Hz one is seen at -16 dB in the 1209 Hz bin (5.4 bins away), which moves
    the measured twist by up to 1.5 dB depending on the tones' phases.  The measurements
    are linear in the tones' complex amplitudes: ``M = G B`` with ``G[q, p]`` the probe of
    tone ``q`` at the frequency of tone ``p``, solved for ``B`` (the images at negative
    frequency, 1.4 kHz and more away, are left out).
    """
    w_nom = 2 * np.pi * fnom / SAMPLE_RATE  # (m, 2)
    delta = 2 * np.pi * df / SAMPLE_RATE
    w_est = w_nom + delta
    # M'_q: the measurement with its phase referred to the window's first sample.
    turns = (fnom * n0[:, None]) % SAMPLE_RATE
    mq = xr * np.exp(2j * np.pi * turns / SAMPLE_RATE)
    # G[:, q, p] = sum_j exp(i (w_p - w_nom_q - delta_q) SUB j) * D(w_p - w_nom_q),
    # D(t) = sum_m exp(i t m) over one sub-block.
    theta = w_est[:, None, :] - w_nom[:, :, None]  # (m, q, p)
    d = np.exp(1j * theta[..., None] * _SUB_M).sum(-1)
    step = theta - delta[:, :, None]
    g = np.exp(1j * step[..., None] * _STEP_SAMPLES).sum(-1) * d
    det = g[:, 0, 0] * g[:, 1, 1] - g[:, 0, 1] * g[:, 1, 0]
    b_r = (mq[:, 0] * g[:, 1, 1] - mq[:, 1] * g[:, 0, 1]) / det
    b_c = (mq[:, 1] * g[:, 0, 0] - mq[:, 0] * g[:, 1, 0]) / det
    return np.abs(b_r) ** 2, np.abs(b_c) ** 2


def _overlaps(done: list[list[float]], lo: float, hi: float) -> bool:
    """Whether a reported digit's ``[onset, end]`` overlaps samples ``lo..hi``."""
    return any(on < hi and lo < off for on, off in done)


_SPAN_GRID = np.linspace(-0.025, 0.025, 51)


def span_features(x: npt.ArrayLike, digit: int) -> dict[str, float] | None:
    """Measure ``digit``'s pair over a run of candidate windows, ``x`` the run's samples
    (its first window's first sample to its last window's last).

    The core of the run, the windows where the product of the two tones' powers is within
    6 dB of its peak, less 6 ms at each end (a window 70 % filled by the tone is in it),
    is the span: over it each tone's frequency is searched within 2.5 % of nominal (0.1 %
    steps, one coherent DFT of the span), the two sines and a constant fitted by least
    squares, and the result measured: ``dfr``, ``dfc`` (frequency offsets, fractions),
    ``lvl_r``, ``lvl_c`` (dBm0), ``twist`` (dB, row over column), ``band`` (the tones'
    share of the power of the first difference, each weighted by the difference's gain),
    ``stab`` (the smaller ratio of each tone's amplitude between the span's thirds) and
    ``core`` (windows).  None when the run is shorter than a window.
    """
    s = np.asarray(x, dtype=np.float64)
    n_win = SUB * WIN_SUBS
    k = (len(s) - n_win) // SUB + 1
    if k < 1:
        return None
    fr, fc = int(FREQS[digit // 4]), int(FREQS[4 + digit % 4])
    m = np.arange(n_win)
    idx = SUB * np.arange(k)[:, None] + m[None, :]
    probes = np.exp(-2j * np.pi * np.outer(m, [fr, fc]) / SAMPLE_RATE)
    pw = np.abs(s[idx] @ probes) ** 2  # (k, 2)
    q = pw[:, 0] * pw[:, 1]
    core = np.flatnonzero(q >= 0.25 * q.max())
    c0, c1 = int(core[0]), int(core[-1])
    trim = 48
    a, b = SUB * c0 + trim, SUB * c1 + n_win - trim
    if b - a < n_win:
        mid = (a + b) // 2
        a, b = mid - n_win // 2, mid + n_win // 2
    seg = s[a:b]
    t = np.arange(len(seg))
    best = []
    for f0 in (fr, fc):
        fs = f0 * (1 + _SPAN_GRID)
        e = np.exp(-2j * np.pi * np.outer(fs, t) / SAMPLE_RATE)
        best.append(float(fs[int(np.argmax(np.abs(e @ seg)))]))
    cols = []
    for f in best:
        cols += [np.cos(2 * np.pi * f * t / SAMPLE_RATE), np.sin(2 * np.pi * f * t / SAMPLE_RATE)]
    basis = np.stack([*cols, np.ones(len(seg))], axis=1)
    coef = np.linalg.lstsq(basis, seg, rcond=None)[0]
    er = float(np.mean((basis[:, :2] @ coef[:2]) ** 2))
    ec = float(np.mean((basis[:, 2:4] @ coef[2:4]) ** 2))
    g = [(2 * math.sin(math.pi * f / SAMPLE_RATE)) ** 2 for f in best]
    band = (er * g[0] + ec * g[1]) / max(float(np.mean(np.diff(seg) ** 2)), 1e-9)
    amps = []
    for part in range(3):
        lo, hi = part * len(seg) // 3, (part + 1) * len(seg) // 3
        cq = np.linalg.lstsq(basis[lo:hi], seg[lo:hi], rcond=None)[0]
        amps.append((math.hypot(cq[0], cq[1]), math.hypot(cq[2], cq[3])))
    am = np.array(amps)
    stab = float((am.min(0) / np.maximum(am.max(0), 1e-9)).min())
    tiny = 1e-12
    return {"dfr": best[0] / fr - 1, "dfc": best[1] / fc - 1,
            "lvl_r": 10 * math.log10(max(er, tiny) / DBM0_REF_POWER),
            "lvl_c": 10 * math.log10(max(ec, tiny) / DBM0_REF_POWER),
            "twist": 10 * math.log10(max(er, tiny) / max(ec, tiny)),
            "band": band, "stab": stab, "core": float(c1 - c0 + 1),
            "start": float(a), "end": float(b)}


@functools.cache
def _window_probes() -> npt.NDArray[np.complex128]:
    """``(160, 8)``: the eight frequencies' DFT probes over one window."""
    m = np.arange(SUB * WIN_SUBS)
    out: npt.NDArray[np.complex128] = np.exp(-2j * np.pi * np.outer(m, FREQS) / SAMPLE_RATE)
    return out


def span_verdict(feats: dict[str, float] | None, config: DtmfConfig) -> bool:
    """Whether :func:`span_features` show a digit (the ``span_*`` limits)."""
    c = config
    return (feats is not None and feats["core"] >= WIN_SUBS
            and abs(feats["dfr"]) <= c.span_freq_tolerance
            and abs(feats["dfc"]) <= c.span_freq_tolerance
            and -c.span_max_forward_db <= feats["twist"] <= c.span_max_twist_db
            and min(feats["lvl_r"], feats["lvl_c"]) >= c.min_level_dbm0
            and feats["stab"] >= c.span_stability
            and feats["band"] >= c.span_band_purity)


def _basis() -> F32:
    """Cosine and sine of the eight frequencies over one sub-block, ``(40, 16)``."""
    m = np.arange(SUB)
    w = 2 * np.pi * FREQS[None, :] * m[:, None] / SAMPLE_RATE
    out: F32 = np.concatenate([np.cos(w), np.sin(w)], axis=1).astype(np.float32)
    return out


class DtmfDetectorBank:
    """DTMF detectors for ``n_channels`` calls fed in lock-step, one numpy pass per call.

    ``process(frames, now=...)`` takes ``(n_channels, n)`` int16 with ``n`` a multiple of
    40 (160 for 20 ms frames); ``now`` is the time at the end of the frames.
    """

    def __init__(self, n_channels: int, sample_rate: int = SAMPLE_RATE,
                 config: DtmfConfig = DtmfConfig()) -> None:
        if sample_rate != SAMPLE_RATE:
            raise MediaError(f"DTMF detector runs at 8000 Hz, got {sample_rate}")
        self.n_channels = n_channels
        self.config = config
        self._basis = _basis()
        self._hist = np.zeros((n_channels, HIST_SUBS, 8), dtype=np.complex64)
        self._ehist = np.zeros((n_channels, HIST_SUBS), dtype=np.float32)
        self._ring = np.zeros((n_channels, RING), dtype=np.int16)
        """The last ``RING`` samples of each channel, at ``sample % RING``: read only for the
        windows that need the band purity and the runs measured over their span."""
        self._cands: dict[int, tuple[int, int]] = {}
        """Channels whose run of candidate windows holds a window that passed the tests, or
        all but twist or purity: the pair, and the next window to look at (bank windows)."""
        self._pre: npt.NDArray[np.bool_] | None = None
        """The candidate windows of the last frames judged (None: none)."""
        self._samples = 0
        self._born = np.zeros(n_channels, dtype=np.int64)
        """Per channel: the sample count when it started (its phase and time reference)."""
        self._tracks = [_Track() for _ in range(n_channels)]
        self._tone_active = np.zeros(n_channels, dtype=bool)
        self._nonidle = np.zeros(n_channels, dtype=bool)
        c = config
        self._purity = np.float32(c.purity)
        self._twist_hi = np.float32(10 ** (c.max_twist_db / 10))
        self._twist_lo = np.float32(10 ** (-c.max_reverse_twist_db / 10))
        self._soft_hi = np.float32(10 ** ((c.max_twist_db + c.soft_twist_db) / 10))
        self._tone_hi = 10 ** (c.tone_twist_db / 10)
        self._near_hi = 10 ** (c.near_twist_db / 10)
        self._tone_lo = float(self._twist_lo)
        self._tone_windows = c.tone_windows
        self._steady_purity = c.steady_purity
        self._steady_windows = c.steady_windows
        self._min_pow = np.float32(DBM0_REF_POWER * 10 ** (c.min_level_dbm0 / 10))
        self._group_rej = np.float32(10 ** (-c.group_rejection_db / 10))
        self._fill = np.float32(c.fill_ratio)
        self._min_tone = c.min_tone_ms * SAMPLE_RATE / 1000
        self._span_windows = c.span_windows
        self._span_max = c.span_max_windows
        self._min_wins = c.min_windows
        self._band_purity = c.band_purity
        self._pending_gap = c.pending_gap
        self._merge_gap = c.merge_gap_ms * SAMPLE_RATE / 1000
        self._hold = 10 ** (-c.hold_drop_db / 10)
        # The candidate test's thresholds, as _judge evaluates them (float32 products).
        self._pre_purity = 0.3 * self._purity
        self._pre_pow = 0.25 * self._min_pow
        self._rot: dict[tuple[int, int], npt.NDArray[np.complex64]] = {}
        """Phase references by (samples since the channel's start modulo the rate,
        sub-blocks): f * t is an integer, so they repeat every second of samples."""

    @property
    def tone_active(self) -> npt.NDArray[np.bool_]:
        """Per channel: a DTMF tone was present (or a digit was in progress) in the last frames."""
        return self._tone_active

    @property
    def samples_seen(self) -> int:
        """Samples per channel processed so far."""
        return self._samples

    def skip(self, samples: int) -> None:
        """Advance the sample count (the phase reference of the analysis) by ``samples``
        without analysing them.

        For a caller that knows a pass would change nothing else: every channel's history
        all zero, no digit in progress, and ``samples`` of digital silence on every channel
        (the mixer's skip of silent banks).
        """
        if samples >= RING:
            self._ring[:] = 0
        elif samples > 0:
            self._ring[:, (self._samples + np.arange(samples)) % RING] = 0
        self._samples += samples

    def reset_channel(self, channel: int) -> None:
        """Forget a channel's history (a new call takes the slot): from now on the channel
        reports what a new detector fed the same frames would."""
        self._hist[channel] = 0
        self._ehist[channel] = 0
        self._ring[channel] = 0
        self._cands.pop(channel, None)
        self._born[channel] = self._samples
        self._tracks[channel] = _Track()
        self._tone_active[channel] = False
        self._nonidle[channel] = False

    def grow(self, n_channels: int) -> None:
        """Take ``(n_channels, 40*k)`` frames from now on.

        The channels added start as after :meth:`reset_channel` (a new call); the others
        keep all their state, so their digits are those an ungrown bank would report.  The
        cost is a copy of the per-channel history (about 300 bytes per channel).  Raises
        :class:`MediaError` if ``n_channels`` is fewer than the bank has; the same number
        changes nothing.
        """
        extra = check_grow(self.n_channels, n_channels)
        if not extra:
            return
        n = n_channels
        self._hist = grow_channels(self._hist, n, 0)
        self._ehist = grow_channels(self._ehist, n, 0)
        self._ring = grow_channels(self._ring, n, 0)
        self._born = grow_channels(self._born, n, self._samples)
        self._tracks.extend(_Track() for _ in range(extra))
        self._tone_active = grow_channels(self._tone_active, n, False)
        self._nonidle = grow_channels(self._nonidle, n, False)
        self.n_channels = n_channels

    def keep_channels(self, keep: Channels, n_channels: int) -> None:
        """Resize to ``n_channels``, channel ``keep[i]`` becoming channel ``i`` with all its
        state (its digits are those the bank would have reported unchanged); the channels
        after them start as after :meth:`reset_channel`.  A bank shrinks this way when calls
        have gone (the mixer compacts its channels)."""
        idx = check_keep(self.n_channels, keep, n_channels)
        n = n_channels
        self._hist = keep_channels(self._hist, idx, n, 0)
        self._ehist = keep_channels(self._ehist, idx, n, 0)
        self._ring = keep_channels(self._ring, idx, n, 0)
        self._cands = {i: self._cands[int(old)] for i, old in enumerate(idx)
                       if int(old) in self._cands}
        self._born = keep_channels(self._born, idx, n, self._samples)
        self._tracks = keep_items(self._tracks, idx, n, _Track)
        self._tone_active = keep_channels(self._tone_active, idx, n, False)
        self._nonidle = keep_channels(self._nonidle, idx, n, False)
        self.n_channels = n

    # ------------------------------------------------------------------ analysis

    def _subblocks(self, x: F32) -> tuple[npt.NDArray[np.complex64], F32]:
        n, length = x.shape
        k = length // SUB
        xs = x.reshape(n * k, SUB)
        # In row blocks: OpenBLAS would spread one big product over threads, which costs
        # more than it saves for a product this thin (and fights the other calls' work).
        re_im = np.empty((n * k, 16), dtype=np.float32)
        for i in range(0, n * k, _MATMUL_ROWS):
            np.matmul(xs[i:i + _MATMUL_ROWS], self._basis, out=re_im[i:i + _MATMUL_ROWS])
        re_im = re_im.reshape(n, k, 16)
        local = (re_im[..., :8] - 1j * re_im[..., 8:]).astype(np.complex64, copy=False)
        energy = np.einsum("ij,ij->i", xs, xs).reshape(n, k)
        # Refer each sub-block's phase to the sample index counted from the channel's
        # start, so a channel's analysis does not depend on when it joined the bank.
        since = (self._samples - self._born) % SAMPLE_RATE
        if n == 1 or not (since != since[0]).any():
            local *= self._rotation(int(since[0]), k)[None]
        else:
            firsts, which = np.unique(since, return_inverse=True)
            rots = np.stack([self._rotation(f, k) for f in firsts.tolist()])
            local *= rots[which]
        return local, energy

    def _rotation(self, since: int, k: int) -> npt.NDArray[np.complex64]:
        """``(k, 8)``: the phase of each sub-block starting ``since`` samples (modulo the
        rate) after the channel's start."""
        key = (since, k)
        rot = self._rot.get(key)
        if rot is None:
            # f * t is integer, so reduce it modulo the sample rate exactly before taking
            # the angle.
            starts = since + SUB * np.arange(k, dtype=np.int64)
            turns = (FREQS[None, :] * starts[:, None]) % SAMPLE_RATE
            rot = np.exp(-2j * np.pi * turns / SAMPLE_RATE).astype(np.complex64)
            if len(self._rot) < 4096:
                self._rot[key] = rot
        return rot

    def _judge(self, cat: npt.NDArray[np.complex64], ecat: F32, frames: Int16Array,
               k: int) -> tuple[
            npt.NDArray[np.bool_], npt.NDArray[np.intp], F32, npt.NDArray[np.bool_],
            npt.NDArray[np.bool_], npt.NDArray[np.float64] | None,
            npt.NDArray[np.bool_] | None]:
        """Judge the ``k`` windows ending at the new sub-blocks.

        Returns (valid, digit index, tail fill ratio, clean, soft), each ``(n, k)``, and
        ``tone`` ``(n, k, 2)``: ``clean`` marks the valid windows enough alone
        (``min_windows``), ``soft`` the windows that fail only the reverse twist limit, by
        less than ``soft_twist_db``; ``tone`` holds the row and column tone powers (solved
        jointly, :func:`_joint_powers`) of the windows that pass every test but twist,
        zero elsewhere; ``relaxed`` ``(n, k)`` the windows that pass every test with the
        band purity lowered to ``steady_purity`` (and not the usual one): a run of
        ``steady_windows`` of them makes a digit (both None when no window gets that far,
        the usual case).
        A cheap test on the raw window powers picks the candidate windows; only those get
        the frequency estimates and the full checks (speech and silence rarely pass it).
        """
        n = cat.shape[0]
        first = HIST_SUBS - WIN_SUBS + 1
        xw = cat[:, first:first + k]
        ew = ecat[:, first:first + k]
        for j in range(1, WIN_SUBS):
            xw = xw + cat[:, first + j:first + j + k]
            ew = ew + ecat[:, first + j:first + j + k]
        pw = np.square(xw.real)  # (n, k, 8), float32
        pw += np.square(xw.imag)
        # The strongest tone of each group (row, column): argmax and max over an axis of 4
        # cost a reduction call per window; four compares over whole arrays are faster.
        # Strict '>' keeps the first of equal powers, as argmax does.
        groups = pw.reshape(n, k, 2, 4)
        best = groups[..., 0].copy()  # (n, k, 2)
        which = np.zeros(best.shape, dtype=np.intp)
        for j in range(1, 4):
            tone = groups[..., j]
            np.copyto(which, j, where=tone > best)
            np.maximum(best, tone, out=best)
        r = which[..., 0]
        c = which[..., 1]
        n_win = SUB * WIN_SUBS
        scale = np.float32(2.0 / (n_win * n_win))
        raw_r = best[..., 0] * scale  # the power at r, c
        raw_c = best[..., 1] * scale
        mean_pow = ew / np.float32(n_win)
        # Loose on purpose: a tone 1.5 % off loses up to 3.7 dB in the raw bin.
        pre = raw_r >= self._pre_pow
        pre &= raw_c >= self._pre_pow
        pre &= raw_r + raw_c >= self._pre_purity * mean_pow
        self._pre = pre
        valid = np.zeros((n, k), dtype=bool)
        digit = r * 4 + c
        tail_full = np.ones((n, k), dtype=np.float32)
        clean = np.zeros((n, k), dtype=bool)
        soft = np.zeros((n, k), dtype=bool)
        ch, kk = np.nonzero(pre)
        if ch.size == 0:
            return valid, digit, tail_full, clean, soft, None, None
        m = ch.size
        sel = np.empty((m, 2), dtype=np.intp)
        sel[:, 0] = r[ch, kk]
        sel[:, 1] = c[ch, kk] + 4
        subs = kk[:, None] + first + _WIN_OFFSETS  # (m, 4)
        t = cat[ch[:, None, None], subs[:, None, :], sel[:, :, None]]  # (m, 2, 4)
        # Frequency offset: coarse from sub-block to sub-block (+-100 Hz), fine from half
        # to half (+-50 Hz), the fine one unwrapped onto the coarse one.
        coarse = np.angle((t[..., 1:] * np.conj(t[..., :-1])).sum(axis=-1)) * (
            SAMPLE_RATE / (2 * np.pi * SUB))
        h1 = t[..., 0] + t[..., 1]
        h2 = t[..., 2] + t[..., 3]
        fine = np.angle(h2 * np.conj(h1)) * (SAMPLE_RATE / (2 * np.pi * 2 * SUB))
        df = fine + 100.0 * np.round((coarse - fine) / 100.0)
        # Coherent power at the estimated frequency.
        steps = np.exp(-2j * np.pi * df[..., None] * _STEP_SAMPLES / SAMPLE_RATE)
        xr = (t * steps).sum(axis=-1)
        a = np.pi * df / SAMPLE_RATE
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = np.where(np.abs(a) < 1e-9, 1.0, np.sin(a * SUB) / (SUB * np.sin(a))) ** 2
            # Half amplitudes of zero (digital silence in a half) give NaN ratios, taken
            # as 0: fmax(NaN, 0) is 0 and the ratios are never negative.
            a1 = np.abs(h1)
            a2 = np.abs(h2)
            # How full the second half is (the tone may have stopped inside it); ratios
            # near 1 are noise, not an early end.
            ratio = a2 / a1
            tail = np.where(ratio >= 0.9, 1.0, np.fmax(ratio, 0.0)).mean(-1)
            fill = np.fmax((np.minimum(a1, a2) / np.maximum(a1, a2)).min(-1), 0.0)
        tone_pow = 2.0 * (xr.real ** 2 + xr.imag ** 2) / (n_win * n_win) / loss
        pr, pc = tone_pow[:, 0], tone_pow[:, 1]
        fnom = FREQS[sel].astype(np.float64)
        pwc = pw[ch, kk]  # (m, 8)
        rows = np.arange(m)
        others_r = (pwc[:, :4].sum(-1) - pwc[rows, sel[:, 0]]) * scale
        others_c = (pwc[:, 4:].sum(-1) - pwc[rows, sel[:, 1]]) * scale
        rest = (
            (pr >= self._min_pow) & (pc >= self._min_pow)
            & (np.abs(df) <= self.config.freq_tolerance * fnom).all(-1)
            & (others_r <= self._group_rej * pr)
            & (others_c <= self._group_rej * pc)
            & (fill >= self._fill)
            # A voice or an animal cry at ~830 Hz carries its own octave near 1660 Hz; no
            # DTMF pair is an octave, so a column tone at twice the row tone is a harmonic.
            & (np.abs((fnom[:, 1] + df[:, 1]) - 2 * (fnom[:, 0] + df[:, 0]))
               > self.config.harmonic_hz)
        )
        tail_full[ch, kk] = tail
        if not rest.any():  # the usual case with speech: nothing more to judge
            return valid, digit, tail_full, clean, soft, None, None
        tone = np.zeros((n, k, 2), dtype=np.float64)
        relaxed = np.zeros((n, k), dtype=bool)
        # The twist from the two tones solved jointly (each one's leakage into the other's
        # bin removed), for the windows that pass the tests above.
        idx = np.flatnonzero(rest)
        n0 = (self._samples - self._born[ch[idx]]) + SUB * (kk[idx] - (WIN_SUBS - 1))
        jr, jc = _joint_powers(xr[idx], FREQS[sel[idx]], df[idx], n0)
        ch, kk, pr, pc, df, fnom = ch[idx], kk[idx], pr[idx], pc[idx], df[idx], fnom[idx]
        fill = fill[idx]
        pure = pr + pc >= self._purity * mean_pow[ch, kk]
        # Purity in the band: speech below 300 Hz (voicing, a first formant) under a weak
        # digit takes a share of the window's energy the tones cannot have; measured on
        # the first difference (a high-pass, tones weighted by its gain) it does not.  Only
        # for the windows that pass every other test (few: the samples are read for them).
        need = np.flatnonzero(~pure)
        steady = np.zeros(pure.shape, dtype=bool)
        if need.size:
            g = np.square(2 * np.sin(np.pi * (fnom[need] + df[need]) / SAMPLE_RATE))
            band = pr[need] * g[:, 0] + pc[need] * g[:, 1]
            diff = self._diff_power(frames, ch[need], kk[need])
            pure[need] = band >= self._band_purity * diff
            steady[need] = ~pure[need] & (band >= self._steady_purity * diff)
        # The tone's windows (every test passed but twist, and purity for the steady
        # ones): their powers make the twist of the digit as a whole (``tone_twist_db``).
        both = pure | steady
        tone[ch[both], kk[both], 0] = jr[both]
        tone[ch[both], kk[both], 1] = jc[both]
        relaxed[ch[steady], kk[steady]] = ((jr[steady] >= self._twist_lo * jc[steady])
                                           & (jr[steady] <= self._twist_hi * jc[steady]))
        rest = pure & (jr >= self._twist_lo * jc) & (jr <= self._soft_hi * jc)
        twist_ok = jr <= self._twist_hi * jc
        ok = rest & twist_ok
        # A window that fails only the reverse twist test, by less than the margin, may
        # confirm a pending digit (never start one): Q.24's 8 dB pair measures 7.5-9 dB.
        soft[ch, kk] = rest & ~twist_ok
        valid[ch, kk] = ok
        clean[ch, kk] = (ok & (fill >= self.config.clean_fill)
                         & (np.abs(df) <= self.config.clean_freq_tolerance * fnom).all(-1))
        return valid, digit, tail_full, clean, soft, tone, relaxed

    def _diff_power(self, frames: Int16Array, ch: npt.NDArray[np.intp],
                    kk: npt.NDArray[np.intp]) -> npt.NDArray[np.float64]:
        """Mean power of the first difference over the windows ``(ch[i], kk[i])`` (window
        ``kk`` ends at new sub-block ``kk``), from the kept and the new samples."""
        chans, which = np.unique(ch, return_inverse=True)
        back = (self._samples - RAW_HIST + np.arange(RAW_HIST)) % RING
        raw = np.concatenate([self._ring[chans[:, None], back[None, :]], frames[chans]], axis=1)
        # Window kk covers raw[SUB * kk : SUB * kk + 160]; computed window by window, so
        # the figure does not depend on how the samples were cut into calls.
        n_win = SUB * WIN_SUBS
        w = raw[which[:, None], SUB * kk[:, None] + _WIN_SAMPLES].astype(np.float64)
        d = w[:, 1:] - w[:, :-1]
        total = np.einsum("ij,ij->i", d, d)
        out: npt.NDArray[np.float64] = total / (n_win - 1)
        return out

    @staticmethod
    def _hold_arrays(cat: npt.NDArray[np.complex64], k: int) -> tuple[F32, F32, F32]:
        """For one channel's ``k`` new windows: raw powers at the eight tones ``(k, 8)``
        and the amplitudes of the windows' halves ``(k, 8)`` each (for the hold test)."""
        first = HIST_SUBS - WIN_SUBS + 1
        h1 = cat[first:first + k] + cat[first + 1:first + 1 + k]
        h2 = cat[first + 2:first + 2 + k] + cat[first + 3:first + 3 + k]
        xw = h1 + h2
        pw: F32 = np.square(xw.real)
        pw += np.square(xw.imag)
        a1: F32 = np.abs(h1)
        a2: F32 = np.abs(h2)
        return pw, a1, a2

    def _onset(self, cat: npt.NDArray[np.complex64], end_sub: int, digit: int,
               end_sample: float) -> float:
        """Locate the tone's onset (absolute sample) from how full the windows' first halves are.

        ``end_sub`` indexes ``cat`` at the last sub-block of the first valid window.
        """
        cols = [digit // 4, 4 + digit % 4]
        start = end_sample - SUB * WIN_SUBS
        # The windows ending 0, 1, ... sub-blocks before end_sub, at most as many as
        # the history holds: their first-half fill ratios in one pass, latest window last.
        backs = min(HIST_SUBS - WIN_SUBS + 1, end_sub - WIN_SUBS + 2)
        if backs <= 0:
            return start - SUB * (HIST_SUBS - WIN_SUBS + 1)
        t = cat[end_sub - backs - WIN_SUBS + 2: end_sub + 1, cols]  # (backs + 3, 2)
        h1 = np.abs(t[:-3] + t[1:-2])
        h2 = np.abs(t[2:-1] + t[3:])
        ratios = np.minimum(1.0, h1 / np.maximum(h2, 1e-9)).mean(axis=-1).tolist()
        # The onset lies in the first half of two consecutive windows; the one whose first
        # half is between a fifth and four fifths full gives the steadiest estimate.
        fallback: float | None = None
        estimates: list[float] = []
        for back in range(backs):
            ratio = ratios[backs - 1 - back]
            est = start - SUB * back + (1.0 - ratio) * 2 * SUB
            if 0.2 <= ratio <= 0.8:
                estimates.append(est)
            if fallback is None and ratio < 0.93:
                fallback = est
            if ratio < 0.2:
                break
        if estimates:
            return float(np.mean(estimates))
        if fallback is not None:
            return fallback
        return start - SUB * (HIST_SUBS - WIN_SUBS + 1)

    # ------------------------------------------------------------------ streaming

    def process(self, frames: Int16Array, *, now: float) -> list[tuple[int, InbandDigit]]:
        """Feed one block per channel; return ``(channel, event)`` pairs in time order."""
        frames = np.asarray(frames)
        if frames.ndim != 2 or frames.shape[0] != self.n_channels or frames.shape[1] % SUB:
            raise MediaError(
                f"expected ({self.n_channels}, 40*k) int16 frames, got {frames.shape}")
        k = frames.shape[1] // SUB
        if k == 0:
            return []
        s_new, e_new = self._subblocks(frames.astype(np.float32))
        cat = np.concatenate([self._hist, s_new], axis=1)
        ecat = np.concatenate([self._ehist, e_new], axis=1)
        valid, digit, tail, clean, soft, tone, relaxed = self._judge(cat, ecat, frames, k)
        base = self._samples
        events: list[tuple[int, InbandDigit]] = []
        busy: npt.NDArray[np.bool_] = np.asarray(valid.any(axis=1))
        self._tone_active = busy.copy()
        if tone is None or relaxed is None:
            active = np.flatnonzero(busy | self._nonidle)
            tone = np.zeros((1, k, 2))
            relaxed = np.zeros((1, k), dtype=bool)
            one = True
        else:
            active = np.flatnonzero(busy | self._nonidle | (tone[..., 1] > 0).any(axis=1))
            one = False
        end_total = base + k * SUB
        born = self._born
        for ch in active.tolist():
            # A channel counts samples from its own start (onset_sample, timestamps).
            first = int(born[ch])
            self._run_track(ch, cat[ch], valid[ch], digit[ch], tail[ch], clean[ch], soft[ch],
                            tone[0 if one else ch], relaxed[0 if one else ch], base - first, k,
                            now, end_total - first, events)
        if (tone is not None or self._cands) and self._span_runs(
                frames, digit, None if tone is None else tone[..., 1] > 0, k, base, now, events):
            events.sort(key=lambda e: e[1].onset)
        self._hist = cat[:, -HIST_SUBS:].copy()
        self._ehist = ecat[:, -HIST_SUBS:].copy()
        self._write_ring(frames, base)
        self._samples = end_total
        return events

    def _run_track(self, ch: int, cat: npt.NDArray[np.complex64], valid: npt.NDArray[np.bool_],
                   digit: npt.NDArray[np.intp], tail: F32, clean: npt.NDArray[np.bool_],
                   soft: npt.NDArray[np.bool_], tone: npt.NDArray[np.float64],
                   relaxed: npt.NDArray[np.bool_], base: int, k: int, now: float, end_total: int,
                   events: list[tuple[int, InbandDigit]]) -> None:
        tr = self._tracks[ch]
        rate = SAMPLE_RATE

        def stamp(sample: float) -> float:
            return now - (end_total - sample) / rate

        def emit(kind: Literal["start", "end"], end: float) -> None:
            if kind == "start":
                # Kept while a run measured over its span in this call may reach back to it.
                tr.done = [e for e in tr.done if e[1] >= base - RING]
                tr.done.append([tr.onset, 1e18])
            elif tr.done and tr.done[-1][0] == tr.onset:
                tr.done[-1][1] = end
            dur = max(0, round((end - tr.onset) * 1000 / rate))
            events.append((ch, InbandDigit(KEYS[tr.digit], kind, stamp(tr.onset), dur,
                                           round(tr.onset))))

        def tone_twist() -> tuple[float, float] | None:
            """The pending digit's row and column powers summed over its windows (None:
            no window of it measured)."""
            if tr.acc_d != tr.digit:
                return None
            return tr.acc_r, tr.acc_c

        def report(i: int, tail_end: float) -> None:
            """The pending digit has its windows: report it now, or once its tone ends
            if its twist is near the limit (``near_twist_db``)."""
            if tail_end - tr.onset < self._min_tone or tr.wins < self._min_wins:
                return
            if _overlaps(tr.done, tr.onset + SUB, tail_end):
                # Its tone was reported already (by its span, ``span_windows``).
                return
            tw = tone_twist()
            if tw is None or not self._tone_lo * tw[1] <= tw[0] <= self._tone_hi * tw[1]:
                tr.ready = False
                return
            if tw[0] > self._near_hi * tw[1] and tr.acc_n < self._tone_windows:
                tr.ready = True
                return
            tr.state = _ON
            tr.ready = False
            emit("start", tail_end)

        def drop() -> None:
            """The pending digit ends: reported if it was waiting and its tone as a whole
            still passes the twist limit."""
            tw = tone_twist()
            if (tr.state == _PENDING and tr.ready and tw is not None
                    and not _overlaps(tr.done, tr.onset + SUB, tr.last_end)
                    and self._tone_lo * tw[1] <= tw[0] <= self._tone_hi * tw[1]):
                emit("start", tr.last_end)
                emit("end", tr.last_end)
            tr.ready = False

        hold: tuple[F32, F32, F32] | None = None
        i = 0
        tonal = tone[:, 1] > 0
        cand = np.flatnonzero(valid | tonal | relaxed)
        acc_gap = SUB * (self._pending_gap + 1)
        while i < k:
            if tr.state == _IDLE:
                nxt = cand[cand >= i]
                if nxt.size == 0:
                    break
                i = int(nxt[0])
            end_sample = base + SUB * (i + 1)
            ok = bool(valid[i])
            d = int(digit[i])
            tail_end = end_sample - (1.0 - float(tail[i])) * 2 * SUB
            steady = False
            if relaxed[i] or ok:
                # A run of windows of one pair, steady for ``steady_windows``: a digit.
                if d != tr.run_d or end_sample - tr.run_end > SUB:
                    tr.run_d, tr.run_n = d, 0
                tr.run_n += 1
                tr.run_end = end_sample
                if (not ok and tr.run_n >= self._steady_windows
                        and tr.state in (_IDLE, _PENDING)):
                    ok = steady = True
            if tonal[i]:
                # The run of windows of one tone (twist aside), for its twist as a whole.
                if d != tr.acc_d or end_sample - tr.acc_end > acc_gap:
                    tr.acc_d, tr.acc_r, tr.acc_c, tr.acc_n = d, 0.0, 0.0, 0
                tr.acc_r += float(tone[i, 0])
                tr.acc_c += float(tone[i, 1])
                tr.acc_n += 1
                tr.acc_end = end_sample
            if tr.state == _PENDING and soft[i] and d == tr.digit:
                # Confirms the pending digit (counts, never starts one).
                tr.wins += 1
                tr.gap = 0
                tr.last_end = tail_end
                report(i, tail_end)
                i += 1
                continue
            if tr.state == _PENDING and tonal[i] and not ok and d == tr.digit:
                # A window of the tone beyond the soft margin: no confirmation, but no
                # interruption either (it counts in the tone's twist).
                tr.gap = 0
                i += 1
                continue
            if tr.state == _PENDING and not ok and tr.gap < self._pending_gap:
                # A failed window between two accepted ones of a tone not yet reported
                # (Q.24's interruption tolerance, before the report).
                tr.gap += 1
                i += 1
                continue
            if tr.state == _IDLE or (tr.state == _PENDING and (not ok or d != tr.digit)):
                drop()
                tr.state = _IDLE
                if ok:
                    tr.state, tr.digit = _PENDING, d
                    tr.ref_r = tr.ref_c = 0.0
                    tr.wins = tr.gap = 0
                    tr.onset = self._onset(cat, HIST_SUBS + i, d, end_sample)
                    if steady:  # the run's first window is the tone's (its onset inside)
                        tr.onset = min(tr.onset, end_sample - SUB * (tr.run_n - 1 + WIN_SUBS)
                                       + SUB * WIN_SUBS // 2)
                    tr.last_end = tail_end
            elif tr.state in (_ON, _ENDING):
                held = False
                if not (ok and d == tr.digit):
                    # Q.24 interruption tolerance: the digit's own tones still there?
                    if hold is None:
                        hold = self._hold_arrays(cat, k)
                    held, tail_end = self._held(tr, hold, i, end_sample)
                if held or (ok and d == tr.digit):
                    if tr.state == _ENDING:
                        gap = self._onset(cat, HIST_SUBS + i, tr.digit, end_sample) - tr.last_end
                        if gap < self._merge_gap:
                            tr.state = _ON
                        elif not held:
                            emit("end", tr.last_end)
                            tr.state = _PENDING
                            tr.ref_r = tr.ref_c = 0.0
                            tr.wins = tr.gap = 0
                            tr.onset = self._onset(cat, HIST_SUBS + i, d, end_sample)
                    if tr.state != _ENDING:
                        tr.last_end = tail_end
                    elif end_sample - tr.last_end >= self._merge_gap + SUB * WIN_SUBS:
                        # A new press must pass the acceptance tests: only end the old one.
                        emit("end", tr.last_end)
                        tr.state = _IDLE
                elif ok:
                    emit("end", tr.last_end)
                    tr.state, tr.digit = _PENDING, d
                    tr.ref_r = tr.ref_c = 0.0
                    tr.wins = tr.gap = 0
                    tr.onset = self._onset(cat, HIST_SUBS + i, d, end_sample)
                    tr.last_end = tail_end
                else:
                    tr.state = _ENDING
                    if end_sample - tr.last_end >= self._merge_gap + SUB * WIN_SUBS:
                        emit("end", tr.last_end)
                        tr.state = _IDLE
            if tr.state == _PENDING and ok and d == tr.digit:
                tr.last_end = tail_end
                # A clean window is enough alone; one with speech or music in it, or a
                # tone at the edge of the frequency tolerance, needs another beside it.
                tr.wins += self._min_wins if clean[i] or steady else 1
                tr.gap = 0
                report(i, tail_end)
            if ok and d == tr.digit and tr.state != _IDLE:
                # The hold test's reference: the digit's strongest windows.
                if hold is None:
                    hold = self._hold_arrays(cat, k)
                pw = hold[0][i]
                tr.ref_r = max(tr.ref_r, float(pw[d // 4]))
                tr.ref_c = max(tr.ref_c, float(pw[4 + d % 4]))
            i += 1
        self._nonidle[ch] = tr.state != _IDLE
        if tr.state != _IDLE:
            self._tone_active[ch] = True


    def _write_ring(self, frames: Int16Array, base: int) -> None:
        length = frames.shape[1]
        if length >= RING:
            start = base + length - RING
            pos = start % RING
            tail = frames[:, -RING:]
            self._ring[:, pos:] = tail[:, :RING - pos]
            self._ring[:, :pos] = tail[:, RING - pos:]
            return
        pos = base % RING
        first = min(length, RING - pos)
        self._ring[:, pos:pos + first] = frames[:, :first]
        if first < length:
            self._ring[:, :length - first] = frames[:, first:]

    def _samples_of(self, ch: int, frames: Int16Array, base: int, lo: int, hi: int
                    ) -> Int16Array:
        """Channel ``ch``'s samples ``lo..hi`` (bank sample counts), from the ring (those
        before this frame, ``base`` on) and the frame."""
        parts = []
        if lo < base:
            idx = np.arange(lo, min(hi, base)) % RING
            parts.append(self._ring[ch, idx])
        if hi > base:
            parts.append(frames[ch, max(lo, base) - base:hi - base])
        return np.concatenate(parts)

    def _span_runs(self, frames: Int16Array, digit: npt.NDArray[np.intp],
                   near: npt.NDArray[np.bool_] | None, k: int, base: int, now: float,
                   events: list[tuple[int, InbandDigit]]) -> bool:
        """Follow the runs of candidate windows of one pair that hold a window ``near`` a
        digit (every test passed, or all but twist or purity); when such a run ends, measure
        it (:meth:`_measure_run`).  Returns whether a digit was added to ``events``."""
        pre = self._pre
        self._pre = None
        chans = set(self._cands)
        near_at: dict[int, npt.NDArray[np.intp]] = {}
        if near is not None:
            nc, nj = np.nonzero(near)
            for ch in np.unique(nc).tolist():
                near_at[ch] = nj[nc == ch]
            chans.update(near_at)
        w0 = base // SUB
        added = False
        for ch in sorted(chans):
            cand = self._cands.pop(ch, None)
            pos = 0 if cand is None else cand[1] - w0
            js = near_at.get(ch)
            while True:
                if cand is None:
                    if js is None:
                        break
                    nxt = js[js >= pos]
                    if nxt.size == 0:
                        break
                    j = int(nxt[0])
                    cand = (int(digit[ch, j]), w0 + j + 1)
                    pos = j + 1
                d = cand[0]
                if pre is None:
                    stop = pos if pos < k else -1
                else:
                    bad = np.flatnonzero(~(pre[ch, pos:] & (digit[ch, pos:] == d)))
                    stop = pos + int(bad[0]) if bad.size else -1
                if stop < 0:
                    self._cands[ch] = (d, w0 + k)
                    break
                added |= self._measure_run(ch, d, base + SUB * stop, frames, base, now, events)
                cand = None
                pos = stop
        return added

    def _measure_run(self, ch: int, d: int, end: int, frames: Int16Array, base: int,
                     now: float, events: list[tuple[int, InbandDigit]]) -> bool:
        """The run of candidate windows of pair ``d`` whose last window ends at bank sample
        ``end``: its length (the windows passing the candidate test, counted back from its
        end on the samples), then, if it is ``span_windows`` to ``span_max_windows`` long
        and no digit was reported over it, :func:`span_features`; a digit if
        :func:`span_verdict` says so."""
        c = self.config
        n_win = SUB * WIN_SUBS
        first = int(self._born[ch])
        lo = max(end - n_win - SUB * c.span_max_windows, base - RING, first)
        if end - lo < n_win + SUB * (c.span_windows - 1):
            return False
        x = self._samples_of(ch, frames, base, lo, end).astype(np.float64)
        # The windows ending at end, end - 40, ...: the candidate test of _judge.
        n_back = (len(x) - n_win) // SUB + 1
        starts = len(x) - n_win - SUB * np.arange(n_back)
        w = x[starts[:, None] + np.arange(n_win)[None, :]]
        pw = np.abs(w @ _window_probes()) ** 2 * (2.0 / (n_win * n_win))
        mean = np.einsum("ij,ij->i", w, w) / n_win
        r, col = d // 4, 4 + d % 4
        ok = ((pw[:, :4].argmax(1) == r) & (pw[:, 4:].argmax(1) == col - 4)
              & (pw[:, r] >= self._pre_pow) & (pw[:, col] >= self._pre_pow)
              & (pw[:, r] + pw[:, col] >= self._pre_purity * mean))
        bad = np.flatnonzero(~ok)
        length = int(bad[0]) if bad.size else n_back
        if not c.span_windows <= length <= c.span_max_windows or (
                not bad.size and lo > first):
            return False  # too short, or longer than the samples kept
        tr = self._tracks[ch]
        run_lo = end - n_win - SUB * (length - 1)
        if _overlaps(tr.done, run_lo - first, end - first):
            return False
        if tr.state == _PENDING and tr.onset < end - first:
            return False
        feats = span_features(x[len(x) - (end - run_lo):], d)
        if not span_verdict(feats, c):
            return False
        assert feats is not None
        onset = run_lo - first + feats["start"]
        off = run_lo - first + feats["end"]
        tr.done = [e for e in tr.done if e[1] >= base - first - RING]
        tr.done.append([onset, off])
        dur = round((off - onset) * 1000 / SAMPLE_RATE)
        end_total = base + frames.shape[1] - first
        at = now - (end_total - onset) / SAMPLE_RATE
        events.append((ch, InbandDigit(KEYS[d], "start", at, dur, round(onset))))
        events.append((ch, InbandDigit(KEYS[d], "end", at, dur, round(onset))))
        return True

    def _held(self, tr: _Track, hold: tuple[F32, F32, F32], i: int, end_sample: int
              ) -> tuple[bool, float]:
        """Whether window ``i`` continues ``tr``'s digit by the hold test, and where the
        tone ends in it (as the acceptance test's tail estimate)."""
        pw, a1, a2 = hold
        r, c = tr.digit // 4, 4 + tr.digit % 4
        p = pw[i]
        pr, pc = float(p[r]), float(p[c])
        if (pr < self._hold * tr.ref_r or pc < self._hold * tr.ref_c
                or pr < float(p[:4].max()) or pc < float(p[4:].max())):
            return False, 0.0
        tails = []
        for j in (r, c):
            ratio = float(a2[i, j]) / max(float(a1[i, j]), 1e-9)
            tails.append(1.0 if ratio >= 0.9 else ratio)
        tail = sum(tails) / 2
        return True, end_sample - (1.0 - tail) * 2 * SUB


class DtmfDetector:
    """DTMF detector for one call: feed int16 frames (any length), get digit events."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, config: DtmfConfig = DtmfConfig()) -> None:
        self._bank = DtmfDetectorBank(1, sample_rate, config)
        self._pending = np.zeros(0, dtype=np.int16)

    @property
    def tone_active(self) -> bool:
        """A DTMF tone was present (or a digit in progress) in the last frame."""
        return bool(self._bank.tone_active[0])

    def process(self, frame: Int16Array, *, now: float) -> list[InbandDigit]:
        """Feed samples ending at time ``now``; return the digit events they complete."""
        data = np.concatenate([self._pending, np.asarray(frame, dtype=np.int16).ravel()])
        usable = len(data) - len(data) % SUB
        self._pending = data[usable:]
        if usable == 0:
            return []
        late = len(self._pending) / SAMPLE_RATE
        out = self._bank.process(data[:usable].reshape(1, -1), now=now - late)
        return [ev for _, ev in out]

    def flush(self, *, now: float) -> list[InbandDigit]:
        """End of stream: close a digit still in progress (feeds 60 ms of silence)."""
        silence = np.zeros(SUB * math.ceil((self._bank.config.merge_gap_ms + 45) / 5),
                           dtype=np.int16)
        return self.process(silence, now=now + len(silence) / SAMPLE_RATE)


def detect_file_digits(pcm: npt.ArrayLike, rate: int = SAMPLE_RATE,
                       config: DtmfConfig = DtmfConfig()) -> list[dict[str, object]]:
    """Every digit in a recording: ``[{"digit", "start_ms", "duration_ms"}]`` in order."""
    x = np.asarray(pcm)
    if x.ndim > 1:
        x = x[:, 0]
    if rate != SAMPLE_RATE:
        from scipy.signal import resample_poly

        g = math.gcd(int(rate), SAMPLE_RATE)
        x = resample_poly(x.astype(np.float64), SAMPLE_RATE // g, int(rate) // g)
        x = np.clip(np.round(x), -32768, 32767)
    x = x.astype(np.int16)
    det = DtmfDetector(config=config)
    # One call over the whole file: the windows are judged in a single numpy pass.
    events = det.process(x, now=len(x) / SAMPLE_RATE)
    events += det.flush(now=len(x) / SAMPLE_RATE)
    return [{"digit": e.digit, "start_ms": round(e.onset_sample * 1000 / SAMPLE_RATE),
             "duration_ms": e.duration_ms} for e in events if e.kind == "end"]
