"""Images end to end (issue 14, part 4): a real heroctld with its agent, the
real Docker engine and Debian's docker-registry on 127.0.0.1.

The local test image is pushed to the registry under tags of this module's
own, each tag is removed locally before its job runs, so the task's image
is there only if the node pulled it. One registry is open, one is behind
htpasswd auth (the task's ``registry_auth`` names a cluster secret). Every
tag, registry process and container made here is removed on the way out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cluster import Cluster, Server, wait_until
from tests.support.registry import Registry, pushed, registry_unavailable
from tests.support.workloads import IMAGE, docker_unavailable

_SKIP = docker_unavailable() or registry_unavailable(auth=True)
pytestmark = [pytest.mark.docker, pytest.mark.skipif(_SKIP is not None, reason=_SKIP or "")]

USER = "ci-puller"
PASSWORD = "pw-" + uuid.uuid4().hex
WRONG = "wrong-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def docker_client() -> Iterator[Any]:
    import docker

    client = docker.from_env(timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("images"), 1, agent=True)
    try:
        c.start()
        wait_until(
            lambda: any(n["status"] == "ready" for n in c.servers[0].get("/v1/nodes").body),
            30,
            0.2,
            "a ready node",
        )
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry-open")) as registry:
        yield registry


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry-auth"), {USER: PASSWORD}) as registry:
        yield registry


def api(c: Cluster) -> Server:
    return c.servers[0]


def tag() -> str:
    return "t-" + uuid.uuid4().hex[:10]


def job(name: str, image: str, **task_fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "type": "service",
        "groups": [
            {
                "name": "app",
                "count": 1,
                "restart": {"attempts": 0, "interval": "5m", "delay": "1s", "mode": "fail"},
                "update": {"min_healthy_time": "1s", "healthy_deadline": "60s"},
                "tasks": [
                    {
                        "name": "web",
                        "image": image,
                        "command": ["httpd", "-f", "-p", "8080", "-h", "/var/www"],
                        "resources": {"cpu": 100, "memory": 32},
                        "kill_timeout": "1s",
                        **task_fields,
                    }
                ],
            }
        ],
    }


def submit(c: Cluster, doc: dict[str, Any]) -> dict[str, Any]:
    r = api(c).post("/v1/jobs", doc)
    assert r.status in (200, 201), r.body
    return r.body


def the_alloc(c: Cluster, name: str, *, until: str) -> dict[str, Any]:
    """The job's first allocation, in detail, once its status is ``until``
    (a failed one may have been replaced meanwhile)."""

    def reached() -> dict[str, Any] | None:
        allocs = api(c).get(f"/v1/allocations?job={name}").body
        first = min(allocs, key=lambda a: a["create_index"], default=None)
        if first is None or first["status"] != until:
            return None
        return api(c).get(f"/v1/allocations/{first['id']}").body

    return wait_until(reached, 60, 0.2, f"the allocation of {name} {until}")


def stop_job(c: Cluster, docker_client: Any, name: str) -> None:
    assert api(c).delete(f"/v1/jobs/{name}").status == 200
    wait_until(
        lambda: (
            not docker_client.containers.list(all=True, filters={"label": f"heroctl.job={name}"})
        ),
        30,
        0.2,
        f"the containers of {name} removed",
    )


def types(alloc: dict[str, Any]) -> list[str]:
    return [e["type"] for e in alloc["events"]]


def test_a_missing_image_is_pulled_and_runs(
    cluster: Cluster, docker_client: Any, open_registry: Registry
) -> None:
    with pushed(docker_client, open_registry, IMAGE, "heroctl-test/busybox", tag()) as ref:
        submit(cluster, job("pulled", ref))
        alloc = the_alloc(cluster, "pulled", until="running")
        assert types(alloc)[:4] == ["placed", "pulling", "pulled", "started"]
        pulling, pulled = alloc["events"][1:3]
        assert pulling["message"] == f"pulling image {ref}" and pulling["task"] == "web"
        assert pulled["message"].startswith(f"pulled image {ref} (")
        (container,) = docker_client.containers.list(filters={"label": "heroctl.job=pulled"})
        assert container.attrs["Config"]["Image"] == ref
        stop_job(cluster, docker_client, "pulled")


def test_pull_never_fails_a_missing_image_clearly(
    cluster: Cluster, docker_client: Any, open_registry: Registry
) -> None:
    with pushed(docker_client, open_registry, IMAGE, "heroctl-test/busybox", tag()) as ref:
        submit(cluster, job("never", ref, pull="never"))
        alloc = the_alloc(cluster, "never", until="failed")
        errors = [e for e in alloc["events"] if e["type"] == "driver_error"]
        assert errors and "pull: never" in errors[0]["message"]
        assert ref in errors[0]["message"] and "pulling" not in types(alloc)
        assert not docker_client.images.list(name=ref.rsplit(":", 1)[0])  # never pulled
        stop_job(cluster, docker_client, "never")


def test_a_bad_pull_policy_is_a_400_naming_the_field(cluster: Cluster) -> None:
    r = api(cluster).post("/v1/jobs", job("bad", IMAGE, pull="sometimes"))
    assert r.status == 400 and r.body["error"] == "invalid_field"
    assert "groups[0].tasks[0].pull" in r.body["message"]
    r = api(cluster).post(
        "/v1/jobs", job("bad", IMAGE, registry_auth={"username": USER, "password": "x"})
    )
    assert r.status == 400 and r.body["error"] == "invalid_field"
    assert "groups[0].tasks[0].registry_auth.password" in r.body["message"]
    assert '"x"' not in str(r.body) and "'x'" not in str(r.body)


def test_a_private_registry_pulls_with_the_secret_and_says_why_not_without(
    cluster: Cluster, docker_client: Any, private_registry: Registry
) -> None:
    s = api(cluster)
    for name, value in (("registry_pw", PASSWORD), ("registry_wrong", WRONG)):
        assert s.post("/v1/secrets", {"name": name, "value": value}).status in (200, 201)
    auth = {"username": USER, "password": PASSWORD}
    with pushed(docker_client, private_registry, IMAGE, "heroctl-test/private", tag(), auth) as ref:
        good = {"username": USER, "password_secret": "registry_pw"}
        submit(cluster, job("private", ref, registry_auth=good))
        alloc = the_alloc(cluster, "private", until="running")
        assert types(alloc)[:4] == ["placed", "pulling", "pulled", "started"]
        assert f"as '{USER}'" in alloc["events"][1]["message"]
        stored = s.get("/v1/jobs/private").body["groups"][0]["tasks"][0]
        assert stored["registry_auth"] == good  # the secret's name, never its value
        stop_job(cluster, docker_client, "private")
        docker_client.images.remove(ref)  # pulled: the next job must pull again

        bad = {"username": USER, "password_secret": "registry_wrong"}
        submit(cluster, job("denied", ref, registry_auth=bad))
        denied = the_alloc(cluster, "denied", until="failed")
        errors = [e for e in denied["events"] if e["type"] == "driver_error"]
        assert errors, denied["events"]
        assert errors[0]["message"].startswith(f"cannot pull image {ref!r} as '{USER}': ")
        assert "unauthorized" in errors[0]["message"]
        stop_job(cluster, docker_client, "denied")

    # Neither password is anywhere but in the sealed secrets: not in an
    # event, a job, a log, the raft journal or any file of the data dir.
    seen = [str(alloc), str(denied), private_registry.log(), cluster.servers[0].log()]
    seen += [str(s.get(path).body) for path in ("/v1/jobs/private", "/v1/jobs/denied")]
    seen.append(str(s.get("/v1/events?limit=10000").body))
    for text in seen:
        assert PASSWORD not in text and WRONG not in text
    for path in Path(cluster.root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert PASSWORD.encode() not in data and WRONG.encode() not in data, path
