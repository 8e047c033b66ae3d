"""The supervisor with a fake driver: it acts only once it knows what the
cluster wants and what runs here, ignores stale observations, runs health
checks, turns driver errors into restarts, and reports what changed."""

from __future__ import annotations

import asyncio

from agent.decisions import Start
from tests.agent.supervisor_harness import Harness, alloc, kinds, task


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
