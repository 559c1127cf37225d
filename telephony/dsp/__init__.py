"""telephony.dsp: in-band DTMF, VAD endpointing, answering-machine and beep detection.

Sans-IO and numpy-vectorised, on 20 ms frames of 8 kHz int16 audio.
"""

from telephony.dsp.amd import AmdConfig, AmdDetector, AmdResult, classify_recording
from telephony.dsp.dtmf import (
    DtmfConfig,
    DtmfDetector,
    DtmfDetectorBank,
    InbandDigit,
    detect_file_digits,
)
from telephony.dsp.tones import Beep, BeepConfig, BeepDetector, TonalityDetector
from telephony.dsp.vad import Endpointer, EndpointerConfig
from telephony.dsp.wavio import read_wav_8k

__all__ = [
    "AmdConfig",
    "AmdDetector",
    "AmdResult",
    "Beep",
    "BeepConfig",
    "BeepDetector",
    "DtmfConfig",
    "DtmfDetector",
    "DtmfDetectorBank",
    "Endpointer",
    "EndpointerConfig",
    "InbandDigit",
    "TonalityDetector",
    "classify_recording",
    "detect_file_digits",
    "read_wav_8k",
]
