"""Voice activity detection and endpointing (sans-IO): webrtcvad behind tone gates.

``webrtcvad`` (installed from the ``webrtcvad-wheels`` distribution) decides per 20 ms
frame whether it sounds like speech.  It also says yes to DTMF, beeps, call-progress
tones and hold music, so a frame only counts as speech when:

* webrtcvad says speech and the frame is above ``min_level_dbm0``;
* the caller's DTMF detector has no tone on the channel (``tone_active``);
* the frame is not a clean single tone (:class:`~telephony.dsp.tones.BeepDetector`'s
  per-frame test);
* the last second is not music: sound without the dips between syllables that speech
  has, or a spectrum that holds still (:class:`~telephony.dsp.tones.TonalityDetector`).

An utterance is confirmed ``confirm_ms`` after it starts (``SpeechStarted.at`` carries
the true start), once the spectrum has had time to show it is not a steady tone.

:class:`EndpointerBank` does the spectral work and the state machine for every call in
numpy arrays, one pass per frame; only webrtcvad (past the gates) and the rare transitions
run per call.  The bank grows (``grow``) as calls arrive, without disturbing the calls it
has.  :class:`Endpointer`
is the one-call form.  The no-speech timeout is the caller's (it knows when the prompt
ended).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import webrtcvad

from telephony.dsp.bank import (
    Channels,
    check_grow,
    check_keep,
    grow_channels,
    keep_channels,
    keep_items,
)
from telephony.dsp.dtmf import DBM0_REF_POWER
from telephony.dsp.tones import NFFT, BeepDetector, TonalityDetector, frame_spectra
from telephony.errors import MediaError
from telephony.events import CallEvent, SpeechEnded, SpeechStarted

SAMPLE_RATE = 8000
FRAME = 160


@dataclass(frozen=True, slots=True)
class EndpointerConfig:
    """Endpointing parameters (milliseconds unless named otherwise)."""

    aggressiveness: int = 2
    """webrtcvad mode, 0 (least) to 3 (most aggressive in calling frames non-speech)."""
    start_ms: int = 120
    """Speech needed within ``start_window_ms`` to start an utterance."""
    start_window_ms: int = 300
    end_silence_ms: int = 700
    """Silence that ends an utterance."""
    hangover_ms: int = 200
    """Audio kept after the last speech frame."""
    pre_roll_ms: int = 200
    """Audio kept before the first speech frame."""
    max_utterance_ms: int = 15000
    """An utterance is cut (ended) at this length."""
    min_level_dbm0: float = -45.0
    """Frames quieter than this are silence whatever webrtcvad says."""
    max_stability: float = 0.95
    """A start whose spectrum is this stable at confirmation is a tone, not speech."""
    confirm_ms: int = 300
    """``SpeechStarted`` is sent this long after the start (with the true start time in
    ``at``), once the spectrum has shown it is not a tone; 0 to send at once."""
    music_window_ms: int = 1000
    dip_db: float = 15.0
    max_dip_fraction: float = 0.05
    """Music: over the last ``music_window_ms``, no more than this share of frames dips
    ``dip_db`` below the loudest (speech dips between syllables: 1 % of 1 s windows of
    the Asterisk prompts pass, three quarters of the hold music does)."""
    max_mean_stability: float = 0.8
    """Music: mean spectral stability over ``music_window_ms`` above this."""


class _UtteranceStore:
    """PCM of the utterances in progress, in 1 s blocks of one shared numpy array.

    A speaking channel owns a chain of blocks; appending one frame for every speaking
    channel is one fancy-indexed write, and a chain only grows (a Python step) once per
    block.  Blocks go back to a free list when the utterance ends, so in the steady state
    nothing is allocated per frame and memory follows the speech actually in progress.
    """

    __slots__ = ("_blocks", "_chains", "_free", "_pos", "_tail", "block_frames")

    def __init__(self, n_channels: int, block_frames: int) -> None:
        self.block_frames = block_frames
        # One block per channel to begin with: zeroed pages cost nothing until written.
        self._blocks = np.zeros((max(4, n_channels), block_frames, FRAME), dtype=np.int16)
        self._free: list[int] = list(range(self._blocks.shape[0] - 1, -1, -1))
        self._chains: dict[int, list[int]] = {}
        self._tail = np.zeros(n_channels, dtype=np.intp)
        """Per channel: the block being written."""
        self._pos = np.zeros(n_channels, dtype=np.intp)
        """Per channel: frames written in that block."""

    def _take_block(self) -> int:
        if not self._free:
            old = self._blocks.shape[0]
            grown = np.zeros((2 * old, self.block_frames, FRAME), dtype=np.int16)
            grown[:old] = self._blocks
            self._blocks = grown
            self._free.extend(range(grown.shape[0] - 1, old - 1, -1))
        return self._free.pop()

    def begin(self, channel: int, frames: npt.NDArray[np.int16]) -> None:
        """Start ``channel``'s utterance with ``frames`` (``(k, 160)``, k <= block_frames)."""
        self.drop(channel)
        b = self._take_block()
        self._chains[channel] = [b]
        self._blocks[b, :len(frames)] = frames
        self._tail[channel] = b
        self._pos[channel] = len(frames)

    def append(self, channels: npt.NDArray[np.intp], frames: npt.NDArray[np.int16]) -> None:
        """Add one frame to each of ``channels``' utterances (``frames`` row per channel)."""
        for ch in channels[self._pos[channels] == self.block_frames].tolist():
            b = self._take_block()
            self._chains[ch].append(b)
            self._tail[ch] = b
            self._pos[ch] = 0
        self._blocks[self._tail[channels], self._pos[channels]] = frames
        self._pos[channels] += 1

    def audio(self, channel: int, n_frames: int) -> bytes:
        """The first ``n_frames`` frames of ``channel``'s utterance, as int16 bytes."""
        chain = self._chains.get(channel, [])
        if not chain or n_frames <= 0:
            return b""
        pcm = self._blocks[chain].reshape(-1)
        return pcm[:n_frames * FRAME].tobytes()

    def drop(self, channel: int) -> None:
        """Free ``channel``'s blocks."""
        chain = self._chains.pop(channel, None)
        if chain:
            self._free.extend(chain)

    def grow(self, n_channels: int) -> None:
        """Room for channels up to ``n_channels`` (blocks are taken as utterances start)."""
        self._tail = grow_channels(self._tail, n_channels, 0)
        self._pos = grow_channels(self._pos, n_channels, 0)

    def keep_channels(self, keep: npt.NDArray[np.intp], n_channels: int) -> None:
        """Channel ``keep[i]`` becomes ``i`` (its utterance too); the others' are dropped.
        With no utterance in progress, the blocks go back to one per channel."""
        old_chains = self._chains
        self._chains = {}
        for new, old in enumerate(keep.tolist()):
            chain = old_chains.pop(old, None)
            if chain is not None:
                self._chains[new] = chain
        for chain in old_chains.values():
            self._free.extend(chain)
        self._tail = keep_channels(self._tail, keep, n_channels, 0)
        self._pos = keep_channels(self._pos, keep, n_channels, 0)
        size = max(4, n_channels)
        if not self._chains and self._blocks.shape[0] > size:
            self._blocks = np.zeros((size, self.block_frames, FRAME), dtype=np.int16)
            self._free = list(range(size - 1, -1, -1))


