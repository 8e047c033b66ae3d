"""A real worker-only node: a ``heroctld agent`` process on 127.0.0.1, its
agent API on a free port, talking to a test cluster with its token."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from tests.support.cluster import HEROCTLD, Cluster, free_port, remove_node_tasks
from tests.support.workloads import ROOT


class Worker:
    """``env`` carries its ``HEROCTL_AGENT_*`` settings (port range, cpu,
    memory, driver, ...); ``api_port=0`` starts it without an agent API."""

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        root: Path,
        *,
        env: dict[str, str] | None = None,
        api_port: int | None = None,
    ) -> None:
        self.cluster = cluster
        self.name = name
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.env = env or {}
        self.api_port = free_port() if api_port is None else api_port
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> Worker:
        servers = ",".join(f"127.0.0.1:{s.api_port}" for s in self.cluster.servers)
        args = [
            *HEROCTLD,
            "agent",
            "--servers",
            servers,
            "--token",
            str(self.cluster.token),
            "--node-name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--bind-ip",
            "127.0.0.1",
            "--api-port",
            str(self.api_port),
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            cwd=ROOT,
        )
        log.close()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def node_id(self) -> str | None:
        path = self.data_dir / "agent" / "node-id"
        return path.read_text().strip() if path.exists() else None

    @property
    def node_secret(self) -> str | None:
        path = self.data_dir / "agent" / "node-secret"
        return path.read_text().strip() if path.exists() else None

    def remove_tasks(self) -> None:
        """Remove what its agent left running (tasks outlive their agent)."""
        remove_node_tasks(self.node_id, self.data_dir)
