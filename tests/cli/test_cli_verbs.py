"""One vocabulary across `heroctl`: aliases, confirmation of destructive verbs,
shell completion (names from the API) and several server addresses, against
a real single-node heroctld."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.shell_completion import BashComplete
from click.testing import CliRunner

from cli import verbs
from cli.main import cli
from tests.cli.results import ok
from tests.support.cluster import Server, free_port, wait_until
from tests.support.nodes import HandNode, hand_node

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def node(server: Server) -> HandNode:
    """A node with room for the jobs below (placed, never started: nobody runs them)."""
    return hand_node(
        server,
        address="127.0.0.1",
        port_range=[23000, 23099],
        drivers=["docker"],
        resources={"cpu": 4000, "memory": 4096, "disk": 10_000},
    )


def submit(server: Server, name: str, node: HandNode | None = None) -> None:
    spec: dict = {
        "name": name,
        "groups": [{"name": "g", "tasks": [{"name": "t", "image": "busybox"}]}],
    }
    if node is not None:
        spec["constraints"] = [{"attribute": "node.name", "value": node.name}]
    assert server.post("/v1/jobs", spec).status in (200, 201)


DESTRUCTIVE = [
    ["job", "stop", "web"],
    ["job", "rm", "web"],
    ["node", "drain", "n1"],
    ["secret", "rm", "db"],
    ["webhook", "rm", "wh_1"],
    ["ingress", "rm", "www.example.com"],
    ["acl", "token", "rm", "acc"],
    ["acl", "token", "revoke", "acc"],
    ["acl", "policy", "rm", "p"],
    ["acl", "role", "rm", "r"],
    ["acl", "user", "rm", "u"],
    ["cluster", "leave", "server-3"],
    ["operator", "keyring", "rotate"],
]


@pytest.mark.parametrize("args", DESTRUCTIVE, ids=lambda a: " ".join(a))
def test_destructive_verbs_refuse_without_a_terminal_or_yes(args: list[str]) -> None:
    # Nothing listens at the address: an attempt to send anything would say so.
    address = f"http://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(cli, ["--address", address, "--token", "t", *args])
    assert result.exit_code == 1, result.output
    assert "stdin is not a terminal; pass --yes" in result.stderr
    assert "could not reach" not in result.stderr
    sent = CliRunner().invoke(cli, ["--address", address, "--token", "t", *args, "--yes"])
    assert "could not reach" in sent.stderr  # with --yes it goes on to the API


def test_undoing_a_drain_asks_nothing(heroctl, node: HandNode) -> None:
    out = ok(heroctl("node", "drain", node.name, "--disable"))
    assert "drain" in out.lower()


def test_the_question_is_asked_on_a_terminal(
    heroctl, server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verbs, "stdin_is_interactive", lambda: True)
    submit(server, "asked")
    no = heroctl("job", "stop", "asked", input="n\n")
    assert no.exit_code == 1 and "Not confirmed: nothing was changed." in no.stderr
    assert "Stop job 'asked' and remove it with its history? [y/N]" in no.stderr
    assert server.get("/v1/jobs/asked").status == 200
    yes = heroctl("job", "rm", "asked", input="y\n")  # rm: the vocabulary's name for it
    assert yes.exit_code == 0 and "stopped and removed" in yes.stdout
    assert server.get("/v1/jobs/asked").status == 404


def test_a_real_terminal_is_asked_and_answered(server: Server, tmp_path: Path) -> None:
    assert server.post("/v1/secrets", {"name": "tty_secret", "value": "x"}).status in (200, 201)
    primary, replica = pty.openpty()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path), "HEROCTL_TOKEN": server.token or ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "--address", server.url, "secret", "rm", "tty_secret"],
        stdin=replica,
        stdout=replica,
        stderr=replica,
        cwd=REPO,
        env=env,
    )
    os.close(replica)
    seen = b""
    try:
        seen = read_until(primary, b"[y/N]: ", seen)
        os.write(primary, b"y\n")
        seen = read_until(primary, b"deleted", seen)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert b"Delete secret 'tty_secret' and all its versions?" in seen
    assert server.get("/v1/secrets/tty_secret").status == 404


def read_until(fd: int, marker: bytes, seen: bytes, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal: {seen!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                seen += os.read(fd, 4096)
            except OSError:  # the other side closed
                break
    assert marker in seen, seen
    return seen


def test_aliases_keep_old_names_and_stay_out_of_help(heroctl) -> None:
    for group, hidden, canonical in [
        (["job"], "rm", "stop"),
        (["acl", "token"], "revoke", "rm"),
        (["acl", "token"], "self", "show"),
        (["acl", "policy"], "delete", "rm"),
        (["webhook"], "status", "show"),
        (["webhook"], "create", "add"),
        (["ingress"], "show", "status"),
        (["ingress"], "create", "add"),
    ]:
        usage = ok(heroctl(*group, hidden, "--help"))
        assert f" {' '.join(group)} {hidden} [OPTIONS]" in usage.splitlines()[0]
        listing = ok(heroctl(*group, "--help"))
        commands = listing.split("Commands:", 1)[1].split()
        assert canonical in commands and hidden not in commands, (group, listing)


def test_several_addresses_fail_over(heroctl, server: Server, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    submit(server, "listed")
    out = ok(heroctl("job", "list", address=f"{dead},{server.url}"))
    assert "listed" in out
    runner = CliRunner(
        env={"HEROCTL_ADDR": f"{dead}, {server.url}", "XDG_CONFIG_HOME": str(tmp_path)}
    )
    result = runner.invoke(cli, ["--token", server.token or "", "job", "status", "listed"])
    assert result.exit_code == 0, result.output
    both_dead = f"{dead},http://127.0.0.1:{free_port()}"
    down = heroctl("job", "list", address=both_dead)
    assert down.exit_code == 1 and "connection refused" in down.stderr
    assert dead in down.stderr


# --- completion -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _heroctl_completion heroctl"),
        ("zsh", "#compdef heroctl"),
        ("fish", "complete --no-files --command heroctl"),
    ],
)
def test_completion_scripts(heroctl, shell: str, marker: str) -> None:
    out = ok(heroctl("completion", shell))
    assert marker in out and "_HEROCTL_COMPLETE" in out


def completions(server: Server, *words: str, incomplete: str = "") -> list[str]:
    """What click offers after `heroctl --address URL --token T WORDS... INCOMPLETE`."""
    args = ["--address", server.url, "--token", server.token or "", *words]
    comp = BashComplete(cli, {}, "heroctl", "_HEROCTL_COMPLETE")
    return [item.value for item in comp.get_completions(args, incomplete)]


def test_names_complete_from_the_api(server: Server, node: HandNode) -> None:
    for name in ("api-web", "api-worker", "batch"):
        submit(server, name, node)
    assert completions(server, "job", "status", incomplete="api-") == ["api-web", "api-worker"]
    assert "batch" in completions(server, "job", "stop")
    assert completions(server, "node", "drain", incomplete=node.name[:6]) == [node.name]
    assert completions(server, "alloc", "list", "--node", incomplete=node.name[:6]) == [node.name]
    assert "api-web" in completions(server, "logs", "--job")
    alloc_ids = wait_until(
        lambda: [a["id"] for a in server.get("/v1/allocations?job=api-web").body],
        message="api-web placed",
    )
    offered = completions(server, "alloc", "status", incomplete=alloc_ids[0][:2])
    assert alloc_ids[0][:8] in offered
    assert completions(server, "alloc", "status", incomplete=alloc_ids[0][:8]) == [alloc_ids[0]]
    # subcommands and options still complete as click's do
    assert "status" in completions(server, "job")


def test_completion_fails_silently(node: HandNode) -> None:
    comp = BashComplete(cli, {}, "heroctl", "_HEROCTL_COMPLETE")
    dead = ["--address", f"http://127.0.0.1:{free_port()}", "--token", "t", "job", "status"]
    assert comp.get_completions(dead, "") == []


def test_the_shell_protocol_end_to_end(server: Server, tmp_path: Path) -> None:
    submit(server, "proto-job")
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path),
        "HEROCTL_ADDR": server.url,
        "HEROCTL_TOKEN": server.token or "",
        "_HEROCTL_COMPLETE": "bash_complete",
        "COMP_WORDS": "heroctl job status proto-",
        "COMP_CWORD": "3",
    }
    out = subprocess.run(
        [sys.executable, "-m", "cli.main"], env=env, cwd=REPO, capture_output=True, timeout=60
    )
    assert out.returncode == 0 and out.stderr == b""
    assert out.stdout.decode().splitlines() == ["plain,proto-job"]
    env["HEROCTL_TOKEN"] = "ht_wrong"  # refused by the API: nothing offered, nothing printed
    out = subprocess.run(
        [sys.executable, "-m", "cli.main"], env=env, cwd=REPO, capture_output=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == b"" and out.stderr == b""


def test_json_of_the_verbs_is_unchanged(heroctl, server: Server) -> None:
    submit(server, "as-json")
    doc = json.loads(ok(heroctl("--json", "job", "rm", "as-json", "--yes")))
    assert "index" in doc
