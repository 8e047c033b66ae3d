"""`heroctl`: the command-line client. Each command group is one `cmd_*` module."""

from __future__ import annotations

import click

from cli import (
    cmd_acl,
    cmd_alloc,
    cmd_auth,
    cmd_cluster,
    cmd_deployment,
    cmd_events,
    cmd_ingress,
    cmd_job,
    cmd_job_files,
    cmd_keyring,
    cmd_logs,
    cmd_metrics,
    cmd_node,
    cmd_operator,
    cmd_secret,
    cmd_webhook,
    completion,
)
from cli.common import ADDRESS_ENV, TOKEN_ENV, Settings
from cli.trust import CA_ENV
from client import DEFAULT_ADDRESS

# A new group (node, alloc, acl, secret, login) is one module and one line here.
COMMANDS: list[click.Command] = [
    cmd_cluster.cluster,
    cmd_job.job,
    cmd_deployment.deployment,
    cmd_node.node,
    cmd_alloc.alloc,
    cmd_auth.login,
    cmd_auth.logout,
    cmd_acl.acl,
    cmd_secret.secret,
    cmd_events.events,
    cmd_webhook.webhook,
    cmd_ingress.ingress,
    cmd_logs.logs,
    cmd_metrics.metrics,
    cmd_operator.operator,
    completion.completion,
]
# `job validate` and `job init`: a module of their own (cmd_job is large).
cmd_job.job.add_command(cmd_job_files.validate)
cmd_job.job.add_command(cmd_job_files.init)
# `operator keyring ...`: a module of its own (cmd_operator holds the snapshots).
cmd_operator.operator.add_command(cmd_keyring.keyring)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--address",
    "--addr",
    envvar=ADDRESS_ENV,
    default=DEFAULT_ADDRESS,
    show_default=True,
    metavar="URL[,URL...]",
    help=f"HeroCtl API address; several, comma-separated, are failed over between "
    f"[env {ADDRESS_ENV}].",
)
@click.option(
    "--token",
    envvar=TOKEN_ENV,
    default=None,
    help=f"Bearer token [env {TOKEN_ENV}; else ~/.config/heroctl/credentials.json].",
)
@click.option(
    "--ca-cert",
    envvar=CA_ENV,
    default=None,
    metavar="FILE",
    help=f"CA certificate (PEM) to verify the API with [env {CA_ENV}; else the one "
    "`heroctl login` pinned].",
)
@click.option("--json", "json_output", is_flag=True, help="Print the API's JSON instead of tables.")
@click.version_option(package_name="heroctl", prog_name="heroctl")
@click.pass_context
def cli(
    ctx: click.Context, address: str, token: str | None, ca_cert: str | None, json_output: bool
) -> None:
    """Operate a HeroCtl cluster through its REST API."""
    ctx.obj = Settings(
        address=address, token=token or None, json_output=json_output, ca_cert=ca_cert or None
    )
    if not token and ctx.invoked_subcommand not in ("login", "logout"):
        cmd_auth.refresh_saved_login()  # a saved login near expiry is renewed first


for command in COMMANDS:
    cli.add_command(command)


def main() -> None:
    cli(prog_name="heroctl")


if __name__ == "__main__":
    main()
