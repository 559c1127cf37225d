"""Concurrent call legs on one core: G.711 decode, in-band DTMF, VAD and a prompt on every leg.

Run:  .venv/bin/python benchmarks/bench_media_capacity.py [--steps 100,200,...] [--measure 20]

Two processes on loopback (127.0.0.1 only):

* the **server** (``taskset -c 0``, uvloop) opens N media legs through
  :class:`telephony.aio.media_engine.MediaEngine` (one real UDP socket each, one shared
  20 ms tick).  Every leg is a :class:`telephony.media.CallMedia` listening (VAD on), with
  in-band DTMF detection and a long prompt playing.  SIP is not set up: the legs are
  created directly, as this measures the media path only.
* the **load generator** (``taskset -c 1``, plain epoll, no asyncio) sends every leg 50 pps
  of PCMU (Asterisk prompts: speech with pauses, plus a DTMF digit every 8 s) from its own
  socket, and timestamps every packet the server sends back with the kernel's receive
  timestamp (``SO_TIMESTAMPNS``), so its own scheduling does not add jitter.

Per step: p99 over all legs of |arrival interval - 20 ms| (consecutive sequence numbers),
lost packets (sequence gaps), the server's CPU share (``/proc/<pid>/stat``) over the
measurement window, its tick lateness and the digits it detected.  The capacity is the
largest N with p99 < 5 ms and no loss.  Writes a section of benchmarks/results/media.md.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

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


# --- server ------------------------------------------------------------------------------

async def serve(n: int, deadline: bool, freeze: bool) -> None:
    from telephony.aio.media_engine import MediaEngine, MediaEngineConfig
    from telephony.events import DtmfReceived, SpeechEnded
    from telephony.media import CallMedia, MediaConfig

    loop = asyncio.get_running_loop()
    engine = MediaEngine(MediaEngineConfig(host=HOST, port_min=SERVER_PORTS[0],
                                           port_max=SERVER_PORTS[1],
                                           send_on_deadline=deadline))
    cfg = MediaConfig(media_timeout=0.0)
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
        # The modules, functions and per-leg set-up objects are permanent: keep the cyclic
        # collector from rescanning them (a full collection then takes a third as long).
        gc.collect()
        gc.freeze()
    gc_pauses: list[float] = []
    gc_started = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            gc_pauses.append((time.perf_counter() - gc_started[0]) * 1000)

    gc.callbacks.append(on_gc)
    work_ms: list[float] = []
    cpu_ms: list[float] = []
    mixer_tick = engine.mixer.tick

    def timed_tick(*, now: float) -> list[object]:
        t, c = time.perf_counter(), time.thread_time()
        out = mixer_tick(now=now)
        work_ms.append((time.perf_counter() - t) * 1000)
        cpu_ms.append((time.thread_time() - c) * 1000)
        return out

    engine.mixer.tick = timed_tick  # type: ignore[method-assign]
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    print(json.dumps({"ports": ports}), flush=True)
    # stdin: "mark" starts the measurement window (lateness, counters)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.readline()
    engine.tick_lateness.clear()
    engine.record_lateness = True
    resets0 = engine.late_resets
    counts["digits"] = counts["utterances"] = 0
    gc_pauses.clear()
    work_ms.clear()
    cpu_ms.clear()
    rx0 = sum(m.counters["rx_packets"] for m in legs)
    await done.wait()
    lat = np.array(engine.tick_lateness) * 1000
    print(json.dumps({
        "ticks": len(lat),
        "lateness_p50_ms": float(np.percentile(lat, 50)) if len(lat) else 0.0,
        "lateness_p99_ms": float(np.percentile(lat, 99)) if len(lat) else 0.0,
        "late_resets": engine.late_resets - resets0,
        "rx_packets": sum(m.counters["rx_packets"] for m in legs) - rx0,
        "work_p50_ms": float(np.percentile(work_ms, 50)) if work_ms else 0.0,
        "work_p99_ms": float(np.percentile(work_ms, 99)) if work_ms else 0.0,
        "work_max_ms": max(work_ms, default=0.0),
        "work_cpu_p99_ms": float(np.percentile(cpu_ms, 99)) if cpu_ms else 0.0,
        "gc_pauses": len(gc_pauses),
        "gc_max_ms": max(gc_pauses, default=0.0),
        "gc_total_ms": sum(gc_pauses),
        "dtmf_skipped": engine.mixer.dtmf_skipped,
        "vad_skipped": engine.mixer.vad_skipped,
        **counts,
    }), flush=True)
    await engine.close()


def run_server(n: int, deadline: bool, freeze: bool) -> None:
    import uvloop

    if os.environ.get("BENCH_PROFILE"):  # cProfile the server (development aid)
        import cProfile

        with cProfile.Profile() as prof:
            uvloop.run(serve(n, deadline, freeze))
        prof.dump_stats(os.environ["BENCH_PROFILE"])
        return
    uvloop.run(serve(n, deadline, freeze))


# --- load generator --------------------------------------------------------------------

def run_loadgen(ports: list[int], warmup: float, measure: float) -> None:
    from telephony.codecs.base import get_codec

    codec = get_codec("PCMU")
    audio = load_speech()
    coded = codec.encode(audio)
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

    def drain(fd: int) -> None:
        i = by_fd[fd]
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

    start = time.monotonic() + 0.05
    end_warm = start + warmup
    end = end_warm + measure
    k = 0
    while True:
        due = start + k * TICK
        now = time.monotonic()
        if now >= end:
            break
        if not recording and now >= end_warm:
            recording = True
            print("mark", flush=True)
        while now < due:
            for fd, _ in ep.poll(due - now):
                drain(fd)
            now = time.monotonic()
        seq = k & 0xFFFF
        ts = (k * 160) & 0xFFFFFFFF
        for i in range(n):
            payload = frames[(offsets[i] + k) % len(frames)]
            socks[i].sendto(hdr.pack(0x80, 0, seq, ts, ssrcs[i]) + payload, dests[i])
        k += 1
    for fd, _ in ep.poll(0.1):
        drain(fd)
    dev: list[np.ndarray] = []
    lost = received = 0
    for legs in arrivals:
        if len(legs) < 2:
            continue
        seq = np.array([s for s, _ in legs], dtype=np.int64)
        t = np.array([x for _, x in legs])
        seq = np.unwrap(seq, period=65536).astype(np.int64)
        received += len(np.unique(seq))
        lost += int(seq.max() - seq.min() + 1 - len(np.unique(seq)))
        consecutive = np.diff(seq) == 1
        dev.append(np.abs(np.diff(t)[consecutive] - TICK) * 1000)
    alld = np.concatenate(dev) if dev else np.zeros(1)
    print(json.dumps({"legs_heard": sum(1 for a in arrivals if a), "received": received,
                      "lost": lost, "sent": k * n,
                      "jitter_p50_ms": float(np.percentile(alld, 50)),
                      "jitter_p99_ms": float(np.percentile(alld, 99)),
                      "jitter_max_ms": float(alld.max())}), flush=True)


# --- orchestration ---------------------------------------------------------------------

def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def step(n: int, warmup: float, measure: float, pacing: str, prefix: list[str],
         extra: list[str]) -> dict[str, float]:
    py = sys.executable
    me = str(Path(__file__).resolve())
    server = subprocess.Popen([*prefix, "taskset", "-c", "0", py, me, "--role", "server",
                               "--n", str(n), "--pacing", pacing, *extra],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and server.stdin is not None
        ports = json.loads(server.stdout.readline())["ports"]
        gen = subprocess.Popen(["taskset", "-c", "1", py, me, "--role", "loadgen",
                                "--warmup", str(warmup), "--measure", str(measure)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert gen.stdout is not None and gen.stdin is not None
        gen.stdin.write(json.dumps(ports) + "\n")
        gen.stdin.close()
        assert gen.stdout.readline().strip() == "mark"
        server.stdin.write("mark\n")
        server.stdin.flush()
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        result = json.loads(gen.stdout.readline())
        c1, t1 = cpu_seconds(server.pid), time.monotonic()
        gen.wait(timeout=10)
        server.send_signal(signal.SIGTERM)
        stats = json.loads(server.stdout.readline())
        server.wait(timeout=10)
    finally:
        if server.poll() is None:
            server.kill()
    return {"n": n, **result, **stats, "server_cpu": (c1 - c0) / (t1 - t0)}


def machine() -> str:
    out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in out.splitlines()
                  if ln.startswith("Model name")), "unknown")
    return f"{os.cpu_count()} cores, {model}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--role", choices=("bench", "server", "loadgen"), default="bench")
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
    args = ap.parse_args()
    if args.role == "server":
        run_server(args.n, args.pacing == "deadline", args.gc_freeze)
        return
    if args.role == "loadgen":
        run_loadgen(json.loads(sys.stdin.readline()), args.warmup, args.measure)
        return
    load = os.getloadavg()
    rows = []
    best = 0
    for n in (int(x) for x in args.steps.split(",")):
        prefix = ["nice", "-n", str(args.nice)] if args.nice else []
        extra = ["--gc-freeze"] if args.gc_freeze else []
        r = step(n, args.warmup, args.measure, args.pacing, prefix, extra)
        # inbound: what the server's sockets took in, against what the generator sent
        r["rx_lost"] = max(0, round(args.measure / TICK) * n - r["rx_packets"])
        ok = (r["jitter_p99_ms"] < 5.0 and r["lost"] == 0 and r["rx_lost"] == 0
              and r["late_resets"] == 0)
        r["ok"] = ok
        rows.append(r)
        print(f"N={n:4d} p99 jitter {r['jitter_p99_ms']:.2f} ms (p50 {r['jitter_p50_ms']:.2f}, "
              f"rx lost {r['rx_lost']}, "
              f"max {r['jitter_max_ms']:.1f}) lost {r['lost']} of {r['received'] + r['lost']} "
              f"server CPU {r['server_cpu'] * 100:.0f}% tick late p99 "
              f"{r['lateness_p99_ms']:.1f} ms resets {r['late_resets']} digits {r['digits']} "
              f"utterances {r['utterances']} rx {r['rx_packets']}/{r['sent']} "
              f"gc {r['gc_pauses']} max {r['gc_max_ms']:.1f} ms "
              f"tick work p50/p99/max {r['work_p50_ms']:.1f}/{r['work_p99_ms']:.1f}/"
              f"{r['work_max_ms']:.1f} ms (CPU p99 {r['work_cpu_p99_ms']:.1f}) "
              f"{'OK' if ok else 'FAIL'}", flush=True)
        if ok:
            best = n
        elif len(rows) >= 2 and not rows[-2]["ok"]:
            break  # two failures in a row: past the knee
    load_after = os.getloadavg()
    print(f"capacity: {best} legs (load average before {load[0]:.2f}, after {load_after[0]:.2f})")
    if args.no_write:
        return
    variant = [v for v, on in (("engine sending immediately", args.pacing != "deadline"),
                                ("gc.freeze()", args.gc_freeze),
                                (f"nice {args.nice}", bool(args.nice))) if on]
    title = "## Media capacity: call legs on one core" + (
        f" ({', '.join(variant)})" if variant else " (defaults)")
    lines = [
        title,
        "",
        (f"Command: `.venv/bin/python benchmarks/bench_media_capacity.py --steps {args.steps} "
        f"--measure {args.measure:g} --pacing {args.pacing}"
        f"{' --gc-freeze' if args.gc_freeze else ''}{f' --nice {args.nice}' if args.nice else ''}`  "),
        (f"Machine: {machine()}; 1-minute load average {load[0]:.2f} before, "
        f"{load_after[0]:.2f} after (2 cores shared with other work).  "),
        ("Server: `taskset -c 0`, uvloop, MediaEngine, N legs created directly (no SIP), each "
        "listening (VAD), in-band DTMF on, a prompt playing.  Load generator: `taskset -c 1`, "
        "PCMU speech + a DTMF digit every 8 s per leg, kernel receive timestamps.  "
        f"{args.warmup:g} s warm-up, {args.measure:g} s measured per step."),
        "",
        ("| legs | p99 send jitter ms | p50 ms | max ms | lost out / in | server CPU "
        "| send late p99 ms | tick work p50 / p99 ms (CPU p99) | GC max ms | late resets "
        "| digits | utterances | verdict |"),
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['n']} | {r['jitter_p99_ms']:.2f} | {r['jitter_p50_ms']:.2f} | "
                     f"{r['jitter_max_ms']:.1f} | {r['lost']} / {r['rx_lost']} | "
                     f"{r['server_cpu'] * 100:.0f}% | {r['lateness_p99_ms']:.1f} | "
                     f"{r['work_p50_ms']:.1f} / {r['work_p99_ms']:.1f} "
                     f"({r['work_cpu_p99_ms']:.1f}) | {r['gc_max_ms']:.1f} | "
                     f"{r['late_resets']} | {r['digits']} | "
                     f"{r['utterances']} | {'ok' if r['ok'] else 'fail'} |")
    lines += ["", (f"**Capacity: {best} legs** (p99 < 5 ms, no loss). Goal >= 500; anchors "
              "(issue): pyVoIP ~100 calls/process, bare asyncio RTP ~300 streams at half a "
              "core, uvloop ~900."), ""]
    write_section(ROOT / "benchmarks" / "results" / "media.md", title, lines)


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
