"""The web panel end to end, in Debian's chromium against a real 3-server
cluster with agents and Docker: sign in, submit a job from YAML (an error
shown at its line first) and see it running, follow its logs live, create a
secret and see its value only after reveal, drain its node and see the
allocation run elsewhere, a user whose policy lets them read only sees no
change buttons and a clear message when the API refuses, sign out ends the
session. Screenshots of every page go under the module's tmp directory, and
every control the pages show has an accessible name (the browser's own
accessibility tree, through the DevTools protocol)."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import tls
from tests.support.cluster import Cluster, Server, wait_until
from tests.support.workloads import IMAGE, docker_unavailable
from tests.ui.navigation import goto, reload

PASSWORD = "panel-admin-password-1"
TIMEOUT = 60_000  # ms: a first image start can be slow on a loaded machine
CONTROLS = {
    "button",
    "link",
    "textbox",
    "searchbox",
    "combobox",
    "checkbox",
    "radio",
    "spinbutton",
    "listbox",
    "menuitem",
    "switch",
    "slider",
    "tab",
}
JOB_YAML = f"""name: ticker
type: service
groups:
  - name: main
    count: 1
    tasks:
      - name: tick
        image: {IMAGE}
        command: ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.5; done"]
        resources:
          cpu: 100
          memory: 32
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    why = docker_unavailable()
    if why:
        pytest.skip(why)
    root: Path = tmp_path_factory.mktemp("panel")
    c = Cluster(root, 3, agent=True, env={"HEROCTL_ADMIN_PASSWORD": PASSWORD}).start()
    try:
        yield c.servers[1]  # any server serves the panel
    finally:
        c.stop()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("panel-screenshots")


@pytest.fixture
def new_page(browser: Any, server: Server) -> Iterator[Any]:
    """Pages in fresh browser contexts (each its own cookie jar)."""
    contexts = []

    def make() -> Any:
        ctx = browser.new_context(ignore_https_errors=True, base_url=server.url)
        ctx.set_default_timeout(TIMEOUT)
        contexts.append(ctx)
        return ctx.new_page()

    yield make
    for ctx in contexts:
        ctx.close()


