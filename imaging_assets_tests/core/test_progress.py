"""The CLI progress bar: redraws on a terminal, one final line in logs, counts unknown totals."""

from __future__ import annotations

import io

from imaging_assets.core.progress import ProgressBar


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_gets_only_the_final_line():
    log = io.StringIO()
    bar = ProgressBar("sites", log)
    for done in range(1, 101):
        bar(done, 100)
    lines = log.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sites [###") and "100/100" in lines[0]
    assert "\r" not in log.getvalue()


def test_a_terminal_sees_the_line_redrawn_in_place():
    terminal = Terminal()
    bar = ProgressBar("sites", terminal)
    bar(1, 3)
    bar(3, 3)
    text = terminal.getvalue()
    assert text.count("\r") == 2 and text.endswith("3/3" + text.split("3/3")[-1])
    assert text.endswith("\n") and text.count("\n") == 1


def test_an_unknown_total_counts_and_finishes_with_one_line():
    log = io.StringIO()
    bar = ProgressBar("rows", log)
    for done in range(1, 2001):
        bar(done, None)
    bar.finish()
    bar.finish()
    assert log.getvalue().count("\n") == 1 and log.getvalue().startswith("rows: 2,000 (")
