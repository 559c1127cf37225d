"""Voice verification: scripted outcomes, MFCC-statistics baseline, stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from telephony.speech.errors import SpeechConfigError, VoiceVerificationError
from telephony.speech.tts import EspeakTts, TtsConfig
from telephony.speech.voice import (
    InMemoryVoiceprintStore,
    MfccStatsConfig,
    MfccStatsVerifier,
    NpzVoiceprintStore,
    ScriptedVerifier,
    build_espeak_background,
    create_verifier,
)

ENROLL = [
    "my voice is my password",
    "I would like to check my account balance",
    "one two three four five six",
]
TEST = ["please verify my identity now", "what time does the office open"]


@pytest.fixture(scope="module")
def tts(tmp_path_factory: pytest.TempPathFactory) -> EspeakTts:
    return EspeakTts(TtsConfig(cache_dir=tmp_path_factory.mktemp("tts")))


def pcm(tts: EspeakTts, text: str, voice: str) -> bytes:
    return tts.synthesize(text, language="en", voice=voice).astype("<i2").tobytes()


def test_scripted_outcomes() -> None:
    v = create_verifier(
        "scripted",
        outcomes={"alice": ["reject", "accept"], "bob": "error"},
        default="reject",
        required_utterances=2,
        enrolled=["alice"],
    )
    assert isinstance(v, ScriptedVerifier)
    assert v.is_enrolled("alice") and not v.is_enrolled("carol")
    assert not v.enroll("carol", b"").complete and v.enroll("carol", b"").complete
    assert not v.verify("alice", b"").accepted
    assert v.verify("alice", b"").accepted and v.verify("alice", b"").accepted  # last repeats
    with pytest.raises(VoiceVerificationError):
        v.verify("bob", b"")
    assert not v.verify("carol", b"").accepted
    assert v.calls[-2:] == [("bob", "error"), ("carol", "reject")]
    with pytest.raises(SpeechConfigError):
        ScriptedVerifier({"x": "maybe"})


def test_mfcc_stats_same_voice_accepted_other_rejected(tts: EspeakTts, tmp_path: Path) -> None:
    background = build_espeak_background(
        tts,
        language="en",
        variants=["", "+m1", "+f1", "+m5", "+f5", "+m6"],
        texts=["the quick brown fox jumps over the lazy dog", "please call me back tomorrow"],
    )
    store = NpzVoiceprintStore(tmp_path)
    v = MfccStatsVerifier(background, store=store, config=MfccStatsConfig(threshold=0.5))
    assert not v.verify("+f3", pcm(tts, TEST[0], "+f3")).accepted
    results = [v.enroll("+f3", pcm(tts, t, "+f3")) for t in ENROLL]
    assert [r.complete for r in results] == [False, False, True]
    for text in TEST:
        same = v.verify("+f3", pcm(tts, text, "+f3"))
        other = v.verify("+f3", pcm(tts, text, "+m3"))
        assert same.accepted and same.reason == "match" and same.score >= same.threshold
        assert not other.accepted and other.reason == "below_threshold"
        assert other.score < same.score
    # The voiceprint survives a restart through the file store.
    again = MfccStatsVerifier(
        background, store=NpzVoiceprintStore(tmp_path), config=MfccStatsConfig(threshold=0.5)
    )
    assert again.is_enrolled("+f3")
    assert again.verify("+f3", pcm(tts, TEST[1], "+f3")).score == pytest.approx(
        v.verify("+f3", pcm(tts, TEST[1], "+f3")).score
    )
    short = v.verify("+f3", np.zeros(800, dtype="<i2").tobytes())
    assert short.reason == "too_short" and not short.accepted


def test_memory_store_roundtrip() -> None:
    from telephony.speech.voice import Voiceprint

    store = InMemoryVoiceprintStore()
    vp = Voiceprint.from_frames("x", np.ones((4, 3)))
    store.save(vp)
    assert store.load("x") is vp
    store.delete("x")
    assert store.load("x") is None
