"""systemd's service notification protocol (``sd_notify``) and its watchdog.

Under a ``Type=notify`` unit, systemd passes the address of a unix datagram
socket in ``NOTIFY_SOCKET`` and, with ``WatchdogSec=``, the interval it
expects a sign of life in ``WATCHDOG_USEC``. The daemon sends newline
separated ``KEY=VALUE`` lines there: ``READY=1`` once it serves,
``STATUS=...`` for ``systemctl status``, ``WATCHDOG=1`` from its event loop
(a loop stuck for longer than ``WatchdogSec=`` gets the process killed and
restarted), ``RELOADING=1``/``READY=1`` around a SIGHUP reload and
``STOPPING=1`` when it shuts down.

It is one ``sendto`` on a socket, so it is written here rather than taken
from the ``sdnotify`` package (unmaintained since 2017, and it hides send
errors): no dependency, and the variables are taken out of the environment
so that nothing the daemon starts (exec tasks, nginx) inherits them.
Without ``NOTIFY_SOCKET`` (not under systemd) every call does nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, MutableMapping

__all__ = ["Announcer", "Notifier"]

log = logging.getLogger("heroctld")


class Notifier:
    """Sends notifications to systemd's socket ``address`` (None: nowhere)."""

    def __init__(self, address: str | None = None, watchdog_usec: int | None = None) -> None:
        self.address = address or None
        self.watchdog_usec = watchdog_usec if watchdog_usec and watchdog_usec > 0 else None
        self._failed = False

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier systemd asked for, the variables removed from ``environ``
        (default: this process's). ``WATCHDOG_USEC`` counts only when
        ``WATCHDOG_PID`` is absent or this process's id."""
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None)
        usec, pid = env.pop("WATCHDOG_USEC", ""), env.pop("WATCHDOG_PID", "")
        watchdog = int(usec) if usec.isdigit() and pid in ("", str(os.getpid())) else None
        return cls(address, watchdog)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between two ``WATCHDOG=1`` (half what systemd waits), None: no watchdog."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2e6

    def send(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines (``send(READY=1, STATUS="...")``); whether they went.
        A failure is logged once, never raised: systemd's absence stops no server."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message, target)
        except OSError as e:
            if not self._failed:
                log.warning("systemd notification to %s failed: %s", self.address, e)
            self._failed = True
            return False
        return True

    def reloading(self) -> None:
        self.send(RELOADING=1, MONOTONIC_USEC=time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000)

    async def watchdog(self) -> None:
        """``WATCHDOG=1`` every half interval, from the event loop, until cancelled."""
        interval = self.watchdog_interval
        if interval is None or not self.enabled:
            return
        while True:
            self.send(WATCHDOG=1)
            await asyncio.sleep(interval)


class Announcer:
    """Tells systemd the daemon's state: ``describe()`` gives (ready, status);
    :meth:`run` sends ``READY=1`` once, the first time it is ready, and a
    ``STATUS=`` line each time the status changes; :meth:`reload` wraps a
    reload in ``RELOADING=1`` ... ``READY=1`` (once ready: before, systemd
    still waits for the first ``READY=1``)."""

    def __init__(
        self, notifier: Notifier, describe: Callable[[], tuple[bool, str]], every: float = 1.0
    ) -> None:
        self.notifier, self.describe, self.every = notifier, describe, every
        self.ready = False
        self._status: str | None = None

    def update(self) -> None:
        now_ready, status = self.describe()
        fields: dict[str, object] = {}
        if status != self._status:
            fields["STATUS"] = status
        if now_ready and not self.ready:
            fields["READY"] = 1
        if fields:
            self.notifier.send(**fields)
        self.ready, self._status = self.ready or now_ready, status

    async def run(self) -> None:
        """:meth:`update` every ``every`` seconds until cancelled."""
        if not self.notifier.enabled:
            return
        while True:
            self.update()
            await asyncio.sleep(self.every)

    def reload(self, apply: Callable[[], object]) -> None:
        if self.ready:
            self.notifier.reloading()
        try:
            apply()
        finally:
            if self.ready:
                self.notifier.send(READY=1)

    def stopping(self) -> None:
        self.notifier.send(STOPPING=1, STATUS="stopping")
