"""The workloads of the HTTPS ingress end-to-end test
(tests/integration/test_ingress_https.py), kept apart so the test reads as
its scenarios.

* ``web_job``: busybox's ``httpd`` in Docker, one allocation per node, each
  page its allocation's id (a response says who served it), with an HTTP
  check on ``/healthz`` that ``health_file`` removes and restores inside one
  container to fail and pass one allocation's check.
* ``echo_job``: the exec driver running Debian's ``/usr/bin/python3`` as
  ``nobody`` with tests/support/echo_server.py (headers as JSON, a websocket
  echo), copied by ``staged_echo_server`` to a directory ``nobody`` can read.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support import echo_server
from tests.support.workloads import IMAGE

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's: readable by nobody (a pyenv under /root is not)
HEALTH_FILE = "/tmp/www/healthz"
PAGE = (
    "mkdir -p /tmp/www && echo $HEROCTL_ALLOC_ID > /tmp/www/index.html && "
    f"echo ok > {HEALTH_FILE} && exec httpd -f -p 8080 -h /tmp/www"
)


def web_job(name: str, host: str) -> dict[str, Any]:
    """Three replicas on distinct nodes serving ``host`` (tls: acme, the default)."""
    task = {
        "name": "web",
        "driver": "docker",
        "image": IMAGE,
        "command": ["sh", "-c", PAGE],
        "resources": {"cpu": 100, "memory": 32},
        "ports": [{"name": "http", "to": 8080}],
        "check": {"type": "http", "port": "http", "path": "/healthz", "interval": "1s"},
        "kill_timeout": "1s",
    }
    group = {
        "name": "app",
        "count": 3,
        "constraints": [{"operator": "distinct_hosts"}],
        "update": {"max_parallel": 3, "min_healthy_time": "1s", "healthy_deadline": "60s"},
        "ingress": [{"host": host, "port": "http"}],
        "tasks": [task],
    }
    return {"name": name, "type": "service", "groups": [group]}


def echo_job(name: str, host: str, script: Path) -> dict[str, Any]:
    """One exec task running the echo server ``script`` for ``host``."""
    task = {
        "name": "echo",
        "driver": "exec",
        "command": [SYSTEM_PYTHON, str(script)],
        "resources": {"cpu": 100, "memory": 64},
        "ports": [{"name": "http"}],
        "kill_timeout": "1s",
    }
    group = {
        "name": "echo",
        "count": 1,
        "update": {"min_healthy_time": "1s", "healthy_deadline": "60s"},
        "ingress": [{"host": host, "port": "http"}],
        "tasks": [task],
    }
    return {"name": name, "type": "service", "groups": [group]}


@contextlib.contextmanager
def staged_echo_server() -> Iterator[Path]:
    """The echo server copied where ``nobody`` reads it (a 0755 directory,
    a 0644 file: the test's own temp directories are 0700); removed after."""
    directory = Path(tempfile.mkdtemp(prefix="heroctl-echo-"))
    try:
        directory.chmod(0o755)
        script = directory / "echo_server.py"
        shutil.copyfile(echo_server.__file__, script)
        script.chmod(0o644)
        yield script
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def health_file(alloc_id: str, present: bool) -> None:
    """Restore or remove the file the allocation's check reads, in its container."""
    import docker  # noqa: PLC0415 - only Docker tests need it

    command = f"echo ok > {HEALTH_FILE}" if present else f"rm -f {HEALTH_FILE}"
    client = docker.from_env(timeout=30)
    try:
        (container,) = client.containers.list(filters={"label": f"heroctl.alloc_id={alloc_id}"})
        code, output = container.exec_run(["sh", "-c", command])
        assert code == 0, output
    finally:
        client.close()
