"""`heroctl acl user ...` and `heroctl acl role ...`: the ACL's users (who
log in with a password) and roles (named sets of policies), over
`/v1/acl/users` and `/v1/acl/roles`.

Passwords never go on the command line: a hidden prompt (asked twice) on a
terminal, else `--password-stdin`.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import click

from cli.common import Settings, api_options, call, pass_settings
from cli.output import echo, key_values, print_json, table
from cli.verbs import destructive, stdin_is_interactive
from client import ApiClient

__all__ = ["role", "user"]


def _user_path(name: str) -> str:
    return f"/v1/acl/users/{quote(name, safe='')}"


def _role_path(name: str) -> str:
    return f"/v1/acl/roles/{quote(name, safe='')}"


def _joined(names: Any) -> str:
    return ", ".join(names or []) or "-"


def read_password(from_stdin: bool) -> str:
    """The new password: stdin's first line, or a hidden prompt asked twice."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
        if not password:
            raise click.ClickException("no password on stdin")
        return password
    if not stdin_is_interactive():
        raise click.ClickException(
            "stdin is not a terminal to ask the password on: pass it with --password-stdin"
        )
    return click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)


password_stdin = click.option(
    "--password-stdin", is_flag=True, help="Read the password from stdin's first line."
)


# --- users -------------------------------------------------------------------------
@click.group()
def user() -> None:
    """ACL users: log in with a name and password (`heroctl login`)."""


@user.command("list")
@api_options
@pass_settings
def user_list(settings: Settings) -> None:
    """List users, their type, policies and roles (never password hashes)."""
    rows = call(settings, lambda api: api.get("/v1/acl/users"))[0]
    if settings.json_output:
        print_json(rows)
        return
    if not rows:
        echo("No users.")
        return
    table(
        ["USERNAME", "TYPE", "POLICIES", "ROLES", "PASSWORD", "CREATED"],
        [
            (
                u.get("username"),
                u.get("type"),
                _joined(u.get("policies")),
                _joined(u.get("roles")),
                "set" if u.get("has_password") else "none",
                u.get("create_time"),
            )
            for u in rows
        ],
    )


@user.command("show")
@click.argument("username")
@api_options
@pass_settings
def user_show(settings: Settings, username: str) -> None:
    """Show user USERNAME."""
    out = call(settings, lambda api: api.get(_user_path(username)))[0]
    if settings.json_output:
        print_json(out)
        return
    _show_user(out)


def _show_user(u: dict[str, Any]) -> None:
    key_values(
        [
            ("Username", u.get("username")),
            ("Type", u.get("type")),
            ("Policies", _joined(u.get("policies"))),
            ("Roles", _joined(u.get("roles"))),
            ("Password", "set" if u.get("has_password") else "none"),
            ("Created", u.get("create_time")),
        ]
    )


@user.command("create")
@click.argument("username")
@click.option("--policy", "policies", multiple=True, help="Policy to attach (repeatable).")
@click.option("--role", "roles", multiple=True, help="Role to attach (repeatable).")
@click.option(
    "--type",
    "user_type",
    type=click.Choice(["client", "management"]),
    default="client",
    show_default=True,
    help="management: may do everything.",
)
@password_stdin
@api_options
@pass_settings
def user_create(
    settings: Settings,
    username: str,
    policies: tuple[str, ...],
    roles: tuple[str, ...],
    user_type: str,
    password_stdin: bool,
) -> None:
    """Create user USERNAME with a password (asked, or --password-stdin)."""
    body: dict[str, Any] = {
        "username": username,
        "type": user_type,
        "policies": list(policies),
        "roles": list(roles),
        "password": read_password(password_stdin),
    }
    out = call(settings, lambda api: api.post("/v1/acl/users", body))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"User '{username}' created.")


@user.command("update")
@click.argument("username")
@click.option("--policy", "policies", multiple=True, help="Its policies: all of them (repeatable).")
@click.option("--role", "roles", multiple=True, help="Its roles: all of them (repeatable).")
@click.option("--no-policies", is_flag=True, help="Take every policy away.")
@click.option("--no-roles", is_flag=True, help="Take every role away.")
@click.option("--type", "user_type", type=click.Choice(["client", "management"]))
@api_options
@pass_settings
def user_update(
    settings: Settings,
    username: str,
    policies: tuple[str, ...],
    roles: tuple[str, ...],
    no_policies: bool,
    no_roles: bool,
    user_type: str | None,
) -> None:
    """Change USERNAME's policies, roles or type (what is not given stays).
    Its sessions take the change at their next request."""
    body: dict[str, Any] = {}
    wanted = (("policies", "policy", policies, no_policies), ("roles", "role", roles, no_roles))
    for key, flag, given, none in wanted:
        if given and none:
            raise click.UsageError(f"--{flag} and --no-{key} do not go together")
        if given or none:
            body[key] = list(given)
    if user_type:
        body["type"] = user_type
    if not body:
        raise click.UsageError("nothing to change: give --policy, --role, --type or --no-...")

    async def change(api: ApiClient) -> Any:
        await api.get(_user_path(username))  # 404 user_not_found: never made by a typo
        return (await api.request("PUT", _user_path(username), body))[0]

    out = call(settings, change)
    if settings.json_output:
        print_json(out)
        return
    _show_user(out)


