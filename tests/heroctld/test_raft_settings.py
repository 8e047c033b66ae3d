"""The raft port's settings: `--raft-bind` / `raft_bind` and `[raft] max_frame`."""

from __future__ import annotations

import pytest

from heroctld.config import ConfigError, load_config
from raft.commands import MAX_BATCH_BYTES
from raft.config import DEFAULT_MAX_FRAME, ENTRY_MAX, MIN_FRAME, append_batch_bytes


def test_raft_binds_with_the_api_by_default() -> None:
    cfg = load_config(None, {"dev": True, "bind": "10.0.0.5"}, env={})
    assert (cfg.raft_listen, cfg.raft_address) == ("10.0.0.5:7071", "10.0.0.5:7071")
    assert cfg.raft.max_frame == DEFAULT_MAX_FRAME


def test_a_specific_raft_bind_is_also_the_address_peers_dial() -> None:
    cfg = load_config(None, {"dev": True, "raft_bind": "127.0.0.2"}, env={})
    assert (cfg.raft_listen, cfg.raft_address) == ("127.0.0.2:7071", "127.0.0.2:7071")
    assert cfg.api_address == "http://127.0.0.1:7070" and cfg.peers == ["127.0.0.2:7071"]
    wildcard = load_config(None, {"dev": True, "bind": "10.0.0.5", "raft_bind": "0.0.0.0"}, env={})
    assert (wildcard.raft_listen, wildcard.raft_address) == ("0.0.0.0:7071", "10.0.0.5:7071")


def test_max_frame_is_a_size_no_smaller_than_what_servers_send() -> None:
    cfg = load_config(None, {"dev": True}, env={"HEROCTL_RAFT_MAX_FRAME": "16MiB"})
    assert cfg.raft.max_frame == 16 * 2**20
    with pytest.raises(ConfigError, match="max_frame must be at least"):
        load_config(None, {"dev": True}, env={"HEROCTL_RAFT_MAX_FRAME": "1MiB"})


@pytest.mark.parametrize("limit", [MIN_FRAME, DEFAULT_MAX_FRAME, 64 * 2**20])
def test_an_append_fits_the_frame_limit(limit: int) -> None:
    batch = append_batch_bytes(limit)
    assert batch > ENTRY_MAX > MAX_BATCH_BYTES  # no entry takes pysyncobj's chunked path
    assert batch + ENTRY_MAX < limit and 2 * batch <= limit
    assert append_batch_bytes(DEFAULT_MAX_FRAME) == 4 * 2**20  # what it was before the limit
