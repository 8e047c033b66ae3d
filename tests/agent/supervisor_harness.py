"""A supervisor with a fake driver passed in (no Docker) and a fake clock
(no sleeps decide anything), and the allocation documents it is given.
Tests of several drivers pass their own (``drivers``, ``calls``)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from agent.drivers.base import Driver
from agent.drivers.calls import DriverCalls
from agent.supervisor import Supervisor
from tests.agent.fake_driver import FakeDriver

NODE = "node-fake-1"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def task(name: str = "web", **kw: Any) -> dict[str, Any]:
    doc = {
        "name": name,
        "driver": "docker",
        "image": "heroctl-test/busybox:latest",
        "command": ["httpd", "-f", "-p", "8080"],
        "env": {"A": "1"},
        "secrets": {},
        "resources": {"cpu": 100, "memory": 32},
        "ports": [],
        "check": None,
        "labels": {},
        "constraints": [],
        "kill_timeout": 1,
    }
    doc.update(kw)
    return doc


def alloc(
    alloc_id: str = "a1",
    *,
    tasks: list[dict[str, Any]] | None = None,
    job_type: str = "service",
    desired: str = "run",
    status: str = "pending",
    restart: Mapping[str, Any] | None = None,
    update: Mapping[str, Any] | None = None,
    task_states: Mapping[str, Any] | None = None,
    healthy: bool | None = None,
    ports: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    return {
        "id": alloc_id,
        "name": f"web.app[{alloc_id}]",
        "job": "web",
        "group": "app",
        "index": 0,
        "node": NODE,
        "job_version": 1,
        "job_type": job_type,
        "desired_status": desired,
        "status": status,
        "ports": dict(ports or {}),
        "resources": {"cpu": 100, "memory": 32},
        "task_states": dict(task_states or {}),
        "healthy": healthy,
        "group_spec": {
            "name": "app",
            "count": 1,
            "tasks": tasks if tasks is not None else [task()],
            "restart": dict(restart or {"attempts": 2, "interval": 60, "delay": 5, "mode": "fail"}),
            "update": dict(
                update or {"max_parallel": 1, "min_healthy_time": 3, "healthy_deadline": 30}
            ),
        },
    }


class Harness:
    def __init__(
        self,
        secrets: Mapping[str, Any] | None = None,
        *,
        drivers: Mapping[str, Driver] | None = None,
        calls: DriverCalls | None = None,
    ) -> None:
        self.clock = Clock()
        self.driver = FakeDriver(NODE)
        self.secrets_asked: list[str] = []
        self._secrets = secrets

        async def fetch(alloc_id: str, task: str) -> Mapping[str, Any]:
            self.secrets_asked.append(alloc_id)
            if self._secrets is None:
                raise RuntimeError("secrets endpoint unreachable")
            return self._secrets

        self.sup = Supervisor(
            NODE,
            drivers if drivers is not None else {"docker": self.driver},
            fetch_secrets=fetch,
            clock=self.clock,
            calls=calls,
        )

    def poll(self) -> None:
        self.sup.observe(self.driver.list(), self.sup.observation_gen())

    async def settle(self) -> list[Any]:
        """Reconcile until nothing more happens now; every action started."""
        done: list[Any] = []
        for _ in range(20):
            actions = await self.sup.reconcile()
            done.extend(actions)
            if self.sup.busy:
                await asyncio.gather(*self.sup.busy.values())
                continue
            if not actions:
                return done
        raise AssertionError("the supervisor does not settle")

    def update(self, alloc_id: str = "a1") -> dict[str, Any]:
        ups = {u["id"]: u for u in self.sup.pending_updates()}
        return ups[alloc_id]

    def ack(self) -> None:
        self.sup.acknowledge(self.sup.pending_updates())

    async def close(self) -> None:
        await self.sup.close()


def kinds(update: Mapping[str, Any]) -> list[str]:
    return [e["type"] for e in update["events"]]
