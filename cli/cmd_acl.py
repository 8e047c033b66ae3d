"""`heroctl acl ...`: bootstrap, tokens and policies (users and roles: cli.cmd_acl_users)."""

from __future__ import annotations

import json
import sys
from typing import IO, Any
from urllib.parse import quote

import click
import yaml

from cli.cmd_acl_users import role, user
from cli.common import Settings, api_options, call, pass_settings
from cli.output import Duration, echo, key_values, print_json, table
from cli.verbs import alias, destructive
from client import ApiClient


@click.group()
def acl() -> None:
    """Access control: bootstrap, tokens, policies, roles and users."""


acl.add_command(user)
acl.add_command(role)


@acl.command("bootstrap")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the admin password from stdin (default: the server generates one).",
)
@api_options
@pass_settings
def bootstrap(settings: Settings, password_stdin: bool) -> None:
    """Bootstrap a new cluster: a management token and the admin user, once."""
    body: dict[str, Any] = {}
    if password_stdin:
        body["password"] = sys.stdin.readline().rstrip("\n")
    out = call(settings, lambda api: _post(api, "/v1/acl/bootstrap", body))
    if settings.json_output:
        print_json(out)
        return
    rows = [
        ("Accessor ID", out.get("accessor_id")),
        ("Secret ID", out.get("secret_id")),
        ("Admin user", out.get("username")),
    ]
    if out.get("password"):
        rows.append(("Admin password", out["password"]))
    key_values(rows)
    echo("Save the secret ID and password now: they are not shown again.")


async def _post(api: ApiClient, path: str, body: Any = None) -> Any:
    return (await api.post(path, body))[0]


async def _get(api: ApiClient, path: str) -> Any:
    return (await api.get(path))[0]


async def _delete(api: ApiClient, path: str) -> Any:
    return (await api.delete(path))[0]


# --- tokens ----------------------------------------------------------------------
@acl.group()
def token() -> None:
    """ACL tokens (ht_...): create, list, revoke."""


@token.command("create")
@click.option("--name", default="", help="A description of the token.")
@click.option("--policy", "policies", multiple=True, help="Policy to attach (repeatable).")
@click.option("--role", "roles", multiple=True, help="Role to attach (repeatable).")
@click.option(
    "--type",
    "token_type",
    type=click.Choice(["client", "service", "management"]),
    default="client",
    show_default=True,
)
@click.option(
    "--ttl",
    type=Duration(),
    metavar="DURATION",
    help="Expire after this long (like 90d, 12h; a bare number is seconds).",
)
@api_options
@pass_settings
def token_create(
    settings: Settings,
    name: str,
    policies: tuple[str, ...],
    roles: tuple[str, ...],
    token_type: str,
    ttl: float | None,
) -> None:
    """Create a token; its secret is shown once."""
    if ttl is not None and ttl < 1:
        raise click.BadParameter("must be at least 1s", param_hint="--ttl")
    body: dict[str, Any] = {
        "name": name,
        "type": token_type,
        "policies": list(policies),
        "roles": list(roles),
    }
    if ttl:
        body["expiration_ttl"] = round(ttl)
    out = call(settings, lambda api: _post(api, "/v1/acl/tokens", body))
    if settings.json_output:
        print_json(out)
        return
    key_values(
        [
            ("Accessor ID", out.get("accessor_id")),
            ("Secret ID", out.get("secret_id")),
            ("Type", out.get("type")),
            ("Policies", ", ".join(out.get("policies") or []) or "-"),
            ("Roles", ", ".join(out.get("roles") or []) or "-"),
            ("Expires", out.get("expires_at") or "never"),
        ]
    )


@token.command("list")
@api_options
@pass_settings
def token_list(settings: Settings) -> None:
    """List tokens (accessor IDs only, never secrets)."""
    rows = call(settings, lambda api: _get(api, "/v1/acl/tokens"))
    if settings.json_output:
        print_json(rows)
        return
    table(
        ["ACCESSOR", "NAME", "TYPE", "POLICIES", "ROLES", "CREATED", "EXPIRES"],
        [
            (
                t.get("accessor_id"),
                t.get("name"),
                t.get("type"),
                ",".join(t.get("policies") or []),
                ",".join(t.get("roles") or []),
                t.get("create_time"),
                t.get("expires_at"),
            )
            for t in rows
        ],
    )


