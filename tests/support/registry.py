"""A private Docker registry on 127.0.0.1 for the image tests.

Debian's ``docker-registry`` (the distribution registry v2, in the
Makefile's APT_PACKAGES) started from a test with its own config file and
storage under a temp dir, on a free high port, optionally behind htpasswd
basic auth (bcrypt lines from ``htpasswd`` of apache2-utils). A Docker
engine treats registries on 127.0.0.0/8 as insecure by default, so plain
HTTP works. Images are pushed with the SDK and the credentials of the call
(``auth_config``): nothing is written to ``~/.docker/config.json``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tests.support.cluster import free_port, wait_until

__all__ = ["Registry", "pushed", "registry_unavailable"]

REGISTRY = "docker-registry"


def registry_unavailable(*, auth: bool = False) -> str | None:
    """None when a registry can be started here, else why not."""
    if shutil.which(REGISTRY) is None:
        return f"{REGISTRY} is not installed (apt-get install docker-registry)"
    if auth and shutil.which("htpasswd") is None:
        return "htpasswd is not installed (apt-get install apache2-utils)"
    return None


def _htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd line (the registry accepts no other hash); the
    password goes over stdin, never argv."""
    proc = subprocess.run(
        ["htpasswd", "-niB", user],
        input=password,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return proc.stdout.strip()


class Registry:
    """One registry process; ``users`` (name -> password): htpasswd auth."""

    def __init__(self, root: Path, users: Mapping[str, str] | None = None) -> None:
        self.root = root
        self.users = dict(users or {})
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def log(self) -> str:
        path = self.root / "registry.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _config(self) -> str:
        auth = ""
        if self.users:
            lines = [_htpasswd_line(u, p) for u, p in self.users.items()]
            htpasswd = self.root / "htpasswd"
            htpasswd.write_text("\n".join(lines) + "\n")
            htpasswd.chmod(0o600)
            auth = f"auth:\n  htpasswd:\n    realm: heroctl-test\n    path: {htpasswd}\n"
        return (
            "version: 0.1\n"
            "log:\n  level: info\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.root / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: {self.address}\n  secret: heroctl-test-{self.port}\n" + auth
        )

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.address}/v2/", timeout=1):
                return True
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # behind auth: up all the same
        except OSError:
            return False

    def start(self) -> Registry:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        config = self.root / "config.yml"
        config.write_text(self._config())
        with open(self.root / "registry.log", "wb") as out:
            self.proc = subprocess.Popen(
                [REGISTRY, "serve", str(config)], stdout=out, stderr=subprocess.STDOUT
            )
        wait_until(
            lambda: self.proc is not None and self.proc.poll() is None and self._answers(),
            15,
            0.05,
            f"the registry on {self.address} ({self.log()[-300:]})",
        )
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _remove_tag(client: Any, ref: str) -> None:
    """Untag ``ref`` locally (the image stays while other tags name it)."""
    import docker.errors

    with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.NotFound):
        client.images.remove(ref)


@contextlib.contextmanager
def pushed(
    client: Any,
    registry: Registry,
    source: str,
    repository: str,
    tag: str,
    auth: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Push local image ``source`` to ``registry`` as ``repository:tag``, then
    remove that tag locally, so only a pull brings it back; yields the
    reference (``127.0.0.1:PORT/repository:tag``) and removes the local tag
    again on the way out."""
    repo = f"{registry.address}/{repository}"
    ref = f"{repo}:{tag}"
    try:
        client.images.get(source).tag(repo, tag)
        lines = client.images.push(
            repo, tag, stream=True, decode=True, auth_config=dict(auth) if auth else None
        )
        errors = [line.get("error") for line in lines if line.get("error")]
        assert not errors, f"pushing {ref} failed: {errors}"
        _remove_tag(client, ref)
        yield ref
    finally:
        _remove_tag(client, ref)
