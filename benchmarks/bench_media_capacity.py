"""Concurrent call legs on one core: G.711 decode, in-band DTMF, VAD and a prompt on every leg.

Run:  .venv/bin/python benchmarks/bench_media_capacity.py [--steps 100,200,...] [--measure 20]
      [--server dialtone|bare-uvloop|bare-asyncio[,...]] [--loadgen c|python] [--spread N]

Two processes on loopback (127.0.0.1 only):

* the **server** (``taskset -c 0``), one of
  - ``dialtone`` (default): uvloop and N media legs opened through
    :class:`telephony.aio.media_engine.MediaEngine` (one real UDP socket each, one shared
    20 ms tick).  Every leg is a :class:`telephony.media.CallMedia` listening (VAD on), with
    in-band DTMF detection and a long prompt playing.  SIP is not set up: the legs are
    created directly, as this measures the media path only.
  - ``bare-uvloop`` / ``bare-asyncio``: the issue's anchor, a bare RTP loop.  N UDP sockets
    (same port range) whose ``datagram_received`` only counts the datagram and latches its
    source, and one shared 20 ms tick (absolute deadlines) that sends every latched leg one
    fixed 172-byte RTP packet with that leg's own sequence number and timestamp.
* the **load generator** (``taskset -c 1``) sends every leg 50 pps of PCMU (Asterisk prompts:
  speech with pauses, plus a DTMF digit every 8 s) from its own socket, and timestamps every
  packet the server sends back with the kernel's receive timestamp (``SO_TIMESTAMPNS``), so
  its own scheduling does not add jitter.  By default it is benchmarks/rtp_loadgen.c,
  compiled on first use into benchmarks/.build/ (the Python one takes ~40 % of a core at
  500 legs and ~75 % at 1000 here, its bursts at times ending 40 ms late);
  ``--loadgen python`` (or no C compiler) runs the Python one in this file, which does the
  same thing.  Both report their own health: bursts' lateness against their deadlines,
  ticks sent, send errors, drops on their own sockets and their CPU share.  By default every
  leg sends at the tick, in one burst; the two processes' ticks are not aligned, and where
  the server's send burst meets the generator's, on loopback both slow down (the share of
  the server's packets that arrive during a generator burst is reported: "bursts meet").
  ``--spread SLOTS`` spreads the legs over the tick instead (leg i at
  ``(i % SLOTS) * 20 ms / SLOTS``), as independent callers would.

Per step: p99 over all legs of |arrival interval - 20 ms| (consecutive sequence numbers),
lost packets (sequence gaps) on the way back, packets the server did not receive (what the
generator sent over the whole run against what the server counted, read once the server's
socket queues are empty; the kernel's drop counters on its sockets, from /proc/net/udp, say
where they went), the server's CPU share (``/proc/<pid>/stat``) over the measurement window,
its tick lateness and the digits it detected.  A step whose generator fell behind (ticks
missing, send errors, drops on its sockets, or its bursts at p99 not out before the next
tick is due), or during which other processes or the hypervisor (steal, /proc/stat) took a
noticeable share of the CPUs, is **invalid**: not a result either way.  The capacity is the
largest N with p99 < 5 ms and no loss.  Writes a section of benchmarks/results/media.md (the
bare servers: a section of their own, "Media capacity anchors").
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SOUNDS = Path("/usr/share/asterisk/sounds/en")
SPEECH = ["hello-world", "vm-goodbye", "tt-monkeys", "vm-intro", "tt-weasels",
          "agent-loginok", "vm-nobodyavail", "queue-thankyou"]
HOST = "127.0.0.1"
SERVER_PORTS = (42000, 46000)
TICK = 0.020
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
"""Linux: kernel receive timestamps as struct timespec (asm-generic/socket.h)."""
SO_MEMINFO = 55
SK_MEMINFO_DROPS = 8
"""Linux: getsockopt(SO_MEMINFO) gives SK_MEMINFO_VARS u32s, the socket's drops at index 8."""
SERVERS = ("dialtone", "bare-uvloop", "bare-asyncio")
LOADGEN_C = Path(__file__).resolve().parent / "rtp_loadgen.c"
BUILD_DIR = Path(__file__).resolve().parent / ".build"
GEN_LATE_LIMIT_MS = TICK * 1000
"""A generator whose bursts (p99) are not out by the next tick's deadline has fallen behind:
the step is invalid.  (On loopback a burst costs ~10 us a packet, most of it the kernel
delivering into the server's sockets and waking it on the other core: 1100 legs take ~11 ms
of the tick at p99, at ~50 % of the C generator's core.)"""
OTHERS_LIMIT = 0.10
STEAL_LIMIT = 0.03
"""Other processes' CPU and the hypervisor's steal (shares of one core, over the window) from
which a step is invalid: on this shared 2-core VM, a few % of steal or a test run elsewhere
turns a 3 ms p99 into 6-10 ms (steps that passed had steal <= 1.2 %, others <= 12 %)."""


