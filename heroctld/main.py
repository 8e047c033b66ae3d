"""`heroctld`: the server daemon's command line."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import os
import signal
import sys
import threading

import click

from heroctld.config import ConfigError, load_config, read_config
from raft.keys import generate_cluster_key

# Collect cycles after 50,000 net container allocations, not CPython's 700.
# A server keeps dozens of requests in flight; their objects outlive 700
# allocations, so the default collected (and promoted, and collected again)
# the same live objects hundreds of times a second: ~45 µs of CPU per write
# on the leader, and the full collections walked the whole state. Most of
# our garbage dies by reference counting; the cycles left (aiohttp's
# exceptions, futures) wait a little longer. docs/performance.md #2.
GC_THRESHOLD = (50_000, 20, 20)


def setup_process(level: str) -> None:
    """Logging, the cycle collector's pace and the stack-dump signal."""
    gc.set_threshold(*GC_THRESHOLD)
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # `kill -USR1 <pid>` prints every thread's stack to stderr, even when the
    # event loop is stuck (written from the C signal handler): for diagnosing a hang.
    faulthandler.register(signal.SIGUSR1, all_threads=True)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file")
@click.option("--dev", is_flag=True, help="single-node cluster, temp data dir, generated key")
@click.option("--node-name", help="this server's name (default: hostname)")
@click.option("--data-dir", help="where raft journal and snapshots live")
@click.option("--bind", help="address to listen on (default 127.0.0.1)")
@click.option("--advertise", help="address other servers use to reach this one (default: --bind)")
@click.option("--api-port", type=int, help="HTTP API port (default 7070)")
@click.option("--raft-port", type=int, help="raft port (default 7071)")
@click.option("--raft-bind", help="address the raft port listens on (default: --bind)")
@click.option("--peers", help="HOST:RAFTPORT,... the initial servers, itself included")
@click.option("--join", help="HOST:APIPORT of a server of an existing cluster to join")
@click.option("--cluster-key", help="shared cluster key (or env HEROCTL_CLUSTER_KEY)")
@click.option("--no-agent", is_flag=True, help="server only, no local agent")
@click.option("--log-level", help="debug, info, warning, error")
@click.pass_context
def main(ctx: click.Context, config_path: str | None, **flags: object) -> None:
    """Run a HeroCtl server."""
    if ctx.invoked_subcommand is not None:
        return
    try:
        cfg = load_config(config_path, flags)
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    setup_process(cfg.log_level)
    from heroctld.server import serve

    async def run() -> None:
        await serve(cfg, reload=lambda: load_config(config_path, flags))  # on SIGHUP
        # asyncio.run still cancels what is left and joins the executor: bounded.
        exit_soon(asyncio.get_running_loop())

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def exit_soon(loop: asyncio.AbstractEventLoop | None = None, grace: float = 5.0) -> None:
    """The server is stopped and its journal flushed: leave, even if a task
    that ignores its cancellation would keep `asyncio.run` waiting, or a stray
    non-daemon thread (a library's, a blocked executor worker) the interpreter.
    Says which, so the bug behind it can be found."""

    def force() -> None:
        alive = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        try:  # read from another thread: a best-effort diagnostic
            tasks = [repr(t) for t in asyncio.all_tasks(loop)] if loop is not None else []
        except RuntimeError:
            tasks = []
        logging.getLogger("heroctld").warning(
            "exit still blocked after %ss (threads: %s; tasks: %s): forcing it",
            grace,
            ", ".join(alive),
            "; ".join(tasks) or "none",
        )
        logging.shutdown()
        os._exit(0)

    timer = threading.Timer(grace, force)
    timer.daemon = True
    timer.start()


