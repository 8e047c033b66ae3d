"""Task secrets in docker containers, against the real engine: they reach
the task's environment and nothing on disk; an undelivered payload never
runs the task; the shim must be a static executable."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from agent.drivers.base import DriverError
from tests.agent.drivers.docker_support import needs_docker, spec, wait_for

pytestmark = needs_docker


def _task_pid(container_pid: int) -> int:
    """The task under docker-init (PID 1 of the container)."""
    children = Path(f"/proc/{container_pid}/task/{container_pid}/children").read_text().split()
    return int(children[0])


def test_secrets_reach_the_env_and_no_file_on_the_node(node: str, image: str) -> None:
    import hashlib

    import docker

    from agent.drivers.docker import DockerDriver

    driver = DockerDriver(node)
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
        driver.close()


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
