"""The reconcile rules, run through the supervisor with a fake driver and a
fake clock: adopt, restart after the delay, fail, complete, stop, remove,
and deployment health."""

from __future__ import annotations

from agent.decisions import Kill, Start, Stop
from tests.agent.supervisor_harness import Harness, alloc, kinds, task


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


async def running(h: Harness) -> None:
    """Allocation a1 started and its state reported."""
    h.sup.set_desired([alloc()])
    h.poll()
    await h.settle()
    h.ack()


async def test_a_stop_waits_until_every_ingress_let_go(h: Harness) -> None:
    """A stopped allocation the ingress still routes to (`ingress_released:
    false`) keeps running until the cluster says every node's ingress let
    go of it; then it stops."""
    await running(h)
    h.sup.set_desired([{**alloc(desired="stop", status="running"), "ingress_released": False}])
    assert await h.settle() == []
    assert kinds(h.update()) == ["draining"]
    h.ack()
    h.clock.now += 1
    h.sup.set_desired([{**alloc(desired="stop", status="running"), "ingress_released": True}])
    assert await h.settle() == [Kill("a1", "web", "docker", "allocation stopped")]
    assert "drained" in kinds(h.update())


async def test_a_stop_waits_for_the_ingress_no_longer_than_its_timeout(h: Harness) -> None:
    await running(h)
    h.sup.set_desired([{**alloc(desired="stop", status="running"), "ingress_released": False}])
    assert await h.settle() == []
    h.clock.now += 10
    assert await h.settle() == [Kill("a1", "web", "docker", "allocation stopped")]
    u = h.update()
    assert any("did not let go within 10s" in e["message"] for e in u["events"])


async def test_a_rainbow_stop_keeps_its_open_connections_until_they_close(h: Harness) -> None:
    await running(h)
    stopping = {**alloc(desired="stop", status="running"), "drain_connections": 60}
    h.sup.set_desired([stopping])
    h.sup.runtimes["a1"].connections = 2  # what the supervisor samples (agent.connections)
    assert h.sup.decide() == []
    assert h.sup.pending_updates()[0]["connections"] == 2
    h.sup.runtimes["a1"].connections = 0
    assert h.sup.decide() == [Kill("a1", "web", "docker", "allocation stopped")]
    messages = [e["message"] for e in h.update()["events"]]
    assert "its connections closed" in messages


async def test_a_rainbow_stop_ends_at_its_drain_timeout(h: Harness) -> None:
    await running(h)
    h.sup.set_desired([{**alloc(desired="stop", status="running"), "drain_connections": 60}])
    h.sup.runtimes["a1"].connections = 1
    assert h.sup.decide() == []
    h.clock.now += 60
    h.sup.runtimes["a1"].connections = 1
    assert h.sup.decide() == [Kill("a1", "web", "docker", "allocation stopped")]
    assert any("60s passed with 1 connections open" in e["message"] for e in h.update()["events"])


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