def sign_in(page: Any, username: str = "admin", password: str = PASSWORD) -> None:
    goto(page, "/ui/")
    page.get_by_label("User", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for()


def go(page: Any, name: str) -> None:
    """Follow a link of the page menu."""
    nav = page.get_by_role("navigation", name="Pages")
    nav.get_by_role("link", name=name, exact=True).click()


def unnamed_controls(page: Any) -> list[str]:
    """Controls in the browser's accessibility tree that have no name."""
    cdp = page.context.new_cdp_session(page)
    try:
        nodes = cdp.send("Accessibility.getFullAXTree")["nodes"]
    finally:
        cdp.detach()
    bad = []
    for n in nodes:
        role = (n.get("role") or {}).get("value")
        if role in CONTROLS and not n.get("ignored"):
            name = ((n.get("name") or {}).get("value") or "").strip()
            if not name:
                bad.append(f"{role} (node {n.get('backendDOMNodeId')})")
    return bad


def visit(page: Any, shots: Path, name: str) -> None:
    """A page is done loading: screenshot it and check its controls' names."""
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert unnamed_controls(page) == [], name


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    r = (
        getattr(server, method.lower())(path, body)
        if body is not None
        else getattr(server, method.lower())(path)
    )
    assert r.status < 300, (path, r.status, r.raw[:300])
    return r.body


def test_panel_end_to_end(server: Server, new_page: Any, shots: Path) -> None:
    page = new_page()
    goto(page, "/ui/")
    visit(page, shots, "sign-in")
    sign_in(page)
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["heroctl_session"]["httpOnly"] and cookies["heroctl_session"]["secure"]
    assert cookies["heroctl_session"]["sameSite"] == "Strict"
    assert page.evaluate("document.cookie").find("heroctl_session") == -1  # no script reads it
    page.get_by_role("heading", name="Cluster").wait_for()
    page.get_by_role("table", name="Servers").get_by_text("leader").wait_for()
    visit(page, shots, "overview")

    # submit a job from YAML: the API's field-path error at its line, then the fix
    go(page, "Jobs")
    page.get_by_role("link", name="Submit a job").click()
    editor = page.get_by_role("textbox", name="Job YAML")
    editor.fill(JOB_YAML.replace("cpu: 100", "cpu: -5"))
    page.get_by_role("button", name="Submit job").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    cpu_line = JOB_YAML.splitlines().index("          cpu: 100") + 1
    assert f"Line {cpu_line}:" in alert.inner_text(), alert.inner_text()
    assert "groups[0].tasks[0].resources.cpu" in alert.inner_text()
    visit(page, shots, "job-submit-error")
    editor.fill(JOB_YAML)
    page.get_by_role("button", name="Submit job").click()
    page.get_by_role("heading", name="Job ticker").wait_for()
    allocs = page.get_by_role("table", name="Allocations")
    allocs.get_by_text("running", exact=True).wait_for()
    visit(page, shots, "job")

    # the allocation's logs, live
    allocs.get_by_role("link").first.click()
    page.get_by_role("heading", name="Logs").wait_for()
    logs = page.get_by_label("Log lines")

    def last_tick() -> int:
        found = re.findall(r"tick (\d+)", logs.inner_text())
        return int(found[-1]) if found else 0

    page.wait_for_function("() => /tick \\d+/.test(document.querySelector('pre.logs').innerText)")
    first = last_tick()
    page.wait_for_function(
        f"() => [...document.querySelector('pre.logs').innerText.matchAll(/tick (\\d+)/g)]"
        f".some(m => Number(m[1]) >= {first + 3})"
    )  # new lines arrive without a reload
    page.get_by_role("button", name="Pause").click()
    held = last_tick()
    page.wait_for_timeout(1500)  # a pause is the absence of change: look again after a while
    assert last_tick() == held
    page.get_by_role("button", name="Resume").click()
    page.get_by_role("searchbox", name="Search logs").fill(f"tick {held + 4}")
    page.wait_for_function(
        f"() => document.querySelector('pre.logs').innerText.includes('tick {held + 4}')"
    )
    shown = re.findall(r"tick \d+", logs.inner_text())
    assert shown and all(t.startswith(f"tick {held + 4}") for t in shown), shown  # filtered
    visit(page, shots, "allocation")

    # a secret: its value only after an explicit reveal
    go(page, "Secrets")
    page.get_by_label("Name", exact=True).fill("panel-db-password")
    page.get_by_label("Value", exact=True).fill("s3cret-from-the-panel")
    page.get_by_role("button", name="Save secret").click()
    page.get_by_role("button", name="Reveal panel-db-password").wait_for()
    assert "s3cret-from-the-panel" not in page.content()
    visit(page, shots, "secrets")
    page.get_by_role("button", name="Reveal panel-db-password").click()
    page.get_by_label("Value of panel-db-password").wait_for()
    assert page.get_by_label("Value of panel-db-password").inner_text() == "s3cret-from-the-panel"

    # a node drain moves the job's allocation to another node
    page.on("dialog", lambda dialog: dialog.accept())  # "Drain server-n?"
    goto(page, "/ui/jobs/ticker")
    allocs = page.get_by_role("table", name="Allocations")
    allocs.get_by_text("running", exact=True).wait_for()
    first_node = allocs.locator("tbody tr").first.locator("td").nth(2).inner_text()
    go(page, "Nodes")
    page.get_by_role("spinbutton", name=f"Drain deadline for {first_node} (minutes)").fill("0")
    page.get_by_role("button", name=f"Drain {first_node}", exact=True).click()
    page.get_by_role("button", name=f"Stop draining {first_node}").wait_for()
    visit(page, shots, "nodes-draining")
    goto(page, "/ui/jobs/ticker")
    page.wait_for_function(
        """node => [...document.querySelectorAll('table[aria-label=Allocations] tbody tr')]
            .some(tr => tr.cells[3].innerText.startsWith('running') && tr.cells[2].innerText !== node)""",
        arg=first_node,
    )  # the replacement runs elsewhere

    for name, heading in (("Nodes", "Nodes"), ("Events", "Events"), ("Metrics", "Metrics")):
        go(page, name)
        page.get_by_role("heading", name=heading, exact=True).wait_for()
        visit(page, shots, name.lower())

    # the agents' samples charted (uPlot draws on a canvas): every node's cpu
    def drawn() -> bool:
        reload(page)
        page.get_by_role("heading", name="Metrics", exact=True).wait_for()
        page.wait_for_load_state("networkidle")
        return page.get_by_role("img", name="CPU chart").locator("canvas").count() > 0

    wait_until(drawn, 60, 1, "the CPU chart drawn from the agents' samples")
    visit(page, shots, "metrics-chart")

    # sign out: back to the form, and the old cookie is dead on the server
    session = cookies["heroctl_session"]["value"]
    page.get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="Sign in").wait_for()
    assert "heroctl_session" not in {c["name"] for c in page.context.cookies()}
    req = urllib.request.Request(
        server.url + "/v1/acl/tokens/self", headers={"Cookie": f"heroctl_session={session}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=10, context=tls.context())
    assert refused.value.code == 401


def test_read_only_user(server: Server, new_page: Any, shots: Path) -> None:
    """No button for what the policy does not allow; a refusal the panel could
    not foresee (the policy changed under it) is said plainly."""
    writer = {"jobs": "write", "allocations": "read", "nodes": "read", "cluster": "read"}
    api(server, "POST", "/v1/acl/policies/panel-ops", {"rules": writer})
    api(
        server,
        "POST",
        "/v1/acl/users",
        {"username": "ops", "password": "ops-password-12345", "policies": ["panel-ops"]},
    )
    job = {
        "name": "quiet",
        "groups": [
            {
                "name": "g",
                "count": 0,
                "tasks": [{"name": "t", "image": IMAGE, "resources": {"cpu": 50, "memory": 16}}],
            }
        ],
    }
    api(server, "POST", "/v1/jobs", job)
    page = new_page()
    sign_in(page, "ops", "ops-password-12345")
    nav = page.get_by_role("navigation", name="Pages")
    assert nav.get_by_role("link", name="Secrets").count() == 0  # may not read: not shown
    assert nav.get_by_role("link", name="Metrics").count() == 0
    goto(page, "/ui/jobs/quiet")
    page.get_by_role("button", name="Scale").wait_for()  # may write jobs: buttons
    # the policy becomes read-only while the page is open: the API refuses
    api(server, "POST", "/v1/acl/policies/panel-ops", {"rules": {**writer, "jobs": "read"}})
    page.get_by_role("spinbutton", name="Count").fill("1")
    page.get_by_role("button", name="Scale").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Not allowed" in alert.inner_text() and "jobs: write" in alert.inner_text()
    visit(page, shots, "refused")
    # a fresh load reads the new policy: no change buttons at all
    reload(page)
    page.get_by_role("heading", name="Job quiet").wait_for()
    page.get_by_role("table", name="Allocations").wait_for()
    for label in ("Scale", "Stop job", "Edit", "Submit a job"):
        assert page.get_by_role("button", name=label).count() == 0, label
        assert page.get_by_role("link", name=label).count() == 0, label
    go(page, "Jobs")
    page.get_by_role("table", name="Jobs").get_by_text("quiet").wait_for()
    assert page.get_by_role("link", name="Submit a job").count() == 0
    visit(page, shots, "read-only-jobs")
