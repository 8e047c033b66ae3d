"""The docker driver against the real engine and the locally built image.

Skipped (with the engine's own error) only when `docker info` fails; the
test image `heroctl-test/busybox:latest` is built here, offline, when
missing (scripts/build-test-image.sh). Containers publish on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from agent.drivers.base import Driver, DriverError, PortMapping, TaskNotFound, TaskSpec
from tests.support.cluster import free_port
from tests.support.drivers import get_text, poll, task_spec
from tests.support.workloads import IMAGE, ROOT


def _docker_info() -> str | None:
    """None when the engine answers, else why not."""
    if shutil.which("docker") is None:
        return "docker CLI is not installed"
    try:
        proc = subprocess.run(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except subprocess.TimeoutExpired:
        return "`docker info` timed out"
    if proc.returncode != 0:
        return f"`docker info` failed: {(proc.stderr or proc.stdout).strip()[:300]}"
    return None


_WHY_NOT = _docker_info()
pytestmark = pytest.mark.skipif(_WHY_NOT is not None, reason=f"no Docker engine: {_WHY_NOT}")


@pytest.fixture(scope="module")
def node() -> str:
    return f"test-node-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def image() -> str:
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "build-test-image.sh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"building {IMAGE} failed: {proc.stderr}"
    return IMAGE


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


def spec(node: str, command: list[str] | None, **kw: object) -> TaskSpec:
    fields: dict[str, object] = {
        "node": node,
        "image": IMAGE,
        "command": command,
        "cpu": 250,
        "memory": 64,
        "kill_timeout": 3.0,
    }
    fields.update(kw)
    return task_spec(**fields)


http_get = partial(get_text, timeout=10.0, attempt=2, pause=0.1)
wait_for = partial(poll, timeout=10.0, step=0.1)


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
        assert time.monotonic() - t0 < 3
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
        assert 0.8 < elapsed < 6
    finally:
        driver.remove(s.alloc_id, s.task)


def test_missing_image_is_never_pulled(driver: Driver, node: str) -> None:
    s = spec(node, ["true"], image="heroctl-test/does-not-exist:1")
    with pytest.raises(DriverError, match="not present on node .* pulling is disabled"):
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


def _task_pid(container_pid: int) -> int:
    """The task under docker-init (PID 1 of the container)."""
    children = Path(f"/proc/{container_pid}/task/{container_pid}/children").read_text().split()
    return int(children[0])


def test_secrets_reach_the_env_and_no_file_on_the_node(driver: Driver, node: str) -> None:
    import hashlib

    import docker

    secret = f"s3cr3t-{uuid.uuid4().hex}"
    tricky = "multi\nline 'quoted' \"$HOME\" `x` \\ é\n\n"
    s = spec(
        node,
        ["sh", "-c", 'echo "$DB_PASSWORD" | md5sum; echo "plain=$PLAIN"; exec sleep 60'],
        env={"PLAIN": "visible"},
        secret_env={"DB_PASSWORD": secret, "TRICKY": tricky},
    )
    state = driver.start(s)
    try:
        digest = hashlib.md5((secret + "\n").encode()).hexdigest()
        logs = wait_for(
            lambda: (text := driver.logs(s.alloc_id, s.task)) and "plain=" in text and text
        )
        assert logs and digest in logs and "plain=visible" in logs
        api = docker.from_env().api
        attrs = api.inspect_container(state.handle)
        environ = Path(f"/proc/{_task_pid(attrs['State']['Pid'])}/environ").read_bytes()
        env = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        assert env[b"DB_PASSWORD"] == secret.encode()
        assert env[b"TRICKY"] == tricky.encode()
        assert env[b"PLAIN"] == b"visible" and env[b"HEROCTL_JOB"] == b"web"
        # nowhere on disk: not in the engine's container dir, not in the layer
        assert all(secret not in e for e in attrs["Config"]["Env"])
        roots = [Path("/var/lib/docker/containers") / state.handle]
        upper = (attrs.get("GraphDriver") or {}).get("Data", {}).get("UpperDir")
        if upper:
            roots.append(Path(upper))
        scanned = 0
        for root in roots:
            for path in root.rglob("*"):
                if path.is_file() and not path.is_symlink():
                    scanned += 1
                    assert secret.encode() not in path.read_bytes(), path
        assert scanned >= 2  # config.v2.json, hostconfig.json, the log...
        assert "heroctl-shim" in json_dump(attrs["Config"]["Entrypoint"])
    finally:
        driver.remove(s.alloc_id, s.task)


def json_dump(value: object) -> str:
    import json

    return json.dumps(value)


def test_undelivered_secrets_never_run_the_task(node: str, image: str) -> None:
    from agent.drivers.docker import DockerDriver

    class DiesMidStart(DockerDriver):
        def _start_with_secrets(self, container, payload):  # type: ignore[no-untyped-def]
            sock = self.client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
            container.start()
            sock._sock.sendall(payload[:5])
            sock._sock.close()  # the agent dies here: the kernel closes its socket
            sock.close()

    d = DiesMidStart(node)
    s = spec(node, ["sh", "-c", "echo task ran"], secret_env={"DB_PASSWORD": "x"})
    d.start(s)
    try:
        state = wait_for(lambda: (st := d.inspect(s.alloc_id, s.task)).state == "exited" and st)
        assert state and state.exit_code == 125
        logs = d.logs(s.alloc_id, s.task)
        assert "secrets were not delivered" in logs and "task ran" not in logs
    finally:
        d.remove(s.alloc_id, s.task)
        d.close()


def test_secrets_need_a_static_shim(node: str, image: str) -> None:
    from agent.drivers.docker import DockerDriver

    d = DockerDriver(node, shim_binary="/bin/ls")  # dynamically linked
    s = spec(node, ["true"], secret_env={"A": "b"})
    with pytest.raises(DriverError, match="not a static executable"):
        d.start(s)
    assert all(t.alloc_id != s.alloc_id for t in d.list())
    d.close()
