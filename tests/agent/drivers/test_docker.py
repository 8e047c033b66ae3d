"""The docker driver against the real engine and the locally built image.

Skipped (with the engine's own error) only when `docker info` fails; the
test image `heroctl-test/busybox:latest` is built here, offline, when
missing (scripts/build-test-image.sh). Containers publish on 127.0.0.1 only.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from collections.abc import Iterator
from functools import partial

import pytest

from agent.drivers.base import Driver, DriverError, PortMapping, TaskNotFound
from tests.agent.drivers.docker_support import needs_docker, spec, wait_for
from tests.support.cluster import free_port
from tests.support.drivers import get_text

pytestmark = needs_docker


@pytest.fixture(scope="module")
def driver(node: str, image: str) -> Iterator[Driver]:
    from agent.drivers.docker import DockerDriver

    d = DockerDriver(node)
    try:
        yield d
    finally:
        for state in d.list():
            d.remove(state.alloc_id, state.task)
        d.close()


http_get = partial(get_text, timeout=10.0, attempt=2, pause=0.1)


HTTPD = [
    "sh",
    "-c",
    'echo "$GREETING" > /var/www/greeting.txt; echo httpd starting; '
    "exec httpd -f -v -p 8080 -h /var/www",
]


def test_httpd_container_published_on_localhost(driver: Driver, node: str) -> None:
    import docker

    port = free_port()
    s = spec(
        node,
        HTTPD,
        env={"GREETING": "hello heroctl"},
        ports=(PortMapping("http", port, to=8080),),
        labels={"team": "web", "heroctl.node": "spoofed"},
        kill_timeout=30.0,  # the stop below is SIGTERM's alone, however loaded the engine
    )
    state = driver.start(s)
    try:
        assert state.running and state.driver == "docker" and len(state.handle) == 64
        assert state.alloc_id == s.alloc_id and state.node == node and state.job == "web"
        assert state.ports == {"http": port}
        assert http_get(port) == "heroctl test image\n"
        assert http_get(port, "/greeting.txt") == "hello heroctl\n"

        attrs = docker.from_env().api.inspect_container(state.handle)
        labels = attrs["Config"]["Labels"]
        assert labels["heroctl.alloc_id"] == s.alloc_id
        assert labels["heroctl.job"] == "web"
        assert labels["heroctl.group"] == "app"
        assert labels["heroctl.task"] == "server"
        assert labels["heroctl.node"] == node  # a user label cannot override ours
        assert labels["team"] == "web"
        host = attrs["HostConfig"]
        assert host["RestartPolicy"]["Name"] == "no"
        assert host["PortBindings"] == {
            "8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        }
        assert host["Memory"] == 64 * 1024 * 1024
        assert host["NanoCpus"] == driver.nano_cpus(250)  # type: ignore[attr-defined]
        assert "GREETING=hello heroctl" in attrs["Config"]["Env"]
        assert f"HEROCTL_ADDR_HTTP=127.0.0.1:{port}" in attrs["Config"]["Env"]
        assert "HEROCTL_PORT_HTTP=8080" in attrs["Config"]["Env"]

        # a second start adopts, never duplicates
        again = driver.start(s)
        assert again.handle == state.handle
        mine = [t for t in driver.list() if t.alloc_id == s.alloc_id]
        assert len(mine) == 1 and mine[0].running and mine[0].ports == {"http": port}

        # logs: the shell's line and httpd's access log (-v logs to stderr)
        logs = wait_for(
            lambda: (text := driver.logs(s.alloc_id, s.task)) and "response:200" in text and text
        )
        assert logs and "httpd starting" in logs
        assert driver.logs(s.alloc_id, s.task, tail=1).count("\n") == 1

        # stats: memory now, cpu as a delta from the first sample
        first = driver.stats(s.alloc_id, s.task)
        assert first.memory_bytes > 0 and first.memory_limit_bytes == 64 * 1024 * 1024
        second = driver.stats(s.alloc_id, s.task)
        assert second.cpu_percent >= 0.0 and second.pids and second.pids >= 1

        # stop: docker-init passes SIGTERM to httpd, well before the kill timeout
        t0 = time.monotonic()
        stopped = driver.stop(s.alloc_id, s.task)
        assert time.monotonic() - t0 < 15
        assert stopped.state == "exited" and stopped.exit_code == 143
        assert (
            stopped.finished_at and stopped.started_at and stopped.finished_at >= stopped.started_at
        )
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        assert "httpd starting" in driver.logs(s.alloc_id, s.task)  # readable until removed
    finally:
        driver.remove(s.alloc_id, s.task)
    with pytest.raises(TaskNotFound):
        driver.inspect(s.alloc_id, s.task)
    assert all(t.alloc_id != s.alloc_id for t in driver.list())
    driver.remove(s.alloc_id, s.task)  # unknown: ignored


def test_list_adopts_after_agent_restart_and_is_per_node(driver: Driver, node: str) -> None:
    from agent.drivers.docker import DockerDriver

    s = spec(node, ["sleep", "60"], job="batchy", job_version=3)
    started = driver.start(s)
    try:
        restarted = DockerDriver(node)  # the agent came back: a fresh driver
        seen = {t.alloc_id: t for t in restarted.list()}
        assert seen[s.alloc_id].handle == started.handle and seen[s.alloc_id].running
        assert seen[s.alloc_id].job == "batchy" and seen[s.alloc_id].job_version == 3
        assert restarted.start(s).handle == started.handle
        other = DockerDriver(f"{node}-other")
        assert all(t.alloc_id != s.alloc_id for t in other.list())
        with pytest.raises(TaskNotFound):
            other.inspect(s.alloc_id, s.task)
        restarted.close()
        other.close()
    finally:
        driver.remove(s.alloc_id, s.task)


def test_exit_code_and_restart_makes_a_new_container(driver: Driver, node: str) -> None:
    s = spec(node, ["sh", "-c", "echo run; exit 3"])
    first = driver.start(s)
    try:
        state = wait_for(
            lambda: (st := driver.inspect(s.alloc_id, s.task)).state == "exited" and st
        )
        assert state and state.exit_code == 3 and not state.oom_killed
        listed = [t for t in driver.list() if t.alloc_id == s.alloc_id]
        assert listed[0].state == "exited" and listed[0].exit_code == 3
        second = driver.start(s)  # the agent's restart policy said: again
        assert second.handle != first.handle
    finally:
        driver.remove(s.alloc_id, s.task)


def test_stop_kills_after_the_timeout(driver: Driver, node: str) -> None:
    s = spec(node, ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"], kill_timeout=1.0)
    driver.start(s)
    try:
        time.sleep(0.3)
        t0 = time.monotonic()
        state = driver.stop(s.alloc_id, s.task)
        elapsed = time.monotonic() - t0
        assert state.state == "exited" and state.exit_code == 137
        assert 0.8 < elapsed < 15  # killed after its 1 s (and a loaded engine's delay)
    finally:
        driver.remove(s.alloc_id, s.task)


def test_missing_image_is_not_pulled_with_pull_never(driver: Driver, node: str) -> None:
    s = spec(node, ["true"], image="heroctl-test/does-not-exist:1", pull="never")
    with pytest.raises(DriverError, match="not present on node .* pull: never"):
        driver.start(s)
    assert all(t.alloc_id != s.alloc_id for t in driver.list())


def test_port_conflict_is_a_clear_error(driver: Driver, node: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = spec(node, ["sleep", "30"], ports=(PortMapping("http", port, to=8080),))
        with pytest.raises(DriverError, match="cannot start"):
            driver.start(s)
    # the half-made container is gone
    assert all(t.alloc_id != s.alloc_id for t in driver.list())


def test_memory_limit_is_enforced(driver: Driver, node: str) -> None:
    # 16 MB limit; the shell grows a variable well past it and is OOM-killed
    s = spec(
        node,
        ["sh", "-c", "x=0123456789abcdef; while true; do x=$x$x; done"],
        memory=16,
    )
    driver.start(s)
    try:
        state = wait_for(
            lambda: (st := driver.inspect(s.alloc_id, s.task)).state == "exited" and st,
            timeout=20,
        )
        assert state and state.exit_code == 137 and state.oom_killed
    finally:
        driver.remove(s.alloc_id, s.task)
