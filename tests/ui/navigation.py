"""Page loads that survive the host's network changing under chromium.

Chromium watches the host's network interfaces (netlink) and aborts a page
load in flight with ``net::ERR_NETWORK_CHANGED`` when one comes or goes. The
Docker tests running beside these ones add and remove a veth interface per
container, so a load is tried again when, and only when, the browser says
that (the panel itself is not involved; its own fetches retry a network
error on reads: ui/src/api.js).
"""

from __future__ import annotations

from typing import Any

NETWORK_CHANGED = "net::ERR_NETWORK_CHANGED"
TRIES = 3


def _again(load: Any) -> Any:
    for attempt in range(TRIES):
        try:
            return load()
        except Exception as e:
            if NETWORK_CHANGED not in str(e) or attempt == TRIES - 1:
                raise
    return None


def goto(page: Any, url: str) -> Any:
    return _again(lambda: page.goto(url))


def reload(page: Any) -> Any:
    return _again(page.reload)
