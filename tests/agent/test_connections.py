"""Counting the established connections on a task's host ports from the
kernel's socket table (a copy of /proc/net/tcp's format written by the test)."""

from __future__ import annotations

from pathlib import Path

from agent.connections import established_per_port, established_to

HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid\n"


def _line(n: int, local: str, remote: str, state: str) -> str:
    return f"  {n}: {local} {remote} {state} 00000000:00000000 00:00000000 00000000  0\n"


def test_counts_established_sockets_whose_local_port_is_a_task_port(tmp_path: Path) -> None:
    table = tmp_path / "tcp"
    table.write_text(
        HEADER
        + _line(0, "0100007F:5E1F", "00000000:0000", "0A")  # listening on 24095
        + _line(1, "0100007F:5E1F", "0100007F:D61C", "01")  # accepted: counts
        + _line(2, "0100007F:D61C", "0100007F:5E1F", "01")  # the client's end
        + _line(3, "0100007F:5E1F", "0100007F:D61D", "06")  # TIME_WAIT
        + _line(4, "0100007F:1F90", "0100007F:D61E", "01")  # another port (8080)
    )
    assert established_to([0x5E1F], [table]) == 1
    assert established_to([0x5E1F, 8080], [table]) == 2
    assert established_to([0x5E1F, 0x5E1F], [table]) == 1  # a port counted once
    assert established_per_port([table]) == {0x5E1F: 1, 0xD61C: 1, 8080: 1}
    assert established_to([], [table]) == 0
    assert established_to([0x5E1F], [tmp_path / "missing"]) == 0
