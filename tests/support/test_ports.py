"""The tests' port choice (tests.support.ports): per-worker blocks below the
kernel's ephemeral ports, single ports apart from agents' ranges."""

from __future__ import annotations

import socket

from tests.support.ports import FLOOR, _ephemeral_start, free_port, port_range, worker_block


def test_workers_get_disjoint_blocks_below_the_ephemeral_ports() -> None:
    blocks = [worker_block(f"gw{i}", 3, 32768) for i in range(3)]
    assert blocks[0].start == FLOOR and blocks[-1].stop <= 32768
    assert all(a.stop <= b.start for a, b in zip(blocks, blocks[1:], strict=False))
    assert worker_block(None, 1, 32768) == range(FLOOR, 32768)  # alone: all of it
    assert worker_block("gw5", 3, 32768).stop <= 32768  # more workers than announced


def test_ports_are_free_below_the_ephemeral_range_and_apart_from_ranges() -> None:
    first, last = port_range(50)
    assert last - first == 49
    singles = {free_port() for _ in range(20)}
    assert len(singles) == 20 and not singles & set(range(first, last + 1))
    assert all(port < _ephemeral_start() for port in singles | {last})
    with socket.socket() as s:  # free: a daemon can bind it
        s.bind(("127.0.0.1", free_port(udp=True)))
