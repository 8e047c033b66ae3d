"""The exec driver with real processes: start, HTTP, adopt, stop, logs, stats."""

from __future__ import annotations

import json
import os
import pwd
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from agent.drivers.base import Driver, DriverError, PortMapping, TaskNotFound, TaskSpec
from agent.drivers.exec import ExecDriver
from agent.drivers.procfs import group_members
from tests.support.cluster import free_port
from tests.support.drivers import get_text, poll, task_spec

NODE = "exec-node-1"
ME = pwd.getpwuid(
    os.geteuid()
).pw_name  # the mechanics run as the agent's user; see test_exec_isolation


def spec(command: list[str], **kw: object) -> TaskSpec:
    fields: dict[str, object] = {"node": NODE, "command": command, "kill_timeout": 2.0, "user": ME}
    fields.update(kw)
    return task_spec(**fields)


wait_for = partial(poll, timeout=5.0, step=0.02)
http_get = partial(get_text, timeout=5.0, attempt=1, pause=0.05)


@pytest.fixture
def driver(tmp_path: Path) -> Iterator[ExecDriver]:
    d = ExecDriver(NODE, tmp_path / "data")
    try:
        yield d
    finally:
        for state in d.list():
            d.remove(state.alloc_id, state.task)


SERVER = (
    "import http.server, os\n"
    "os.chdir(os.environ['HOME'])\n"
    "open('index.html', 'w').write('hello from ' + os.environ['HEROCTL_ALLOC_ID'])\n"
    "print('listening', flush=True)\n"
    "http.server.ThreadingHTTPServer((os.environ['HEROCTL_IP_HTTP'],"
    " int(os.environ['HEROCTL_PORT_HTTP'])), http.server.SimpleHTTPRequestHandler).serve_forever()\n"
)


def test_is_a_driver(driver: ExecDriver) -> None:
    assert isinstance(driver, Driver)
    assert driver.available()


def test_runs_a_server_reachable_on_its_host_port(driver: ExecDriver) -> None:
    port = free_port()
    s = spec(
        [sys.executable, "-c", SERVER],
        ports=(PortMapping("http", port, to=8080),),  # `to` means nothing to exec
        env={"PLAIN": "visible"},
        secret_env={"SECRET_TOKEN": "s3cr3t-value-42"},
    )
    state = driver.start(s)
    assert state.running and state.driver == "exec" and state.handle.isdigit()
    assert state.ports == {"http": port}
    assert http_get(port) == f"hello from {s.alloc_id}"
    # same task again: the running process, not a second one
    again = driver.start(s)
    assert again.handle == state.handle
    assert len(driver.list()) == 1
    # the env reached the process, and no file of the driver holds it
    environ = Path(f"/proc/{state.handle}/environ").read_bytes().split(b"\0")
    assert b"SECRET_TOKEN=s3cr3t-value-42" in environ and b"PLAIN=visible" in environ
    assert not any(e.startswith(b"HEROCTL_AGENT") for e in environ)
    for path in driver.state_dir.rglob("*"):
        if path.is_file():
            assert b"s3cr3t-value-42" not in path.read_bytes(), path
    record = json.loads(driver.state_path.read_text())["tasks"][0]
    assert record["pid"] == int(state.handle) and "env" not in record
    assert record["labels"]["heroctl.alloc_id"] == s.alloc_id
    assert oct(driver.state_path.stat().st_mode & 0o777) == "0o600"


def test_own_process_group(driver: ExecDriver) -> None:
    state = driver.start(spec(["sleep", "30"]))
    pid = int(state.handle)
    assert os.getpgid(pid) == pid and os.getsid(pid) == pid
    assert os.getpgid(pid) != os.getpgid(0)


def test_stop_sigterm_then_exit_code(driver: ExecDriver) -> None:
    s = spec(["sleep", "30"], kill_timeout=30.0)
    driver.start(s)
    t0 = time.monotonic()
    state = driver.stop(s.alloc_id, s.task)
    assert time.monotonic() - t0 < 15  # SIGTERM ended it, well before the kill timeout
    assert state.state == "exited" and state.exit_code == 128 + 15
    assert state.finished_at is not None
    # stopping again is harmless
    assert driver.stop(s.alloc_id, s.task).state == "exited"


def test_stop_kills_what_ignores_sigterm_and_the_whole_group(driver: ExecDriver) -> None:
    s = spec(["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"])
    state = driver.start(s)
    pgid = int(state.handle)
    assert wait_for(lambda: len(_group(pgid)) >= 3)
    t0 = time.monotonic()
    state = driver.stop(s.alloc_id, s.task, timeout=0.5)
    elapsed = time.monotonic() - t0
    assert 0.4 < elapsed < 4
    assert state.state == "exited" and state.exit_code == 128 + 9
    assert wait_for(lambda: not _group(pgid))


