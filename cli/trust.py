"""Which CA the CLI verifies an https API with, and pinning it at login.

Order: ``--ca-cert FILE`` / ``$HEROCTL_CACERT``; else the CA pinned by
``heroctl login`` (``ca.pem`` beside the credentials file); else the
system's trust store (a cluster whose certificates come from a public CA).

``heroctl login`` against an https address whose certificate the system does
not trust fetches the cluster's CA (``GET /v1/cluster/ca``), shows its
SHA-256 fingerprint and asks to confirm it (or checks it against
``--ca-fingerprint``, or takes it with ``--yes``), then pins it: every later
command verifies the servers with it. When the pinned CA no longer verifies
the server, the CLI says loudly that the CA changed and trusts nothing new
until told (``heroctl login --ca-fingerprint NEW``).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import click

from cli.credentials import credentials_path
from cli.output import echo
from client import ApiClient, ApiClientError, CertificateUntrusted, fetch_ca_unverified
from domain.pki import fingerprint, normalize_fingerprint

CA_ENV = "HEROCTL_CACERT"


def pinned_ca_path() -> Path:
    return credentials_path().with_name("ca.pem")


def pinned_ca() -> str | None:
    path = pinned_ca_path()
    return str(path) if path.is_file() else None


def _fingerprint_of(path: str) -> str:
    try:
        return fingerprint(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise click.ClickException(f"{path} is not a PEM certificate: {e}") from None


def untrusted_text(address: str, reason: str, ca_file: str | None) -> str:
    """What to say when the server's certificate does not verify."""
    if ca_file is not None and ca_file == pinned_ca():
        return (
            f"the TLS certificate of {address} does not verify against the CA pinned in "
            f"{ca_file} ({_fingerprint_of(ca_file)}): the cluster's CA changed, or this is not "
            "the cluster you logged in to. Do not go on unless you know why; to trust a new "
            "CA, `heroctl login --ca-fingerprint sha256:...` with the fingerprint its "
            f"operator gives you ({reason})"
        )
    source = f"the CA in {ca_file}" if ca_file else "the system's trust store"
    return (
        f"the TLS certificate of {address} does not verify against {source} ({reason}). "
        "A cluster with its own CA: `heroctl login` shows and pins it, or pass --ca-cert FILE "
        f"(${CA_ENV}; a server keeps it in <data-dir>/tls/ca.pem)"
    )


def _pin(pem: str) -> str:
    path = pinned_ca_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(pem)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return str(path)


async def _verifies(address: str, ca_file: str | None) -> str | None:
    """None when the server's certificate verifies with ``ca_file``, else why not."""
    async with ApiClient(address, timeout=15, ca_file=ca_file) as api:
        try:
            await api.get("/v1/health/live")
        except CertificateUntrusted as e:
            return e.reason
    return None


def establish_trust(
    address: str, explicit: str | None, expected: str | None, assume_yes: bool
) -> str | None:
    """The CA file ``login`` verifies ``address`` with (None: the system's),
    pinned for the commands after it; ClickException when it must not go on."""
    if not address.startswith("https:"):
        return explicit
    if explicit is not None:  # given by the operator: pinned for the next commands
        current = pinned_ca()
        if current is None or _fingerprint_of(current) != _fingerprint_of(explicit):
            _pin(Path(explicit).read_text())
        return explicit
    want = normalize_fingerprint(expected) if expected else None
    current = pinned_ca()
    try:
        if current is not None and (want is None or _fingerprint_of(current) == want):
            reason = asyncio.run(_verifies(address, current))
            if reason is None:
                return current
            raise click.ClickException(untrusted_text(address, reason, current))
        if want is None and asyncio.run(_verifies(address, None)) is None:
            return None  # a certificate the system trusts: nothing to pin
        pem, got = asyncio.run(fetch_ca_unverified(address))
    except ApiClientError as e:
        raise click.ClickException(str(e)) from None
    if want is not None and got != want:
        raise click.ClickException(
            f"{address} presents the CA {got}, not the {want} you gave: refusing it"
        )
    if want is None:
        echo(f"The cluster at {address} presents its own certificate authority:")
        echo(f"  SHA256 fingerprint: {got}")
        echo("Compare it with the one its operator gives you (GET /v1/cluster/ca on a server).")
        if not assume_yes and not click.confirm("Trust this CA and pin it?", default=False):
            raise click.ClickException("not trusted: nothing was sent to the server")
    path = _pin(pem)
    echo(f"Pinned the cluster CA {got} in {path}.")
    return path
