"""The docker driver's pulls against the real engine and a real registry.

Debian's docker-registry runs on 127.0.0.1 twice (one open, one behind
htpasswd auth); the local test image is pushed to it under a tag of this
module's own, that tag is removed locally, and the driver has to pull it
back as the task's ``pull`` policy and ``registry_auth`` say.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from agent.drivers.base import Driver, DriverError, RegistryAuth
from tests.agent.drivers.docker_support import needs_docker, spec, wait_for
from tests.support.registry import Registry, pushed, registry_unavailable
from tests.support.workloads import IMAGE

_NO_REGISTRY = registry_unavailable(auth=True)
pytestmark = [
    needs_docker,
    pytest.mark.skipif(_NO_REGISTRY is not None, reason=_NO_REGISTRY or ""),
]

USER = "ci-puller"
PASSWORD = "pw-" + uuid.uuid4().hex  # nowhere but the registry and the pull's header


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    import docker

    c = docker.from_env(timeout=60)
    try:
        yield c
    finally:
        c.close()


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


@pytest.fixture(scope="module")
def open_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry-open")) as registry:
        yield registry


@pytest.fixture(scope="module")
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with Registry(tmp_path_factory.mktemp("registry-auth"), {USER: PASSWORD}) as registry:
        yield registry


def _tag() -> str:
    return "t-" + uuid.uuid4().hex[:10]


class Events:
    """A task's event sink, as the supervisor's."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, kind: str, message: str) -> None:
        self.seen.append((kind, message))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.seen]


def _run_once(driver: Driver, node: str, ref: str, **kw: Any) -> str:
    """Start a task of ``ref`` that prints and exits; its output."""
    s = spec(node, ["sh", "-c", "echo pulled-and-ran"], image=ref, **kw)
    try:
        driver.start(s)
        wait_for(lambda: driver.inspect(s.alloc_id, s.task).state == "exited")
        return driver.logs(s.alloc_id, s.task)
    finally:
        driver.remove(s.alloc_id, s.task)


def test_a_missing_image_is_pulled_by_default(
    driver: Driver, node: str, client: Any, open_registry: Registry
) -> None:
    with pushed(client, open_registry, IMAGE, "heroctl-test/busybox", _tag()) as ref:
        events = Events()
        assert "pulled-and-ran" in _run_once(driver, node, ref, on_event=events)
        assert events.kinds() == ["pulling", "pulled"]
        assert events.seen[0][1] == f"pulling image {ref}"
        assert re.fullmatch(
            rf"pulled image {re.escape(ref)} \(\d+\.\d MB\) in \d+\.\d s", events.seen[1][1]
        )
        # present now: `missing` does not pull again
        again = Events()
        assert "pulled-and-ran" in _run_once(driver, node, ref, on_event=again)
        assert again.seen == []
        # `always` does
        always = Events()
        assert "pulled-and-ran" in _run_once(driver, node, ref, pull="always", on_event=always)
        assert always.kinds() == ["pulling", "pulled"]


def test_pull_never_fails_a_missing_image_clearly(
    driver: Driver, node: str, client: Any, open_registry: Registry
) -> None:
    with pushed(client, open_registry, IMAGE, "heroctl-test/busybox", _tag()) as ref:
        events = Events()
        s = spec(node, ["true"], image=ref, pull="never", on_event=events)
        with pytest.raises(DriverError, match="is not present on node .* pull: never"):
            driver.start(s)
        assert events.seen == []
        assert all(t.alloc_id != s.alloc_id for t in driver.list())


def test_a_registry_that_is_not_there_is_a_clear_error(driver: Driver, node: str) -> None:
    s = spec(node, ["true"], image="127.0.0.1:1/heroctl-test/nothing:1")
    with pytest.raises(DriverError, match="cannot pull image .*connection refused"):
        driver.start(s)


def test_a_private_registry_with_the_right_password_pulls(
    driver: Driver, node: str, client: Any, private_registry: Registry
) -> None:
    auth = {"username": USER, "password": PASSWORD}
    with pushed(client, private_registry, IMAGE, "heroctl-test/private", _tag(), auth) as ref:
        events = Events()
        out = _run_once(
            driver, node, ref, registry_auth=RegistryAuth(USER, PASSWORD), on_event=events
        )
        assert "pulled-and-ran" in out
        assert events.kinds() == ["pulling", "pulled"]
        assert f"as '{USER}'" in events.seen[0][1]
        assert all(PASSWORD not in m for _, m in events.seen)


def test_a_wrong_password_or_none_fails_with_the_registrys_words(
    driver: Driver, node: str, client: Any, private_registry: Registry
) -> None:
    auth = {"username": USER, "password": PASSWORD}
    wrong = "wrong-" + uuid.uuid4().hex
    with pushed(client, private_registry, IMAGE, "heroctl-test/private", _tag(), auth) as ref:
        events = Events()
        s = spec(
            node, ["true"], image=ref, registry_auth=RegistryAuth(USER, wrong), on_event=events
        )
        assert wrong not in repr(s)
        with pytest.raises(DriverError) as failed:
            driver.start(s)
        message = str(failed.value)
        assert message.startswith(f"cannot pull image {ref!r} as '{USER}': ")
        assert "unauthorized" in message
        assert wrong not in message and all(wrong not in m for _, m in events.seen)
        with pytest.raises(DriverError, match="no basic auth credentials"):
            driver.start(spec(node, ["true"], image=ref))
    assert wrong not in private_registry.log() and PASSWORD not in private_registry.log()
