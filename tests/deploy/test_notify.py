"""systemd's notifications (heroctld.notify): the protocol on a real unix
datagram socket, and a real server that says READY=1 once its API serves
and it knows a leader, STATUS= with its role, WATCHDOG=1 while
WATCHDOG_USEC is set, RELOADING=1/READY=1 around a SIGHUP that changes its
log level and rate limits without a restart, and STOPPING=1."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
from pathlib import Path

from heroctld.notify import Announcer, Notifier
from tests.deploy.notify_socket import NotifySocket
from tests.support.cluster import HEROCTLD, Cluster, wait_until
from tests.support.worker import Worker


def test_the_environment_is_read_once_and_taken_away(tmp_path: Path) -> None:
    env = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())}
    n = Notifier.from_environ(env)
    assert (n.address, n.watchdog_interval, env) == ("/run/x", 15.0, {})
    other = Notifier.from_environ(
        {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "1", "WATCHDOG_PID": "1"}
    )
    assert other.watchdog_interval is None  # the watchdog is another process's
    assert not Notifier.from_environ({}).enabled and not Notifier().send(READY=1)


def test_messages_reach_a_path_or_an_abstract_socket(tmp_path: Path) -> None:
    for address in (str(tmp_path / "notify.sock"), f"@heroctl-test-{secrets.token_hex(4)}"):
        sock = NotifySocket(address)
        try:
            assert Notifier(address).send(READY=1, STATUS="leader (term 2)")
            wait_until(lambda s=sock: s.messages, 5, message="a datagram")
            assert sock.messages == [["READY=1", "STATUS=leader (term 2)"]]
        finally:
            sock.close()
    assert not Notifier(str(tmp_path / "nobody-listens")).send(READY=1)  # logged, not raised


async def test_ready_goes_once_status_on_change_and_the_watchdog_beats(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "n.sock")
    states = iter([(False, "starting"), (False, "starting"), (True, "leader"), (True, "follower")])
    announcer = Announcer(Notifier(sock.address), lambda: next(states))
    try:
        for _ in range(4):
            announcer.update()
        announcer.reload(lambda: None)
        notifier = Notifier(sock.address, watchdog_usec=20_000)
        beating = asyncio.create_task(notifier.watchdog())
        try:  # beating until 3 arrived (a fixed sleep may hold fewer on a loaded machine)
            async with asyncio.timeout(10):
                while sock.count("WATCHDOG=1") < 3:
                    await asyncio.sleep(0.01)
        finally:
            beating.cancel()
        lines = [line for line in sock.lines() if line != "WATCHDOG=1"]
        assert lines[:4] == ["STATUS=starting", "STATUS=leader", "READY=1", "STATUS=follower"]
        assert lines[4] == "RELOADING=1" and lines[5].startswith("MONOTONIC_USEC=")
        assert lines[6:] == ["READY=1"]
    finally:
        sock.close()


def test_a_server_under_systemd(tmp_path: Path) -> None:
    sock = NotifySocket(tmp_path / "notify.sock")
    config = tmp_path / "heroctld.toml"
    config.write_text('log_level = "warning"\n')
    cluster = Cluster(
        tmp_path,
        1,
        env={"NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": "400000"},
        extra_args=["--config", str(config)],
    )
    server = cluster.servers[0]
    try:
        cluster.start(wait=False)
        wait_until(lambda: sock.count("READY=1"), 30, message="READY=1")
        assert server.ready(), "READY=1 before the API serves"
        statuses = sock.statuses()
        assert statuses[0].startswith("starting: raft on 127.0.0.1:")
        assert statuses[-1].startswith("leader (term ")
        assert statuses[-1].endswith(f"API on https://127.0.0.1:{server.api_port}")
        wait_until(lambda: sock.count("WATCHDOG=1") >= 3, 10, message="watchdog beats")
        cluster.wait_ready()
        assert server.get("/v1/cluster/status").headers["X-RateLimit-Limit"] == "10000"
        assert "serving API on" not in server.log()  # info lines are below warning

        config.write_text('log_level = "info"\n[rate_limit]\nmanagement = 4321\nbind = 1\n')
        server.proc.send_signal(signal.SIGHUP)  # a bad file changes nothing
        wait_until(lambda: "keeping the running settings" in server.log(), 10, message="refusal")
        assert 'unknown key "rate_limit.bind"' in server.log()
        config.write_text('log_level = "info"\nnode_ttl = 30\n[rate_limit]\nmanagement = 4321\n')
        pid = server.proc.pid
        server.proc.send_signal(signal.SIGHUP)
        wait_until(
            lambda: server.get("/v1/cluster/status").headers["X-RateLimit-Limit"] == "4321",
            10,
            message="the new rate limit",
        )
        log = server.log()
        assert "reload: applied log_level, [rate_limit]" in log  # an info line: the new level
        assert "reload: changed, applied at the next restart: node_ttl" in log
        assert server.alive and server.proc.pid == pid
        lines = sock.lines()
        assert lines.index("RELOADING=1") < len(lines) - 1 - lines[::-1].index("READY=1")
    finally:
        cluster.stop()
        sock.close()
    assert "STOPPING=1" in sock.lines()
    # Cluster.stop's SIGTERM, and Server.stop's again if it is still running:
    # "shutting down (SIGTERM)" or "(SIGTERM, SIGTERM)" when both came before it logged.
    assert "shutting down (SIGTERM" in server.log()
    assert cluster.cluster_key not in server.log()


def test_a_worker_only_agent_under_systemd(tmp_path: Path) -> None:
    """READY=1 once its agent runs (it keeps trying servers that do not answer),
    a SIGHUP reloads the file's log level, SIGTERM says STOPPING=1."""
    sock = NotifySocket(tmp_path / "notify.sock")
    config = tmp_path / "heroctld.toml"
    config.write_text('log_level = "warning"\n')
    log_path = tmp_path / "agent.log"
    args = ["agent", "--servers", "127.0.0.1:9", "--data-dir", str(tmp_path / "data")]
    args += ["--node-name", "worker-1", "--api-port", "0", "--config", str(config)]
    args += ["--ingress-http-port", "0", "--ingress-https-port", "0"]  # never 80 and 443
    env = {**os.environ, "NOTIFY_SOCKET": sock.address, "WATCHDOG_USEC": "400000"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*HEROCTLD, *args], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        wait_until(lambda: sock.count("READY=1"), 30, message="READY=1")
        assert sock.statuses() == ["worker-only node worker-1, registering with http://127.0.0.1:9"]
        wait_until(lambda: sock.count("WATCHDOG=1") >= 3, 10, message="watchdog beats")
        config.write_text('log_level = "info"\n')
        proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "reload: log level info" in log_path.read_text(), 10, message="reload")
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        sock.close()
    assert "STOPPING=1" in sock.lines()
    assert "agent shutting down (tasks keep running)" in log_path.read_text()


def test_a_worker_says_once_it_registered(tmp_path: Path) -> None:
    """A second STATUS= once a real server took the worker's registration."""
    sock = NotifySocket(tmp_path / "notify.sock")
    (tmp_path / "cluster").mkdir()
    cluster = Cluster(tmp_path / "cluster", 1).start()
    worker = Worker(cluster, "worker-2", tmp_path, api_port=0)
    worker.env["NOTIFY_SOCKET"] = sock.address
    try:
        worker.start()
        servers = cluster.servers[0].url
        registered = f"worker-only node worker-2, registered with {servers}"
        wait_until(lambda: registered in sock.statuses(), 30, message="registered")
        assert sock.statuses() == [
            f"worker-only node worker-2, registering with {servers}",
            registered,
        ]
        nodes = {n["name"]: n for n in cluster.servers[0].get("/v1/nodes").body}
        assert nodes["worker-2"]["status"] == "ready"
    finally:
        worker.stop()
        cluster.stop()
        sock.close()
