"""Task secrets in a docker container: over the engine's API socket, never on disk.

A task's plain environment (``TaskSpec.env``) goes in the create call. The
engine records a container's config, env included, in
``/var/lib/docker/containers/<id>/config.v2.json``, so secrets
(``TaskSpec.secret_env``) never go there: the container starts under a
tiny shim (a static busybox from the host, bind-mounted read-only at
``/.heroctl/busybox``) that reads them from the container's stdin, exports
them and ``exec``s the real entrypoint and command. The secrets travel
over the engine's API socket only and live in the task's memory; ``docker
inspect`` does not show them. A shim that gets no complete payload (the
agent died mid-start) exits 125 instead of running the task without its
secrets.

The driver builds the container (:mod:`agent.drivers.docker`); this is the
shim, its payload and its delivery. Delivery blocks, like every engine call.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
from typing import TYPE_CHECKING, Any

from agent.drivers.base import DriverError

if TYPE_CHECKING:
    import docker

__all__ = [
    "SHIM_CANDIDATES",
    "SHIM_PATH",
    "deliver_secrets",
    "find_shim",
    "is_static_elf",
    "secrets_payload",
    "shim_options",
]

SHIM_PATH = "/.heroctl/busybox"
SHIM_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox", "/usr/lib/heroctl/busybox")
# Reads "NAME \0ooo\0ooo..." lines (every byte octal-escaped, so any value
# survives, trailing newlines included) until a "." line, exports them and
# becomes the task. printf and export are shell builtins: nothing else from
# the image is needed.
SHIM_SCRIPT = (
    "ok=; while IFS= read -r l; do "
    'if [ "$l" = . ]; then ok=1; break; fi; '
    'k="${l%% *}"; v="${l#* }"; v="$(printf "%b" "$v"; printf x)"; export "$k=${v%x}"; '
    "done; "
    '[ -n "$ok" ] || { echo "heroctl: task secrets were not delivered" >&2; exit 125; }; '
    'exec "$@"'
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def is_static_elf(path: str) -> bool:
    """Whether ``path`` is an ELF executable without a program interpreter,
    i.e. one that runs inside any image (no libc needed)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 52 or head[:4] != b"\x7fELF":
                return False
            is64 = head[4] == 2
            order = "<" if head[5] == 1 else ">"
            if is64:
                (phoff,) = struct.unpack_from(order + "Q", head, 32)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 54)
            else:
                (phoff,) = struct.unpack_from(order + "I", head, 28)
                phentsize, phnum = struct.unpack_from(order + "HH", head, 42)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    for i in range(phnum):
        (p_type,) = struct.unpack_from(order + "I", table, i * phentsize)
        if p_type == 3:  # PT_INTERP: dynamically linked
            return False
    return True


def secrets_payload(secrets: dict[str, str]) -> bytes:
    lines = []
    for name, value in secrets.items():
        if not _ENV_NAME.match(name):
            raise DriverError(f"invalid secret environment variable name {name!r}")
        if "\0" in value:
            raise DriverError(f"secret {name} contains a NUL byte")
        lines.append(name + " " + "".join(f"\\0{b:03o}" for b in value.encode()))
    lines.append(".")
    return ("\n".join(lines) + "\n").encode()


def find_shim(configured: str | None) -> str:
    """The static busybox that delivers secrets (``configured``, or the
    first of :data:`SHIM_CANDIDATES` that is one); DriverError if none."""
    if configured is not None:
        if not is_static_elf(configured):
            raise DriverError(f"secrets shim {configured} is not a static executable")
        return configured
    for path in SHIM_CANDIDATES:
        if is_static_elf(path):
            return path
    raise DriverError(
        "tasks with secrets need a static busybox on the node "
        "(apt-get install busybox-static): none found in " + ", ".join(SHIM_CANDIDATES)
    )


def shim_options(argv: list[str], shim: str) -> dict[str, Any]:
    """The create call's options that run ``argv`` under the shim."""
    return {
        "entrypoint": [SHIM_PATH, "sh", "-c", SHIM_SCRIPT, "heroctl-shim"],
        "command": argv,
        "volumes": {shim: {"bind": SHIM_PATH, "mode": "ro"}},
        "stdin_open": True,
        "detach": False,  # makes the engine set StdinOnce: EOF on detach
    }


def deliver_secrets(client: docker.DockerClient, container: Any, payload: bytes) -> None:
    """Start ``container`` and write ``payload`` to its stdin, then end it."""
    sock = client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
    raw = getattr(sock, "_sock", sock)
    try:
        container.start()
        raw.sendall(payload)
        raw.shutdown(socket.SHUT_WR)
    finally:
        # Whatever happened, end the stream: an incomplete payload then
        # makes the shim exit instead of waiting (or running) forever.
        with contextlib.suppress(OSError):
            raw.shutdown(socket.SHUT_RDWR)
        raw.close()
        sock.close()
