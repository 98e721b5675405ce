"""TrainingProgress: a rich bar on a terminal, plain lines elsewhere (log files, CI, batch jobs)."""

import io
import re

from rich.console import Console

from simpo.progress import TrainingProgress


def run(console: Console, total: int = 1000, evals=(400, 1000)) -> None:
    with TrainingProgress(total, title="simpo-exp on X", console=console) as progress:
        progress.advance(0)
        for step in range(1, total + 1):
            if step in evals:
                progress.evaluated(100.0 + step, -float(step), at=step)
            progress.advance(step)


def test_plain_lines_at_every_tenth_and_every_eval_when_not_a_terminal():
    out = io.StringIO()
    run(Console(file=out, force_terminal=False))
    lines = out.getvalue().splitlines()
    steps = [int(re.match(r"simpo-exp on X: ([\d,]+)/1,000 steps", line)[1].replace(",", "")) for line in lines]
    assert steps == [0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]  # the eval at 400 and 1000: one line each
    assert lines[0] == "simpo-exp on X: 0/1,000 steps (0%)"  # where it starts
    assert "eval" not in lines[3] and "eval 500.0 (single -400.0)" in lines[4] and "eval 1,100.0" in lines[-1]
    assert all("steps/s" in line for line in lines[1:]) and "ETA" in lines[1] and "ETA" not in lines[-1]


def test_a_line_at_the_start_and_the_end_and_none_when_disabled():
    out = io.StringIO()
    with TrainingProgress(100, console=Console(file=out, force_terminal=False)) as progress:
        progress.advance(3)  # a resume from step 3: where it starts, and the speed counts from here
        progress.advance(5)  # no tenth crossed: no line until the end
    first, last = out.getvalue().splitlines()
    assert first == "training: 3/100 steps (3%)" and re.fullmatch(r"training: 5/100 steps \(5%\), [\d,]+ steps/s, "
                                                                 r"ETA \d+:\d\d:\d\d", last)
    quiet = io.StringIO()
    with TrainingProgress(7, enabled=False, console=Console(file=quiet, force_terminal=False)) as progress:
        progress.advance(7)
        progress.evaluated(1.0, 2.0)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_the_bar_not_the_lines():
    out = io.StringIO()
    run(Console(file=out, force_terminal=True, width=120))
    assert "simpo-exp on X: " not in out.getvalue() and "1000/1000" in out.getvalue()
