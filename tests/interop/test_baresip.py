"""baresip 1.0.0 as the peer: it calls Dialtone and sends DTMF; Dialtone calls it (auto
answer) and plays a prompt, which baresip records (the ``sndfile`` filter dumps the decoded
audio to a WAV); the recording must match the prompt after G.711 by cross-correlation."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.codecs import get_codec
from telephony.eventlog import MemoryEventLog
from telephony.sip.endpoint import SipConfig
from tests.conftest import free_port, require_tool
from tests.interop.peers import (
    CONFIGS,
    DialtoneProcess,
    Proc,
    TraceCollector,
    rtp_range,
    save_captures,
    wait_until,
)

pytestmark = pytest.mark.interop

KEY_RELEASE = "\x04"  # baresip's KEYCODE_REL: what its tty UI sends when a key goes up
PROMPT = Path("/usr/share/asterisk/sounds/en/demo-thanks.wav")


class Baresip:
    """baresip with a generated config (``configs/baresip.conf.in``), driven through its
    ``cons`` module (commands as UDP datagrams)."""

    def __init__(self, workdir: Path, *, answer: str = "manual") -> None:
        self.workdir = workdir
        self.cfg = workdir / "cfg"
        self.snd = workdir / "snd"
        self.cfg.mkdir(parents=True)
        self.snd.mkdir()
        self.sip_port = free_port()
        self.cons_port = free_port()
        lo, hi = rtp_range(20)
        source = workdir / "source.wav"
        _write_wav(source, (3000 * np.sin(2 * np.pi * 450 * np.arange(8000 * 20) / 8000)
                            ).astype(np.int16))
        text = (CONFIGS / "baresip.conf.in").read_text().format(
            sip_port=self.sip_port, cons_port=self.cons_port, rtp_lo=lo, rtp_hi=hi,
            source=source, snd_path=self.snd)
        (self.cfg / "config").write_text(text)
        (self.cfg / "accounts").write_text(
            f"<sip:bob@127.0.0.1:{self.sip_port}>;regint=0;answermode={answer};"
            "audio_codecs=PCMU\n")
        self.proc = Proc(["baresip", "-f", str(self.cfg)], log=workdir / "baresip.log", limit=60,
                         cwd=workdir)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if not wait_until(lambda: "baresip is ready" in self.proc.output(), 10):
            self.stop()
            raise RuntimeError(f"baresip did not start: {self.proc.output()[-1500:]}")

    @property
    def uri(self) -> str:
        return f"sip:bob@127.0.0.1:{self.sip_port}"

    def command(self, text: str) -> None:
        """A console command (``/dial URI``) or keys (digits are DTMF during a call)."""
        self.sock.sendto(text.encode(), ("127.0.0.1", self.cons_port))

    def output(self) -> str:
        return self.proc.output()

    def quit(self) -> None:
        self.command("/quit\n")
        with contextlib.suppress(subprocess.TimeoutExpired):  # stop() kills it then
            self.proc.wait(3)

    def stop(self) -> None:
        self.sock.close()
        self.proc.stop()


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(pcm.astype("<i2").tobytes())


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as w:
        assert w.getsampwidth() == 2
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        if w.getnchannels() > 1:
            data = data[:: w.getnchannels()]
        return data.astype(np.float64), w.getframerate()


def best_normalised_correlation(recording: np.ndarray, reference: np.ndarray) -> tuple[float, int]:
    """max over lags of <rec[k:k+N], ref> / (|rec[k:k+N]| |ref|), and that lag."""
    from scipy.signal import fftconvolve

    n = len(reference)
    if len(recording) < n:
        recording = np.concatenate([recording, np.zeros(n - len(recording))])
    dots = fftconvolve(recording, reference[::-1], mode="valid")
    csum = np.concatenate([[0.0], np.cumsum(recording * recording)])
    energy = csum[n:] - csum[:-n]
    denom = np.sqrt(np.maximum(energy, 1e-9)) * np.linalg.norm(reference)
    ncc = dots / denom
    k = int(np.argmax(ncc))
    return float(ncc[k]), k


@pytest.fixture
def baresip_tool() -> None:
    require_tool("baresip")


@pytest.fixture
def dialtone_for_baresip(baresip_tool: None, tmp_path: Path) -> Iterator[DialtoneProcess]:
    proc = DialtoneProcess(tmp_path / "dialtone", name="for-baresip")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def baresip_caller(baresip_tool: None, tmp_path: Path) -> Iterator[Baresip]:
    b = Baresip(tmp_path / "baresip")
    try:
        yield b
    finally:
        b.stop()


def test_baresip_calls_dialtone_and_sends_rfc4733_dtmf(dialtone_for_baresip: DialtoneProcess,
                                                        baresip_caller: Baresip) -> None:
    dt, b = dialtone_for_baresip, baresip_caller
    b.command(f"/dial sip:ivr@{dt.addr}\n")
    assert dt.wait_for("call_answered", 1, timeout=5), b.output()[-2000:]
    assert wait_until(lambda: "Call established" in b.output(), 5), b.output()[-2000:]
    time.sleep(0.5)
    for digit in "19#":
        b.command(digit)  # a key in a call: baresip sends it as RFC 4733 events...
        time.sleep(0.15)
        b.command(KEY_RELEASE)  # ... until the key is released (then the end packets)
        time.sleep(0.25)
    dt.wait_for("dtmf", 3, timeout=3)
    b.command("/hangup\n")
    ended = dt.wait_for("call_ended", 1, timeout=5)
    dtmf = dt.of_type("dtmf")
    assert [e["digit"] for e in dtmf] == ["1", "9", "#"], b.output()[-1500:]
    assert {e["source"] for e in dtmf} == {"rfc4733"}
    assert ended[0]["cause"] == "remote_bye"
    assert ended[0]["rtp"]["received"] > 50  # baresip's audio (its aufile source) arrived
    save_captures(dt.trace(), "baresip")


@pytest.fixture
async def dialtone_ua() -> AsyncIterator[tuple[UserAgent, MemoryEventLog, TraceCollector]]:
    log = MemoryEventLog()
    trace = TraceCollector()
    lo, hi = rtp_range()
    ua = UserAgent(UserAgentConfig(
        sip=SipConfig(host="127.0.0.1", port=free_port(), t1=0.1),
        media=MediaEngineConfig(host="127.0.0.1", port_min=lo, port_max=hi),
        listen_tcp=False, sip_trace=trace), events=log)
    await ua.start()
    try:
        yield ua, log, trace
    finally:
        await ua.close()


async def test_dialtone_calls_baresip_which_hears_the_prompt(
        baresip_tool: None, tmp_path: Path,
        dialtone_ua: tuple[UserAgent, MemoryEventLog, TraceCollector]) -> None:
    if not PROMPT.exists():
        pytest.skip(f"{PROMPT} missing (asterisk-core-sounds-en-wav)")
    ua, log, trace = dialtone_ua
    b = Baresip(tmp_path / "baresip", answer="auto")
    try:
        call = await asyncio.wait_for(ua.dial(b.uri), 5)
        assert log.of_type("call_answered")
        await asyncio.sleep(0.3)
        result = await asyncio.wait_for(call.play(PROMPT), 10)
        assert not result.interrupted
        await asyncio.sleep(0.4)
        await call.hangup()
        await asyncio.sleep(0.3)
        b.quit()
    finally:
        b.stop()
    dumps = sorted(b.snd.glob("dump-*-dec.wav"))
    assert len(dumps) == 1, (list(b.snd.iterdir()), b.output()[-1500:])
    recording, rate = _read_wav(dumps[0])
    assert rate == 8000
    prompt_pcm, _ = ua.prompts.resolve(PROMPT)
    codec = get_codec("PCMU")
    reference = codec.decode(codec.encode(prompt_pcm)).astype(np.float64)
    assert len(recording) > len(reference) * 0.9
    score, lag = best_normalised_correlation(recording, reference)
    print(f"correlation {score:.3f} at lag {lag / 8:.1f} ms")
    assert score > 0.9, (score, lag)
    save_captures(trace.records, "baresip_uas", wanted=("200-INVITE", "200-BYE"))