@user.command("passwd")
@click.argument("username")
@password_stdin
@api_options
@pass_settings
def user_passwd(settings: Settings, username: str, password_stdin: bool) -> None:
    """Set USERNAME's password; every session of the old one ends."""
    password = read_password(password_stdin)

    async def change(api: ApiClient) -> Any:
        await api.get(_user_path(username))  # 404 user_not_found: never made by a typo
        return (await api.request("PUT", _user_path(username), {"password": password}))[0]

    out = call(settings, change)
    if settings.json_output:
        print_json(out)
        return
    echo(f"Password of '{username}' changed; its sessions were ended.")


@user.command("rm")
@destructive("Delete user '{username}'? Every session of it ends.")
@click.argument("username")
@api_options
@pass_settings
def user_rm(settings: Settings, username: str) -> None:
    """Delete user USERNAME and end its sessions."""
    out = call(settings, lambda api: api.delete(_user_path(username)))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"User '{username}' deleted.")


# --- roles -------------------------------------------------------------------------
@click.group()
def role() -> None:
    """ACL roles: named sets of policies that tokens and users carry."""


@role.command("list")
@api_options
@pass_settings
def role_list(settings: Settings) -> None:
    """List roles and their policies."""
    rows = call(settings, lambda api: api.get("/v1/acl/roles"))[0]
    if settings.json_output:
        print_json(rows)
        return
    if not rows:
        echo("No roles.")
        return
    table(
        ["NAME", "POLICIES", "DESCRIPTION"],
        [(r.get("name"), _joined(r.get("policies")), r.get("description")) for r in rows],
    )


@role.command("show")
@click.argument("name")
@api_options
@pass_settings
def role_show(settings: Settings, name: str) -> None:
    """Show role NAME."""
    out = call(settings, lambda api: api.get(_role_path(name)))[0]
    if settings.json_output:
        print_json(out)
        return
    key_values(
        [
            ("Name", out.get("name")),
            ("Description", out.get("description")),
            ("Policies", _joined(out.get("policies"))),
        ]
    )


@role.command("create")
@click.argument("name")
@click.option(
    "--policy", "policies", multiple=True, required=True, help="Policy it grants (repeatable)."
)
@click.option("--description", default="", help="What the role is for.")
@api_options
@pass_settings
def role_create(settings: Settings, name: str, policies: tuple[str, ...], description: str) -> None:
    """Create role NAME granting the given policies (409 if it exists)."""
    body = {"name": name, "policies": list(policies), "description": description}
    out = call(settings, lambda api: api.post("/v1/acl/roles", body))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"Role '{name}' created.")


@role.command("update")
@click.argument("name")
@click.option("--policy", "policies", multiple=True, help="Its policies: all of them (repeatable).")
@click.option("--description", default=None, help="What the role is for.")
@api_options
@pass_settings
def role_update(
    settings: Settings, name: str, policies: tuple[str, ...], description: str | None
) -> None:
    """Change role NAME's policies or description (what is not given stays)."""
    if not policies and description is None:
        raise click.UsageError("nothing to change: give --policy or --description")

    async def change(api: ApiClient) -> Any:
        current = (await api.get(_role_path(name)))[0]  # 404 role_not_found
        body = {
            "name": name,
            "policies": list(policies) or current.get("policies") or [],
            "description": current.get("description", "") if description is None else description,
        }
        return (await api.request("PUT", _role_path(name), body))[0]

    out = call(settings, change)
    if settings.json_output:
        print_json(out)
        return
    echo(f"Role '{name}' updated: policies {_joined(out.get('policies'))}.")


@role.command("rm")
@destructive("Delete role '{name}'? Tokens and users that carry it lose what it grants.")
@click.argument("name")
@api_options
@pass_settings
def role_rm(settings: Settings, name: str) -> None:
    """Delete role NAME."""
    out = call(settings, lambda api: api.delete(_role_path(name)))[0]
    if settings.json_output:
        print_json(out)
        return
    echo(f"Role '{name}' deleted.")
