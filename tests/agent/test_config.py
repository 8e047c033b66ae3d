"""The agent's settings: the [logs] and [metrics] tables its stores are
built from."""

from __future__ import annotations

import pytest


def test_logs_and_metrics_settings() -> None:
    from heroctld.config import ConfigError, load_logs_metrics

    logs, metrics = load_logs_metrics({}, {})
    assert (logs.retention, logs.max_bytes_per_alloc, metrics.interval) == (86400, 10 * 2**20, 10)
    logs, metrics = load_logs_metrics(
        {"logs": {"retention": "90m", "max-bytes-per-alloc": "512KiB"}, "metrics": {"interval": 5}},
        {"HEROCTL_METRICS_INTERVAL": "1"},
    )
    assert (logs.retention, logs.max_bytes_per_alloc, metrics.interval) == (5400, 512 * 1024, 1)
    for bad in (
        {"logs": {"retention": "soon"}},
        {"logs": {"colour": 1}},
        {"metrics": {"interval": "0"}},
        {"logs": {"max_bytes_per_alloc": "-1"}},
    ):
        with pytest.raises(ConfigError):
            load_logs_metrics(bad, {})
