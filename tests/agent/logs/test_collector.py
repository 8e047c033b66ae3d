"""The collector following real exec processes and, with an engine,
containers: output copied in, resumed after an agent restart, kept after
the task is removed. Waits poll with deadlines.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from agent.drivers.base import TaskSpec
from agent.drivers.exec import ExecDriver
from agent.logs.collector import LogCollector
from agent.logs.store import LogStore
from tests.agent.logs.support import texts
from tests.support.cluster import wait_until

IMAGE = "heroctl-test/busybox:latest"


# --- collector: exec (real processes) ------------------------------------------------------


def _spec(alloc: str, node: str, command: list[str]) -> TaskSpec:
    return TaskSpec(
        alloc_id=alloc,
        job="printer",
        group="g",
        task="main",
        node=node,
        command=command,
        kill_timeout=1,
    )


def test_exec_task_output_is_followed_and_resumed(tmp_path: Path) -> None:
    driver = ExecDriver("n1", tmp_path / "agent")
    store = LogStore(tmp_path / "logs")
    collector = LogCollector(store, {"exec": driver}, exec_poll=0.02)
    script = "i=0; while [ $i -lt 30 ]; do echo line $i; i=$((i+1)); sleep 0.01; done; sleep 60"
    driver.start(_spec("alloc1", "n1", ["sh", "-c", script]))
    try:
        collector.sync(driver.list(), active={"alloc1"})

        def got(n: int) -> list[str]:
            return texts(store.tail("alloc1", None))

        wait_until(lambda: len(got(30)) >= 30, 10, message="30 lines")
        assert got(30) == [f"line {i}" for i in range(30)]
        assert {ln.stream for ln in store.tail("alloc1", None)} == {"stdout"}
        assert store.meta("alloc1")["job"] == "printer"
        # An agent restart: a new collector resumes at the stored offset (no duplicates).
        collector.close()
        with open(driver.task_dir("alloc1", "main") / "output.log", "a") as f:
            f.write("written while no agent ran\n")
        store = LogStore(tmp_path / "logs")
        collector = LogCollector(store, {"exec": driver}, exec_poll=0.02)
        collector.sync(driver.list(), active={"alloc1"})
        wait_until(lambda: len(store.tail("alloc1", None)) >= 31, 10, message="31 lines")
        assert texts(store.tail("alloc1", None))[-2:] == ["line 29", "written while no agent ran"]
        assert len(store.tail("alloc1", None)) == 31
        # The task is removed: its logs stay.
        driver.remove("alloc1", "main")
        collector.sync(driver.list(), active=set())
        wait_until(lambda: not collector.following(), 10, message="the follower to end")
        assert len(store.tail("alloc1", None)) == 31
    finally:
        collector.close()
        for st in driver.list():
            driver.remove(st.alloc_id, st.task)


# --- collector: docker ------------------------------------------------------------------------


def _docker_skip() -> str | None:
    try:
        subprocess.run(
            ["docker", "image", "inspect", IMAGE], check=True, capture_output=True, timeout=20
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"no Docker engine with {IMAGE} ({exc})"
    return None


@pytest.mark.docker
@pytest.mark.skipif(_docker_skip() is not None, reason=_docker_skip() or "")
def test_docker_streams_are_split_and_resumed(tmp_path: Path) -> None:
    from agent.drivers.docker import DockerDriver

    node = f"test-logs-{time.time_ns()}"
    driver = DockerDriver(node)
    store = LogStore(tmp_path / "logs")
    collector = LogCollector(store, {"docker": driver})
    script = (
        "i=0; while [ $i -lt 20 ]; do echo out $i; echo err $i >&2; i=$((i+1)); done; "
        "j=0; while true; do echo tick $j; j=$((j+1)); sleep 0.05; done"
    )
    spec = TaskSpec(
        alloc_id="dalloc1",
        job="printer",
        group="g",
        task="main",
        node=node,
        image=IMAGE,
        command=["sh", "-c", script],
        kill_timeout=1,
        memory=32,
    )

    def ticks() -> list[int]:
        found = texts(store.tail("dalloc1", None, stream="stdout"))
        return [int(x.split()[1]) for x in found if x.startswith("tick")]

    try:
        driver.start(spec)
        collector.sync(driver.list(), active={"dalloc1"})
        wait_until(lambda: len(ticks()) >= 5, 20, message="5 ticks")
        out = texts(store.tail("dalloc1", None, stream="stdout"))
        err = texts(store.tail("dalloc1", None, stream="stderr"))
        assert out[:20] == [f"out {i}" for i in range(20)]
        assert err == [f"err {i}" for i in range(20)]
        stamps = [ln.us for ln in store.tail("dalloc1", None, stream="stdout")]
        assert stamps == sorted(stamps) and abs(stamps[0] / 1e6 - time.time()) < 120
        # A new collector (an agent restart) resumes where the store ends:
        # the ticks printed meanwhile arrive, none twice, none missing.
        collector.close()
        before = ticks()[-1]
        wait_until(
            lambda: int(driver.logs("dalloc1", "main", 1).split()[1]) >= before + 5,
            20,
            message="ticks printed while no collector ran",
        )
        collector = LogCollector(store, {"docker": driver})
        collector.sync(driver.list(), active={"dalloc1"})
        wait_until(lambda: ticks()[-1] >= before + 10, 20, message="ticks after the resume")
        assert ticks() == list(range(ticks()[-1] + 1))
        # stopped and removed: the logs stay
        driver.stop("dalloc1", "main", 1)
        collector.sync(driver.list(), active=set())
        driver.remove("dalloc1", "main")
        collector.sync(driver.list(), active=set())
        wait_until(lambda: not collector.following(), 20, message="followers to end")
        kept = ticks()
        assert kept == list(range(kept[-1] + 1))
        assert len(store.tail("dalloc1", None, stream="stderr")) == 20
    finally:
        collector.close()
        driver.remove("dalloc1", "main")
