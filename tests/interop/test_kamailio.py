"""Kamailio 5.6 as registrar and proxy: Dialtone registers to it with digest auth and is
reached through it; pyVoIP registers to it and Dialtone calls pyVoIP through it."""

from __future__ import annotations

import asyncio
import threading
import time
import warnings
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from telephony.aio.call import Call
from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.eventlog import MemoryEventLog
from telephony.sip.auth import DigestCredentials
from telephony.sip.endpoint import SipConfig
from tests.conftest import free_port, require_tool
from tests.interop.peers import (
    CONFIGS,
    Proc,
    TraceCollector,
    UdpRecorder,
    rtp_range,
    save_captures,
    wait_until,
)

pytestmark = pytest.mark.interop

PASSWORD = "s3cret-interop"


class Kamailio:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cfg = workdir / "kamailio.cfg"
        cfg.write_text((CONFIGS / "kamailio.cfg.in").read_text().format(
            port=self.port, password=PASSWORD))
        self.proc = Proc(["kamailio", "-f", str(cfg), "-DD", "-E", "-w", str(workdir),
                          "-m", "32", "-M", "8"], log=workdir / "kamailio.log", limit=60,
                         cwd=workdir)
        if not wait_until(lambda: "SO_RCVBUF is finally" in self.proc.output()
                          or not self.proc.running, 10) or not self.proc.running:
            out = self.proc.output()
            self.proc.stop()
            raise RuntimeError(f"kamailio did not start: {out[-2000:]}")

    @property
    def uri(self) -> str:
        return f"sip:127.0.0.1:{self.port}"

    def aor(self, user: str) -> str:
        return f"sip:{user}@127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.stop()


@pytest.fixture
def kamailio(tmp_path: Path) -> Iterator[Kamailio]:
    require_tool("kamailio")
    k = Kamailio(tmp_path / "kamailio")
    try:
        yield k
    finally:
        k.stop()


def _ua(log: MemoryEventLog, *, username: str = "dialtone", trace: TraceCollector | None = None,
        handler: Any = None) -> UserAgent:
    lo, hi = rtp_range()
    return UserAgent(UserAgentConfig(
        sip=SipConfig(host="127.0.0.1", port=free_port(), t1=0.1, username=username),
        media=MediaEngineConfig(host="127.0.0.1", port_min=lo, port_max=hi),
        listen_tcp=False, sip_trace=trace), events=log, handler=handler)


class Dialtone:
    """An in-process Dialtone UserAgent with its event log, SIP trace and inbound calls."""

    def __init__(self, username: str = "dialtone") -> None:
        self.log = MemoryEventLog()
        self.trace = TraceCollector()
        self.inbound: asyncio.Queue[Call] = asyncio.Queue()
        self.ua = _ua(self.log, username=username, trace=self.trace, handler=self._handle)

    async def _handle(self, call: Call) -> None:
        self.inbound.put_nowait(call)
        await call.wait_ended()


@pytest.fixture
async def dialtone() -> AsyncIterator[Dialtone]:
    d = Dialtone()
    await d.ua.start()
    try:
        yield d
    finally:
        await d.ua.close()


