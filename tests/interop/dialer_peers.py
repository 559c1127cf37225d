"""A called population and agents for the dialer's end-to-end tests (loopback only).

Both are Dialtone user agents (real SIP over UDP, real RTP): SIPp cannot record what a
machine receives, and one UA per role keeps the test in one process.  The population
branches on the dialled number's last digit:

* ``1`` a human: answers with a recorded "hello?" (Asterisk's hello.wav), then silence;
  hangs up when the dialer does (or after ``human_talk_s``);
* ``2`` an answering machine: a recorded greeting (vm-nobodyavail.wav), a beep, then
  records what it receives (what the dialer leaves) until the dialer hangs up;
* ``3`` busy (486); ``4`` rings past any ring timeout; ``5`` unknown number (404);
  ``6`` a failure (503); ``7`` a second human; ``8`` forbidden (403: the trunk wants
  credentials); ``0`` and ``9``: a human who listens, then presses 1 (``0``) or 9 (``9``).

Agents answer (``agent...``) and talk until the caller hangs up, or are busy (486) when
their user part starts with ``busy``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from telephony.aio.call import Call
from telephony.aio.media_engine import MediaEngineConfig
from telephony.aio.useragent import UserAgent, UserAgentConfig
from telephony.dsp.wavio import read_wav_8k
from telephony.sip.admission import AdmissionConfig
from telephony.sip.config import SipConfig

SOUNDS = Path("/usr/share/asterisk/sounds/en")
_INVITE_TO = re.compile(rb"^INVITE sip:([^@;>\s]+)@", re.MULTILINE)
_PAI = re.compile(rb"^P-Asserted-Identity:\s*(.+?)\r?$", re.MULTILINE | re.IGNORECASE)
_FROM = re.compile(rb"^(?:From|f):\s*(.+?)\r?$", re.MULTILINE | re.IGNORECASE)


def load_8k(path: Path) -> np.ndarray:
    """A WAV as 8 kHz int16 mono."""
    return np.asarray(read_wav_8k(path), dtype=np.int16)


@dataclass
class Peer:
    """A UA on 127.0.0.1 that records every INVITE it receives (number, From, PAI)."""

    name: str
    rtp_base: int
    ua: UserAgent | None = None
    invites: Counter[str] = field(default_factory=Counter)
    pai: dict[str, str] = field(default_factory=dict)
    from_: dict[str, str] = field(default_factory=dict)
    calls: list[dict[str, Any]] = field(default_factory=list)

    def _trace(self, direction: str, data: bytes, peer: Any, transport: str) -> None:
        if direction != "recv" or not data.startswith(b"INVITE "):
            return
        if b";tag=" in data.split(b"\r\nTo:", 1)[-1].split(b"\r\n", 1)[0]:
            return  # a re-INVITE
        m = _INVITE_TO.search(data)
        if m is None:
            return
        user = m.group(1).decode()
        self.invites[user] += 1
        p = _PAI.search(data)
        if p:
            self.pai[user] = p.group(1).decode()
        f = _FROM.search(data)
        if f:
            self.from_[user] = f.group(1).decode()

    async def start(self, handler: Any) -> int:
        config = UserAgentConfig(
            # No refusals by load: a busy test machine must not turn a callee into a 503.
            sip=SipConfig(host="127.0.0.1", port=0,
                          admission=AdmissionConfig(max_tick_lateness=None)),
            media=MediaEngineConfig(host="127.0.0.1", port_min=self.rtp_base,
                                    port_max=self.rtp_base + 2000),
            auto_answer=False, listen_tcp=False, sip_trace=self._trace)
        self.ua = UserAgent(config, handler=handler)
        _, port = await self.ua.start()
        return port

    async def close(self) -> None:
        if self.ua is not None:
            await self.ua.close()

    def reject(self, call: Call, status: int) -> None:
        assert self.ua is not None
        self.ua.endpoint.reject(call.ref, status, now=self.ua.now())
        self.ua.transport.flush()

    def ringing(self, call: Call) -> None:
        assert self.ua is not None
        self.ua.endpoint.ringing(call.ref, now=self.ua.now())
        self.ua.transport.flush()


class Population(Peer):
    """The called population (see the module docstring)."""

    def __init__(self, rtp_base: int, record_dir: Path, *, human_talk_s: float = 8.0,
                 answer_after_s: float = 0.3) -> None:
        super().__init__("population", rtp_base)
        self.record_dir = record_dir
        self.human_talk_s = human_talk_s
        self.answer_after_s = answer_after_s
        self.hello = load_8k(SOUNDS / "hello.wav")
        self.greeting = load_8k(SOUNDS / "vm-nobodyavail.wav")
        self.beep = load_8k(SOUNDS / "beep.wav")
        self.recordings: dict[str, Path] = {}
        self.pressed: dict[str, str] = {}
        self.scripts: dict[str, list[tuple[float, str]]] = {}
        """Numbers answered by a person who presses keys: [(seconds to wait, digits)]."""
        self.press_after_s = 2.0
        self.answered_at: dict[str, float] = {}
        self.answer_delay: dict[str, float] = {}
        """Numbers answered after these seconds (instead of ``answer_after_s``)."""
        self.hang_up_after: dict[str, float] = {}
        """Numbers answered by someone who hangs up after these seconds without a word."""

    async def start_population(self) -> int:
        return await self.start(self.handle)

    async def handle(self, call: Call) -> None:
        number = call.called
        kind = number[-1:]
        if kind == "3":
            self.reject(call, 486)
            return
        if kind == "5":
            self.reject(call, 404)
            return
        if kind == "6":
            self.reject(call, 503)
            return
        if kind == "8":
            self.reject(call, 403)
            return
        self.ringing(call)
        if kind == "4":
            await call.wait_ended(120)  # rings until the dialer's CANCEL
            return
        await asyncio.sleep(self.answer_delay.get(number, self.answer_after_s))
        await call.answer()
        assert self.ua is not None
        self.answered_at[number] = self.ua.now()
        if number in self.hang_up_after:
            await asyncio.sleep(self.hang_up_after[number])
            await call.hangup()
            return
        if number in self.scripts:
            # a person who says hello, then presses keys at the given delays
            await call.play(self.hello)
            for delay, digits in self.scripts[number]:
                await asyncio.sleep(delay)
                if call.ended:
                    break
                await call.send_dtmf(digits)
                self.pressed[number] = self.pressed.get(number, "") + digits
            await call.wait_ended(self.human_talk_s)
        elif kind in ("1", "7"):
            await call.play(self.hello)
            self.calls.append({"number": number, "kind": "human", "hello_end": self.ua.now(),
                               "hello_end_wall": time.time()})
            await call.wait_ended(self.human_talk_s)
        elif kind in ("0", "9"):
            # a person who listens to the message, then presses 1 (0) or 9 (9)
            await call.play(self.hello)
            await asyncio.sleep(self.press_after_s)
            if not call.ended:
                await call.send_dtmf("1" if kind == "0" else "9")
                self.pressed[number] = "1" if kind == "0" else "9"
            await call.wait_ended(self.human_talk_s)
        elif kind == "2":
            silence = np.zeros(1600, dtype=np.int16)
            await call.play(np.concatenate([silence, self.greeting, silence[:800], self.beep]))
            path = self.record_dir / f"machine-{number.lstrip('+')}.wav"
            self.recordings[number] = path
            await call.record(path, max_seconds=30, both_directions=False)


class Agents(Peer):
    """Agents at ``sip:USER@127.0.0.1:PORT``; users starting with ``busy`` answer 486,
    those starting with ``slow`` ring ``slow_answer_s`` before answering."""

    def __init__(self, rtp_base: int, *, talk_s: float = 2.0, slow_answer_s: float = 2.3
                 ) -> None:
        super().__init__("agents", rtp_base)
        self.talk_s = talk_s
        self.slow_answer_s = slow_answer_s
        self.answered: dict[str, int] = Counter()
        self.answered_at: list[tuple[str, float]] = []
        self.ended: list[tuple[str, str | None]] = []
        """(user, end cause) of each answered leg; None: the agent hung up (``talk_s``)."""

    async def start_agents(self) -> int:
        return await self.start(self.handle)

    async def handle(self, call: Call) -> None:
        if call.called.startswith("busy"):
            self.reject(call, 486)
            return
        if call.called.startswith("slow"):
            self.ringing(call)
            if await call.wait_ended(self.slow_answer_s) is not None:
                return  # cancelled while ringing
        await call.answer()
        assert self.ua is not None
        self.answered[call.called] += 1
        self.answered_at.append((call.called, self.ua.now()))
        self.ended.append((call.called, await call.wait_ended(self.talk_s)))
