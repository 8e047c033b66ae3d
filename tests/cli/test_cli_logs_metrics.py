"""`heroctl logs` / `heroctl metrics`: the pure parts (line format, terminal
chart, option checks). Against real clusters: tests/integration/test_logs_metrics.py."""

from __future__ import annotations

import re

from click.testing import CliRunner

from cli.cmd_logs import Resume, format_line
from cli.cmd_metrics import BLOCKS, chart, fmt_value
from cli.main import cli

DOC = {
    "alloc": "0123456789abcdef",
    "task": "web",
    "stream": "stdout",
    "ts": "2026-11-30T10:00:00.000001Z",
    "us": 1,
    "line": "hello",
}


def test_format_line() -> None:
    assert format_line(DOC, prefix=False, timestamps=False) == "hello"
    assert format_line(DOC, prefix=True, timestamps=False) == "[01234567 web] hello"
    assert format_line(DOC, prefix=True, timestamps=True) == (
        "[01234567 web] 2026-11-30T10:00:00.000001Z hello"
    )


def test_chart_scales_columns_and_labels() -> None:
    points = [[float(t), float(t)] for t in range(0, 100)]  # a ramp 0..99
    rows = chart(points, start=0, end=100, width=10, height=4, unit="percent")
    assert len(rows) == 4 + 2
    bars = [r.split("┤", 1)[1] for r in rows[:4]]
    assert all(len(b) == 10 for b in bars)
    assert rows[0].startswith("94.5%") and rows[3].lstrip().startswith("0.0%")
    # the last column is full height, the first (average 4.5 of 94.5) 2/8 of a row
    assert [b[-1] for b in bars] == ["█"] * 4
    assert [b[0] for b in bars] == [" ", " ", " ", BLOCKS[2]]
    # heights never go down along a ramp
    heights = [sum(BLOCKS.index(b[i]) for b in bars) for i in range(10)]
    assert heights == sorted(heights)
    assert re.fullmatch(r"\s+\d\d:\d\d\s+\d\d:\d\d", rows[-1])


def test_chart_gaps_and_empty_windows() -> None:
    rows = chart([[0.0, 5.0], [90.0, 5.0]], start=0, end=100, width=10, height=2, unit="MB")
    bars = [r.split("┤", 1)[1] for r in rows[:2]]
    assert [b[0] for b in bars] == ["█", "█"] and bars[0][1:9].strip() == ""
    assert chart([], start=0, end=1) == ["(no samples in this window)"]
    assert chart([[5.0, 0.0]], start=0, end=10, width=8, height=1)[0].endswith(BLOCKS[1] + " " * 3)
    assert fmt_value(None, "MB") == "-" and fmt_value(1234.5, "MB") == "1234 MB"
    assert fmt_value(12.345, "percent") == "12.3%"


def test_option_checks() -> None:
    runner = CliRunner(env={"HEROCTL_TOKEN": "x"})
    r = runner.invoke(cli, ["logs"])
    assert r.exit_code == 2 and "give an allocation id, or --job NAME" in r.output
    r = runner.invoke(cli, ["logs", "abc", "--job", "web"])
    assert r.exit_code == 2
    r = runner.invoke(cli, ["logs", "abc", "-n", "many"])
    assert r.exit_code == 2 and "number of lines" in r.output
    r = runner.invoke(cli, ["metrics", "--job", "a", "--node", "b"])
    assert r.exit_code == 2 and "at most one" in r.output


def test_resume_prints_no_line_twice_and_asks_from_the_earliest() -> None:
    def doc(alloc: str, us: int, line: str) -> dict[str, object]:
        return {"alloc": alloc, "us": us, "line": line}

    r = Resume()
    assert r.since() is None  # nothing printed: the usual backlog
    first = [doc("a", 10, "a1"), doc("a", 20, "a2"), doc("a", 20, "a3"), doc("b", 15, "b1")]
    assert [r.fresh(d) for d in first] == [True] * 4
    assert r.since() == 14  # the earliest last line (b's), minus one
    # the server sends everything after 14 again, then what is new
    again = [
        doc("b", 15, "b1"),
        doc("a", 20, "a2"),
        doc("a", 20, "a3"),
        doc("a", 20, "a4"),  # new, at the same microsecond
        doc("b", 16, "b2"),
        doc("c", 17, "c1"),  # an allocation never seen
        doc("a", 21, "a5"),
    ]
    assert [d["line"] for d in again if r.fresh(d)] == ["a4", "b2", "c1", "a5"]
    assert r.since() == 15  # c's 17, b's 16, a's 21: from b
    assert not r.fresh(doc("b", 16, "b2")) and r.fresh(doc("b", 16, "b3"))
