"""A server bound to every address (`--bind 0.0.0.0`) without `--advertise`:
it advertises the address of itself it finds among `--peers` (or the one
it reaches a `--join` server from), never 127.0.0.1 as a fourth peer, and
refuses with a clear message when it cannot tell."""

from __future__ import annotations

import subprocess
import sys

import pytest

from heroctld.advertise import is_local_address, split_host_port
from heroctld.config import ConfigError, load_config
from raft.keys import generate_cluster_key

KEY = {"HEROCTL_CLUSTER_KEY": generate_cluster_key()}
# Documentation addresses (TEST-NET-3, -2, -1): the first that is not this machine's
# (a test machine may well have one of them on an interface).
OTHER, OTHER_2 = [
    a
    for a in ("203.0.113.12", "198.51.100.12", "192.0.2.12", "203.0.113.13")
    if not is_local_address(a)
][:2]


def server(**flags: object):
    return load_config(None, {"data_dir": "/tmp/unused", **flags}, env=dict(KEY))


def test_it_is_the_peer_with_an_address_of_this_machine_and_its_raft_port() -> None:
    peers = f"127.0.0.1:17071,127.0.0.1:17081,{OTHER}:17071"
    cfg = server(bind="0.0.0.0", raft_port=17081, peers=peers)
    assert cfg.advertise_host == "127.0.0.1"
    assert cfg.raft_address == "127.0.0.1:17081"
    assert cfg.peers == ["127.0.0.1:17071", "127.0.0.1:17081", f"{OTHER}:17071"]  # no fourth
    assert cfg.api_address == "https://127.0.0.1:7070"
    assert cfg.agent.host_ip == "127.0.0.1"


def test_none_of_the_peers_is_this_machine_is_refused_saying_what_to_give() -> None:
    with pytest.raises(ConfigError) as e:
        server(bind="0.0.0.0", peers=f"{OTHER}:7071,{OTHER_2}:7071")
    msg = str(e.value)
    assert "--bind 0.0.0.0" in msg and "none of --peers" in msg and "raft port 7071" in msg
    assert "give --advertise ADDR" in msg


def test_a_peer_of_this_machine_on_another_raft_port_is_not_this_server() -> None:
    with pytest.raises(ConfigError, match="none of --peers"):
        server(bind="::", peers="127.0.0.1:7171", raft_port=7071)


def test_no_peers_and_no_join_is_refused() -> None:
    with pytest.raises(ConfigError, match="give --advertise ADDR"):
        server(bind="0.0.0.0")


def test_a_join_advertises_the_address_this_machine_reaches_that_server_from() -> None:
    cfg = server(bind="0.0.0.0", join="127.0.0.1:7070")
    assert cfg.advertise_host == "127.0.0.1" and cfg.peers == []
    assert cfg.raft_address == "127.0.0.1:7071"


def test_advertise_wins_and_a_raft_bind_of_its_own_needs_it() -> None:
    cfg = server(bind="0.0.0.0", advertise=OTHER, peers=f"{OTHER}:7071")
    assert cfg.raft_address == f"{OTHER}:7071" and cfg.peers == [f"{OTHER}:7071"]
    with pytest.raises(ConfigError, match="with --raft-bind 127.0.0.2: give --advertise"):
        server(bind="0.0.0.0", raft_bind="127.0.0.2", peers="127.0.0.2:7071")


def test_dev_on_every_address_still_advertises_loopback() -> None:
    cfg = load_config(None, {"dev": True, "bind": "0.0.0.0"}, env={})
    assert cfg.advertise_host == "127.0.0.1"


def test_helpers() -> None:
    assert split_host_port("10.0.0.1:7071") == ("10.0.0.1", 7071)
    assert split_host_port("https://[::1]:7070/") == ("::1", 7070)
    assert split_host_port("host") == ("host", None)
    assert is_local_address("127.0.0.1") and not is_local_address(OTHER)
    assert not is_local_address("no-such-host.invalid")


def test_the_daemon_refuses_to_start_and_says_why(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "heroctld.main", "--bind", "0.0.0.0", "--data-dir", str(tmp_path)],
        env={"HEROCTL_CLUSTER_KEY": KEY["HEROCTL_CLUSTER_KEY"], "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert "--bind 0.0.0.0 listens on every address" in proc.stderr
    assert "give --advertise ADDR" in proc.stderr
    assert KEY["HEROCTL_CLUSTER_KEY"] not in proc.stderr + proc.stdout
    assert not (tmp_path / "members.json").exists()