@token.command("rm")
@destructive("Revoke token {accessor}? Whatever uses it stops working.")
@click.argument("accessor")
@api_options
@pass_settings
def token_revoke(settings: Settings, accessor: str) -> None:
    """Delete a token; JWTs made from it stop working too."""
    out = call(settings, lambda api: _delete(api, f"/v1/acl/tokens/{quote(accessor, safe='')}"))
    if settings.json_output:
        print_json(out)
        return
    echo(f"Token {accessor} revoked.")


alias(token, token_revoke, "revoke", "delete")


@token.command("show")
@click.argument("accessor", default="self")
@api_options
@pass_settings
def token_show(settings: Settings, accessor: str) -> None:
    """Show token ACCESSOR (never its secret); `self` (the default): who the
    current credentials are."""
    out = call(settings, lambda api: _get(api, f"/v1/acl/tokens/{quote(accessor, safe='')}"))
    if settings.json_output:
        print_json(out)
        return
    key_values([(k, v if not isinstance(v, list) else ", ".join(v)) for k, v in out.items()])


alias(token, token_show, "self")  # `acl token self`: the older name of `show self`


# --- policies ---------------------------------------------------------------------
@acl.group()
def policy() -> None:
    """ACL policies: {resource: access} rules."""


def load_policy(text: str, source: str) -> dict[str, Any]:
    """A policy file: `{"rules": {...}, "description": ...}` or just the rules (JSON/YAML)."""
    try:
        doc = json.loads(text)
    except ValueError:
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise click.ClickException(f"{source} is neither JSON nor YAML: {e}") from None
    if not isinstance(doc, dict):
        raise click.ClickException(f"{source} must hold a mapping of rules")
    if "rules" not in doc:
        doc = {"rules": doc}
    return doc


@policy.command("apply")
@click.argument("name")
@click.argument("file", type=click.File("r"))
@click.option("--description", help="Overrides the file's description.")
@api_options
@pass_settings
def policy_apply(settings: Settings, name: str, file: IO[str], description: str | None) -> None:
    """Create or update policy NAME from FILE (JSON or YAML; '-' is stdin)."""
    doc = load_policy(file.read(), "stdin" if file.name == "<stdin>" else file.name)
    body: dict[str, Any] = {"rules": doc["rules"]}
    if description is not None or doc.get("description") is not None:
        body["description"] = description if description is not None else doc["description"]
    out = call(settings, lambda api: _post(api, f"/v1/acl/policies/{quote(name, safe='')}", body))
    if settings.json_output:
        print_json(out)
        return
    echo(f"Policy '{name}' applied.")


@policy.command("list")
@api_options
@pass_settings
def policy_list(settings: Settings) -> None:
    """List policies and their rules."""
    rows = call(settings, lambda api: _get(api, "/v1/acl/policies"))
    if settings.json_output:
        print_json(rows)
        return
    table(
        ["NAME", "DESCRIPTION", "RULES"],
        [
            (p.get("name"), p.get("description"), json.dumps(p.get("rules"), sort_keys=True))
            for p in rows
        ],
    )


@policy.command("show")
@click.argument("name")
@api_options
@pass_settings
def policy_show(settings: Settings, name: str) -> None:
    """Show policy NAME: its description and rules (as YAML, ready for `apply`)."""
    out = call(settings, lambda api: _get(api, f"/v1/acl/policies/{quote(name, safe='')}"))
    if settings.json_output:
        print_json(out)
        return
    key_values([("Name", out.get("name")), ("Description", out.get("description"))])
    echo("Rules:")
    echo(yaml.safe_dump(out.get("rules") or {}, sort_keys=True, default_flow_style=False).rstrip())


@policy.command("rm")
@destructive("Delete policy '{name}'? Tokens, users and roles that name it lose what it grants.")
@click.argument("name")
@api_options
@pass_settings
def policy_delete(settings: Settings, name: str) -> None:
    """Delete policy NAME."""
    out = call(settings, lambda api: _delete(api, f"/v1/acl/policies/{quote(name, safe='')}"))
    if settings.json_output:
        print_json(out)
        return
    echo(f"Policy '{name}' deleted.")


alias(policy, policy_delete, "delete")
