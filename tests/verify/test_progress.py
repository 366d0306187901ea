"""Progress without a terminal: a line per finished unit (throttled) and a heartbeat while work goes on."""

import io
import time

from limen.verify.progress import PlainLines, elapsed, progress


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def _lines(stream):
    return stream.getvalue().splitlines()


def test_a_line_per_unit_throttled_to_one_a_second_with_the_latest_state_kept():
    clock, out = FakeClock(), io.StringIO()
    lines = PlainLines(5, "runs", out, clock=clock, interval=10.0)
    lines.advance(1)
    assert _lines(out) == ["runs: 1/5 (0 s)"]
    clock.t += 0.4
    lines.advance(1, "group 2")            # too soon after the last line: kept, not lost
    lines.beat()
    assert len(_lines(out)) == 1
    clock.t += 0.6
    lines.beat()                            # its gap has passed: printed by the heartbeat thread
    assert _lines(out)[-1] == "group 2: 2/5 (1 s)"
    clock.t += 3.0
    lines.advance(2)
    assert _lines(out)[-1] == "runs: 4/5 (4 s)"
    clock.t += 0.1
    lines.advance(1)                        # the last unit is always printed at once
    assert _lines(out)[-1] == "runs: 5/5 (4 s)"


def test_heartbeat_every_interval_even_when_no_unit_finishes():
    clock, out = FakeClock(), io.StringIO()
    lines = PlainLines(3, "subliminal width", out, clock=clock, interval=10.0)
    for _ in range(9):
        clock.t += 1.0
        lines.beat()
    assert _lines(out) == []                # 9 s of silence is allowed
    clock.t += 1.0
    lines.beat()
    assert _lines(out) == ["subliminal width: 0/3, still working (10 s)"]
    clock.t += 5.0
    lines.advance(1)
    clock.t += 9.0
    lines.beat()                            # 9 s after the unit line: still quiet
    clock.t += 1.0
    lines.beat()
    assert _lines(out)[1:] == ["subliminal width: 1/3 (15 s)", "subliminal width: 1/3, still working (25 s)"]


def test_flush_prints_a_throttled_final_state():
    clock, out = FakeClock(), io.StringIO()
    lines = PlainLines(10, "runs", out, clock=clock)
    lines.advance(1)
    lines.advance(1)
    lines.flush()
    assert _lines(out) == ["runs: 1/10 (0 s)", "runs: 2/10 (0 s)"]


def test_progress_without_a_terminal_beats_on_its_own_thread():
    out = io.StringIO()  # not a terminal
    with progress(2, "slow group", stream=out, interval=0.05) as tick:
        time.sleep(0.4)                     # one long unit: the log must not stay silent
        tick.advance(2)
    text = _lines(out)
    assert any(line.startswith("slow group: 0/2, still working") for line in text)
    assert text[-1].startswith("slow group: 2/2 (")


def test_disabled_progress_prints_nothing():
    out = io.StringIO()
    with progress(3, "quiet", stream=out, enabled=False, interval=0.01) as tick:
        time.sleep(0.05)
        tick.advance(3)
    assert out.getvalue() == ""


def test_enabled_true_without_a_terminal_gives_lines_not_a_bar():
    out = io.StringIO()
    with progress(1, "runs", stream=out, enabled=True) as tick:
        tick.advance(1)
    assert _lines(out) == ["runs: 1/1 (0 s)"]


def test_elapsed_format():
    assert [elapsed(s) for s in (0.4, 59.9, 61, 3725)] == ["0 s", "59 s", "1 min 01 s", "1 h 02 min"]
