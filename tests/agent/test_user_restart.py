"""A user's restart (the allocation's `restart_requested`), through the
supervisor with a fake driver: each running task it names is stopped and
started again in the same allocation, once, counted in its restarts but not
in its restart policy."""

from __future__ import annotations

import asyncio
from typing import Any

from agent.decisions import Restart
from agent.drivers.base import DriverError, TaskState
from tests.agent.fake_driver import FakeDriver
from tests.agent.supervisor_harness import NODE, Harness, alloc, kinds, task

RUNNING_WEB = {
    "web": {"state": "running", "restarts": 0, "exit_code": None, "failed": False},
}


def asked(index: int, task_name: str | None = None, **kw: Any) -> dict[str, Any]:
    doc = alloc(status="running", healthy=True, **kw)
    doc["restart_requested"] = {"index": index, "task": task_name}
    return doc


async def running(h: Harness, **kw: Any) -> None:
    """a1 started by this agent, reported and acknowledged."""
    h.sup.set_desired([alloc(**kw)])
    h.poll()
    await h.settle()
    h.ack()


async def test_a_request_restarts_the_task_in_place_once(h: Harness) -> None:
    await running(h)
    (before,) = h.driver.running()
    h.sup.set_desired([asked(40)])
    h.poll()
    actions = await h.settle()
    assert actions == [Restart("a1", "web", "docker")]
    assert [c[0] for c in h.driver.calls] == ["start", "stop", "start"]
    (after,) = h.driver.running()
    assert after.handle != before.handle and after.alloc_id == "a1"
    u = h.update()
    assert u["restart_handled"] == 40
    assert u["status"] == "running"
    assert u["task_states"]["web"]["restarts"] == 1
    assert kinds(u) == ["restarting", "restarted"]
    assert u["events"][0]["message"] == "restart requested by a user"
    assert not h.sup.runtimes["a1"].tasks["web"].restarts.recent  # not the policy's
    h.ack()
    # The same document again (every watch result carries it): nothing more.
    h.sup.set_desired([asked(40)])
    h.poll()
    assert await h.settle() == []
    assert h.driver.count("start") == 2
    assert h.sup.pending_updates() == []


async def test_user_restarts_use_up_none_of_the_policy_attempts(h: Harness) -> None:
    policy = {"attempts": 1, "interval": 60, "delay": 5, "mode": "fail"}
    await running(h, restart=policy)
    for index in (10, 11, 12):
        h.sup.set_desired([asked(index, restart=policy)])
        h.poll()
        await h.settle()
    assert h.update()["task_states"]["web"]["restarts"] == 3
    h.ack()
    # The policy still has its one attempt: the next exit is restarted, not failed.
    h.driver.exit("a1", "web", code=1)
    h.poll()
    await h.settle()
    h.clock.now += 5
    await h.settle()
    u = h.update()
    assert u["status"] == "running"
    assert u["task_states"]["web"]["restarts"] == 4
    assert "failed" not in kinds(u)


async def test_only_the_named_task_restarts(h: Harness) -> None:
    tasks = [task("web"), task("side")]
    await running(h, tasks=tasks)
    handles = {st.task: st.handle for st in h.driver.running()}
    h.sup.set_desired([asked(7, "side", tasks=tasks)])
    h.poll()
    assert await h.settle() == [Restart("a1", "side", "docker")]
    now = {st.task: st.handle for st in h.driver.running()}
    assert now["web"] == handles["web"] and now["side"] != handles["side"]
    states = h.update()["task_states"]
    assert (states["web"]["restarts"], states["side"]["restarts"]) == (0, 1)


async def test_a_request_already_handled_is_not_replayed_by_a_new_agent(h: Harness) -> None:
    """An agent that restarts finds the request handled in the document."""
    h.driver.plant("a1", "web")
    doc = asked(40, task_states=RUNNING_WEB)
    doc["restart_handled"] = 40
    h.sup.set_desired([doc])
    h.poll()
    assert await h.settle() == []
    assert h.driver.count("stop") == 0 and h.sup.pending_updates() == []


async def test_a_request_the_old_agent_missed_is_acted_on(h: Harness) -> None:
    """Asked while the agent was down: the new one adopts the task, then restarts it."""
    planted = h.driver.plant("a1", "web")
    h.sup.set_desired([asked(40, task_states=RUNNING_WEB)])
    h.poll()
    assert await h.settle() == [Restart("a1", "web", "docker")]
    (now,) = h.driver.running()
    assert now.handle != planted.handle
    assert h.update()["restart_handled"] == 40


async def test_a_task_that_is_not_running_is_left_to_its_policy(h: Harness) -> None:
    await running(h)
    h.driver.exit("a1", "web", code=3)
    h.sup.set_desired([asked(9)])
    h.poll()
    actions = await h.settle()
    assert not [a for a in actions if isinstance(a, Restart)]
    u = h.update()
    assert u["restart_handled"] == 9  # handled: nothing of it ran
    assert "restarting" in kinds(u) and u["task_states"]["web"]["exit_code"] == 3
    assert not any(e["message"] == "restart requested by a user" for e in u["events"])


class StopFails(FakeDriver):
    def stop(self, alloc_id: str, task: str, timeout: float | None = None) -> TaskState:
        raise DriverError("the engine timed out")


async def test_a_stop_that_fails_restarts_nothing_and_says_why() -> None:
    driver = StopFails(NODE)
    h = Harness(drivers={"docker": driver})
    h.driver = driver
    try:
        await running(h)
        (before,) = driver.running()
        h.sup.set_desired([asked(5)])
        h.poll()
        assert await h.settle() == [Restart("a1", "web", "docker")]
        assert driver.running() == [before]
        u = h.update()
        assert u["task_states"]["web"]["restarts"] == 0 and u["status"] == "running"
        assert "cannot stop it to restart: the engine timed out" in u["events"][-1]["message"]
        assert u["restart_handled"] == 5  # not retried: the user asks again
    finally:
        await h.close()


async def test_the_request_is_reported_done_only_once_the_task_started_again(h: Harness) -> None:
    await running(h)
    h.sup.set_desired([asked(40)])
    h.poll()
    actions = await h.sup.reconcile()
    assert actions == [Restart("a1", "web", "docker")] and h.sup.busy
    in_flight = h.update()
    assert "restart_handled" not in in_flight  # asked, not done: nothing to tell yet
    assert kinds(in_flight) == ["restarting"]
    await asyncio.gather(*h.sup.busy.values())
    done = h.update()
    assert done["restart_handled"] == 40 and done["task_states"]["web"]["restarts"] == 1
