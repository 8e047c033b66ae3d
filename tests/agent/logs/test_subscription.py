"""Live followers of the log store: no gap nor duplicate after the backlog,
filters, and the lag limit of a slow subscriber."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from agent.logs.store import LogStore
from tests.agent.logs.support import lines, texts


async def test_subscription_has_no_gap_nor_duplicate(tmp_path: Path) -> None:
    """Subscribers join while a thread appends as fast as it can: each sees
    its backlog then every later line exactly once."""
    store = LogStore(tmp_path)
    loop = asyncio.get_running_loop()
    total = 20_000
    started = threading.Event()

    def writer() -> None:
        for i in range(0, total, 10):
            store.append("a1", lines(10, i))
            if i == 2000:
                started.set()

    thread = threading.Thread(target=writer)
    thread.start()
    await loop.run_in_executor(None, started.wait, 10)
    subs = []
    for _ in range(5):
        backlog, sub = await loop.run_in_executor(
            None, lambda: store.subscribe("a1", loop, lines=50)
        )
        subs.append((backlog, sub))
        await asyncio.sleep(0.001)
    await loop.run_in_executor(None, thread.join)
    for backlog, sub in subs:
        seen = texts(backlog)
        while not seen or seen[-1] != f"line {total - 1}":
            got = await sub.get(timeout=5)
            assert got, "the subscription stopped short"
            seen.extend(texts(got))
        numbers = [int(x.split()[1]) for x in seen]
        assert numbers == list(range(numbers[0], total))
        assert len(backlog) == 50
        sub.close()
    assert sub.dropped == 0


async def test_subscription_filters_and_lag_limit(tmp_path: Path) -> None:
    store = LogStore(tmp_path)
    loop = asyncio.get_running_loop()
    backlog, sub = store.subscribe("a1", loop, lines=10, stream="stderr", limit=5)
    assert backlog == []
    store.append("a1", lines(3) + lines(8, 10, stream="stderr"))
    got = await sub.get(timeout=5)
    assert texts(got) == [f"line {i}" for i in range(13, 18)]
    assert sub.dropped == 3
    assert await sub.get(timeout=0.01) == []
    sub.close()
    store.append("a1", lines(1, 50))  # nobody listens: nothing is kept for them
