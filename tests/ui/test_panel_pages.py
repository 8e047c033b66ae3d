"""The web panel's other pages in Debian's chromium, against one server whose
nodes are registered by the test and act on their allocations (no agent, no
Docker: tests/support/acting_node.py): a canary deployment promoted from the
job's page and a revert (an unknown version said plainly), placement
failures in words, the Ingress page and a renew, Webhooks with a delivery
redelivered, Access with a user created, Metrics, and the Events page. Each
page is screenshotted under the module's tmp directory and every control it
shows has an accessible name."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.test_deployments import SLOW, HealthNode, latest, spec, submit
from tests.support.cluster import Cluster, Server, free_port, wait_until
from tests.ui.navigation import goto
from tests.ui.test_panel import TIMEOUT, sign_in, unnamed_controls

PASSWORD = "panel-pages-password-1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("panel-pages")
    c = Cluster(root, 1, env={"HEROCTL_ADMIN_PASSWORD": PASSWORD}).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.fixture(scope="module")
def node(server: Server) -> Iterator[HealthNode]:
    n = HealthNode(server, "panel-node", cpu=4000, memory=4096).start()
    try:
        yield n
    finally:
        n.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("panel-pages-screenshots")


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    ctx = browser.new_context(ignore_https_errors=True, base_url=server.url)
    ctx.set_default_timeout(TIMEOUT)
    p = ctx.new_page()
    p.on("dialog", lambda d: d.accept())  # the confirm() before a revert or delete
    sign_in(p, password=PASSWORD)
    try:
        yield p
    finally:
        ctx.close()


def check(page: Any, shots: Path, name: str) -> None:
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert unnamed_controls(page) == [], name


def open_page(page: Any, path: str) -> None:
    goto(page, f"/ui{path}")


def test_canary_promote_and_revert(
    server: Server, node: HealthNode, page: Any, shots: Path
) -> None:
    submit(server, spec("canary", count=2, strategy="canary"))
    latest(server, "canary", "successful")
    submit(server, spec("canary", image="busybox:2", count=2, strategy="canary"))
    open_page(page, "/jobs/canary")
    page.get_by_text("blocked-on-promotion").first.wait_for()
    progress = page.get_by_role("table", name="Deployment progress")
    assert "1 of 1" in progress.inner_text()  # the canary, healthy, of one wanted
    check(page, shots, "job-canary-blocked")
    page.get_by_role("button", name="Promote").click()
    page.get_by_text("successful").first.wait_for()
    assert latest(server, "canary", "successful")["promoted"]

    revert_to = page.get_by_label("Version to revert to")
    revert_to.fill("42")
    page.get_by_role("button", name="Revert", exact=True).click()
    alert = page.get_by_role("alert").filter(has_text="No such version")
    alert.wait_for()
    assert "has no version 42" in alert.inner_text()
    revert_to.fill("0")
    page.get_by_role("button", name="Revert", exact=True).click()
    page.get_by_text("Reverted to version 0: now version 2.").wait_for()
    job = server.get("/v1/jobs/canary").body
    assert job["version"] == 2 and job["groups"][0]["tasks"][0]["image"] != "busybox:2"
    check(page, shots, "job-canary-reverted")


def test_rainbow_shows_older_versions_draining(
    server: Server, node: HealthNode, page: Any, shots: Path
) -> None:
    submit(server, spec("rainbow", count=2, strategy="rainbow"))
    latest(server, "rainbow", "successful")
    # the new set's health stays unknown: the deployment runs beside version 0
    submit(server, spec("rainbow", image=SLOW, count=2, strategy="rainbow"))

    def draining() -> dict[str, Any] | None:
        d = latest(server, "rainbow")
        return d if d["version"] == 1 and d["groups"]["app"].get("draining") else None

    doc = wait_until(draining, timeout=30, message="version 0 counted as draining")
    assert doc["strategy"] == "rainbow", doc
    open_page(page, "/jobs/rainbow")
    progress = page.get_by_role("table", name="Deployment progress")
    progress.get_by_text("version 0: 2 allocations, 0 connections").wait_for()
    check(page, shots, "job-rainbow-draining")


def test_placement_failures_in_words(
    server: Server, node: HealthNode, page: Any, shots: Path
) -> None:
    big = spec("too-big", count=1)
    big["groups"][0]["tasks"][0]["resources"]["memory"] = 1_000_000
    submit(server, big)
    open_page(page, "/jobs/too-big")
    section = page.get_by_role("region", name="Cannot be placed")
    section.wait_for()
    text = section.inner_text()
    assert "Group app: 1 of 1 allocation could not be placed: no node has" in text, text
    check(page, shots, "job-placement-failure")


def test_ingress_lists_and_renews(server: Server, node: HealthNode, page: Any, shots: Path) -> None:
    web = spec("site", count=1)
    web["groups"][0]["tasks"][0]["ports"] = [{"name": "http"}]
    submit(server, web)
    r = server.post(
        "/v1/ingress",
        {
            "host": "panel.example.test",
            "routes": [{"path": "/", "job": "site", "group": "app", "port": "http"}],
            "tls": "acme",
        },
    )
    assert r.status in (200, 201), r.body
    open_page(page, "/ingress")
    domains = page.get_by_role("table", name="Domains")
    domains.get_by_role("cell", name="panel.example.test", exact=True).wait_for()
    assert "/ → site/app:http" in domains.inner_text()
    page.get_by_role("button", name="Details of panel.example.test").click()
    page.get_by_role("table", name="Routes of panel.example.test").wait_for()
    page.get_by_role("button", name="Renew panel.example.test").click()
    page.get_by_text("Renewal requested").wait_for()
    check(page, shots, "ingress")


class _Receiver(http.server.BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Receiver.hits.append(self.path)
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    port = free_port()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        httpd.shutdown()


def test_webhooks_deliveries_and_redeliver(
    server: Server, node: HealthNode, receiver: str, page: Any, shots: Path
) -> None:
    r = server.post(
        "/v1/webhooks",
        {"url": receiver, "events": ["job"], "secret": "panel-webhook-secret-0123456789"},
    )
    assert r.status == 201, r.body
    wid = r.body["id"]
    submit(server, spec("hooked", count=1))

    def delivered() -> list[dict[str, Any]]:
        return server.get(f"/v1/webhooks/{wid}/deliveries").body["attempts"]

    attempts = wait_until(delivered, timeout=30, message="a webhook delivery")
    open_page(page, "/webhooks")
    page.get_by_role("button", name=f"Deliveries of {wid}").click()
    deliveries = page.get_by_role("table", name=f"Deliveries of webhook {wid}")
    deliveries.get_by_text(attempts[-1]["delivery"], exact=True).wait_for()
    check(page, shots, "webhooks")
    first = attempts[-1]["delivery"]
    page.get_by_role("button", name=f"Redeliver {first}").click()
    page.get_by_text("Queued").first.wait_for()
    wait_until(
        lambda: any(a["redelivery"] and a["delivery"] == first for a in delivered()),
        timeout=30,
        message="the redelivery attempted",
    )


def test_access_creates_a_user(server: Server, page: Any, shots: Path) -> None:
    open_page(page, "/access")
    form = page.get_by_role("form", name="Create user")
    form.get_by_label("Username").fill("panel-reader")
    form.get_by_label("Password").fill("panel-reader-password-1")
    form.get_by_role("button", name="Create user").click()
    page.get_by_text("User panel-reader created.").wait_for()
    users = page.get_by_role("table", name="Users")
    users.get_by_role("cell", name="panel-reader", exact=True).wait_for()
    assert server.get("/v1/acl/users/panel-reader").status == 200
    check(page, shots, "access-users")
    for tab in ("Tokens", "Policies", "Roles"):
        page.get_by_role("tab", name=tab).click()
        page.get_by_role("table", name=tab).wait_for()
        check(page, shots, f"access-{tab.lower()}")


def test_metrics_and_events_render(
    server: Server, node: HealthNode, page: Any, shots: Path
) -> None:
    open_page(page, "/metrics")
    page.get_by_label("Time range").select_option("6h")
    page.get_by_label("Nodes, a node, a job or an allocation").wait_for()
    # acting nodes have no agent to sample them: the page says so, no blank chart
    page.get_by_text("CPU: no samples in this range").wait_for()
    check(page, shots, "metrics")
    open_page(page, "/events")
    page.get_by_role("table", name="Events").wait_for()
    page.get_by_label("node").uncheck()
    check(page, shots, "events")


def test_signs_in_with_an_acl_token(browser: Any, server: Server, shots: Path) -> None:
    """The other way in: a token (here the management token) instead of a
    user; the session is the same HttpOnly cookie."""
    ctx = browser.new_context(ignore_https_errors=True, base_url=server.url)
    ctx.set_default_timeout(TIMEOUT)
    page = ctx.new_page()
    try:
        goto(page, "/ui/")
        page.get_by_role("radio", name="ACL token").check()
        page.locator("input[name=acl_token]").fill(server.token or "")
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("button", name="Sign out").wait_for()
        session = {c["name"]: c for c in ctx.cookies()}["heroctl_session"]
        assert session["httpOnly"] is True and session["sameSite"] == "Strict"
        assert page.evaluate("document.cookie").find("heroctl_session") == -1
        check(page, shots, "signed-in-with-a-token")
    finally:
        ctx.close()
