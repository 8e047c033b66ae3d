"""Which address a server bound to every address (``--bind 0.0.0.0``) tells
the others.

A wildcard bind says where to listen, not where to be reached; advertising
127.0.0.1 (what the config did before) made every new server a fourth,
unreachable peer of its own cluster. Without ``--advertise`` the address is
worked out from what the operator did give, or refused:

- ``--peers``: the one peer whose host is an address of this machine and
  whose port is this server's raft port is this server;
- ``--join HOST:PORT``: the address this machine sends from to reach HOST
  (the kernel's route, found with a UDP ``connect``, which sends nothing);
- otherwise, or when that finds nothing (or more than one), there is no
  answer to guess: the server stops and says to give ``--advertise``.
"""

from __future__ import annotations

import contextlib
import socket

__all__ = ["WILDCARDS", "AdvertiseError", "advertise_for_wildcard", "is_local_address"]

WILDCARDS = ("0.0.0.0", "::", "")


class AdvertiseError(ValueError):
    """No address other servers can reach could be worked out."""


def split_host_port(address: str) -> tuple[str, int | None]:
    """``HOST:PORT``, ``[V6]:PORT``, a URL's ``scheme://HOST:PORT`` or a bare host."""
    address = address.split("://", 1)[-1].split("/", 1)[0]
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:
        host, port = address, ""
    return host, int(port) if port.isdigit() else None


def _addresses(host: str) -> list[tuple[int, str]]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_DGRAM)
    except (OSError, UnicodeError):
        return []
    return [(family, str(sockaddr[0])) for family, _, _, _, sockaddr in infos]


def is_local_address(host: str) -> bool:
    """Whether ``host`` (an address or a name) is an address of this machine:
    binding to it succeeds only then."""
    for family, address in _addresses(host):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((address, 0))
            return True
    return False


def source_address_towards(host: str, port: int) -> str | None:
    """The address this machine would send from to reach ``host``."""
    for family, address in _addresses(host):
        with contextlib.suppress(OSError), socket.socket(family, socket.SOCK_DGRAM) as s:
            s.connect((address, port))  # UDP: picks the route, sends nothing
            return str(s.getsockname()[0])
    return None


def advertise_for_wildcard(bind: str, raft_port: int, peers: list[str], join: str) -> str:
    """The address to advertise for a server bound to ``bind`` (a wildcard),
    or AdvertiseError saying what to give instead."""
    flag = f"--bind {bind or '0.0.0.0'}"
    if peers:
        mine = sorted(
            {
                host
                for host, port in map(split_host_port, peers)
                if port == raft_port and is_local_address(host)
            }
        )
        if len(mine) == 1:
            return mine[0]
        which = (
            f"several of --peers are this machine's ({', '.join(mine)})"
            if mine
            else f"none of --peers ({', '.join(peers)}) is an address of this machine "
            f"with raft port {raft_port}"
        )
        raise AdvertiseError(
            f"{flag} listens on every address but says none to the other servers, and {which}: "
            "give --advertise ADDR (the address they reach this server at)"
        )
    if join:
        host, port = split_host_port(join)
        found = source_address_towards(host, port or 7070)
        if found:
            return found
        raise AdvertiseError(
            f"{flag}: cannot tell which address of this machine reaches {join}: "
            "give --advertise ADDR (the address the other servers reach this server at)"
        )
    raise AdvertiseError(
        f"{flag} listens on every address but says none to the other servers: give "
        "--advertise ADDR (the address they reach this server at), or --peers with this "
        "server's own address among them"
    )
