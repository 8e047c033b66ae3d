"""domain.metric_series: points folded into step-wide buckets, and the step of an answer."""

from __future__ import annotations

from domain.metric_series import bucketize, choose_step


def test_bucketize_and_step_choice() -> None:
    points = [(0.0, (1.0,)), (5.0, (3.0,)), (10.0, (5.0,)), (25.0, (7.0,))]
    assert bucketize(points, 0, 0, 30, 10) == [[0, 2.0], [10, 5.0], [20, 7.0]]
    assert bucketize(points, 0, 6, 30, 10) == [[10, 5.0], [20, 7.0]]
    assert choose_step(0, 3600, 10, None) == 10
    assert choose_step(0, 3600, 10, 25) == 30
    assert choose_step(0, 7 * 86400, 60, None) == 360  # at most 2000 points (302.4 -> 360)