def load_speech() -> np.ndarray:
    """About 30 s of caller audio: prompts with pauses, a DTMF digit every 8 s."""
    from telephony.dsp.wavio import read_wav_8k
    from telephony.media import dtmf_tone

    parts: list[np.ndarray] = []
    for name in SPEECH:
        path = SOUNDS / f"{name}.wav"
        if path.exists():
            parts.append(read_wav_8k(path))
            parts.append(np.zeros(8000 * 6 // 10, np.int16))
    audio = np.concatenate(parts)
    for k, at in enumerate(range(8000 * 4, len(audio) - 2000, 8000 * 8)):
        tone = dtmf_tone("0123456789"[k % 10], 100)
        audio[at:at + len(tone)] = tone
    return audio[: len(audio) // 160 * 160]


def pcmu_frames() -> bytes:
    """The caller audio as PCMU, 160 bytes per 20 ms frame (what both generators send)."""
    from telephony.codecs.base import get_codec

    return get_codec("PCMU").encode(load_speech())


def pct(values: Any, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


# --- server: the measurement window, common to every server ------------------------------

class _Window:
    """Tick lateness, tick work and GC pauses of a server, recorded from the "mark" on."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self.recording = False
        self.work_ms: list[float] = []
        self.cpu_ms: list[float] = []
        self.gc_pauses: list[float] = []
        self._gc_started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        else:
            self.gc_pauses.append((time.perf_counter() - self._gc_started) * 1000)

    def start(self) -> None:
        self.lateness.clear()
        self.work_ms.clear()
        self.cpu_ms.clear()
        self.gc_pauses.clear()
        self.recording = True

    def stats(self) -> dict[str, Any]:
        lat = np.array(self.lateness) * 1000
        return {
            "ticks": len(lat),
            "lateness_p50_ms": pct(lat, 50),
            "lateness_p99_ms": pct(lat, 99),
            "work_p50_ms": pct(self.work_ms, 50),
            "work_p99_ms": pct(self.work_ms, 99),
            "work_max_ms": max(self.work_ms, default=0.0),
            "work_cpu_p99_ms": pct(self.cpu_ms, 99),
            "gc_pauses": len(self.gc_pauses),
            "gc_max_ms": max(self.gc_pauses, default=0.0),
            "gc_total_ms": sum(self.gc_pauses),
        }


async def _announce(ports: list[int]) -> asyncio.Event:
    """Print the ports, wait for "mark" on stdin; the event is set on SIGTERM."""
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    print(json.dumps({"ports": ports}), flush=True)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()
    return done


def _freeze() -> None:
    # The modules, functions and per-leg set-up objects are permanent: keep the cyclic
    # collector from rescanning them (a full collection then takes a third as long).
    gc.collect()
    gc.freeze()


# --- server: Dialtone's media engine -------------------------------------------------------

async def serve_dialtone(n: int, deadline: bool, freeze: bool) -> None:
    from telephony.aio.media_engine import MediaEngine, MediaEngineConfig
    from telephony.events import DtmfReceived, SpeechEnded
    from telephony.media import CallMedia, MediaConfig

    loop = asyncio.get_running_loop()
    engine = MediaEngine(MediaEngineConfig(host=HOST, port_min=SERVER_PORTS[0],
                                           port_max=SERVER_PORTS[1],
                                           send_on_deadline=deadline))
    # the load generator's sources are learnt by latching (no SDP here)
    cfg = MediaConfig(media_timeout=0.0, latch="symmetric")
    prompt = np.tile(load_speech(), 20)  # ten minutes: it never ends during a run
    legs: list[CallMedia] = []
    ports: list[int] = []
    for _ in range(n):
        m = CallMedia(cfg, now=loop.time())
        ports.append(await engine.open(m))
        m.set_listening(True, now=loop.time())
        m.play("bench", prompt, barge_in=False, now=loop.time())
        legs.append(m)
    counts = {"digits": 0, "utterances": 0}

    def drain(_now: float) -> None:
        for m in legs:
            while (ev := m.next_event()) is not None:
                if isinstance(ev, DtmfReceived):
                    counts["digits"] += 1
                elif isinstance(ev, SpeechEnded):
                    counts["utterances"] += 1

    engine.after_tick.append(drain)
    if freeze:
        _freeze()
    window = _Window()
    mixer_tick = engine.mixer.tick

    def timed_tick(*, now: float) -> list[Any]:
        t, c = time.perf_counter(), time.thread_time()
        out = mixer_tick(now=now)
        window.work_ms.append((time.perf_counter() - t) * 1000)
        window.cpu_ms.append((time.thread_time() - c) * 1000)
        return out

    engine.mixer.tick = timed_tick  # type: ignore[method-assign]
    done = await _announce(ports)
    engine.tick_lateness.clear()
    engine.record_lateness = True
    resets0 = engine.late_resets
    counts["digits"] = counts["utterances"] = 0
    window.start()
    rx0 = sum(m.counters["rx_packets"] for m in legs)
    await done.wait()
    window.lateness = engine.tick_lateness
    rx_total = sum(m.counters["rx_packets"] for m in legs)
    print(json.dumps({
        **window.stats(),
        "late_resets": engine.late_resets - resets0,
        "rx_packets": rx_total - rx0,
        "rx_total": rx_total,
        "rx_rejected": sum(m.counters["rx_bad"] + m.counters["rx_wrong_source"]
                           for m in legs),
        "dtmf_skipped": engine.mixer.dtmf_skipped,
        "vad_skipped": engine.mixer.vad_skipped,
        **counts,
    }), flush=True)
    await engine.close()


# --- server: the bare RTP loop (anchor) ----------------------------------------------------

class _BareLeg(asyncio.DatagramProtocol):
    """One leg of the bare loop: counts what it receives and latches where it came from."""

    def __init__(self, index: int) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.remote: Any = None
        self.rx = 0
        self.ssrc = 0x2000 + index
        self.seq = (index * 997) & 0xFFFF
        self.ts = index * 160_000

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.rx += 1
        if self.remote is None:
            self.remote = addr


async def serve_bare(n: int, freeze: bool) -> None:
    loop = asyncio.get_running_loop()
    legs: list[_BareLeg] = []
    ports: list[int] = []
    port = SERVER_PORTS[0]
    while len(legs) < n:  # even ports, as the media engine takes them
        if port >= SERVER_PORTS[1]:
            raise SystemExit(f"no free port in {SERVER_PORTS}")
        index = len(legs)
        try:
            _, proto = await loop.create_datagram_endpoint(
                functools.partial(_BareLeg, index), local_addr=(HOST, port))
        except OSError:
            port += 2
            continue
        legs.append(proto)
        ports.append(port)
        port += 2
    if freeze:
        _freeze()
    window = _Window()
    late_resets = [0]
    pack = struct.Struct("!BBHII").pack
    payload = b"\xff" * 160  # PCMU silence: 12 + 160 = 172 bytes

    async def ticker() -> None:
        clock = time.monotonic
        start = clock()
        k = 0
        while True:
            k += 1
            due = start + k * TICK
            while (delay := due - clock()) > 0:  # uvloop's timers may wake early
                await asyncio.sleep(delay)
            began = clock()
            if int((began - due) / TICK) > 5:  # as MediaEngine's max_catch_up
                late_resets[0] += 1
                start = began - k * TICK
            if window.recording:
                window.lateness.append(began - due)
            t, c = time.perf_counter(), time.thread_time()
            for leg in legs:
                if leg.remote is not None:
                    leg.seq = (leg.seq + 1) & 0xFFFF
                    leg.ts = (leg.ts + 160) & 0xFFFFFFFF
                    leg.transport.sendto(  # type: ignore[union-attr]
                        pack(0x80, 0, leg.seq, leg.ts, leg.ssrc) + payload, leg.remote)
            window.work_ms.append((time.perf_counter() - t) * 1000)
            window.cpu_ms.append((time.thread_time() - c) * 1000)

    task = loop.create_task(ticker())
    done = await _announce(ports)
    window.start()
    resets0 = late_resets[0]
    rx0 = sum(leg.rx for leg in legs)
    await done.wait()
    task.cancel()
    rx_total = sum(leg.rx for leg in legs)
    print(json.dumps({
        **window.stats(),
        "late_resets": late_resets[0] - resets0,
        "rx_packets": rx_total - rx0,
        "rx_total": rx_total,
        "rx_rejected": 0,
        "dtmf_skipped": 0,
        "vad_skipped": 0,
        "digits": 0,
        "utterances": 0,
    }), flush=True)


def run_server(server: str, n: int, deadline: bool, freeze: bool) -> None:
    import uvloop

    coro = serve_dialtone(n, deadline, freeze) if server == "dialtone" else serve_bare(n, freeze)
    run: Callable[[Any], Any] = asyncio.run if server == "bare-asyncio" else uvloop.run
    if os.environ.get("BENCH_PROFILE"):  # cProfile the server (development aid)
        import cProfile

        with cProfile.Profile() as prof:
            run(coro)
        prof.dump_stats(os.environ["BENCH_PROFILE"])
        return
    run(coro)


# --- load generator (Python; rtp_loadgen.c is its twin) -----------------------------------

def run_loadgen(ports: list[int], warmup: float, measure: float, slots: int = 1) -> None:
    """Leg i sends at tick + (i % slots) * TICK / slots: slots=1, one burst per tick."""
    coded = pcmu_frames()
    frames = [coded[i:i + 160] for i in range(0, len(coded), 160)]
    n = len(ports)
    socks: list[socket.socket] = []
    ep = select.epoll()
    by_fd: dict[int, int] = {}
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 18)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.bind((HOST, 0))
        s.setblocking(False)
        socks.append(s)
        by_fd[s.fileno()] = i
        ep.register(s.fileno(), select.EPOLLIN)
    dests = [(HOST, p) for p in ports]
    offsets = [(i * 37) % len(frames) for i in range(n)]
    ssrcs = [0x1000 + i for i in range(n)]
    arrivals: list[list[tuple[int, float]]] = [[] for _ in range(n)]
    recording = False
    cmsg_size = socket.CMSG_SPACE(16)
    ts_struct = struct.Struct("ll")
    hdr = struct.Struct("!BBHII")

    def drain(i: int) -> None:
        s = socks[i]
        while True:
            try:
                data, anc, _flags, _addr = s.recvmsg(512, cmsg_size)
            except BlockingIOError:
                return
            if not recording or len(data) < 12:
                continue
            t = 0.0
            for level, kind, cdata in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = ts_struct.unpack(cdata[:16])
                    t = sec + nsec * 1e-9
            arrivals[i].append((struct.unpack_from("!H", data, 2)[0], t))

    # tick k is due at start + k * TICK; ticks k_first .. k_end - 1 are the measured window,
    # which ends at tick k_end's deadline
    k_first = round(warmup / TICK)
    k_end = k_first + round(measure / TICK)
    start = time.monotonic() + 0.05
    to_realtime = time.time() - time.monotonic()  # the kernel stamps' clock
    late: list[float] = []
    burst_end: list[float] = []
    sent = sent_total = send_errors = 0
    cpu0 = t_mark = 0.0
    for k in range(k_end + 1):
        seq = k & 0xFFFF
        ts = (k * 160) & 0xFFFFFFFF
        for slot in range(slots):
            due = start + k * TICK + slot * TICK / slots
            if k == k_first and slot == 0:
                recording = True
                cpu0, t_mark = time.process_time(), time.monotonic()
                print("mark", flush=True)
            now = time.monotonic()
            while now < due:
                for fd, _ in ep.poll(due - now):
                    drain(by_fd[fd])
                now = time.monotonic()
            if k == k_end:
                break
            began = time.monotonic()
            ok = 0
            for i in range(slot, n, slots):
                payload = frames[(offsets[i] + k) % len(frames)]
                try:
                    socks[i].sendto(hdr.pack(0x80, 0, seq, ts, ssrcs[i]) + payload, dests[i])
                    ok += 1
                except OSError:
                    send_errors += 1
            finished = time.monotonic()
            sent_total += ok
            if k >= k_first:
                sent += ok
                late.append((began - due) * 1000)
                burst_end.append((finished - due) * 1000)
    for i in range(n):  # what arrived by the end of the window and is still queued
        drain(i)
    recording = False
    cpu1, t_end = time.process_time(), time.monotonic()
    gen_rx_drops = sum(struct.unpack("9I", s.getsockopt(socket.SOL_SOCKET, SO_MEMINFO, 36))
                       [SK_MEMINFO_DROPS] for s in socks)
    dev: list[np.ndarray] = []
    lost = received = 0
    # the share of the server's packets that arrived while this generator was sending
    stamps = np.array([x for legs in arrivals for _, x in legs]) - (start + to_realtime)
    ks = np.floor(stamps / TICK).astype(np.int64)
    into = stamps - ks * TICK
    in_slot = np.clip(np.floor(into * slots / TICK).astype(np.int64), 0, slots - 1)
    inside = (stamps >= 0) & (ks >= k_first) & (ks < k_end)
    which = np.clip((ks - k_first) * slots + in_slot, 0, len(burst_end))
    ends = np.array(burst_end + [0.0])[which] / 1000
    overlap = (float(np.mean((into - in_slot * TICK / slots <= ends)[inside]))
               if inside.any() else 0.0)
    for legs in arrivals:
        if len(legs) < 2:
            continue
        seqs = np.array([s for s, _ in legs], dtype=np.int64)
        t = np.array([x for _, x in legs])
        seqs = np.unwrap(seqs, period=65536).astype(np.int64)
        received += len(np.unique(seqs))
        lost += int(seqs.max() - seqs.min() + 1 - len(np.unique(seqs)))
        consecutive = np.diff(seqs) == 1
        dev.append(np.abs(np.diff(t)[consecutive] - TICK) * 1000)
    alld = np.concatenate(dev) if dev else np.zeros(1)
    print(json.dumps({"loadgen": "python",
                      "legs_heard": sum(1 for a in arrivals if a), "received": received,
                      "lost": lost, "sent": sent,
                      "jitter_p50_ms": float(np.percentile(alld, 50)),
                      "jitter_p99_ms": float(np.percentile(alld, 99)),
                      "jitter_max_ms": float(alld.max()),
                      "sent_total": sent_total, "gen_ticks": len(late) // slots,
                      "gen_ticks_expected": k_end - k_first,
                      "gen_send_errors": send_errors,
                      "gen_late_p50_ms": pct(late, 50), "gen_late_p99_ms": pct(late, 99),
                      "gen_late_max_ms": max(late, default=0.0),
                      "gen_burst_end_p50_ms": pct(burst_end, 50),
                      "gen_burst_end_p99_ms": pct(burst_end, 99),
                      "gen_burst_end_max_ms": max(burst_end, default=0.0),
                      "gen_rx_drops": gen_rx_drops,
                      "gen_cpu": (cpu1 - cpu0) / (t_end - t_mark),
                      "gen_overlap": overlap}), flush=True)


def build_loadgen() -> Path | None:
    """Compile rtp_loadgen.c into benchmarks/.build/ (again when the source is newer);
    None, with a warning, if there is no C compiler or it fails."""
    binary = BUILD_DIR / "rtp_loadgen"
    if binary.exists() and binary.stat().st_mtime >= LOADGEN_C.stat().st_mtime:
        return binary
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        print("WARNING: no C compiler (cc): using the Python load generator, which falls "
              "behind at a few hundred legs (see the invalid verdicts)", file=sys.stderr)
        return None
    BUILD_DIR.mkdir(exist_ok=True)
    done = subprocess.run([cc, "-O2", "-Wall", "-o", str(binary), str(LOADGEN_C), "-lm"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        print(f"WARNING: {cc} failed on {LOADGEN_C.name}: using the Python load generator\n"
              f"{done.stderr}", file=sys.stderr)
        return None
    return binary


# --- orchestration ---------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_seconds() -> tuple[float, float]:
    """CPU time all processes have used (user, nice, system over every CPU) and the time the
    hypervisor took from this VM's CPUs (steal), from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (fields[0] + fields[1] + fields[2]) / hz, fields[7] / hz


def udp_sockets(ports: set[int]) -> tuple[int, int]:
    """(bytes queued, packets dropped) over the 127.0.0.1 UDP sockets bound to ``ports``,
    from /proc/net/udp (rx_queue and drops columns)."""
    queued = drops = 0
    with open("/proc/net/udp") as f:
        next(f)
        for line in f:
            fields = line.split()
            addr, port = fields[1].split(":")
            if addr == "0100007F" and int(port, 16) in ports:
                queued += int(fields[4].split(":")[1], 16)
                drops += int(fields[-1])
    return queued, drops


@dataclass(frozen=True)
class StepConfig:
    server: str
    warmup: float
    measure: float
    pacing: str
    prefix: tuple[str, ...]
    """Wraps the server's command (``nice -n``)."""
    extra: tuple[str, ...]
    """More arguments for the server (``--gc-freeze``)."""
    loadgen: Path | None
    """The compiled C generator, or None for the Python one."""
    frames: Path
    """The PCMU frames file the C generator reads."""
    slots: int = 1
    """Generator pacing: 1, every leg at the tick; more, legs spread over that many slots."""


def step(n: int, cfg: StepConfig) -> dict[str, Any]:
    py = sys.executable
    me = str(Path(__file__).resolve())
    server = subprocess.Popen([*cfg.prefix, "taskset", "-c", "0", py, me, "--role", "server",
                               "--server", cfg.server, "--n", str(n), "--pacing", cfg.pacing,
                               *cfg.extra],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        ports = json.loads(server.stdout.readline())["ports"]
        if cfg.loadgen is not None:
            gen_cmd = [str(cfg.loadgen), str(cfg.frames), str(cfg.warmup), str(cfg.measure),
                       str(cfg.slots)]
        else:
            gen_cmd = [py, me, "--role", "loadgen", "--warmup", str(cfg.warmup),
                       "--measure", str(cfg.measure), "--spread", str(cfg.slots)]
        gen = subprocess.Popen(["taskset", "-c", "1", *gen_cmd],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None and gen.stdin is not None
        gen.stdin.write(json.dumps(ports) + "\n")
        gen.stdin.close()
        assert gen.stdout.readline().strip() == "mark"
        server.stdin.write("mark\n")
        server.stdin.flush()
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        m0, st0 = machine_seconds()
        result = json.loads(gen.stdout.readline())
        c1, t1 = cpu_seconds(server.pid), time.monotonic()
        m1, st1 = machine_seconds()
        gen.wait(timeout=10)
        # let the server take in what is still queued before it counts (a busy server
        # lags); then its count against what the generator sent is exact
        port_set = set(ports)
        give_up = time.monotonic() + 3.0
        while (queued := udp_sockets(port_set))[0] and time.monotonic() < give_up:
            time.sleep(0.02)
        server.send_signal(signal.SIGTERM)
        stats = json.loads(server.stdout.readline())
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    return {"n": n, "server": cfg.server, **result, **stats,
            "server_cpu": (c1 - c0) / (t1 - t0),
            # what other processes took meanwhile (2 cores shared): noise, not our load
            "other_cpu": max(0.0, (m1 - m0 - (c1 - c0)) / (t1 - t0) - result["gen_cpu"]),
            "steal": (st1 - st0) / (t1 - t0),
            # inbound: packets the server should have received (all the generator sent,
            # warm-up included) but did not; rx_drops: the kernel's drops on its sockets
            "rx_lost": result["sent_total"] - stats["rx_total"],
            "rx_drops": queued[1], "rx_queued_bytes": queued[0]}


def step_faults(r: dict[str, Any]) -> list[str]:
    """Why a step is no result either way (empty: the generator kept up and the machine was
    ours): the generator fell behind or lost packets itself, or other processes or the
    hypervisor took a share of the CPUs that moves the tail of the jitter."""
    faults = []
    expected = r["gen_ticks_expected"] * r["n"]
    if r["gen_ticks"] < r["gen_ticks_expected"] or r["sent"] < expected:
        faults.append(f"sent {r['sent']} of {expected}")
    if r["gen_send_errors"]:
        faults.append(f"{r['gen_send_errors']} send errors")
    if r["gen_rx_drops"]:
        faults.append(f"{r['gen_rx_drops']} dropped on its sockets")
    if r["gen_burst_end_p99_ms"] >= GEN_LATE_LIMIT_MS:
        faults.append(f"bursts end {r['gen_burst_end_p99_ms']:.1f} ms late at p99")
    if r["other_cpu"] >= OTHERS_LIMIT:
        faults.append(f"other processes took {r['other_cpu'] * 100:.0f}% of a core")
    if r["steal"] >= STEAL_LIMIT:
        faults.append(f"the hypervisor took {r['steal'] * 100:.1f}% (steal)")
    return faults


def verdict(r: dict[str, Any]) -> str:
    if r["faults"]:
        return "invalid"
    ok = (r["jitter_p99_ms"] < 5.0 and r["lost"] == 0 and r["rx_lost"] == 0
          and r["late_resets"] == 0)
    return "ok" if ok else "fail"


def machine() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                  if ln.startswith("Model name")), "unknown")
    return f"{os.cpu_count()} cores, {model}"


def print_step(r: dict[str, Any]) -> None:
    print(f"{r['server']} N={r['n']:4d} p99 jitter {r['jitter_p99_ms']:.2f} ms "
          f"(p50 {r['jitter_p50_ms']:.2f}, "
          f"max {r['jitter_max_ms']:.1f}) lost {r['lost']} of {r['received'] + r['lost']} "
          f"rx lost {r['rx_lost']} (kernel drops {r['rx_drops']}) "
          f"server CPU {r['server_cpu'] * 100:.0f}% (others {r['other_cpu'] * 100:.0f}%, "
          f"steal {r['steal'] * 100:.1f}%) "
          f"tick late p99 "
          f"{r['lateness_p99_ms']:.1f} ms resets {r['late_resets']} digits {r['digits']} "
          f"utterances {r['utterances']} rx {r['rx_packets']}/{r['sent']} "
          f"gc {r['gc_pauses']} max {r['gc_max_ms']:.1f} ms "
          f"tick work p50/p99/max {r['work_p50_ms']:.1f}/{r['work_p99_ms']:.1f}/"
          f"{r['work_max_ms']:.1f} ms (CPU p99 {r['work_cpu_p99_ms']:.1f}) | "
          f"{r['loadgen']} generator: burst start late p99/max {r['gen_late_p99_ms']:.2f}/"
          f"{r['gen_late_max_ms']:.1f} ms, end p99/max {r['gen_burst_end_p99_ms']:.2f}/"
          f"{r['gen_burst_end_max_ms']:.1f} ms, CPU {r['gen_cpu'] * 100:.0f}%, "
          f"bursts meet {r['gen_overlap'] * 100:.0f}%, "
          f"ticks {r['gen_ticks']}/{r['gen_ticks_expected']}, drops {r['gen_rx_drops']} "
          f"{r['verdict'].upper()}"
          + (f" ({'; '.join(r['faults'])})" if r["faults"] else ""), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("bench", "server", "loadgen"), default="bench")
    ap.add_argument("--server", default="dialtone",
                    help=f"one or more (comma-separated) of {', '.join(SERVERS)}")
    ap.add_argument("--loadgen", choices=("c", "python"), default="c")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--steps", default="100,200,300,350,400,500,600,800")
    ap.add_argument("--warmup", type=float, default=4.0)
    ap.add_argument("--measure", type=float, default=20.0)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--pacing", choices=("deadline", "immediate"), default="deadline",
                    help="MediaEngineConfig.send_on_deadline on (default) or off")
    ap.add_argument("--gc-freeze", action="store_true",
                    help="server: gc.freeze() after setting up the legs")
    ap.add_argument("--nice", type=int, default=0,
                    help="run the server under `nice -n` (negative needs root)")
    ap.add_argument("--spread", type=int, default=1, choices=range(1, 21), metavar="SLOTS",
                    help="generator: spread the legs' sends over SLOTS slots of the 20 ms "
                         "tick (default 1: all legs in one burst at the tick)")
    args = ap.parse_args()
    servers = args.server.split(",")
    if bad := [s for s in servers if s not in SERVERS]:
        ap.error(f"unknown --server {', '.join(bad)} (choose from {', '.join(SERVERS)})")
    if args.role == "server":
        run_server(servers[0], args.n, args.pacing == "deadline", args.gc_freeze)
        return
    if args.role == "loadgen":
        run_loadgen(json.loads(sys.stdin.readline()), args.warmup, args.measure, args.spread)
        return
    binary = build_loadgen() if args.loadgen == "c" else None
    gen_name = "C, benchmarks/rtp_loadgen.c" if binary else "Python"
    load = os.getloadavg()
    rows: list[dict[str, Any]] = []
    best: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench_media_") as tmp:
        frames = Path(tmp) / "pcmu_frames.bin"
        frames.write_bytes(pcmu_frames())
        for server in servers:
            cfg = StepConfig(server=server, warmup=args.warmup, measure=args.measure,
                             pacing=args.pacing,
                             prefix=("nice", "-n", str(args.nice)) if args.nice else (),
                             extra=("--gc-freeze",) if args.gc_freeze else (),
                             loadgen=binary, frames=frames, slots=args.spread)
            best[server] = 0
            mine: list[dict[str, Any]] = []
            for n in (int(x) for x in args.steps.split(",")):
                r = step(n, cfg)
                r["faults"] = step_faults(r)
                r["verdict"] = verdict(r)
                mine.append(r)
                print_step(r)
                if r["verdict"] == "ok":
                    best[server] = n
                elif len(mine) >= 2 and r["verdict"] == mine[-2]["verdict"] == "fail":
                    break  # two failures in a row: past the knee (invalid steps say nothing)
            rows += mine
    load_after = os.getloadavg()
    for server in servers:
        print(f"capacity ({server}): {best[server]} legs{below(rows, server, best)}")
    print(f"load average before {load[0]:.2f}, after {load_after[0]:.2f}; "
          f"load generator: {gen_name}")
    if args.no_write:
        return
    variant = [v for v, on in (("engine sending immediately", args.pacing != "deadline"),
                                ("gc.freeze()", args.gc_freeze),
                                (f"nice {args.nice}", bool(args.nice)),
                                ("Python load generator", binary is None),
                                (f"generator spread over {args.spread} slots",
                                 args.spread > 1)) if on]
    command = (f"Command: `.venv/bin/python benchmarks/bench_media_capacity.py "
               f"--server {args.server} --steps {args.steps} --measure {args.measure:g} "
               f"--pacing {args.pacing} --loadgen {args.loadgen}"
               f"{f' --spread {args.spread}' if args.spread > 1 else ''}"
               f"{' --gc-freeze' if args.gc_freeze else ''}"
               f"{f' --nice {args.nice}' if args.nice else ''}`  ")
    machine_line = (f"Machine: {machine()}; 1-minute load average {load[0]:.2f} before, "
                    f"{load_after[0]:.2f} after (2 cores shared with other work).  ")
    generator = (f"Load generator ({gen_name}): `taskset -c 1`, PCMU speech + a DTMF digit "
                 "every 8 s per leg, kernel receive timestamps; \"gen burst end\" is how late "
                 "its last packet of a tick left after the tick's deadline (a step is invalid "
                 f"when its p99 reaches {GEN_LATE_LIMIT_MS:g} ms, the next deadline, ticks are "
                 f"missing or its sockets drop, and when other processes took "
                 f"{OTHERS_LIMIT * 100:.0f}% of a core or the hypervisor "
                 f"{STEAL_LIMIT * 100:.0f}%).  {args.warmup:g} s warm-up, "
                 f"{args.measure:g} s measured per step; \"lost in\" counts the whole run "
                 "(what the generator sent against what the server counted); \"bursts "
                 "meet\": the share of the server's packets that arrived while the generator "
                 "was sending (where the two processes' bursts meet, both slow down); "
                 "\"others' CPU / steal\": what other processes used meanwhile, and what the "
                 "hypervisor took from this VM (shares of one core).")
    path = ROOT / "benchmarks" / "results" / "media.md"
    dialtone = [r for r in rows if r["server"] == "dialtone"]
    bare = [r for r in rows if r["server"] != "dialtone"]
    suffix = f" ({', '.join(variant)})" if variant else ""
    if dialtone:
        title = "## Media capacity: call legs on one core" + (suffix or " (defaults)")
        lines = [title, "", command, machine_line,
                 ("Server: `taskset -c 0`, uvloop, MediaEngine, N legs created directly (no "
                  "SIP), each listening (VAD), in-band DTMF on, a prompt playing.  "
                  + generator), "", *table(dialtone), "",
                 (f"**Capacity: {best['dialtone']} legs**{below(rows, 'dialtone', best)} "
                  "(p99 < 5 ms, no loss). Goal >= 500; "
                  "anchors (issue): pyVoIP ~100 calls/process, bare asyncio RTP ~300 streams "
                  "at half a core, uvloop ~900."), ""]
        write_section(path, title, lines)
    if bare:
        title = "## Media capacity anchors: bare RTP loops" + (suffix or " (defaults)")
        cpu_at = {r["server"]: r["server_cpu"] for r in bare if r["n"] == best[r["server"]]}
        caps = ", ".join(f"{s} **{best[s]}**"
                         + (f" at {cpu_at[s] * 100:.0f}% CPU" if s in cpu_at else "")
                         + below(rows, s, best)
                         for s in servers if s != "dialtone")
        lines = [title, "", command, machine_line,
                 ("Server: `taskset -c 0`, the issue's anchor: a bare RTP loop on uvloop or "
                  "asyncio's default loop.  N UDP sockets (same port range) whose "
                  "datagram_received only counts the datagram and latches its source, one "
                  "shared 20 ms tick on absolute deadlines sending every leg one fixed "
                  "172-byte RTP packet (its own seq/timestamp).  " + generator), "",
                 *table(bare), "",
                 (f"**Capacity** (legs, p99 < 5 ms, no loss): {caps}.  The issue's anchors "
                  "(measured on a machine said to be ~1.7x faster per core for Python): bare "
                  "asyncio RTP ~300 streams at half a core, uvloop ~900."), ""]
        write_section(path, title, lines)


def below(rows: list[dict[str, Any]], server: str, best: dict[str, int]) -> str:
    """Steps under the capacity that did not pass: the figure is not a clean knee."""
    under = [str(r["n"]) for r in rows
             if r["server"] == server and r["n"] < best[server] and r["verdict"] != "ok"]
    return f" (but {', '.join(under)} did not pass)" if under else ""


def table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        ("| server | legs | p99 send jitter ms | p50 ms | max ms | lost out / in | server CPU "
         "| send late p99 ms | tick work p50 / p99 ms (CPU p99) | GC max ms | late resets "
         "| digits | utterances | gen burst end p99 / max ms | gen CPU | bursts meet "
         "| others' CPU / steal | verdict |"),
        "|---|" + "---:|" * 17 + "---|",
    ]
    for r in rows:
        bare = r["server"] != "dialtone"
        lines.append(f"| {r['server']} | {r['n']} | {r['jitter_p99_ms']:.2f} | "
                     f"{r['jitter_p50_ms']:.2f} | "
                     f"{r['jitter_max_ms']:.1f} | {r['lost']} / {r['rx_lost']} | "
                     f"{r['server_cpu'] * 100:.0f}% | {r['lateness_p99_ms']:.1f} | "
                     f"{r['work_p50_ms']:.1f} / {r['work_p99_ms']:.1f} "
                     f"({r['work_cpu_p99_ms']:.1f}) | {r['gc_max_ms']:.1f} | "
                     f"{r['late_resets']} | {'-' if bare else r['digits']} | "
                     f"{'-' if bare else r['utterances']} | "
                     f"{r['gen_burst_end_p99_ms']:.1f} / {r['gen_burst_end_max_ms']:.1f} | "
                     f"{r['gen_cpu'] * 100:.0f}% | {r['gen_overlap'] * 100:.0f}% | "
                     f"{r['other_cpu'] * 100:.0f}% / {r['steal'] * 100:.1f}% | "
                     f"{r['verdict']} |")
    return lines


def write_section(path: Path, heading: str, lines: list[str]) -> None:
    """Replace (or append) the section that starts with ``heading`` in ``path``."""
    text = path.read_text() if path.exists() else "# Media benchmarks\n\n"
    out: list[str] = []
    skipping = False
    for ln in text.splitlines():
        if ln.startswith("## "):
            skipping = ln.startswith(heading)
        if not skipping:
            out.append(ln)
    body = "\n".join(out).rstrip() + "\n\n" + "\n".join(lines) + "\n"
    path.write_text(body)


if __name__ == "__main__":
    main()