class EndpointerBank:
    """Endpointers for ``n_channels`` calls fed in lock-step (``(n, 160)`` int16 frames).

    ``process(frames, now=..., tone_active=...)`` returns ``(channel, event)`` pairs;
    ``tone_active`` is the DTMF bank's per-channel flag (``DtmfDetectorBank.tone_active``).

    Per-call state lives in numpy arrays: a ring of the last frames (PCM and the voiced
    flag) per channel, written for every channel at one slot per frame, the state
    machine's counters, and the PCM of utterances in progress.  Python runs per channel
    only where webrtcvad is asked (frames past the level, DTMF, beep and music gates) and
    at the rare transitions (a start pending confirmation, a start, an end); a settled
    channel, not speaking and fed frames the gates stop, costs no Python at all.
    """

    def __init__(self, n_channels: int, config: EndpointerConfig = EndpointerConfig()) -> None:
        if not 0 <= config.aggressiveness <= 3:
            raise MediaError(f"webrtcvad aggressiveness is 0..3, got {config.aggressiveness}")
        n = n_channels
        self.n_channels = n
        self.config = config
        self._beep = BeepDetector(n)
        self._tonality = TonalityDetector(n)
        self._min_pow = DBM0_REF_POWER * 10 ** (config.min_level_dbm0 / 10)
        self._min_db = 10 * np.log10(self._min_pow)
        span = max(1, config.music_window_ms // 20)
        self._levels = np.full((n, span), -100.0)
        self._stab = np.zeros((n, span))
        self._filled = np.zeros(n, dtype=np.int64)
        """Per channel: frames in the music window (judged only once it is full)."""
        self._i = 0
        self._born = np.zeros(n, dtype=np.int64)
        """Per channel: the frame count when it started.  The music window goes round from
        the channel's own start, so its mean adds the frames in the order a new endpointer
        would (a float sum depends on the order)."""
        self._rows = np.arange(n)
        # The recent frames: pre-roll, start window and confirmation delay.
        self._keep = (config.pre_roll_ms + config.start_window_ms + config.confirm_ms) // 20 + 1
        # the start window is the last start_window_ms of the recent frames (all if < 20 ms)
        self._window = min(self._keep, config.start_window_ms // 20 or self._keep)
        self._ring = np.zeros((n, self._keep, FRAME), dtype=np.int16)
        self._ring_voiced = np.zeros((n, self._keep), dtype=bool)
        self._recent = np.zeros(n, dtype=np.int64)
        """Per channel: how many of the ring's latest frames are 'recent' (not yet used)."""
        self._store = _UtteranceStore(n, max(50, self._keep))
        self._vads = [webrtcvad.Vad(config.aggressiveness) for _ in range(n)]
        self._pad = np.zeros((n, NFFT), dtype=np.float32)
        """frame_spectra's zero-padded input, kept from frame to frame."""
        # The state machine, one element per channel.
        self._speaking = np.zeros(n, dtype=bool)
        self._candidate = np.full(n, np.nan)
        """Start time of an utterance awaiting confirmation (NaN: none)."""
        self._start_at = np.zeros(n)
        self._last_voiced_at = np.zeros(n)
        self._last_voiced_index = np.zeros(n, dtype=np.int64)
        self._utt_frames = np.zeros(n, dtype=np.int64)
        self._silence_ms = np.zeros(n, dtype=np.int64)

    def reset_channel(self, channel: int) -> None:
        """Leave ``channel`` exactly as a new one-call :class:`Endpointer` (a new call takes
        the slot): fresh webrtcvad, empty history, music window and tonality unjudged."""
        ch = channel
        self._vads[ch] = webrtcvad.Vad(self.config.aggressiveness)
        self._levels[ch] = -100.0
        self._stab[ch] = 0.0
        self._filled[ch] = 0
        self._born[ch] = self._i
        self._beep.reset_channel(ch)
        self._tonality.reset_channel(ch)
        self._ring_voiced[ch] = False
        self._recent[ch] = 0
        self._store.drop(ch)
        self._speaking[ch] = False
        self._candidate[ch] = np.nan
        self._start_at[ch] = self._last_voiced_at[ch] = 0.0
        self._last_voiced_index[ch] = self._utt_frames[ch] = self._silence_ms[ch] = 0

    def grow(self, n_channels: int) -> None:
        """Take ``(n_channels, 160)`` frames from now on: the channels added start as after
        :meth:`reset_channel` (a new call); the others keep all their state, so their events
        are those an ungrown bank would give.

        The cost is a copy of the per-channel arrays, about 22 kB per channel (most of it
        the ring of recent frames and the tonality detector's last spectra).  Raises
        :class:`MediaError` if ``n_channels`` is fewer than the bank has; the same number
        changes nothing."""
        if not check_grow(self.n_channels, n_channels):
            return
        n = n_channels
        extra = n - self.n_channels
        self._beep.grow(n)
        self._tonality.grow(n)
        self._levels = grow_channels(self._levels, n, -100.0)
        self._stab = grow_channels(self._stab, n, 0.0)
        self._filled = grow_channels(self._filled, n, 0)
        self._born = grow_channels(self._born, n, self._i)
        self._rows = np.arange(n)
        self._ring = grow_channels(self._ring, n, 0)
        self._ring_voiced = grow_channels(self._ring_voiced, n, False)
        self._recent = grow_channels(self._recent, n, 0)
        self._store.grow(n)
        self._vads.extend(webrtcvad.Vad(self.config.aggressiveness) for _ in range(extra))
        self._pad = np.zeros((n, NFFT), dtype=np.float32)
        self._speaking = grow_channels(self._speaking, n, False)
        self._candidate = grow_channels(self._candidate, n, np.nan)
        self._start_at = grow_channels(self._start_at, n, 0.0)
        self._last_voiced_at = grow_channels(self._last_voiced_at, n, 0.0)
        self._last_voiced_index = grow_channels(self._last_voiced_index, n, 0)
        self._utt_frames = grow_channels(self._utt_frames, n, 0)
        self._silence_ms = grow_channels(self._silence_ms, n, 0)
        self.n_channels = n

    def keep_channels(self, keep: Channels, n_channels: int) -> None:
        """Resize to ``n_channels``, channel ``keep[i]`` becoming channel ``i`` with all its
        state (its events are those the bank would have given unchanged, an utterance in
        progress included); the channels after them start as after :meth:`reset_channel`.
        A bank shrinks this way when calls have gone (the mixer compacts its channels)."""
        idx = check_keep(self.n_channels, keep, n_channels)
        n = n_channels
        self._beep.keep_channels(idx, n)
        self._tonality.keep_channels(idx, n)
        self._levels = keep_channels(self._levels, idx, n, -100.0)
        self._stab = keep_channels(self._stab, idx, n, 0.0)
        self._filled = keep_channels(self._filled, idx, n, 0)
        self._born = keep_channels(self._born, idx, n, self._i)
        self._rows = np.arange(n)
        self._ring = keep_channels(self._ring, idx, n, 0)
        self._ring_voiced = keep_channels(self._ring_voiced, idx, n, False)
        self._recent = keep_channels(self._recent, idx, n, 0)
        self._store.keep_channels(idx, n)
        aggressiveness = self.config.aggressiveness
        self._vads = keep_items(self._vads, idx, n, lambda: webrtcvad.Vad(aggressiveness))
        self._pad = np.zeros((n, NFFT), dtype=np.float32)
        self._speaking = keep_channels(self._speaking, idx, n, False)
        self._candidate = keep_channels(self._candidate, idx, n, np.nan)
        self._start_at = keep_channels(self._start_at, idx, n, 0.0)
        self._last_voiced_at = keep_channels(self._last_voiced_at, idx, n, 0.0)
        self._last_voiced_index = keep_channels(self._last_voiced_index, idx, n, 0)
        self._utt_frames = keep_channels(self._utt_frames, idx, n, 0)
        self._silence_ms = keep_channels(self._silence_ms, idx, n, 0)
        self.n_channels = n

    def speaking(self, channel: int) -> bool:
        """An utterance is in progress on ``channel``."""
        return bool(self._speaking[channel])

    @property
    def speaking_mask(self) -> npt.NDArray[np.bool_]:
        """Per channel: an utterance is in progress (a read-only view)."""
        view = self._speaking.view()
        view.flags.writeable = False
        return view

    def _held(self, need: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Per channel: the last ``music_window_ms`` sound like music or a held tone.

        Judged where ``need`` (False elsewhere): only channels past the level gate or with
        a start to confirm ask.  When they are few, only their rows of the window are read
        (a pass over 50 frames per channel)."""
        c = self.config
        span = self._levels.shape[1]
        judge = need & (self._filled >= span)
        few = 4 * np.count_nonzero(judge) <= self.n_channels  # else gathering costs more
        rows = np.flatnonzero(judge) if few else self._rows
        if rows.size == 0:
            return judge
        levels = self._levels[rows] if few else self._levels
        stab = self._stab[rows] if few else self._stab
        top = levels.max(axis=1)
        dips = (levels < (top - c.dip_db)[:, None]).mean(axis=1)
        verdict: npt.NDArray[np.bool_] = (((top >= self._min_db) & (dips <= c.max_dip_fraction))
                                          | (stab.mean(axis=1) > c.max_mean_stability))
        if not few:
            verdict &= judge
            return verdict
        held = np.zeros(self.n_channels, dtype=bool)
        held[rows] = verdict
        return held

    def process(self, frames: npt.NDArray[np.int16], *, now: float,
                tone_active: npt.NDArray[np.bool_] | None = None) -> list[tuple[int, CallEvent]]:
        """Feed one 20 ms frame per channel (``now`` is the time at the frames' end)."""
        x = np.asarray(frames, dtype=np.int16)
        if x.shape != (self.n_channels, FRAME):
            raise MediaError(f"expected ({self.n_channels}, 160) int16 frames, got {x.shape}")
        # --- features, one numpy pass for every channel
        spectra = frame_spectra(x, self._pad)
        spectra_sum = spectra.sum(-1, dtype=np.float64)
        self._tonality.process(x, spectra, spectra_sum)
        single = self._beep.is_tone(spectra, spectra_sum)
        xf = x.astype(np.float32)
        power = np.einsum("ij,ij->i", xf, xf) / FRAME
        span = self._levels.shape[1]
        col = (self._i - self._born) % span
        self._levels[self._rows, col] = 10 * np.log10(power + 1.0)
        self._stab[self._rows, col] = self._tonality.similarity
        np.minimum(self._filled + 1, span, out=self._filled)
        speechlike = (power >= self._min_pow) & ~single
        if tone_active is not None:
            speechlike &= ~np.asarray(tone_active, dtype=bool)
        speaking = self._speaking.copy()
        idle = ~speaking
        # Idle channels with a start awaiting confirmation (_continue does not touch them).
        pending = idle & ~np.isnan(self._candidate)
        held = self._held(speechlike | pending)
        # --- the frame into every channel's ring; webrtcvad only past the gates
        slot = self._i % self._keep
        self._i += 1
        self._ring[:, slot] = x
        voiced = self._ring_voiced[:, slot]
        voiced[:] = False
        ask = np.flatnonzero(speechlike & ~held)
        if ask.size:
            raw = x.tobytes()
            vads = self._vads
            step = 2 * FRAME
            yes = [ch for ch in ask.tolist()
                   if vads[ch].is_speech(raw[ch * step:(ch + 1) * step], SAMPLE_RATE)]
            voiced[yes] = True
        out: list[tuple[int, CallEvent]] = []
        if speaking.any():
            self._continue(speaking, voiced, x, now, out)
        self._recent += idle  # a speaking channel has no recent frames (its stay at 0)
        np.minimum(self._recent, self._keep, out=self._recent)
        if pending.any():
            self._confirm(np.flatnonzero(pending), held, now, out)
        fresh = np.flatnonzero(voiced & idle & ~pending)
        if fresh.size:
            self._open(fresh, slot, now, out)
        if len(out) > 1:
            out.sort(key=lambda item: item[0])
        return out

    def _continue(self, speaking: npt.NDArray[np.bool_], voiced: npt.NDArray[np.bool_],
                  x: npt.NDArray[np.int16], now: float, out: list[tuple[int, CallEvent]]) -> None:
        """Channels in an utterance: store the frame, track silence, end or cut."""
        c = self.config
        sp = np.flatnonzero(speaking)
        self._store.append(sp, x[sp])
        self._utt_frames += speaking
        heard = speaking & voiced
        np.add(self._silence_ms, 20, out=self._silence_ms, where=speaking & ~voiced)
        np.copyto(self._silence_ms, 0, where=heard)
        np.copyto(self._last_voiced_at, now, where=heard)
        np.copyto(self._last_voiced_index, self._utt_frames, where=heard)
        length_ms = np.round((now - self._start_at) * 1000)
        ended = np.flatnonzero(speaking & ((self._silence_ms >= c.end_silence_ms)
                                           | (length_ms >= c.max_utterance_ms)))
        for ch in ended.tolist():
            out.append((ch, self._finish(ch, now)))

    def _confirm(self, pending: npt.NDArray[np.intp], held: npt.NDArray[np.bool_], now: float,
                 out: list[tuple[int, CallEvent]]) -> None:
        """Channels with a start awaiting confirmation: after ``confirm_ms`` the start is
        sent unless the spectrum held still (a tone) or the window became music."""
        c = self.config
        stability = self._tonality.similarity
        for ch in pending.tolist():
            start = float(self._candidate[ch])
            if now - start >= c.confirm_ms / 1000:
                self._candidate[ch] = np.nan
                if stability[ch] < c.max_stability and not held[ch]:
                    out.append((ch, self._start(ch, start, now)))
                else:
                    self._recent[ch] = 0

    def _open(self, fresh: npt.NDArray[np.intp], slot: int, now: float,
              out: list[tuple[int, CallEvent]]) -> None:
        """Idle channels with a voiced frame: a candidate start once ``start_ms`` of the last
        ``start_window_ms`` is voiced (its time is the window's first voiced frame)."""
        c = self.config
        w = self._window
        cols = (slot - np.arange(w - 1, -1, -1)) % self._keep  # oldest .. this frame
        win = self._ring_voiced[fresh[:, None], cols[None, :]]
        win &= np.arange(w)[None, :] >= (w - np.minimum(self._recent[fresh], w))[:, None]
        go = win.sum(axis=1) * 20 >= c.start_ms
        if not go.any():
            return
        first = np.argmax(win[go], axis=1)
        for ch, p in zip(fresh[go].tolist(), first.tolist()):
            start = now - 0.020 * (w - p)
            if c.confirm_ms <= 0:
                out.append((ch, self._start(ch, start, now)))
            else:
                self._candidate[ch] = start

    def _start(self, ch: int, start: float, now: float) -> SpeechStarted:
        recent = int(self._recent[ch])
        lead = max(0, recent - round((now - start) / 0.020) - self.config.pre_roll_ms // 20)
        n = recent - lead
        last = (self._i - 1) % self._keep  # this frame's slot
        cols = (last - np.arange(n - 1, -1, -1)) % self._keep
        self._store.begin(ch, self._ring[ch, cols])
        self._utt_frames[ch] = n
        self._start_at[ch] = start
        self._speaking[ch] = True
        self._silence_ms[ch] = 0
        self._last_voiced_at[ch] = now
        self._last_voiced_index[ch] = n
        self._recent[ch] = 0
        return SpeechStarted(at=start)

    def _finish(self, ch: int, now: float) -> SpeechEnded:
        keep = min(int(self._utt_frames[ch]),
                   int(self._last_voiced_index[ch]) + self.config.hangover_ms // 20)
        audio = self._store.audio(ch, keep)
        duration = round((float(self._last_voiced_at[ch]) - float(self._start_at[ch])) * 1000)
        self._store.drop(ch)
        self._speaking[ch] = False
        self._utt_frames[ch] = 0
        self._candidate[ch] = np.nan
        return SpeechEnded(at=now, duration_ms=duration, audio=audio)

    def flush(self, channel: int, *, now: float) -> list[CallEvent]:
        """End of stream on ``channel`` (hang-up): close the utterance in progress, if any."""
        return [self._finish(channel, now)] if self._speaking[channel] else []


class Endpointer:
    """Sans-IO endpointer for one call: ``process(frame, now=..., tone_active=...)``.

    ``now`` is the time at the end of the frame (seconds).  Frames are 20 ms of 8 kHz
    int16 PCM.  Returns the events the frame completes.
    """

    def __init__(self, config: EndpointerConfig = EndpointerConfig()) -> None:
        self.config = config
        self._bank = EndpointerBank(1, config)

    @property
    def speaking(self) -> bool:
        """An utterance is in progress."""
        return self._bank.speaking(0)

    def process(self, frame: npt.NDArray[np.int16], *, now: float,
                tone_active: bool = False) -> list[CallEvent]:
        """Feed one 20 ms frame; ``tone_active`` is the DTMF detector's flag for this call."""
        x = np.asarray(frame, dtype=np.int16).ravel()
        if x.size != FRAME:
            raise MediaError(f"Endpointer takes 160-sample frames, got {x.size}")
        flag = np.array([tone_active])
        return [ev for _, ev in self._bank.process(x.reshape(1, FRAME), now=now,
                                                   tone_active=flag)]

    def flush(self, *, now: float) -> list[CallEvent]:
        """End of stream (hang-up): close the utterance in progress, if any."""
        return self._bank.flush(0, now=now)


def vad_frames(pcm: npt.NDArray[np.int16], aggressiveness: int = 2) -> npt.NDArray[np.bool_]:
    """webrtcvad's raw decision for each whole 20 ms frame of a recording (no gating)."""
    vad = webrtcvad.Vad(aggressiveness)
    x = np.asarray(pcm, dtype=np.int16)
    n = len(x) // FRAME
    raw = x[: n * FRAME].tobytes()
    return np.fromiter((vad.is_speech(raw[i * 2 * FRAME:(i + 1) * 2 * FRAME], SAMPLE_RATE)
                        for i in range(n)), dtype=bool, count=n)
