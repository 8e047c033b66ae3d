"""What the driver gets: the task's secrets (fetched, never in the plain
env; retried when the endpoint fails) and its ports."""

from __future__ import annotations

from tests.agent.supervisor_harness import NODE, Harness, alloc, kinds, task


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


async def test_ports_map_host_port_to_task_port(h: Harness) -> None:
    t = task(ports=[{"name": "http", "to": 8080, "static": None}])
    h.sup.set_desired([alloc(tasks=[t], ports={"http": 23456})])
    h.poll()
    await h.settle()
    spec = h.driver.specs[("a1", "web")]
    assert [(p.name, p.host_port, p.task_port) for p in spec.ports] == [("http", 23456, 8080)]
    assert spec.node == NODE and spec.kill_timeout == 1.0 and spec.job_version == 1
