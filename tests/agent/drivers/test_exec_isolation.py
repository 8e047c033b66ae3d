"""The exec driver's sandbox with real processes: tasks run as their user
(nobody by default) in a directory of their own, in a cgroup with their
limits where cgroup v2 allows it; an agent that is not root refuses to
switch users."""

from __future__ import annotations

import logging
import os
import pwd
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from agent.drivers.base import DriverError, TaskSpec
from agent.drivers.cgroups import Cgroups, cpu_max
from agent.drivers.exec import ExecDriver
from agent.drivers.exec_spawn import resolve_user
from tests.support.drivers import poll, task_spec

NODE = "exec-node-iso"
NOBODY = resolve_user("nobody").uid
wait_for = partial(poll, timeout=5.0, step=0.02)
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs an agent run as root")


def spec(script: str, **kw: object) -> TaskSpec:
    fields: dict[str, object] = {"node": NODE, "command": ["sh", "-c", script], "kill_timeout": 1.0}
    fields.update(kw)
    return task_spec(**fields)


@pytest.fixture
def no_cgroups(tmp_path: Path) -> Cgroups:
    return Cgroups(tmp_path / "no-cgroup-v2-here")


@pytest.fixture
def driver(tmp_path: Path, no_cgroups: Cgroups) -> Iterator[ExecDriver]:
    d = ExecDriver(NODE, tmp_path / "data", no_cgroups)
    try:
        yield d
    finally:
        for state in d.list():
            d.remove(state.alloc_id, state.task)


def finished_output(driver: ExecDriver, s: TaskSpec) -> str:
    state = driver.start(s)
    assert wait_for(lambda: not driver.inspect(s.alloc_id, s.task).running), state
    return driver.logs(s.alloc_id, s.task, tail=None)


@as_root
def test_tasks_run_as_nobody_and_cannot_read_root_files(
    driver: ExecDriver, root_only_file: Path
) -> None:
    s = spec(f"id -u; id -g; cat {root_only_file} || echo refused")
    out = finished_output(driver, s).split("\n")
    assert out[0] == str(NOBODY) and out[1] == str(resolve_user("nobody").gid)
    assert "refused" in out and "not-for-tasks" not in "\n".join(out)


@as_root
def test_the_task_owns_its_directory_but_not_its_output(driver: ExecDriver) -> None:
    s = spec(
        'echo kept > note; cat note; [ "$PWD" = "$HOME" ] && echo home; '
        "cat ../output.log || echo no-log; ln -sf /etc/shadow ../output.log || echo no-swap"
    )
    lines = finished_output(driver, s).split("\n")  # the errors of cat and ln are in it too
    assert all(marker in lines for marker in ("kept", "home", "no-log", "no-swap")), lines
    home = driver.task_dir(s.alloc_id, s.task) / "work"
    assert home.stat().st_uid == NOBODY and (home / "note").read_text() == "kept\n"
    log = driver.task_dir(s.alloc_id, s.task) / "output.log"
    assert log.stat().st_uid == 0 and not log.is_symlink() and (log.stat().st_mode & 0o077) == 0


@as_root
def test_health_checks_run_as_the_task_user(driver: ExecDriver) -> None:
    s = spec("sleep 30")
    driver.start(s)
    code, out = driver.exec_command(s.alloc_id, s.task, ["id", "-u"], timeout=5)
    assert (code, out.strip()) == (0, str(NOBODY))


def test_unknown_users_and_an_agent_that_is_not_root(
    driver: ExecDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DriverError, match="user 'no-such-user' does not exist on this node"):
        driver.start(spec("true", user="no-such-user"))
    monkeypatch.setattr(os, "geteuid", lambda: NOBODY)  # the agent as nobody
    assert not resolve_user("nobody").switches
    with pytest.raises(DriverError) as refused:
        resolve_user("root")
    assert str(refused.value) == (
        "the agent runs as 'nobody', not root, so it cannot run tasks as 'root': "
        "set the task's user to 'nobody', or run the agent as root"
    )


def test_cpu_max_is_the_share_of_the_host() -> None:
    assert cpu_max(1000, 1000, 4) == "100000 100000"  # one core
    assert cpu_max(250, 1000, 4) == "25000 100000"
    assert cpu_max(1, 3000, 4) == "1000 100000"  # the kernel's minimum quota
    assert cpu_max(99_000, 1000, 4) == "400000 100000"  # never more than the host


def test_without_cgroup_v2_tasks_run_and_it_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cgroups = Cgroups(tmp_path / "none")
    with caplog.at_level(logging.WARNING, logger="heroctl.agent"):
        assert not cgroups.usable() and not cgroups.usable()
    said = [r.getMessage() for r in caplog.records if "without a cgroup" in r.getMessage()]
    assert said == [
        "agent: exec tasks run without a cgroup (no cpu or memory limit): "
        f"no cgroup v2 hierarchy at {tmp_path / 'none'}"
    ]
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cgroup.controllers").write_text("cpuset io pids\n")
    assert "lacks the cpu, memory controller" in str(Cgroups(tmp_path / "v2")._setup())


@pytest.fixture
def fake_cgroupfs(tmp_path: Path) -> Path:
    """A directory shaped like a cgroup v2 root (plain files: the kernel's
    rules do not apply, what the driver writes can be read back)."""
    root = tmp_path / "cgroupfs"
    (root / "heroctl.slice").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "heroctl.slice" / "cgroup.subtree_control").write_text("")
    return root


def test_each_task_gets_a_cgroup_with_its_limits_and_enters_it_before_exec(
    tmp_path: Path, fake_cgroupfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    removed: list[str] = []
    monkeypatch.setattr(Cgroups, "remove", staticmethod(removed.append))
    driver = ExecDriver(NODE, tmp_path / "data", Cgroups(fake_cgroupfs))
    s = spec("sleep 30", cpu=500, memory=64, user=pwd.getpwuid(os.geteuid()).pw_name)
    group = fake_cgroupfs / "heroctl.slice" / f"{s.alloc_id}-{s.task}"
    group.mkdir()
    (group / "cgroup.procs").write_text("")  # what the kernel makes with the cgroup
    try:
        state = driver.start(s)
        assert (fake_cgroupfs / "cgroup.subtree_control").read_text() == "+cpu +memory"
        assert (group / "memory.max").read_text() == str(64 * 2**20)
        assert (group / "memory.swap.max").read_text() == "0"
        assert (group / "cpu.max").read_text() == cpu_max(500, driver._mhz, driver._cores)
        # The task's own process wrote its pid there, before it became `sleep`.
        assert (group / "cgroup.procs").read_text() == state.handle
        driver.stop(s.alloc_id, s.task, timeout=1)
        assert removed == [str(group)]
    finally:
        for st in driver.list():
            driver.remove(st.alloc_id, st.task)


real_cgroups = Cgroups()


@pytest.mark.skipif(
    os.geteuid() != 0 or not real_cgroups.usable(),
    reason="needs root and a writable cgroup v2 hierarchy at /sys/fs/cgroup",
)
def test_real_cgroup_limits_and_cleanup(tmp_path: Path) -> None:
    driver = ExecDriver(NODE, tmp_path / "data", real_cgroups)
    s = spec("sleep 30", memory=32)
    state = driver.start(s)
    group = real_cgroups.path(s.alloc_id, s.task)
    try:
        assert (group / "memory.max").read_text().strip() == str(32 * 2**20)
        membership = Path(f"/proc/{state.handle}/cgroup").read_text()
        assert f"/heroctl.slice/{group.name}" in membership
    finally:
        driver.remove(s.alloc_id, s.task)
    assert not group.exists()
