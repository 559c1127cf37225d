"""CPU per received RTP datagram: the event loop's datagram callbacks vs reading at the tick.

Run:  .venv/bin/python benchmarks/bench_rtp_read.py [--sockets 300] [--runs 2]

Two processes on 127.0.0.1: a sender (``taskset -c 0``) sends every one of N UDP sockets a
172-byte datagram every 20 ms, spread over the tick in 20 slots of 1 ms (as independent
callers would); the receiver (``taskset -c 1``, uvloop, a 20 ms tick task as the media
engine has) reads them either with ``loop`` (one ``create_datagram_endpoint`` per socket,
the callback counts) or ``tick`` (sockets off the loop, at each tick one ``epoll.poll(0)``
and a ``recvfrom`` per ready socket, asked again until none is ready, as
``MediaEngine.read_sockets``).  Receiver process CPU (getrusage) over 6 s divided by the
datagrams it got.  Nothing else is done with a datagram: it measures the read path only.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import select
import socket
import subprocess
import sys
import time

BASE = 53000
DURATION = 6.0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def sender(n: int) -> None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pkt = bytes(172)
    start = time.monotonic()
    k = 0
    while time.monotonic() - start < DURATION + 3:
        for j in range(20):
            delay = start + k * 0.020 + j * 0.001 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            for i in range(j, n, 20):
                s.sendto(pkt, ("127.0.0.1", BASE + 2 * i))
        k += 1


async def _ticks(until: float) -> None:
    start = time.monotonic()
    k = 0
    while time.monotonic() < until:
        k += 1
        delay = start + k * 0.020 - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        yield_read()


def yield_read() -> None:
    """Replaced by the tick reader in ``tick`` mode."""


async def receiver(n: int, mode: str) -> tuple[int, float]:
    global yield_read
    count = 0
    if mode == "loop":
        loop = asyncio.get_running_loop()

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: object) -> None:
                nonlocal count
                count += 1

        for i in range(n):
            await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", BASE + 2 * i))
    else:
        ep = select.epoll()
        readers = {}
        for i in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", BASE + 2 * i))
            s.setblocking(False)
            ep.register(s.fileno(), select.EPOLLIN)
            readers[s.fileno()] = s.recvfrom

        def read() -> None:
            nonlocal count
            for _ in range(4):
                ready = ep.poll(0)
                if not ready:
                    return
                for fd, _ev in ready:
                    try:
                        readers[fd](2048)
                    except OSError:
                        continue
                    count += 1

        yield_read = read
    await asyncio.sleep(1.0)
    c0, n0 = _cpu(), count
    await _ticks(time.monotonic() + DURATION)
    return count - n0, _cpu() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sockets", type=int, default=300)
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--role", choices=("bench", "sender", "loop", "tick"), default="bench")
    args = ap.parse_args()
    if args.role == "sender":
        sender(args.sockets)
        return
    if args.role in ("loop", "tick"):
        import uvloop
        uvloop.install()
        got, cpu = asyncio.run(receiver(args.sockets, args.role))
        print(f"| {args.role} | {args.sockets} | {got} | {cpu:.3f} | {cpu / got * 1e6:.2f} |",
              flush=True)
        return
    print("| read | sockets | datagrams | receiver CPU s | µs per datagram |")
    print("|---|---:|---:|---:|---:|", flush=True)
    for _ in range(args.runs):
        for mode in ("loop", "tick"):
            tx = subprocess.Popen(["taskset", "-c", "0", sys.executable, __file__, "--role",
                                   "sender", "--sockets", str(args.sockets)])
            time.sleep(0.1)
            subprocess.run(["taskset", "-c", "1", sys.executable, __file__, "--role", mode,
                            "--sockets", str(args.sockets)], check=True)
            tx.wait()


if __name__ == "__main__":
    main()
