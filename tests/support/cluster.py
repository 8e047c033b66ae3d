"""Real heroctld processes on 127.0.0.1 with free ports and temp dirs.

Used by the tests and by bench/. Every wait polls a condition with a deadline.
Clusters serve HTTPS with their own CA, the product's default (``tls=False``:
plain HTTP, ``[tls] mode = off``); a server's CA joins the tests' trust
bundle (tests/support/tls.py) before the first request to it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from raft.keys import generate_cluster_key
from tests.support import tls as test_tls
from tests.support.http import Reply, request
from tests.support.ports import free_port, port_range

T = TypeVar("T")
HEROCTLD = [sys.executable, "-m", "heroctld.main"]


def wait_until(
    fn: Callable[[], T], timeout: float = 15.0, interval: float = 0.05, message: str = "condition"
) -> T:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - a poll tolerates transient errors
            last_exc = e
        time.sleep(interval)
    raise TimeoutError(
        f"timed out after {timeout}s waiting for {message}"
        + (f" (last error: {last_exc!r})" if last_exc else "")
    )


def remove_node_tasks(node_id: str | None, data_dir: Path) -> None:
    """Remove what the agent of node ``node_id`` (data dir ``data_dir``) left
    running: containers labelled with its id, exec processes."""
    if node_id is None:
        return
    try:
        import docker  # noqa: PLC0415 - only agent clusters need it

        client = docker.from_env(timeout=30)
        try:
            for c in client.containers.list(all=True, filters={"label": f"heroctl.node={node_id}"}):
                c.remove(force=True, v=True)
        finally:
            client.close()
    except Exception:  # noqa: BLE001 - no engine: no containers
        pass
    from agent.drivers.exec import ExecDriver  # noqa: PLC0415

    driver = ExecDriver(node_id, data_dir / "agent")
    for st in driver.list():
        driver.remove(st.alloc_id, st.task)
    from agent.ingress.paths import Paths  # noqa: PLC0415
    from agent.ingress.process import reap_stale  # noqa: PLC0415

    reap_stale(Paths.in_prefix(data_dir / "agent" / "ingress"))  # a killed agent's nginx


class DaemonProcess:
    """A heroctld process of a test: its data dir, its log, its lifecycle,
    and what its agent leaves behind (a server's embedded one or a worker's)."""

    def __init__(self, name: str, root: Path, env: dict[str, str] | None) -> None:
        self.name = name
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.env = env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def _spawn(self, args: list[str], env: dict[str, str]) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            cwd=Path(__file__).resolve().parents[2],
        )
        log.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> int | None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(15)
            except subprocess.TimeoutExpired:
                # Leave a trace of where it hung (faulthandler dumps every thread).
                self.proc.send_signal(signal.SIGUSR1)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(1)
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def _agent_file(self, name: str) -> str | None:
        path = self.data_dir / "agent" / name
        return path.read_text().strip() if path.exists() else None

    @property
    def node_id(self) -> str | None:
        """The id its agent registered with (kept in the data dir), once known."""
        return self._agent_file("node-id")

    def remove_tasks(self) -> None:
        """Remove what its agent left running (tasks outlive their agent by
        design): containers labelled with its node id, exec processes."""
        remove_node_tasks(self.node_id, self.data_dir)


class Server(DaemonProcess):
    """One heroctld process. With `agent=True` it runs its embedded agent
    (no `--no-agent`); `env` then carries its `HEROCTL_AGENT_*` settings."""

    def __init__(
        self,
        name: str,
        root: Path,
        cluster_key: str,
        *,
        api_port: int | None = None,
        raft_port: int | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        agent: bool = False,
        tls: bool = True,
    ) -> None:
        super().__init__(name, root, env)
        self.tls = tls
        self._trusted = False
        self.api_port = api_port or free_port()
        self.raft_port = raft_port or free_port()
        self.cluster_key = cluster_key
        self.extra_args = extra_args or []
        self.token: str | None = None  # sent as `Authorization: Bearer <token>` when set
        self.agent = agent

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.api_port}"

    @property
    def ca_file(self) -> Path:
        """The cluster CA's certificate, as this server wrote it."""
        return self.data_dir / "tls" / "ca.pem"

    @property
    def raft_address(self) -> str:
        return f"127.0.0.1:{self.raft_port}"

    def start(self, peers: list[str] | None = None, join: str | None = None) -> Server:
        args = [
            *HEROCTLD,
            "--node-name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--bind",
            "127.0.0.1",
            "--api-port",
            str(self.api_port),
            "--raft-port",
            str(self.raft_port),
            *self.extra_args,
        ]
        if not self.agent:
            args.append("--no-agent")
        if peers:
            args += ["--peers", ",".join(peers)]
        if join:
            args += ["--join", join]
        env = {"HEROCTL_CLUSTER_KEY": self.cluster_key, **self.env}
        if not self.tls:
            env["HEROCTL_TLS_MODE"] = "off"
        self._spawn(args, env)
        return self

    def pause(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    # --- HTTP ---------------------------------------------------------
    def _auth(self, kw: dict[str, Any]) -> dict[str, Any]:
        if self.tls and not self._trusted and self.ca_file.exists():  # written before it serves
            test_tls.trust(self.ca_file)
            self._trusted = True
        if self.token and "Authorization" not in kw.setdefault("headers", {}):
            kw["headers"] = {**kw["headers"], "Authorization": f"Bearer {self.token}"}
        return kw

    def get(self, path: str, **kw: Any) -> Reply:
        return request("GET", self.url + path, **self._auth(kw))

    def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return request("POST", self.url + path, body, **self._auth(kw))

    def delete(self, path: str, **kw: Any) -> Reply:
        return request("DELETE", self.url + path, **self._auth(kw))

    def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return request("PUT", self.url + path, body, **self._auth(kw))

    def status(self) -> dict[str, Any] | None:
        try:
            r = self.get("/v1/cluster/status", timeout=2)
        except OSError:
            return None
        return r.body if r.status == 200 else None

    def ready(self) -> bool:
        try:
            return self.get("/v1/health/ready", timeout=2).status == 200
        except OSError:
            return False


def new_bootstrap_token() -> str:
    return "ht_" + secrets.token_urlsafe(32)


class Cluster:
    """Servers of one cluster. By default the cluster bootstraps its ACL system from
    HEROCTL_BOOTSTRAP_TOKEN and every `Server` sends that management token; pass
    `bootstrap=False` for a cluster with no identity at all (bootstrap tests)."""

    def __init__(
        self,
        root: Path,
        size: int = 3,
        *,
        cluster_key: str | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        bootstrap: bool = True,
        agent: bool = False,
        agent_cpu: int = 2000,
        agent_memory: int = 1024,
        ports_per_node: int = 200,
        tls: bool = True,
    ) -> None:
        """`agent=True`: every server runs its agent, offering `agent_cpu` MHz and
        `agent_memory` MB (so placements do not depend on the machine) and its own
        slice of `ports_per_node` host ports (a random base per cluster, so two
        clusters on one machine rarely meet), and `stop()` removes what they ran."""
        self.root = root
        self.agent = agent
        self.tls = tls
        self.agent_cpu = agent_cpu
        self.agent_memory = agent_memory
        self.ports_per_node = ports_per_node
        self.cluster_key = cluster_key or generate_cluster_key()
        self.extra_args = extra_args or []
        self.env = dict(env or {})
        # The tests' webhook receivers listen on 127.0.0.1, a private address.
        self.env.setdefault("HEROCTL_WEBHOOKS_ALLOW_PRIVATE", "true")
        # Nothing in a test may reach Let's Encrypt: an ACME directory that refuses.
        self.env.setdefault("HEROCTL_ACME_DIRECTORY", "https://127.0.0.1:9/directory")
        self.token: str | None = None
        if bootstrap:
            self.token = self.env.setdefault("HEROCTL_BOOTSTRAP_TOKEN", new_bootstrap_token())
        self.servers = [self._new(f"server-{i + 1}") for i in range(size)]

    def _new(self, name: str) -> Server:
        env = dict(self.env)
        if self.agent:
            lo, hi = port_range(self.ports_per_node)
            env.setdefault("HEROCTL_AGENT_PORT_RANGE", f"{lo}-{hi}")
            env.setdefault("HEROCTL_AGENT_CPU", str(self.agent_cpu))
            env.setdefault("HEROCTL_AGENT_MEMORY", str(self.agent_memory))
            env.setdefault("HEROCTL_AGENT_HOST_IP", "127.0.0.1")
            # No ingress unless a test gives the node its own ports (never 80/443).
            env.setdefault("HEROCTL_INGRESS_HTTP_PORT", "0")
            env.setdefault("HEROCTL_INGRESS_HTTPS_PORT", "0")
        s = Server(
            name,
            self.root,
            self.cluster_key,
            extra_args=self.extra_args,
            env=env,
            agent=self.agent,
            tls=self.tls,
        )
        s.token = self.token
        return s

    @property
    def peers(self) -> list[str]:
        return [s.raft_address for s in self.servers]

    def start(self, wait: bool = True) -> Cluster:
        peers = self.peers
        for s in self.servers:
            s.start(peers=peers)
        if wait:
            self.wait_ready()
        return self

    def by_name(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def live(self) -> list[Server]:
        return [s for s in self.servers if s.alive]

    def wait_ready(self, servers: list[Server] | None = None, timeout: float = 30.0) -> None:
        targets = servers or self.live()
        wait_until(lambda: all(s.ready() for s in targets), timeout, message="servers ready")
        if self.token is None:
            return  # no identity to ask for peers with
        # The token works everywhere (the ACL bootstrap is applied on every server).
        wait_until(lambda: all(s.status() for s in targets), timeout, message="ACL bootstrap")

        # Every server registered its name, so names resolve everywhere.
        def named() -> bool:
            st = targets[0].get("/v1/cluster/peers?stale=true", timeout=2).body
            names = {p["name"] for p in st}
            return all(s.name in names for s in targets)

        wait_until(named, timeout, message="servers registered")

    def leader(self, timeout: float = 15.0, among: list[Server] | None = None) -> Server:
        candidates = among or self.live()

        def find() -> Server | None:
            for s in candidates:
                st = s.status()
                if st and st["is_leader"]:
                    return s
            return None

        return wait_until(find, timeout, message="a leader")

    def followers(self) -> list[Server]:
        leader = self.leader()
        return [s for s in self.live() if s is not leader]

    def add_server(self, name: str) -> Server:
        s = self._new(name)
        self.servers.append(s)
        return s

    def stop(self) -> None:
        # SIGTERM everyone first, then wait: shutdowns overlap instead of adding up.
        for s in self.servers:
            if s.proc is not None and s.proc.poll() is None:
                s.resume()
                s.proc.send_signal(signal.SIGTERM)
        for s in self.servers:
            s.stop()
        if self.agent:
            for s in self.servers:
                s.remove_tasks()
