"""The Access page edits what it lists, in Debian's chromium against one
server (test_panel_pages.py's fixtures): a user's policies and password (the
old password then fails to sign in, the new one works, and the session of
the old one is over), a policy's rules (first a rule set the API refuses,
its error shown at its line and nothing changed), a role's policies and a
token's name and roles (its secret never shown). Each is checked against the
API afterwards; each form is screenshotted and its controls checked for
accessible names."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.api.authutil import anon, bearer, login
from tests.support.cluster import Server
from tests.ui.test_panel_pages import (  # noqa: F401 - the module's fixtures
    check,
    open_page,
    page,
    server,
    shots,
)

OLD_PASSWORD = "access-old-password-1"
NEW_PASSWORD = "access-new-password-2"


def _put(to: Server, path: str, body: dict[str, Any]) -> dict[str, Any]:
    r = to.post(path, body)
    assert r.status in (200, 201), (path, r.status, r.raw[:300])
    return r.body


@pytest.fixture(scope="module")
def token(server: Server) -> dict[str, Any]:  # noqa: F811
    """Two policies, a role with one, a user with one, and a token with one
    (what its creation answered: the only time its secret is shown)."""
    _put(server, "/v1/acl/policies/acc-read", {"rules": {"jobs": "read"}, "description": "reads"})
    _put(server, "/v1/acl/policies/acc-nodes", {"rules": {"nodes": "write"}})
    _put(server, "/v1/acl/roles/acc-role", {"policies": ["acc-read"], "description": "a role"})
    _put(
        server,
        "/v1/acl/users",
        {"username": "acc-user", "password": OLD_PASSWORD, "policies": ["acc-read"]},
    )
    return _put(server, "/v1/acl/tokens", {"name": "acc-token", "policies": ["acc-read"]})


def test_access_edits_a_user(
    server: Server,  # noqa: F811
    token: dict[str, Any],
    page: Any,  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    old_session = login(server, username="acc-user", password=OLD_PASSWORD)["token"]
    assert anon(server, "GET", "/v1/jobs", headers=bearer(old_session)).status == 200
    open_page(page, "/access")
    page.get_by_role("button", name="Edit user acc-user").click()
    form = page.get_by_role("form", name="Edit user acc-user")
    policies = form.get_by_label("Policies")
    assert policies.input_value() == "acc-read"  # the form starts from what the user has
    policies.fill("acc-read, acc-nodes")
    form.get_by_label("New password", exact=True).fill(NEW_PASSWORD)
    form.get_by_label("Repeat new password").fill(NEW_PASSWORD)
    check(page, shots, "access-edit-user")
    form.get_by_role("button", name="Save user acc-user").click()
    page.get_by_text("User acc-user saved; the new password ended its sessions.").wait_for()
    users = page.get_by_role("table", name="Users")
    users.get_by_role("cell", name="acc-nodes, acc-read", exact=True).wait_for()  # sorted

    user = server.get("/v1/acl/users/acc-user").body
    assert user["policies"] == ["acc-nodes", "acc-read"] and user["type"] == "client", user
    old = anon(server, "POST", "/v1/auth/login", {"username": "acc-user", "password": OLD_PASSWORD})
    assert old.status == 401, old.raw[:300]
    assert login(server, username="acc-user", password=NEW_PASSWORD)["token"]
    assert anon(server, "GET", "/v1/jobs", headers=bearer(old_session)).status == 401


def test_access_edits_a_policy(
    server: Server,  # noqa: F811
    token: dict[str, Any],
    page: Any,  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    open_page(page, "/access")
    page.get_by_role("tab", name="Policies").click()
    page.get_by_role("button", name="Edit policy acc-read").click()
    form = page.get_by_role("form", name="Edit policy acc-read")
    rules = form.get_by_label("Rules of policy acc-read (YAML or JSON)")
    assert rules.input_value().strip() == "jobs: read"  # the rules as YAML
    rules.fill("jobs: read\nbogus: write\n")
    form.get_by_role("button", name="Save policy acc-read").click()
    alert = form.get_by_role("alert").filter(has_text="unknown resource 'bogus'")
    alert.wait_for()
    assert alert.inner_text().startswith("Line 2: field 'rules'"), alert.inner_text()
    check(page, shots, "access-edit-policy-refused")
    before = server.get("/v1/acl/policies/acc-read").body
    assert before["rules"] == {"jobs": "read"} and before["description"] == "reads", before

    rules.fill("jobs: read\nsecrets: {app.*: read\n")  # not YAML: said before any request
    form.get_by_role("button", name="Save policy acc-read").click()
    form.get_by_role("alert").filter(has_text="YAML:").wait_for()
    rules.fill('{"jobs": "read", "secrets": {"app.*": "read"}}')
    form.get_by_label("Description").fill("reads jobs and app secrets")
    form.get_by_role("button", name="Save policy acc-read").click()
    page.get_by_text("Policy acc-read saved.").wait_for()
    after = server.get("/v1/acl/policies/acc-read").body
    assert after["rules"] == {"jobs": "read", "secrets": {"app.*": "read"}}, after
    assert after["description"] == "reads jobs and app secrets", after
    table = page.get_by_role("table", name="Policies")
    table.get_by_text("app.* read").wait_for()


def test_access_edits_a_role_and_a_token(
    server: Server,  # noqa: F811
    token: dict[str, Any],
    page: Any,  # noqa: F811
    shots: Path,  # noqa: F811
) -> None:
    short = token["accessor_id"][:8]
    open_page(page, "/access")
    page.get_by_role("tab", name="Roles").click()
    page.get_by_role("button", name="Edit role acc-role").click()
    form = page.get_by_role("form", name="Edit role acc-role")
    form.get_by_label("Policies").fill("acc-read, acc-nodes")
    check(page, shots, "access-edit-role")
    form.get_by_role("button", name="Save role acc-role").click()
    page.get_by_text("Role acc-role saved.").wait_for()
    role = server.get("/v1/acl/roles/acc-role").body
    assert role["policies"] == ["acc-nodes", "acc-read"], role
    assert role["description"] == "a role", role  # what the form did not change stays

    page.get_by_role("tab", name="Tokens").click()
    page.get_by_role("button", name=f"Edit token {short}").click()
    form = page.get_by_role("form", name=f"Edit token {short}")
    form.get_by_label("Name").fill("acc-token-renamed")
    form.get_by_label("Roles").fill("acc-role")
    check(page, shots, "access-edit-token")
    form.get_by_role("button", name=f"Save token {short}").click()
    page.get_by_text(f"Token {short} saved.").wait_for()
    after = server.get(f"/v1/acl/tokens/{token['accessor_id']}").body
    assert after["name"] == "acc-token-renamed" and after["roles"] == ["acc-role"], after
    assert after["policies"] == ["acc-read"], after
    assert "secret_id" not in after
    assert token["secret_id"] not in page.content()  # shown once, at creation, never again
