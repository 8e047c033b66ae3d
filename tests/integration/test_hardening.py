"""Workloads get the least privilege, end to end: real servers with their
agents, the exec driver as real processes and a real Docker engine.

server-1 offers the default drivers (docker only); server-2 is told to
offer exec too (``HEROCTL_AGENT_DRIVERS``), so an exec job lands there and
nowhere else, and runs as ``nobody``. A docker job of a ``jobs: write``
token runs unprivileged with nothing of the host; a token granted a host
path gets it mounted, read-only. (Privileged containers are checked at the
API only: this machine's engine cannot start one.) Every wait polls with a
deadline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.drivers.exec_spawn import resolve_user
from tests.api.authutil import as_, make_token, put_policy
from tests.support.cluster import Cluster, wait_until
from tests.support.workloads import IMAGE, docker_unavailable

_NO_DOCKER = docker_unavailable()
needs_docker = pytest.mark.skipif(_NO_DOCKER is not None, reason=_NO_DOCKER or "")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("hardening"), 2, agent=True)
    c.servers[1].env["HEROCTL_AGENT_DRIVERS"] = "docker,exec"
    c.start()
    try:
        wait_until(
            lambda: (
                len([n for n in c.servers[0].get("/v1/nodes").body if n["status"] == "ready"]) == 2
            ),
            30,
            0.2,
            "both nodes ready",
        )
        yield c
    finally:
        c.stop()


def node_drivers(c: Cluster) -> dict[str, list[str]]:
    return {n["name"]: n["drivers"] for n in c.servers[0].get("/v1/nodes").body}


def running_allocs(c: Cluster, job: str) -> list[dict[str, Any]]:
    allocs = c.servers[0].get(f"/v1/allocations?job={job}").body
    return [a for a in allocs if a["status"] == "running"]


def log_lines(c: Cluster, alloc_id: str) -> list[str]:
    r = c.servers[0].get(f"/v1/logs/{alloc_id}?lines=all&type=stdout")
    return [d["line"] for d in r.body] if r.status == 200 else []


@pytest.mark.skipif(os.geteuid() != 0, reason="the agent must be root to run tasks as nobody")
def test_exec_is_offered_on_purpose_and_runs_tasks_as_nobody(
    cluster: Cluster, root_only_file: Path
) -> None:
    drivers = node_drivers(cluster)
    assert "exec" not in drivers["server-1"] and "exec" in drivers["server-2"], drivers
    script = f"id -u; cat {root_only_file} || echo refused; echo done; sleep 300"
    job = {
        "name": "whoami",
        "groups": [
            {
                "name": "g",
                "count": 2,
                "constraints": [{"operator": "distinct_hosts"}],
                "tasks": [
                    {
                        "name": "main",
                        "driver": "exec",
                        "command": ["sh", "-c", script],
                        "resources": {"cpu": 100, "memory": 32},
                        "kill_timeout": "1s",
                    }
                ],
            }
        ],
    }
    s = cluster.servers[0]
    assert s.post("/v1/jobs", job).status == 201
    (alloc,) = wait_until(lambda: running_allocs(cluster, "whoami"), 30, 0.2, "the exec task")
    assert alloc["node_name"] == "server-2"
    # The other replica has nowhere to go, and the job says why.
    failures = wait_until(
        lambda: s.get("/v1/jobs/whoami").body["placement_failures"], 15, 0.2, "a failure"
    )
    assert "missing driver exec" in str(failures), failures
    lines = wait_until(
        lambda: (got := log_lines(cluster, alloc["id"])) and "done" in got and got,
        20,
        0.2,
        "the task's output",
    )
    assert lines[0] == str(resolve_user("nobody").uid), lines
    assert "refused" in lines and not any("not-for-workloads" in line for line in lines)
    assert s.delete("/v1/jobs/whoami").status == 200


@needs_docker
def test_docker_tasks_get_nothing_of_the_host_unless_granted(
    cluster: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> None:
    import docker

    shared = tmp_path_factory.mktemp("host-volume")
    (shared / "motd").write_text("from the host\n")
    s = cluster.servers[0]
    put_policy(s, "deploy", {"jobs": "write"})
    put_policy(s, "deploy-mounts", {"jobs": {"host_volumes": [str(shared)]}})
    plain = make_token(s, ["deploy"])["secret_id"]
    mounts = make_token(s, ["deploy-mounts"])["secret_id"]
    volume = {"source": str(shared), "target": "/shared"}

    def job(name: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "image": IMAGE,
            "command": ["sh", "-c", "cat /shared/motd 2>/dev/null; sleep 300"],
            "resources": {"cpu": 100, "memory": 32},
            "kill_timeout": "1s",
            **extra,
        }

    assert as_(s, plain, "POST", "/v1/jobs", job("plain")).status == 201
    for sneaky in ({"privileged": True}, {"volumes": [volume]}):
        assert as_(s, plain, "POST", "/v1/jobs", job("sneaky", **sneaky)).status == 403
    assert as_(s, mounts, "POST", "/v1/jobs", job("mounted", volumes=[volume])).status == 201
    client = docker.from_env(timeout=60)
    try:

        def host_config(name: str) -> dict[str, Any] | None:
            if not running_allocs(cluster, name):
                return None
            found = client.containers.list(filters={"label": f"heroctl.job={name}"})
            return found[0].attrs["HostConfig"] if found else None

        hc = wait_until(lambda: host_config("plain"), 60, 0.2, "the plain container")
        assert hc["Privileged"] is False and "no-new-privileges:true" in hc["SecurityOpt"]
        assert hc["NetworkMode"] != "host" and hc["PidMode"] == "" and hc["IpcMode"] == "private"
        assert not hc["CapAdd"] and not hc["Devices"] and not hc["Binds"] and not hc.get("Mounts")
        hc = wait_until(lambda: host_config("mounted"), 60, 0.2, "the mounting container")
        assert hc["Privileged"] is False
        assert [(m["Source"], m["Target"], m["ReadOnly"]) for m in hc["Mounts"]] == [
            (str(shared), "/shared", True)
        ]
        (alloc,) = running_allocs(cluster, "mounted")
        wait_until(lambda: "from the host" in log_lines(cluster, alloc["id"]), 20, 0.2, "its read")
    finally:
        client.close()
        for name in ("plain", "mounted"):
            s.delete(f"/v1/jobs/{name}")
