"""`heroctld`: the server daemon's command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys

import click

from heroctld.config import ConfigError, load_config
from raft.keys import generate_cluster_key


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config file")
@click.option("--dev", is_flag=True, help="single-node cluster, temp data dir, generated key")
@click.option("--node-name", help="this server's name (default: hostname)")
@click.option("--data-dir", help="where raft journal and snapshots live")
@click.option("--bind", help="address to listen on (default 127.0.0.1)")
@click.option("--advertise", help="address other servers use to reach this one (default: --bind)")
@click.option("--api-port", type=int, help="HTTP API port (default 7070)")
@click.option("--raft-port", type=int, help="raft port (default 7071)")
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
    setup_logging(cfg.log_level)
    from heroctld.server import serve

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(cfg))


@main.command()
def keygen() -> None:
    """Print a new random cluster key."""
    click.echo(generate_cluster_key())


if __name__ == "__main__":
    main()
