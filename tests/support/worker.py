"""A real worker-only node: a ``heroctld agent`` process on 127.0.0.1, its
agent API on a free port, talking to a test cluster with its token."""

from __future__ import annotations

from pathlib import Path

from tests.support.cluster import HEROCTLD, Cluster, DaemonProcess, free_port

# A worker-only node's agent API listens apart from the servers (all on loopback
# here): the cluster signs no node certificate for a server's address.
WORKER_API_HOST = "127.0.0.2"


class Worker(DaemonProcess):
    """``env`` carries its ``HEROCTL_AGENT_*`` settings (port range, cpu,
    memory, driver, ...); ``api_port=0`` starts it without an agent API. With
    a TLS cluster it trusts the cluster CA as a file (``--ca-file``), or by
    ``ca_fingerprint`` (``--ca-fingerprint``) when given."""

    def __init__(
        self,
        cluster: Cluster,
        name: str,
        root: Path,
        *,
        env: dict[str, str] | None = None,
        api_port: int | None = None,
        ca_fingerprint: str | None = None,
    ) -> None:
        env = dict(env or {})
        env.setdefault("HEROCTL_INGRESS_HTTP_PORT", "0")  # no ingress unless given its own ports
        env.setdefault("HEROCTL_INGRESS_HTTPS_PORT", "0")
        super().__init__(name, root, env)
        self.cluster = cluster
        self.ca_fingerprint = ca_fingerprint
        self.api_port = free_port() if api_port is None else api_port

    @property
    def api_url(self) -> str:
        if self.cluster.tls:  # signed by the cluster, for an address no server has
            return f"https://{WORKER_API_HOST}:{self.api_port}"
        return f"http://127.0.0.1:{self.api_port}"

    def start(self) -> Worker:
        servers = ",".join(s.url for s in self.cluster.servers)
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
        if self.cluster.tls:
            args += ["--api-bind", WORKER_API_HOST]
        if self.ca_fingerprint:
            args += ["--ca-fingerprint", self.ca_fingerprint]
        elif self.cluster.tls:  # the CA as a file: nothing on the network can spoof it
            args += ["--ca-file", str(self.cluster.servers[0].ca_file)]
        self._spawn(args, self.env)
        return self

    @property
    def node_secret(self) -> str | None:
        return self._agent_file("node-secret")
