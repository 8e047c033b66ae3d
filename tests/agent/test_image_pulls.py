"""What the agent does around an image pull (no Docker: a fake driver): the
registry credentials reach the driver and nothing else, what the driver says
of its pull joins the allocation's timeline before `started`, and a start's
deadline grows by the pull's bound only once a pull began."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from agent.drivers.base import DriverError, RegistryAuth, TaskSpec, TaskState
from agent.drivers.calls import DriverCalls, EngineLimits
from tests.agent.fake_driver import FakeDriver
from tests.agent.supervisor_harness import NODE, Harness, alloc, kinds, task
from tests.support.drivers import task_spec

AUTH = {"username": "ci", "password_secret": "registry_pw"}
PASSWORD = "registry-password-1c9f"


class PullingDriver(FakeDriver):
    """Says it pulls (from its own thread, as the docker driver does) before
    each start; ``pull_seconds``: how long the pull takes."""

    allow_pull = True

    def __init__(self, pull_seconds: float = 0.0, *, says: bool = True) -> None:
        super().__init__(NODE)
        self.pull_seconds = pull_seconds
        self.says = says

    def start(self, spec: TaskSpec) -> TaskState:
        if self.says and spec.on_event is not None:
            spec.on_event("pulling", f"pulling image {spec.image}")
        time.sleep(self.pull_seconds)
        if self.says and spec.on_event is not None:
            spec.on_event("pulled", f"pulled image {spec.image} (2.0 MB) in 0.0 s")
        return super().start(spec)


def harness(secrets: dict[str, Any] | None) -> Harness:
    h = Harness(secrets)
    h.driver = PullingDriver()
    h.sup.drivers["docker"] = h.driver
    return h


async def test_registry_credentials_reach_the_driver_and_the_pull_the_timeline() -> None:
    h = harness({"env": {}, "registry_auth": {"username": "ci", "password": PASSWORD}})
    h.sup.set_desired([alloc(tasks=[task(registry_auth=AUTH, pull="always")])])
    h.poll()
    await h.settle()
    spec = h.driver.specs[("a1", "web")]
    assert spec.registry_auth == RegistryAuth("ci", PASSWORD) and spec.pull == "always"
    assert spec.secret_env == {} and PASSWORD not in repr(spec)
    u = h.update()
    assert kinds(u) == ["pulling", "pulled", "started"]
    assert u["events"][0]["message"] == "pulling image heroctl-test/busybox:latest"
    assert all(e["task"] == "web" for e in u["events"])
    assert PASSWORD not in repr(u)
    await h.close()


async def test_no_registry_auth_and_no_secrets_ask_the_endpoint_nothing() -> None:
    h = harness({"env": {}})
    h.sup.set_desired([alloc()])
    h.poll()
    await h.settle()
    assert h.secrets_asked == []
    spec = h.driver.specs[("a1", "web")]
    assert spec.registry_auth is None and spec.pull == "missing"  # an older job: the default
    await h.close()


async def test_an_answer_without_the_password_waits_as_missing_secrets_do() -> None:
    h = harness({"env": {}})  # an older server: no registry_auth in its answer
    h.sup.set_desired([alloc(tasks=[task(registry_auth=AUTH)])])
    h.poll()
    await h.settle()
    assert h.driver.count("start") == 0
    u = h.update()
    assert kinds(u) == ["secrets_error"]
    assert "did not return the registry password" in u["events"][0]["message"]
    await h.close()


@pytest.fixture
def engine_calls() -> Any:
    calls = DriverCalls()
    # A call's deadline of 1 s (a thread must say "pulling" within it, even on a
    # loaded machine), pulls of 2.5 s: well past it.
    calls.isolate("docker", EngineLimits(timeout=1.0, pull_timeout=10.0, threads=2))
    yield calls
    calls.close()


async def test_a_start_that_pulls_gets_the_pulls_bound(engine_calls: DriverCalls) -> None:
    heard: list[str] = []
    spec = task_spec(node=NODE, image="r/app:1", on_event=lambda kind, _: heard.append(kind))
    state = await engine_calls.start(PullingDriver(pull_seconds=2.5), spec)
    assert state.running and heard == ["pulling", "pulled"]


async def test_a_start_that_does_not_pull_keeps_the_calls_deadline(
    engine_calls: DriverCalls,
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    quiet = PullingDriver(pull_seconds=2.5, says=False)  # hangs, never says it pulls
    with pytest.raises(DriverError, match="did not answer within 1s"):
        await engine_calls.start(quiet, task_spec(node=NODE, image="r/app:1"))
    assert loop.time() - began < 2.0  # its deadline, not the pull's 2.5 s (nor its 10 s bound)
    never = task_spec(node=NODE, image="r/app:1", pull="never")
    with pytest.raises(DriverError, match="did not answer within 1s"):
        await engine_calls.start(PullingDriver(pull_seconds=2.5), never)
