"""The extraction's progress lines (ctpatch.engine.run.Progress): patches done of the total as a percentage,
the rate and the time left, at every tenth of the work or every 30 s, whichever comes first (issue 22: a
long extraction wrote one line per rank at its end)."""

from __future__ import annotations

import re

import pytest

import ctpatch.engine.run as run


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(run.time, "perf_counter", c)
    return c


LINE = re.compile(r"^subset0: (\d+)% \((\d+) of (\d+) (patches|blocks)\), ([\d.]+) \4/s, (\d+) s left$")


def test_a_line_at_every_tenth_of_a_fast_run(clock):
    lines = []
    p = run.Progress("subset0", 1000, 40, lines.append)
    for _ in range(100):  # 10 patches a second: a tenth every 10 s, before 30 s pass
        clock.now += 1.0
        p.done(10)
    assert [LINE.match(ln).group(1) for ln in lines] == [str(10 * k) for k in range(1, 11)], lines
    first = LINE.match(lines[0]).groups()
    assert first[1:4] == ("100", "1000", "patches") and float(first[4]) == 10.0 and first[5] == "90"
    assert lines[-1] == "subset0: 100% (1000 of 1000 patches), 10.0 patches/s, 0 s left"


def test_a_line_every_30_seconds_of_a_slow_run(clock):
    lines = []
    p = run.Progress("subset0", 1000, 40, lines.append)
    for _ in range(95):  # 1 patch a second: 30 s pass long before a tenth of the work
        clock.now += 1.0
        p.done(1)
    assert [LINE.match(ln).group(2) for ln in lines] == ["30", "60", "90"], lines
    assert lines[0] == "subset0: 3% (30 of 1000 patches), 1.0 patches/s, 970 s left"


def test_blocks_when_the_patch_counts_are_not_known(clock):
    lines = []
    p = run.Progress("subset0", None, 4, lines.append)
    for _ in range(4):
        clock.now += 2.0
        p.done(None)
    assert [LINE.match(ln).group(1, 4) for ln in lines] == [
        ("25", "blocks"),
        ("50", "blocks"),
        ("75", "blocks"),
        ("100", "blocks"),
    ]
