"""Reconcile decisions of the agent, with a fake driver passed in (no Docker)
and a fake clock (no sleeps decide anything)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from agent.supervisor import Kill, Start, Stop, Supervisor
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
    def __init__(self, secrets: Mapping[str, Any] | None = None) -> None:
        self.clock = Clock()
        self.driver = FakeDriver(NODE)
        self.secrets_asked: list[str] = []
        self._secrets = secrets

        async def fetch(alloc_id: str) -> Mapping[str, Any]:
            self.secrets_asked.append(alloc_id)
            if self._secrets is None:
                raise RuntimeError("secrets endpoint unreachable")
            return self._secrets

        self.sup = Supervisor(NODE, {"docker": self.driver}, fetch_secrets=fetch, clock=self.clock)

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


@pytest.fixture
async def h() -> Any:
    harness = Harness()
    yield harness
    await harness.close()


def kinds(update: Mapping[str, Any]) -> list[str]:
    return [e["type"] for e in update["events"]]


async def test_starts_each_task_once_and_reports_running(h: Harness) -> None:
    h.sup.set_desired([alloc(tasks=[task("web"), task("side")])])
    h.poll()
    actions = await h.settle()
    assert sorted(a.task for a in actions if isinstance(a, Start)) == ["side", "web"]
    assert h.driver.count("start") == 2
    u = h.update()
    assert u["status"] == "running"
    assert u["task_states"]["web"]["state"] == "running"
    assert u["task_states"]["web"]["restarts"] == 0
    assert kinds(u) == ["started", "started"]
    h.ack()
    assert h.sup.pending_updates() == []
    h.poll()
    assert await h.settle() == []  # steady: nothing to do, nothing to say
    assert h.sup.pending_updates() == []


async def test_nothing_happens_before_the_first_watch_result_and_poll(h: Harness) -> None:
    h.driver.plant("stranger", "web")
    h.poll()
    assert await h.settle() == []  # no watch result yet: the stranger may be ours
    h2 = Harness()
    h2.sup.set_desired([alloc()])
    assert await h2.settle() == []  # no listing yet: a start could duplicate a task
    await h2.close()


async def test_adopts_running_tasks_after_an_agent_restart(h: Harness) -> None:
    """The server says running; the container runs: no start, no report."""
    planted = h.driver.plant("a1", "web")
    states = {
        "web": {
            "state": "running",
            "restarts": 1,
            "exit_code": None,
            "started_at": 5,
            "finished_at": None,
            "failed": False,
        }
    }
    h.sup.set_desired([alloc(status="running", task_states=states, healthy=True)])
    h.poll()
    assert await h.settle() == []
    assert h.driver.count("start") == 0
    assert h.sup.pending_updates() == []
    assert h.driver.running() == [planted]


async def test_adopting_a_task_the_server_thought_pending_reports_it(h: Harness) -> None:
    h.driver.plant("a1", "web")  # started just before the agent died
    h.sup.set_desired([alloc()])
    h.poll()
    assert await h.settle() == []
    u = h.update()
    assert u["status"] == "running"
    assert kinds(u) == ["started"] and "adopted" in u["events"][0]["message"]


async def test_exit_is_restarted_after_the_delay_by_the_agent(h: Harness) -> None:
    h.sup.set_desired([alloc()])
    h.poll()
    await h.settle()
    h.ack()
    h.driver.exit("a1", "web", code=137)
    h.poll()
    assert await h.settle() == []  # the delay (5 s) has not passed
    assert h.sup.wake_at() == h.clock.now + 5
    u = h.update()
    assert u["task_states"]["web"]["state"] == "pending"
    assert u["task_states"]["web"]["exit_code"] == 137
    assert kinds(u) == ["exited", "restarting"]
    h.clock.now += 5
    actions = await h.settle()
    assert actions == [Start("a1", "web", restart=True)]
    u = h.update()
    assert u["task_states"]["web"]["state"] == "running"
    assert u["task_states"]["web"]["restarts"] == 1
    assert kinds(u)[-1] == "restarted"


async def test_restarts_exhausted_fail_the_allocation_and_stop_siblings(h: Harness) -> None:
    h.sup.set_desired([alloc(tasks=[task("web"), task("side")])])
    h.poll()
    await h.settle()
    for _ in range(2):
        h.driver.exit("a1", "web")
        h.poll()
        await h.settle()
        h.clock.now += 5
        await h.settle()
    assert h.driver.count("start") == 4  # 2 first starts + 2 restarts
    h.driver.exit("a1", "web")
    h.poll()
    actions = await h.settle()
    assert Stop("a1", "side", "docker", "another task failed") in actions
    u = h.update()
    assert u["status"] == "failed"
    assert u["healthy"] is False
    assert u["task_states"]["web"]["failed"] is True
    assert u["task_states"]["web"]["restarts"] == 2
    assert u["task_states"]["side"]["state"] == "dead"
    assert "failed" in kinds(u)
    h.clock.now += 100
    h.poll()
    assert await h.settle() == []  # failed stays failed: never started again
    assert h.driver.running() == []


async def test_batch_task_exiting_zero_completes(h: Harness) -> None:
    h.sup.set_desired([alloc(job_type="batch", tasks=[task("job", command=["true"])])])
    h.poll()
    await h.settle()
    h.driver.exit("a1", "job", code=0)
    h.poll()
    assert await h.settle() == []
    u = h.update()
    assert u["status"] == "complete"
    assert u["task_states"]["job"] == {**u["task_states"]["job"], "state": "dead", "exit_code": 0}
    assert u["healthy"] is None  # no deployment health for batch jobs
    h.clock.now += 60
    h.poll()
    assert await h.settle() == []
    assert h.driver.count("start") == 1
    assert h.driver.count("remove") == 0  # kept for its logs until the alloc goes


async def test_desired_stop_stops_removes_and_reports_complete(h: Harness) -> None:
    h.sup.set_desired([alloc()])
    h.poll()
    await h.settle()
    h.ack()
    h.sup.set_desired([alloc(desired="stop", status="running")])
    actions = await h.settle()
    assert actions == [Kill("a1", "web", "docker", "allocation stopped")]
    assert h.driver.tasks == {}
    h.poll()
    await h.settle()
    u = h.update()
    assert u["status"] == "complete"
    assert u["task_states"]["web"]["state"] == "dead"
    assert "killed" in kinds(u)


async def test_allocation_gone_and_strangers_are_removed(h: Harness) -> None:
    h.driver.plant("stranger", "web")
    h.sup.set_desired([alloc()])
    h.poll()
    actions = await h.settle()
    assert Kill("stranger", "web", "docker", "no allocation wants it") in actions
    h.sup.set_desired([])
    h.poll()
    actions = await h.settle()
    assert actions == [Kill("a1", "web", "docker", "allocation gone")]
    h.poll()
    await h.settle()
    assert h.driver.tasks == {}
    assert h.sup.runtimes == {}


async def test_lost_allocation_is_cleaned_up_but_not_reported(h: Harness) -> None:
    h.driver.plant("a1", "web")  # the node came back after the cluster gave up on it
    h.sup.set_desired([alloc(desired="stop", status="lost")])
    h.poll()
    await h.settle()
    assert h.driver.tasks == {}
    assert h.sup.pending_updates() == []


async def test_vanished_container_counts_as_an_exit(h: Harness) -> None:
    h.sup.set_desired([alloc()])
    h.poll()
    await h.settle()
    h.driver.vanish("a1", "web")  # docker rm -f behind our back
    h.poll()
    await h.settle()
    u = h.update()
    assert u["events"][-2]["type"] == "exited"
    assert "vanished" in u["events"][-2]["message"]
    h.clock.now += 5
    await h.settle()
    assert len(h.driver.running()) == 1


async def test_an_observation_older_than_a_start_is_ignored(h: Harness) -> None:
    h.sup.set_desired([alloc()])
    h.poll()
    gen = h.sup.observation_gen()
    stale = h.driver.list()  # listed before the start finished: no task yet
    await h.settle()
    h.sup.observe(stale, gen)
    assert await h.settle() == []
    assert h.driver.count("start") == 1
    assert h.update()["task_states"]["web"]["state"] == "running"


async def test_unhealthy_until_min_healthy_time_then_healthy(h: Harness) -> None:
    h.sup.set_desired([alloc(update={"min_healthy_time": 3, "healthy_deadline": 30})])
    h.poll()
    await h.settle()
    assert h.update()["healthy"] is None
    h.clock.now += 2.9
    await h.settle()
    assert h.update()["healthy"] is None
    h.clock.now += 0.1
    await h.settle()
    u = h.update()
    assert u["healthy"] is True
    assert "health" in kinds(u)


async def test_health_deadline_missed_reports_unhealthy(h: Harness) -> None:
    h.driver.exec_result = (1, "not ready")
    check = {"type": "command", "command": ["false"], "interval": 0.05, "timeout": 1}
    h.sup.set_desired(
        [
            alloc(
                tasks=[task(check=check)],
                update={"min_healthy_time": 1, "healthy_deadline": 10},
            )
        ]
    )
    h.poll()
    await h.settle()
    for _ in range(100):  # the check loop runs on the event loop
        if h.driver.count("exec") >= 2:
            break
        await asyncio.sleep(0.02)
    h.clock.now += 10
    await h.settle()
    u = h.update()
    assert u["healthy"] is False
    assert any("check failing" in e["message"] for e in u["events"])


async def test_checks_passing_make_it_healthy(h: Harness) -> None:
    check = {"type": "command", "command": ["true"], "interval": 0.05, "timeout": 1}
    h.sup.set_desired([alloc(tasks=[task(check=check)], update={"min_healthy_time": 1})])
    h.poll()
    await h.settle()
    h.clock.now += 5
    await h.settle()
    assert h.update()["healthy"] is None  # no check result yet: not healthy
    for _ in range(100):
        if h.sup.runtimes["a1"].tasks["web"].check_ok:
            break
        await asyncio.sleep(0.02)
    await h.settle()
    h.clock.now += 1
    await h.settle()
    assert h.update()["healthy"] is True


async def test_secrets_reach_the_driver_and_missing_ones_are_retried() -> None:
    h = Harness(secrets={"env": {"DB_PASSWORD": "s3cret"}})
    t = task(secrets={"DB_PASSWORD": "db_password"})
    h.sup.set_desired([alloc(tasks=[t])])
    h.poll()
    await h.settle()
    spec = h.driver.specs[("a1", "web")]
    assert spec.secret_env == {"DB_PASSWORD": "s3cret"}
    assert "DB_PASSWORD" not in spec.env
    assert "s3cret" not in repr(spec)
    await h.close()

    h2 = Harness(secrets=None)  # the endpoint does not answer
    h2.sup.set_desired([alloc(tasks=[t])])
    h2.poll()
    await h2.settle()
    assert h2.driver.count("start") == 0
    u = h2.update()
    assert u["status"] == "pending" and kinds(u) == ["secrets_error"]
    assert u["task_states"]["web"]["restarts"] == 0  # not the task's fault
    h2._secrets = {"env": {"DB_PASSWORD": "s3cret"}}
    h2.clock.now += 2
    await h2.settle()
    assert h2.driver.count("start") == 1
    assert h2.update()["status"] == "running"
    await h2.close()


async def test_driver_errors_follow_the_restart_policy(h: Harness) -> None:
    h.driver.fail_start = "image 'nope' is not present on node x and pulling is disabled"
    h.sup.set_desired([alloc(restart={"attempts": 1, "interval": 60, "delay": 1, "mode": "fail"})])
    h.poll()
    await h.settle()
    h.clock.now += 1
    await h.settle()
    u = h.update()
    assert u["status"] == "failed"
    assert kinds(u).count("driver_error") == 2
    assert "pulling is disabled" in u["events"][0]["message"]


async def test_ports_map_host_port_to_task_port(h: Harness) -> None:
    t = task(ports=[{"name": "http", "to": 8080, "static": None}])
    h.sup.set_desired([alloc(tasks=[t], ports={"http": 23456})])
    h.poll()
    await h.settle()
    spec = h.driver.specs[("a1", "web")]
    assert [(p.name, p.host_port, p.task_port) for p in spec.ports] == [("http", 23456, 8080)]
    assert spec.node == NODE and spec.kill_timeout == 1.0 and spec.job_version == 1


async def test_allocations_of_other_nodes_are_ignored(h: Harness) -> None:
    other = dict(alloc("b1"), node="someone-else")
    h.sup.set_desired([other])
    h.poll()
    assert await h.settle() == []


async def test_events_survive_a_failed_report(h: Harness) -> None:
    h.sup.set_desired([alloc()])
    h.poll()
    await h.settle()
    first = h.sup.pending_updates()  # a report that will fail: never acknowledged
    h.driver.exit("a1", "web")
    h.poll()
    await h.settle()
    second = h.sup.pending_updates()
    assert kinds(second[0]) == ["started", "exited", "restarting"]
    h.sup.acknowledge(first)  # an older report that did get through late
    assert kinds(h.update()) == ["exited", "restarting"]


async def test_terminal_allocations_are_not_reported_again(h: Harness) -> None:
    """After an agent restart, old stopped allocations cost no status write."""
    h.sup.set_desired(
        [
            alloc("done", desired="stop", status="complete"),  # never started here
            alloc("bad", status="failed", task_states={"web": {"state": "dead", "failed": True}}),
        ]
    )
    h.poll()
    assert await h.settle() == []
    assert h.sup.pending_updates() == []
    assert h.driver.count("start") == 0