def _group(pgid: int) -> list[int]:
    return [pid for pid, _ in group_members(pgid)]


def test_exit_code_and_failures(driver: ExecDriver) -> None:
    s = spec(["sh", "-c", "echo bye; exit 3"])
    driver.start(s)
    state = wait_for(lambda: (st := driver.inspect(s.alloc_id, s.task)).state == "exited" and st)
    assert state and state.exit_code == 3
    with pytest.raises(DriverError, match="command not found"):
        driver.start(spec(["/nonexistent/program"]))
    with pytest.raises(DriverError, match="no command"):
        driver.start(spec([]))
    with pytest.raises(TaskNotFound):
        driver.inspect("nope", "server")


def test_restart_after_exit_starts_a_new_process(driver: ExecDriver) -> None:
    s = spec(["sh", "-c", "echo run; exit 1"])
    first = driver.start(s)
    assert wait_for(lambda: driver.inspect(s.alloc_id, s.task).state == "exited")
    second = driver.start(s)
    assert second.handle != first.handle
    assert wait_for(lambda: driver.logs(s.alloc_id, s.task).count("run") == 2)


def test_logs_tail(driver: ExecDriver) -> None:
    s = spec(["sh", "-c", "for i in $(seq 1 500); do echo line-$i; done; echo oops >&2"])
    driver.start(s)
    assert wait_for(lambda: driver.inspect(s.alloc_id, s.task).state == "exited")
    assert driver.logs(s.alloc_id, s.task, tail=3) == "line-499\nline-500\noops\n"
    full = driver.logs(s.alloc_id, s.task, tail=None)
    assert full.startswith("line-1\n") and full.count("\n") == 501
    assert driver.logs(s.alloc_id, s.task, tail=0) == ""


def test_stats(driver: ExecDriver) -> None:
    s = spec([sys.executable, "-c", "import time\nwhile True: sum(range(10000))"])
    driver.start(s)
    # the interpreter's memory once it loaded (a busy machine starts it slowly),
    # then a busy loop's CPU between two samples
    assert wait_for(lambda: driver.stats(s.alloc_id, s.task).memory_bytes > 1_000_000)
    assert driver.stats(s.alloc_id, s.task).pids == 1
    assert wait_for(lambda: driver.stats(s.alloc_id, s.task).cpu_percent > 10)
    driver.stop(s.alloc_id, s.task)
    with pytest.raises(DriverError, match="not running"):
        driver.stats(s.alloc_id, s.task)


def test_adopts_running_processes_after_an_agent_restart(tmp_path: Path) -> None:
    first = ExecDriver(NODE, tmp_path / "data")
    s = spec(["sleep", "30"], ports=(PortMapping("http", 25000),))
    started = first.start(s)
    done = spec(["true"])
    first.start(done)
    assert wait_for(lambda: first.inspect(done.alloc_id, done.task).state == "exited")

    # the agent restarts: a new driver on the same data directory
    second = ExecDriver(NODE, tmp_path / "data")
    seen = {st.alloc_id: st for st in second.list()}
    assert seen[s.alloc_id].running and seen[s.alloc_id].handle == started.handle
    assert seen[s.alloc_id].ports == {"http": 25000} and seen[s.alloc_id].job == "web"
    assert seen[done.alloc_id].state == "exited"
    again = second.start(s)  # adopt, do not duplicate
    assert again.handle == started.handle
    state = second.stop(s.alloc_id, s.task)
    assert state.state == "exited"
    assert not Path(f"/proc/{started.handle}").exists() or _zombie(int(started.handle))
    second.remove(s.alloc_id, s.task)
    second.remove(done.alloc_id, done.task)
    assert second.list() == []
    assert ExecDriver(NODE, tmp_path / "data").list() == []


def _zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rfind(")") + 2] == "Z"


def test_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # a record whose pid now belongs to some other process (this test itself)
    record = {
        "alloc_id": "old",
        "task": "server",
        "node": NODE,
        "pid": os.getpid(),
        "start_ticks": 1,
        "started_at": 0,
        "log_path": str(data / "x.log"),
    }
    (data / "exec-tasks.json").write_text(json.dumps({"tasks": [record]}))
    d = ExecDriver(NODE, data)
    assert d.inspect("old", "server").state == "exited"
    d.stop("old", "server", timeout=0)  # must not kill us
    d.remove("old", "server")
    assert d.list() == []


def test_other_nodes_and_torn_state_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "exec-tasks.json").write_text("{not json")
    assert ExecDriver(NODE, data).list() == []
    assert (data / "exec-tasks.corrupt").exists()
    with pytest.raises(DriverError, match="node"):
        ExecDriver(NODE, data).start(spec(["true"], node="another-node"))
