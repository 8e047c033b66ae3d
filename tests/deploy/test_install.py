"""deploy/install.sh into a staging root (--root): every file it writes,
with its mode and content, for a server and a worker-only node; a second
run that changes nothing; a cluster key that is never replaced nor printed;
flags that do not go together, refused with a clear message before anything
is written; and, once, the real virtual environment built from this
checkout."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from heroctld.advertise import is_local_address
from heroctld.config import load_config, read_config
from raft.keys import generate_cluster_key
from tests.deploy.test_units import ANALYZE, verify

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "install.sh"
VENV = Path(sys.executable).parent.parent  # the tests' environment: heroctl is installed in it
PEERS = "10.0.0.11:7071,10.0.0.12:7071,10.0.0.13:7071"
NOT_HERE = [a for a in ("203.0.113.7", "198.51.100.7", "203.0.113.8") if not is_local_address(a)]


def install(root: Path, *args: str, env: dict[str, str] | None = None, venv: bool = True):
    argv = ["bash", str(INSTALL), "--root", str(root), *args]
    if venv:
        argv += ["--venv", str(VENV)]
    return subprocess.run(
        argv,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root.parent,
        env={**os.environ, **(env or {})},
    )


def server(root: Path, *more: str, **kw):
    return install(
        root,
        "--server",
        "--bind",
        "10.0.0.11",
        "--node-name",
        "server-1",
        "--peers",
        PEERS,
        *more,
        **kw,
    )


def agent(root: Path, *more: str):
    return install(
        root,
        "--agent",
        "--bind",
        "10.0.0.21",
        "--node-name",
        "worker-1",
        "--servers",
        "10.0.0.11:7070,10.0.0.12:7070",
        *more,
    )


def tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` with its mode (and a link's target)."""
    out = {}
    for p in sorted(root.rglob("*")):
        rel = "/" + str(p.relative_to(root))
        out[rel] = f"-> {os.readlink(p)}" if p.is_symlink() else oct(p.stat().st_mode & 0o7777)
    return out


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    return {
        p: (os.lstat(root / p[1:]).st_ino, os.lstat(root / p[1:]).st_mtime_ns) for p in tree(root)
    }


def key_of(env_file: Path) -> str:
    (key,) = re.findall(r"^HEROCTL_CLUSTER_KEY=(.+)$", env_file.read_text(), re.M)
    return key


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


SERVER_TREE = {
    "/etc": "0o755",
    "/etc/heroctl": "0o755",
    "/etc/heroctl/heroctl.env": "0o600",
    "/etc/heroctl/heroctld.toml": "0o644",
    "/etc/systemd": "0o755",
    "/etc/systemd/system": "0o755",
    "/etc/systemd/system/heroctld.service": "0o644",
    "/usr": "0o755",
    "/usr/local": "0o755",
    "/usr/local/bin": "0o755",
    "/usr/local/bin/heroctl": f"-> {VENV}/bin/heroctl",
    "/usr/local/bin/heroctld": f"-> {VENV}/bin/heroctld",
    "/var": "0o755",
    "/var/lib": "0o755",
    "/var/lib/heroctl": "0o700",
}


def test_a_server(tmp_path: Path) -> None:
    root = tmp_path / "root"
    out = ok(server(root))
    assert tree(root) == SERVER_TREE
    conf = root / "etc/heroctl/heroctld.toml"
    assert tomllib.loads(conf.read_text()) == {
        "node_name": "server-1",
        "data_dir": "/var/lib/heroctl",
        "bind": "10.0.0.11",
        "api_port": 7070,
        "raft_port": 7071,
        "peers": PEERS.split(","),
    }
    key = key_of(root / "etc/heroctl/heroctl.env")
    cfg = load_config(str(conf), {}, env={"HEROCTL_CLUSTER_KEY": key})  # the daemon reads it
    assert cfg.peers == PEERS.split(",") and cfg.raft_address == "10.0.0.11:7071"
    unit = (root / "etc/systemd/system/heroctld.service").read_text()
    assert unit == (REPO / "deploy/heroctld.service").read_text()
    assert key not in out  # never printed
    assert "wrote /etc/heroctl/heroctl.env (0600: the new cluster key)" in out
    assert "--root: systemctl not run" in out
    assert "heroctl acl bootstrap" in out and "7071/tcp (raft)" in out
    assert f"--peers {PEERS} --cluster-key-file heroctl.env" in out


