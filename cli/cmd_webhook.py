"""`heroctl webhook ...`: add, list, show, rm, deliveries, redeliver.

`add` never takes the signing secret from the command line (argv shows in
process listings and shell history): it reads `--secret-file`, piped stdin,
or prompts twice without echo.
"""

from __future__ import annotations

import sys
from typing import IO, Any
from urllib.parse import quote

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, key_values, print_json, table
from cli.verbs import alias, destructive
from cli.waiting import fetch_list, wait_option
from client import ApiClient


@click.group()
def webhook() -> None:
    """Webhooks: signed POSTs to your URL when events happen."""


def _path(wid: str, tail: str = "") -> str:
    return f"/v1/webhooks/{quote(wid, safe='')}{tail}"


def read_secret(secret_file: IO[str] | None, stdin: IO[str] | None = None) -> str:
    """The signing secret: a file, piped stdin, or a hidden double prompt."""
    if secret_file is not None:
        value = secret_file.read()
    else:
        stdin = stdin or sys.stdin
        if stdin.isatty():
            return click.prompt("Signing secret", hide_input=True, confirmation_prompt=True)
        value = stdin.read()
    return value.rstrip("\r\n")


@webhook.command("add")
@click.argument("url")
@click.option(
    "--event",
    "-e",
    "events",
    multiple=True,
    required=True,
    metavar="EVENT",
    help="An event type (job.deployed), a prefix (job) or *; repeatable or comma-separated.",
)
@click.option(
    "--secret-file",
    type=click.File("r"),
    help="Read the signing secret from this file (else piped stdin, else a prompt).",
)
@api_options
@pass_settings
def add(settings: Settings, url: str, events: tuple[str, ...], secret_file: IO[str] | None) -> None:
    """Send EVENTs to URL, signed with a secret (X-HeroCtl-Signature: sha256=HMAC)."""
    wanted = [e.strip() for raw in events for e in raw.split(",") if e.strip()]
    secret = read_secret(secret_file)
    if not secret:
        raise click.ClickException("the signing secret is empty")

    async def send(api: ApiClient) -> Any:
        body = {"url": url, "events": wanted, "secret": secret}
        return (await api.post("/v1/webhooks", body))[0]

    out = call(settings, send)
    if settings.json_output:
        print_json(out)
        return
    echo(f"Webhook {out['id']} added: {', '.join(out['events'])} -> {out['url']}")


def _status(doc: dict[str, Any]) -> str:
    d = doc.get("delivery") or {}
    pending = d.get("pending")
    if pending:
        return f"retrying ({pending['attempts']} attempts)"
    return d.get("last_status") or "idle"


@webhook.command("list")
@wait_option("answer")
@api_options
@pass_settings
def list_(settings: Settings, wait: float | None) -> None:
    """List webhooks and how their deliveries go."""
    rows = fetch_list(settings, "/v1/webhooks", wait=wait)
    if settings.json_output:
        print_json(rows)
        return
    if not rows:
        echo("No webhooks.")
        return
    table(
        ["ID", "URL", "EVENTS", "STATUS", "DELIVERED", "FAILED", "LAST ATTEMPT"],
        [
            (
                w["id"],
                w["url"],
                w["events"],
                _status(w),
                w["delivery"]["delivered"],
                w["delivery"]["failed"],
                w["delivery"]["last_attempt"],
            )
            for w in rows
        ],
    )


@webhook.command("show")
@click.argument("webhook_id")
@api_options
@pass_settings
def show(settings: Settings, webhook_id: str) -> None:
    """Details of one webhook (never its secret)."""
    doc = call(settings, lambda api: api.get(_path(webhook_id)))[0]
    if settings.json_output:
        print_json(doc)
        return
    d = doc.get("delivery") or {}
    pending = d.get("pending") or {}
    key_values(
        [
            ("ID", doc["id"]),
            ("URL", doc["url"]),
            ("Events", doc["events"]),
            ("Created", doc.get("create_time")),
            ("Status", _status(doc)),
            ("Delivered", d.get("delivered")),
            ("Failed attempts", d.get("failed")),
            ("Last attempt", d.get("last_attempt")),
            ("Retrying", pending.get("delivery")),
            ("Next attempt", pending.get("next_attempt")),
            ("Last error", pending.get("last_error")),
            ("Redeliveries queued", d.get("redeliver_queued")),
        ]
    )


@webhook.command("rm")
@destructive("Delete webhook {webhook_id}? Deliveries in progress stop.")
@click.argument("webhook_id")
@api_options
@pass_settings
def rm(settings: Settings, webhook_id: str) -> None:
    """Delete a webhook (deliveries in progress stop)."""
    out = call(settings, lambda api: api.delete(_path(webhook_id)))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"Webhook {webhook_id} deleted.")


@webhook.command("deliveries")
@click.argument("webhook_id")
@wait_option("answer")
@api_options
@pass_settings
def deliveries(settings: Settings, webhook_id: str, wait: float | None) -> None:
    """Every kept delivery attempt, newest first."""
    out = fetch_list(settings, _path(webhook_id, "/deliveries"), wait=wait)
    if settings.json_output:
        print_json(out)
        return
    pending = out.get("pending")
    if pending:
        echo(
            f"Retrying {pending['delivery']}: {pending['attempts']} attempts, next at "
            f"{pending['next_attempt']} ({pending['last_error']})"
        )
    if not out["attempts"]:
        echo("No deliveries yet.")
        return
    table(
        ["TIME", "DELIVERY", "EVENT", "ATTEMPT", "STATUS", "CODE", "ERROR"],
        [
            (
                a["time"],
                a["delivery"],
                a["event"],
                f"{a['attempt']}{' (redelivery)' if a.get('redelivery') else ''}",
                a["status"],
                a["code"],
                a["error"],
            )
            for a in out["attempts"]
        ],
    )


@webhook.command("redeliver")
@click.argument("webhook_id")
@click.argument("delivery")
@api_options
@pass_settings
def redeliver(settings: Settings, webhook_id: str, delivery: str) -> None:
    """Send a past DELIVERY once more (same id and body, X-HeroCtl-Redelivery: true)."""
    path = _path(webhook_id, f"/deliveries/{quote(delivery, safe='')}/redeliver")
    out = call(settings, lambda api: api.post(path))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"Delivery {delivery} {'queued' if out.get('queued') else 'was already queued'}.")


alias(webhook, add, "create")
alias(webhook, show, "status")
