"""The one duration grammar (domain.durations): what it reads, what it refuses,
and that what it writes reads back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.durations import UNIT_SECONDS, DurationError, format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0),
        ("90", 90),
        ("1.5", 1.5),
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("2d", 172_800),
        ("1w", 604_800),
        ("1h30m", 5400),
        ("2m30s", 150),
        ("1s500ms", 1.5),
        ("1m1ms", 60.001),
        ("30m1h", 5400),  # any order
        ("1.5h", 5400),
        (".5s", 0.5),
        ("1.s", 1),
        (" 10S ", 10),  # case and surrounding whitespace do not matter
        ("1H30M", 5400),
    ],
)
def test_reads(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "s",
        "ms",
        "ten",
        "10x",
        "5 m",  # no spaces inside
        "1h 30m",
        "5m10",  # a bare number only alone
        "1s5",
        "m5",
        "-1s",  # no sign: "before now" is the caller's
        "+1s",
        "1:30",  # not pytimeparse2: no clock times, no words
        "1 minute",
        "1e3",
        "1_000",
        "1.2.3s",
        "inf",
        "nan",
        "5mm",
        "1y",
    ],
)
def test_refuses(text: str) -> None:
    with pytest.raises(DurationError) as info:
        parse_duration(text)
    assert repr(text) in str(info.value) and "1h30m" in str(info.value)
    assert isinstance(info.value, ValueError)


_PARTS = st.lists(
    st.tuples(st.integers(0, 10_000), st.sampled_from(sorted(UNIT_SECONDS))), min_size=1
)


@given(_PARTS)
def test_parts_add_up(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    expected = sum(n * UNIT_SECONDS[unit] for n, unit in parts)
    assert parse_duration(text) == pytest.approx(expected)


@given(st.integers(0, 10**9))
def test_format_reads_back(seconds: int) -> None:
    text = format_duration(seconds)
    assert parse_duration(text) == seconds
    assert text == "0s" or not text.startswith("0")


def test_format() -> None:
    assert [format_duration(s) for s in (0, 0.4, 45, 300, 5400, 90061, -3)] == [
        "0s",
        "0s",
        "45s",
        "5m",
        "1h30m",
        "1d1h1m1s",
        "0s",
    ]


@given(st.text(max_size=12))
def test_anything_else_is_a_duration_error(text: str) -> None:
    try:
        seconds = parse_duration(text)
    except DurationError:
        return
    assert seconds >= 0