def test_a_second_run_changes_nothing_and_never_replaces_the_key(tmp_path: Path) -> None:
    root = tmp_path / "root"
    ok(server(root))
    before, key = stamps(root), key_of(root / "etc/heroctl/heroctl.env")
    out = ok(server(root))
    assert stamps(root) == before
    assert "wrote" not in out and "made" not in out and "linked" not in out
    assert "unchanged /etc/heroctl/heroctld.toml" in out

    # Another flag: the config is rewritten (the old one kept), the key stays.
    out = ok(server(root, "--api-port", "7080", "--drivers", "docker,exec"))
    assert "wrote /etc/heroctl/heroctld.toml" in out
    conf = tomllib.loads((root / "etc/heroctl/heroctld.toml").read_text())
    assert conf["api_port"] == 7080 and conf["agent"] == {"drivers": ["docker", "exec"]}
    assert tomllib.loads((root / "etc/heroctl/heroctld.toml.old").read_text())["api_port"] == 7070
    assert key_of(root / "etc/heroctl/heroctl.env") == key

    # The same key given again is fine; another one is refused, and neither is printed.
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    ok(
        server(
            root,
            "--api-port",
            "7080",
            "--drivers",
            "docker,exec",
            "--cluster-key-file",
            str(key_file),
        )
    )
    other = generate_cluster_key()
    key_file.write_text(other + "\n")
    proc = server(root, "--cluster-key-file", str(key_file))
    assert proc.returncode == 2
    assert "already holds another cluster key, which this script never replaces" in proc.stderr
    assert key not in proc.stdout + proc.stderr and other not in proc.stdout + proc.stderr
    assert key_of(root / "etc/heroctl/heroctl.env") == key

    # A loosened key file is made root only again.
    (root / "etc/heroctl/heroctl.env").chmod(0o644)
    out = ok(server(root, "--api-port", "7080", "--drivers", "docker,exec"))
    assert "made /etc/heroctl/heroctl.env root only (0600)" in out
    assert oct((root / "etc/heroctl/heroctl.env").stat().st_mode & 0o777) == "0o600"


def test_the_other_servers_take_the_first_one_s_key(tmp_path: Path) -> None:
    first, second, third = tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"
    ok(server(first))
    key = key_of(first / "etc/heroctl/heroctl.env")
    # Its environment file as it is, or the bare key.
    out = ok(server(second, "--cluster-key-file", str(first / "etc/heroctl/heroctl.env")))
    assert "the given cluster key" in out and key not in out
    bare = tmp_path / "cluster.key"
    bare.write_text(f"{key}\n")
    ok(
        install(
            third,
            "--server",
            "--bind",
            "10.0.0.13",
            "--join",
            "10.0.0.11:7070",
            "--cluster-key-file",
            str(bare),
        )
    )
    assert (
        key_of(second / "etc/heroctl/heroctl.env")
        == key
        == key_of(third / "etc/heroctl/heroctl.env")
    )
    conf = tomllib.loads((third / "etc/heroctl/heroctld.toml").read_text())
    assert conf["join"] == "10.0.0.11:7070" and "peers" not in conf


