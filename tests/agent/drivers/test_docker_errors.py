"""The docker driver over fake engines: whatever the SDK or the socket
raises, the driver raises a DriverError (the only exception the agent
handles), and odd answers from the engine do not crash a start."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent.drivers.base import DriverError, TaskNotFound
from agent.drivers.docker import DockerDriver
from agent.drivers.docker_containers import container_name
from tests.agent.engine_fakes import EngineFake, RefusingEngineFake
from tests.support.drivers import task_spec

NODE = "n-engine"


def spec() -> Any:
    return task_spec(node=NODE, image="heroctl-test/busybox:latest", command=["sleep", "60"])


CALLS: dict[str, Callable[[DockerDriver], Any]] = {
    "start": lambda d: d.start(spec()),
    "stop": lambda d: d.stop("a1", "web", 1),
    "remove": lambda d: d.remove("a1", "web"),
    "inspect": lambda d: d.inspect("a1", "web"),
    "list": lambda d: d.list(),
    "exec_command": lambda d: d.exec_command("a1", "web", ["true"]),
    "logs": lambda d: d.logs("a1", "web"),
    "stats": lambda d: d.stats("a1", "web"),
}


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_refused_connection_is_a_driver_error(call: str) -> None:
    """requests' ConnectionError is an OSError, not a DockerException: it
    used to escape every handler and abort the agent's poll round."""
    driver = DockerDriver(NODE, client=RefusingEngineFake())
    with pytest.raises(DriverError) as raised:
        CALLS[call](driver)
    assert "Connection refused" in str(raised.value)
    assert not driver.available()


def test_an_answer_of_the_wrong_shape_is_a_driver_error() -> None:
    engine = EngineFake()
    engine.api.containers = lambda **kw: [None]  # type: ignore[method-assign]
    with pytest.raises(DriverError, match="unexpected answer"):
        DockerDriver(NODE, client=engine).list()


def test_a_container_without_a_state_is_replaced() -> None:
    """An inspect answer without ``State`` used to raise KeyError out of start."""
    engine = EngineFake()
    s = spec()
    odd = engine.plant(container_name(s.alloc_id, s.task), {"heroctl.node": NODE}, running=False)
    odd.attrs = {"Id": odd.id}
    odd.labels = {"heroctl.node": NODE, "heroctl.alloc_id": s.alloc_id}
    odd.reload = lambda: None  # type: ignore[method-assign]
    state = DockerDriver(NODE, client=engine).start(s)
    assert state.running and state.handle != odd.id
    assert engine.calls.count("remove") == 1 and engine.calls.count("create") == 1


def test_a_vanished_container_is_task_not_found() -> None:
    with pytest.raises(TaskNotFound):
        DockerDriver(NODE, client=EngineFake()).stop("a1", "web", 1)
