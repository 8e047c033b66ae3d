"""tests/support/pebble.py itself: each run has its own root, and nothing outlives a run."""

from __future__ import annotations

from pathlib import Path

from tests.support.pebble import free_port, running_pebble


def test_each_run_serves_its_own_root_and_stops_its_processes(tmp_path: Path) -> None:
    with running_pebble(tmp_path / "one", free_port(), free_port()) as one:
        first_root = one.issuing_roots_pem()
        assert first_root.startswith("-----BEGIN CERTIFICATE-----")
        assert one.intermediates_pem().startswith("-----BEGIN CERTIFICATE-----")
        processes = list(one._processes)
        assert len(processes) == 2 and all(p.poll() is None for p in processes)
    assert all(p.poll() is not None for p in processes)
    with running_pebble(tmp_path / "two", free_port(), free_port()) as two:
        assert two.issuing_roots_pem() != first_root
    assert oct((tmp_path / "one" / "https-key.pem").stat().st_mode & 0o777) == "0o600"