def test_a_worker_only_node(tmp_path: Path) -> None:
    root = tmp_path / "root"
    token = tmp_path / "token"
    token.write_text("ht_enrollment-token-0123456789\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    out = ok(agent(root, "--token-file", str(token), "--ca-file", str(ca), "--api-port", "7082"))
    expected = {
        k.replace("heroctld.service", "heroctl-agent.service"): v
        for k, v in SERVER_TREE.items()
        if k not in ("/etc/heroctl/heroctl.env", "/var/lib/heroctl")
    }
    expected |= {
        "/etc/heroctl/heroctl-agent.env": "0o600",
        "/etc/heroctl/ca.pem": "0o644",
        "/var/lib/heroctl-agent": "0o700",
    }
    assert tree(root) == expected
    conf = root / "etc/heroctl/heroctld.toml"
    assert tomllib.loads(conf.read_text()) == {"agent": {"host_ip": "10.0.0.21", "api_port": 7082}}
    assert read_config(str(conf), {}).agent.host_ip == "10.0.0.21"
    env = (root / "etc/heroctl/heroctl-agent.env").read_text()
    assert 'HEROCTL_AGENT_FLAGS="--servers 10.0.0.11:7070,10.0.0.12:7070 --data-dir ' in env
    assert '--node-name worker-1 --ca-file /etc/heroctl/ca.pem"' in env
    assert "HEROCTL_TOKEN=ht_enrollment-token-0123456789\n" in env
    assert "ht_enrollment" not in out
    assert (root / "etc/heroctl/ca.pem").read_text() == ca.read_text()
    unit = (root / "etc/systemd/system/heroctl-agent.service").read_text()
    assert unit == (REPO / "deploy/heroctl-agent.service").read_text()
    assert "7072" not in out and "7082/tcp (its agent API)" in out

    # Again without --token-file: the token stays, nothing changes.
    before = stamps(root)
    out = ok(agent(root, "--ca-file", str(ca), "--api-port", "7082"))
    assert stamps(root) == before and "wrote" not in out


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed")
def test_the_staged_units_verify(tmp_path: Path) -> None:
    for name, run in (("server", server), ("agent", agent)):
        root = tmp_path / name
        ok(run(root))
        (unit,) = (root / "etc/systemd/system").iterdir()
        staged = tmp_path / unit.name  # ExecStart pointed at the staged link
        staged.write_text(
            unit.read_text().replace(
                "/usr/local/bin/heroctld", str(root / "usr/local/bin/heroctld")
            )
        )
        proc = verify(staged)
        assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bind", "10.0.0.1"], "say what this machine is: --server"),
        (["--server", "--agent", "--bind", "a"], "--server or --agent, not both"),
        (["--server", "--bind", "10.0.0.11"], "a server needs --peers"),
        (
            ["--server", "--bind", "a", "--peers", "a:7071", "--join", "b:7070"],
            "use --peers to form a new cluster or --join to enter one, not both",
        ),
        (["--server", "--bind", "a", "--join", "b:7070"], "--join needs the cluster's key"),
        (
            ["--server", "--bind", "a", "--peers", "a:7071", "--servers", "b:7070"],
            "--servers is for --agent",
        ),
        (
            ["--agent", "--bind", "a", "--servers", "b:7070", "--peers", "a:7071"],
            "--peers is for --server",
        ),
        (
            ["--agent", "--bind", "a", "--servers", "b:7070", "--no-agent"],
            "--no-agent is for --server",
        ),
        (["--agent", "--bind", "a"], "a worker-only node needs --servers"),
        (["--server", "--peers", "a:7071"], "--bind ADDR is required"),
        (
            ["--server", "--bind", "a", "--peers", "a:7071", "--api-port", "70000"],
            "--api-port: '70000' is not a TCP port",
        ),
        (["--server", "--bind", "a", "--peers", "a"], "--peers: 'a' is not HOST:PORT"),
        (["--server", "--bind", "a b", "--peers", "a:1"], "--bind: 'a b' is not an address"),
        (
            [
                "--agent",
                "--bind",
                "a",
                "--servers",
                "b:1",
                "--ca-file",
                "/etc/hostname",
                "--ca-fingerprint",
                "sha256:ab",
            ],
            "--ca-file or --ca-fingerprint, not both",
        ),
        (
            ["--server", "--bind", "a", "--peers", "a:1", "--drivers", "docker,qemu"],
            "'qemu' is not docker or exec",
        ),
        (
            ["--server", "--bind", "a", "--peers", "a:1", "--frobnicate"],
            "unknown option --frobnicate",
        ),
        (
            ["--server", "--bind", "a", "--peers", "a:1", "--from", "/etc"],
            "--venv uses an environment as it is",
        ),
        (["--server", "--bind", "a", "--peers", "a:1", "--node-name", "a b"], "--node-name: 'a b'"),
        (
            ["--server", "--bind", "a", "--peers", "a:1", "--cluster-key-file", "/nonexistent"],
            "cannot read /nonexistent",
        ),
    ],
)
def test_flags_that_do_not_go_together_are_refused(
    tmp_path: Path, args: list[str], message: str
) -> None:
    root = tmp_path / "root"
    proc = install(root, *args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr
    assert proc.stderr.startswith("install.sh: ") and proc.stderr.count("\n") == 1
    assert not root.exists() or not any(root.iterdir())  # nothing written


def test_a_short_key_is_refused_without_showing_it(tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text("tooshort\n")
    proc = server(tmp_path / "root", "--cluster-key-file", str(key_file))
    assert proc.returncode == 2 and "no cluster key in it" in proc.stderr
    assert "tooshort" not in proc.stdout + proc.stderr
    assert not (tmp_path / "root/etc/heroctl/heroctl.env").exists()


def test_what_the_daemon_would_refuse_is_not_written(tmp_path: Path) -> None:
    """--bind 0.0.0.0 with no peer of this machine: the daemon's own check says why."""
    root = tmp_path / "root"
    peers = ",".join(f"{a}:7071" for a in NOT_HERE)
    proc = install(root, "--server", "--bind", "0.0.0.0", "--peers", peers)
    assert proc.returncode == 2
    assert "--bind 0.0.0.0 listens on every address" in proc.stderr
    assert "so it was not written" in proc.stderr
    assert not (root / "etc/heroctl/heroctld.toml").exists()
    assert not (root / "etc/heroctl/heroctl.env").exists()
    ok(install(root, "--server", "--bind", "0.0.0.0", "--peers", f"127.0.0.1:7071,{peers}"))


def _offline_build_paths() -> str | None:
    """The tests cannot reach PyPI: the new environment gets its dependencies
    from the tests' own (as pip would have fetched them) and the build's
    `wheel` from Debian's python3-wheel. None when that is not installed."""
    site = next(VENV.glob("lib/python3*/site-packages"))
    debian = Path("/usr/lib/python3/dist-packages")
    if not (debian / "wheel").is_dir():
        return None
    return f"{site}{os.pathsep}{debian}"


def snapshot(dest: Path) -> Path:
    """This checkout's files (tracked, and new ones not ignored) as they are now: others
    may edit the tree meanwhile."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.split(b"\0")
    for name in filter(None, files):
        src = REPO / name.decode()
        if src.is_file():
            (dest / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name.decode())
    return dest


def test_the_real_virtual_environment_from_a_checkout(tmp_path: Path) -> None:
    paths = _offline_build_paths()
    if paths is None:
        pytest.skip(
            "building offline needs Debian's python3-wheel (/usr/lib/python3/dist-packages/wheel)"
        )
    checkout = snapshot(tmp_path / "checkout")
    root = tmp_path / "root"
    env = {"PYTHONPATH": paths}
    args = ["--server", "--bind", "10.0.0.11", "--peers", "10.0.0.11:7071", "--from", str(checkout)]
    args += ["--python", sys.executable, "--pip-args", "--no-index --no-deps --no-build-isolation"]
    out = ok(install(root, *args, env=env, venv=False))
    assert "making the virtual environment /opt/heroctl/venv" in out
    venv = root / "opt/heroctl/venv"
    assert os.readlink(root / "usr/local/bin/heroctld") == "/opt/heroctl/venv/bin/heroctld"
    assert os.readlink(root / "usr/local/bin/heroctl") == "/opt/heroctl/venv/bin/heroctl"
    (installed,) = venv.glob("lib/python3*/site-packages/heroctld/config.py")  # a copy, not a link
    assert installed.read_text() == (checkout / "heroctld/config.py").read_text()
    assert (root / "opt/heroctl/installed").read_text().startswith(f"from={checkout} sha256=")
    key = key_of(root / "etc/heroctl/heroctl.env")  # made by the new environment's heroctld keygen
    assert len(key) >= 40 and key not in out
    keygen = subprocess.run(
        [str(venv / "bin/heroctld"), "keygen"],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=tmp_path,
        timeout=60,
    )
    assert keygen.returncode == 0 and len(keygen.stdout.strip()) >= 40
    leftovers = {"build", "heroctl.egg-info"} & {p.name for p in checkout.iterdir()}
    assert not leftovers, "built inside the checkout"

    before = stamps(root)
    out = ok(install(root, *args, env=env, venv=False))
    assert f"unchanged /opt/heroctl/venv ({checkout})" in out
    assert stamps(root) == before

    (checkout / "heroctld/config.py").write_text(installed.read_text() + "# changed\n")
    out = ok(install(root, *args, env=env, venv=False))  # a changed checkout is installed again
    assert "installing HeroCtl from" in out and installed.read_text().endswith("# changed\n")


def _can_unshare() -> bool:
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        return False
    probe = [unshare, "-m", "--propagation", "private", "true"]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


FAKE_SYSTEMCTL = """#!/bin/sh
echo "$*" >>"{state}/systemctl.log"
case "$1" in
is-active) [ -f "{state}/active" ] && exit 0 || exit 3 ;;
start | restart) touch "{state}/active" ;;
esac
exit 0
"""


@pytest.mark.skipif(
    not _can_unshare(), reason="needs root and unshare -m (a private mount namespace)"
)
def test_on_the_machine_itself_it_enables_and_starts_the_unit(tmp_path: Path) -> None:
    """Without --root, in a private mount namespace whose /etc, /opt, /usr/local/bin,
    /var/lib and /run are the test's: systemctl (a stand-in that logs) enables the
    unit and starts it without waiting; a second run leaves the running server
    alone; a change restarts it; without systemd, it says so and runs no systemctl."""
    state = tmp_path / "state"
    fakebin = tmp_path / "fakebin"
    for d in (
        state,
        fakebin,
        tmp_path / "opt",
        tmp_path / "bin",
        tmp_path / "varlib",
        tmp_path / "run",
    ):
        d.mkdir()
    shutil.copytree("/etc", tmp_path / "etc", symlinks=True, ignore_dangling_symlinks=True)
    (fakebin / "systemctl").write_text(FAKE_SYSTEMCTL.format(state=state))
    (fakebin / "systemctl").chmod(0o755)
    mounts = {
        "etc": "/etc",
        "opt": "/opt",
        "bin": "/usr/local/bin",
        "varlib": "/var/lib",
        "run": "/run",
    }
    binds = " && ".join(f"mount --bind {tmp_path / src} {dst}" for src, dst in mounts.items())

    def run(*more: str) -> str:
        argv = " ".join(
            ["bash", str(INSTALL), "--server", "--bind", "10.0.0.11", "--node-name", "server-1"]
            + ["--peers", PEERS, "--venv", str(VENV), *more]
        )
        proc = subprocess.run(
            ["unshare", "-m", "--propagation", "private", "bash", "-c", f"{binds} && {argv}"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
            env={**os.environ, "PATH": f"{fakebin}:{os.environ['PATH']}"},
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout

    def calls() -> list[str]:
        log = state / "systemctl.log"
        return log.read_text().splitlines() if log.exists() else []

    out = run()
    assert "systemd is not running here (PID 1 is" in out and calls() == []
    assert (tmp_path / "etc/heroctl/heroctld.toml").exists()
    assert os.readlink(tmp_path / "bin/heroctld") == f"{VENV}/bin/heroctld"
    assert oct((tmp_path / "varlib/heroctl").stat().st_mode & 0o777) == "0o700"

    (tmp_path / "run/systemd/system").mkdir(parents=True)
    (tmp_path / "etc/systemd/system/heroctld.service").unlink()  # as if new: a change
    out = run()
    assert calls() == [
        "daemon-reload",
        "enable --quiet heroctld.service",
        "is-active --quiet heroctld.service",
        "start --no-block heroctld.service",
    ]
    assert "starting heroctld.service" in out

    (state / "systemctl.log").unlink()
    out = run()  # nothing changed: the running server is left alone
    assert calls() == ["enable --quiet heroctld.service", "is-active --quiet heroctld.service"]
    assert "heroctld.service is running; nothing changed" in out

    (state / "systemctl.log").unlink()
    out = run("--api-port", "7080")
    assert calls()[-1] == "restart --no-block heroctld.service" and calls()[0] == "daemon-reload"
    assert "restarting heroctld.service (its tasks keep running)" in out
