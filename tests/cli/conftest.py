"""What the CLI tests share: `heroctl`, the CLI run in-process against the
module's `server` (by default a single-server cluster of the module's own;
a module that needs another defines its own `server`), isolated from the
caller's environment."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from tests.support.cluster import Cluster, Server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    c = Cluster(tmp_path_factory.mktemp("cli"), 1).start()
    try:
        yield c.servers[0]
    finally:
        c.stop()


@pytest.fixture
def heroctl(server: Server, tmp_path: Path) -> Callable[..., Result]:
    """Run `heroctl --address <server> --token <its token> ARGS...`."""
    runner = CliRunner(
        env={"HEROCTL_ADDR": None, "HEROCTL_TOKEN": None, "XDG_CONFIG_HOME": str(tmp_path)}
    )

    def run(*args: str, input: str | None = None, address: str | None = None) -> Result:
        token = ["--token", server.token] if server.token else []
        return runner.invoke(cli, ["--address", address or server.url, *token, *args], input=input)

    return run