async def test_dialtone_registers_with_digest_and_is_reached_through_kamailio(
        kamailio: Kamailio, dialtone: Dialtone) -> None:
    ok = await dialtone.ua.register(kamailio.uri, aor=kamailio.aor("dialtone"),
                                    credentials=DigestCredentials("dialtone", PASSWORD),
                                    expires=120)
    assert ok
    (reg,) = dialtone.log.of_type("registration")
    assert reg["registered"] is True and reg["status"] == 200
    sent = [r for r in dialtone.trace.records if r.direction == "send" and r.method == "REGISTER"]
    assert len(sent) == 2 and sent[1].header("Authorization", ) is not None  # 401, then digest
    got = [r.status for r in dialtone.trace.records if r.direction == "recv"
           and (r.header("CSeq") or "").endswith("REGISTER")]
    assert got == [401, 200]

    # A second UA calls the AOR at the proxy: lookup("location") must find the binding.
    caller_log = MemoryEventLog()
    caller = _ua(caller_log, username="caller")
    await caller.start()
    try:
        call = await asyncio.wait_for(caller.dial(kamailio.aor("dialtone")), 5)
        inbound = await asyncio.wait_for(dialtone.inbound.get(), 2)
        assert inbound.called == "dialtone"
        await asyncio.sleep(0.3)
        await call.hangup()
        assert await inbound.wait_ended(5) == "remote_bye"  # the BYE came along the route set
    finally:
        await caller.close()
    relayed = [r for r in dialtone.trace.records if r.direction == "recv" and r.method == "INVITE"]
    assert relayed and len((relayed[0].header("Via") or "").split(",")) >= 1
    assert "Record-Route" in relayed[0].data.decode("latin-1")
    save_captures(dialtone.trace.records, "kamailio",
                  wanted=("401-REGISTER", "200-REGISTER", "INVITE", "ACK", "BYE"))


@pytest.fixture
def pyvoip_phone(kamailio: Kamailio) -> Iterator[tuple[Any, list[str]]]:
    with warnings.catch_warnings():
        # pyVoIP 1.6.8 imports audioop (deprecated in 3.11); not our code, not our warning.
        warnings.filterwarnings("ignore", "'audioop' is deprecated", DeprecationWarning)
        from pyVoIP.VoIP import CallState, VoIPPhone

    answered: list[str] = []

    def on_call(call: Any) -> None:
        try:
            call.answer()
            answered.append("answered")
            deadline = time.monotonic() + 1.0
            while call.state == CallState.ANSWERED and time.monotonic() < deadline:
                time.sleep(0.05)
            if call.state == CallState.ANSWERED:
                call.hangup()
                answered.append("hung up")
        except Exception as exc:  # noqa: BLE001 - reported through the list to the test
            answered.append(f"error: {exc!r}")

    lo, hi = rtp_range(100)
    # pyVoIP talks to kamailio through a recorder, so its REGISTERs are captured verbatim.
    recorder = UdpRecorder(kamailio.port)
    phone = VoIPPhone("127.0.0.1", recorder.port, "pyvoip", PASSWORD, myIP="127.0.0.1",
                      callCallback=on_call, sipPort=free_port(), rtpPortLow=lo, rtpPortHigh=hi)
    try:
        phone.start()
        yield phone, answered
    finally:
        stopper = threading.Thread(target=phone.stop, daemon=True)
        stopper.start()
        stopper.join(10)
        recorder.close()
        registers = [r for r in recorder.records() if r.method == "REGISTER"]
        assert len(registers) >= 2 and registers[1].header("Authorization") is not None
        save_captures(registers[1:], "pyvoip", wanted=("REGISTER",))


async def test_dialtone_calls_pyvoip_through_kamailio(
        kamailio: Kamailio, dialtone: Dialtone, pyvoip_phone: tuple[Any, list[str]]) -> None:
    phone, answered = pyvoip_phone
    from pyVoIP.VoIP import PhoneStatus

    assert phone.get_status() == PhoneStatus.REGISTERED
    call = await asyncio.wait_for(dialtone.ua.dial(kamailio.aor("pyvoip")), 8)
    assert dialtone.log.of_type("call_answered")
    cause = await call.wait_ended(8)
    assert cause == "remote_bye", (cause, answered)
    assert answered == ["answered", "hung up"]
    # pyVoIP sends its BYE to the registrar (not along the dialog's route set); the proxy
    # relays it by Request-URI, so it arrives from kamailio, not from pyVoIP itself.
    byes = [r for r in dialtone.trace.records if r.direction == "recv" and r.method == "BYE"]
    assert len(byes) == 1 and byes[0].addr == ("127.0.0.1", kamailio.port)
    (ended,) = dialtone.log.of_type("call_ended")
    assert ended["by_remote"] is True
    save_captures(dialtone.trace.records, "pyvoip_via_kamailio",
                  wanted=("200-INVITE", "BYE"))