@main.command("agent")
@click.option("--servers", required=True, help="HOST:APIPORT,... servers of the cluster to talk to")
@click.option(
    "--token",
    envvar="HEROCTL_TOKEN",
    help="enrollment token ht_... allowed nodes: write (or env HEROCTL_TOKEN); not needed once the node is registered",
)
@click.option("--node-name", help="this node's name (default: hostname)")
@click.option("--data-dir", required=True, help="where the node id and exec task state live")
@click.option("--bind-ip", help="address task ports are published on (default 127.0.0.1)")
@click.option(
    "--api-port", type=int, help="agent API port, for the servers (default 7072; 0: none)"
)
@click.option("--api-bind", help="address the agent API listens on (default: --bind-ip)")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML with [agent]")
@click.option(
    "--ca-file",
    type=click.Path(dir_okay=False, exists=True),
    help="the cluster CA's certificate (PEM, <data-dir>/tls/ca.pem on a server)",
)
@click.option(
    "--ca-fingerprint",
    help="sha256:HEX of the cluster CA: fetched from the servers, refused unless it matches",
)
@click.option(
    "--ingress-http-port",
    type=click.IntRange(0, 65535),
    help="the ingress's HTTP port (default 80, [ingress] http_port, HEROCTL_INGRESS_HTTP_PORT;"
    " 0 with --ingress-https-port 0: this node serves no ingress)",
)
@click.option(
    "--ingress-https-port",
    type=click.IntRange(0, 65535),
    help="the ingress's HTTPS port (default 443, [ingress] https_port, HEROCTL_INGRESS_HTTPS_PORT)",
)
@click.option(
    "--ingress-bind",
    help="the address the ingress listens on (default: every address; [ingress] bind,"
    " HEROCTL_INGRESS_BIND)",
)
@click.option("--log-level", help="debug, info, warning, error (default: log_level, info)")
def agent_command(
    servers: str,
    token: str | None,
    node_name: str | None,
    data_dir: str,
    bind_ip: str | None,
    api_port: int | None,
    api_bind: str | None,
    config_path: str | None,
    ca_file: str | None,
    ca_fingerprint: str | None,
    ingress_http_port: int | None,
    ingress_https_port: int | None,
    ingress_bind: str | None,
    log_level: str | None,
) -> None:
    """Run a worker-only node: an agent that is not a raft member.

    With --ca-file or --ca-fingerprint the servers are reached over HTTPS
    (HOST:PORT without a scheme means https) and verified against the cluster CA."""
    import socket

    from agent.config import AgentConfig, parse_port_range

    try:  # the servers' file format: every key checked, [agent], [logs], [metrics] used
        cfg = read_config(config_path, dict(os.environ))
    except ConfigError as e:
        raise click.UsageError(str(e)) from None
    settings, logs, metrics, ingress = cfg.agent, cfg.logs, cfg.metrics, cfg.ingress
    if ca_file and ca_fingerprint:
        raise click.UsageError("give the cluster CA as --ca-file or --ca-fingerprint, not both")
    scheme = "https" if ca_file or ca_fingerprint else "http"
    addresses = [
        a if "://" in a else f"{scheme}://{a}" for a in (x.strip() for x in servers.split(",")) if a
    ]
    if not addresses:
        raise click.UsageError("--servers needs at least one HOST:APIPORT")
    host_ip = bind_ip or settings.host_ip or "127.0.0.1"
    try:
        config = AgentConfig(
            servers=addresses,
            token=token,
            node_name=node_name or socket.gethostname().split(".")[0],
            data_dir=data_dir,
            host_ip=host_ip,
            port_range=parse_port_range(settings.port_range),
            cpu=settings.cpu,
            memory=settings.memory,
            disk=settings.disk,
            drivers=tuple(settings.drivers),
            log_retention=logs.retention,
            log_max_bytes=logs.max_bytes_per_alloc,
            metrics_interval=metrics.interval,
            api_port=settings.api_port if api_port is None else api_port,
            api_bind=api_bind or settings.api_bind or host_ip,
            ca_file=ca_file,
            ingress_http_port=ingress.http_port if ingress_http_port is None else ingress_http_port,
            ingress_https_port=(
                ingress.https_port if ingress_https_port is None else ingress_https_port
            ),
            ingress_bind=ingress.bind if ingress_bind is None else ingress_bind,
            ingress_proxy_protocol=ingress.proxy_protocol,
            ingress_trusted_proxies=tuple(ingress.trusted_proxies),
            ingress_release_timeout=settings.ingress_release_timeout,
        )
    except ValueError as e:
        raise click.UsageError(str(e)) from None
    setup_process(log_level or cfg.log_level)
    from heroctld.worker import run_worker

    def level() -> str | None:  # what a SIGHUP sets: the file's, unless the flag said
        return None if log_level else read_config(config_path, dict(os.environ)).log_level

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_worker(config, ca_fingerprint, level))


@main.command()
def keygen() -> None:
    """Print a new random cluster key."""
    click.echo(generate_cluster_key())


if __name__ == "__main__":
    main()
