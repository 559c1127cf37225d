"""When the node gives malloc's free heap back (telephony.aio.memory, issue 12): once the
load (calls and transactions held) has fallen to half its peak and stayed there, not on
every dip, and not for small changes."""

from __future__ import annotations

import platform

from telephony.aio.memory import TrimPolicy, malloc_trim, trim_available


def test_trims_once_the_load_has_fallen_and_settled() -> None:
    p = TrimPolicy(fraction=0.5, min_drop=200, settle=5.0)
    now = 0.0
    for load in (100, 1500, 4000, 4600):  # a burst
        assert not p.observe(load, now=now)
        now += 2.0
    assert not p.observe(3000, now=now)  # falling, not yet half
    now += 2.0
    assert not p.observe(2000, now=now)  # half: settling starts
    now += 2.0
    assert not p.observe(2500, now=now)  # back above half: settling starts again
    now += 2.0
    assert not p.observe(1800, now=now)
    now += 4.0
    assert not p.observe(1700, now=now)  # 4 s below half: not yet
    now += 2.0
    assert p.observe(1600, now=now)  # 6 s: trim, and the peak is now 1600
    assert p.peak == 1600
    now += 2.0
    assert not p.observe(1500, now=now)
    for _ in range(10):  # the lingering calls reaped: one more trim, then quiet
        now += 2.0
        p.observe(400, now=now)
    assert p.peak == 400
    trims = 0
    for _ in range(50):
        now += 2.0
        trims += p.observe(400 if _ % 2 else 150, now=now)
    assert trims == 0  # small swings (less than min_drop) never trim


def test_malloc_trim_on_glibc_only() -> None:
    took = malloc_trim()
    if platform.libc_ver()[0] == "glibc":
        assert trim_available() and took is not None and took >= 0.0
    else:
        assert not trim_available() and took is None
