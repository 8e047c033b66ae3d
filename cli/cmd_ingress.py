"""`heroctl ingress ...`: list, status, add, rm, renew.

Domains declared in a job spec (a group's `ingress`) are listed here too;
`add` and `rm` manage the hosts no job spec owns. `add --cert-file/--key-file`
reads a certificate and its key from files (never from the command line).
"""

from __future__ import annotations

from typing import IO, Any
from urllib.parse import quote

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, heading, key_values, print_json, table
from cli.verbs import alias, destructive
from cli.waiting import fetch_list, wait_option
from client import ApiClient


@click.group()
def ingress() -> None:
    """Domains the cluster serves over HTTP(S), their routes and certificates."""


def _path(host: str, tail: str = "") -> str:
    return f"/v1/ingress/{quote(host, safe='')}{tail}"


def _route(text: str) -> dict[str, str]:
    """`PATH=JOB.GROUP:PORT` (e.g. `/api=shop.web:http`)."""
    path, sep, target = text.partition("=")
    job_group, sep2, port = target.rpartition(":")
    job, sep3, group = job_group.partition(".")
    if not (sep and sep2 and sep3 and path and job and group and port):
        raise click.BadParameter(f"{text!r}: expected PATH=JOB.GROUP:PORT, e.g. /=shop.web:http")
    return {"path": path, "job": job, "group": group, "port": port}


@ingress.command("list")
@wait_option("answer")
@api_options
@pass_settings
def list_(settings: Settings, wait: float | None) -> None:
    """Every served domain: its routes and certificate."""
    rows = fetch_list(settings, "/v1/ingress", wait=wait)
    if settings.json_output:
        print_json(rows)
        return
    if not rows:
        echo("No domains.")
        return
    table(
        ["HOST", "ROUTES", "SOURCE", "TLS", "CERT", "EXPIRES"],
        [
            (
                d["host"],
                [f"{r['path']} -> {r['job']}.{r['group']}:{r['port']}" for r in d["routes"]],
                f"job {d['job']}" if d["source"] == "job" else "api",
                d["tls"]["mode"],
                d["tls"]["status"],
                d["tls"].get("not_after"),
            )
            for d in rows
        ],
    )


@ingress.command("status")
@click.argument("host")
@api_options
@pass_settings
def status(settings: Settings, host: str) -> None:
    """A domain's certificate, routes and the allocations serving each."""
    doc = call(settings, lambda api: api.get(_path(host)))[0]
    if settings.json_output:
        print_json(doc)
        return
    cert = doc["cert"]
    key_values(
        [
            ("Host", doc["host"]),
            ("Declared by", f"job {doc['job']}" if doc["source"] == "job" else "the API"),
            ("TLS", doc["tls"]),
            ("Certificate", cert["status"]),
            ("Issuer", cert.get("issuer")),
            ("Valid", f"{cert.get('not_before')} .. {cert.get('not_after')}"),
            ("Renew after", cert.get("renew_after")),
            ("SHA-256", cert.get("sha256")),
            ("Last error", cert.get("last_error")),
        ]
    )
    for route in doc["routes"]:
        heading(f"{route['path']} -> {route['job']}.{route['group']}:{route['port']}")
        allocs = route["allocations"]
        if not allocs:
            echo("No allocations: requests get 503.")
            continue
        table(
            ["ALLOCATION", "NODE", "ADDRESS", "STATUS", "SERVING"],
            [(a["id"][:8], a["node"], a["address"], a["status"], a["healthy"]) for a in allocs],
        )


@ingress.command("add")
@click.argument("host")
@click.option(
    "--route",
    "-r",
    "routes",
    multiple=True,
    required=True,
    metavar="PATH=JOB.GROUP:PORT",
    help="Send PATH (a prefix) to PORT of JOB's GROUP; repeatable.",
)
@click.option("--tls", type=click.Choice(["acme", "off"]), default="acme", show_default=True)
@click.option("--cert-file", type=click.File("r"), help="Your own certificate chain (PEM).")
@click.option("--key-file", type=click.File("r"), help="Its private key (PEM), with --cert-file.")
@api_options
@pass_settings
def add(
    settings: Settings,
    host: str,
    routes: tuple[str, ...],
    tls: str,
    cert_file: IO[str] | None,
    key_file: IO[str] | None,
) -> None:
    """Serve HOST (create or replace its routes)."""
    if (cert_file is None) != (key_file is None):
        raise click.UsageError("--cert-file and --key-file go together")
    body: dict[str, Any] = {"host": host, "routes": [_route(r) for r in routes], "tls": tls}
    if cert_file is not None and key_file is not None:
        body["tls"] = {"cert": cert_file.read(), "key": key_file.read()}

    async def send(api: ApiClient) -> Any:
        return (await api.post("/v1/ingress", body))[0]

    out = call(settings, send)
    if settings.json_output:
        print_json(out)
        return
    mode = out["tls"]
    echo(f"{out['host']}: {len(out['routes'])} route(s), TLS {mode}.")


@ingress.command("rm")
@destructive("Stop serving {host}?")
@click.argument("host")
@api_options
@pass_settings
def rm(settings: Settings, host: str) -> None:
    """Stop serving HOST (a job's domains go with its spec)."""
    out = call(settings, lambda api: api.delete(_path(host)))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"{host} is no longer served.")


@ingress.command("renew")
@click.argument("host")
@api_options
@pass_settings
def renew(settings: Settings, host: str) -> None:
    """Order a new ACME certificate for HOST now."""
    out = call(settings, lambda api: api.post(_path(host, "/renew")))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"Renewal of {host}'s certificate requested; `heroctl ingress status {host}` follows it.")


alias(ingress, add, "create")
alias(ingress, status, "show")
