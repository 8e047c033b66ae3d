"""What a node's ingress does for ACME, until the agent's proxy does it: serve the
challenges the cluster replicates, on 127.0.0.1 (pebble's ``httpPort``).

A thread long-polls `GET /v1/nodes/:id/ingress` with a hand-registered node's
credential (its ``challenges`` object is exactly what every node's ingress
serves) and keeps the answers; an aiohttp server in a thread of its own
answers ``/.well-known/acme-challenge/<token>``. ``refuse(host)`` makes it
answer 404 for one host (a validation that fails); it records what the
validator (and the leader's wait-until-served) asked.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable

from aiohttp import web

from heroctld.controllers.acme.challenges import HTTP01_PREFIX
from tests.support.cluster import Server
from tests.support.nodes import HandNode
from tests.support.pebble import free_port

POLL_WAIT = "2s"  # one long poll
HEARTBEAT_EVERY = 3.0  # seconds; a node's TTL is 10 s


class ClusterChallengeResponder:
    def __init__(self) -> None:
        self.port = free_port()
        self.answers: dict[str, str] = {}  # token -> key authorization
        self.refused: set[str] = set()
        self.requests: list[tuple[str, str, int]] = []  # (Host, token, status)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []

    # --- the HTTP side ---------------------------------------------------------------------
    def start(self) -> ClusterChallengeResponder:
        thread = threading.Thread(target=self._serve, name="challenge-responder", daemon=True)
        thread.start()
        self._threads.append(thread)
        if not self._started.wait(10):
            raise RuntimeError("the challenge responder did not start")
        return self

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        app = web.Application()
        app.router.add_get(HTTP01_PREFIX + "{token}", self._answer)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._started.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    async def _answer(self, request: web.Request) -> web.Response:
        host = (request.host or "").split(":", 1)[0].lower()
        token = request.match_info["token"]
        with self._lock:
            answer = None if host in self.refused else self.answers.get(token)
        self.requests.append((host, token, 404 if answer is None else 200))
        if answer is None:
            return web.Response(status=404, text="no such challenge")
        return web.Response(text=answer, content_type="application/octet-stream")

    def refuse(self, host: str) -> None:
        with self._lock:
            self.refused.add(host)

    def allow(self, host: str) -> None:
        with self._lock:
            self.refused.discard(host)

    # --- the cluster side ------------------------------------------------------------------
    def follow(self, node: HandNode, servers: Callable[[], list[Server]]) -> None:
        """Keep ``answers`` equal to the challenges the cluster hands ``node``,
        asking whichever of ``servers()`` answers (a killed leader is skipped)."""
        thread = threading.Thread(
            target=self._poll, args=(node, servers), name="challenge-poller", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    def _poll(self, node: HandNode, servers: Callable[[], list[Server]]) -> None:
        index, beat_at = 0, 0.0
        while not self._stopping.is_set():
            if time.monotonic() >= beat_at:  # stay `ready` (a node without heartbeats goes down)
                beat_at = time.monotonic() + HEARTBEAT_EVERY
                self._heartbeat(node, servers())
            for server in servers():
                if self._stopping.is_set():
                    return
                path = f"/v1/nodes/{node.id}/ingress?index={index}&wait={POLL_WAIT}"
                try:
                    reply = server.get(path, headers=node.headers(), timeout=10)
                except OSError:
                    continue
                if reply.status != 200:
                    continue
                with self._lock:
                    self.answers = dict(reply.body["challenges"])
                index = int(reply.header("X-HeroCtl-Index") or 0)
                break
            else:
                self._stopping.wait(0.1)  # nobody answered: pause before the next round

    @staticmethod
    def _heartbeat(node: HandNode, servers: list[Server]) -> None:
        for server in servers:
            with contextlib.suppress(OSError):
                path = f"/v1/nodes/{node.id}/heartbeat"
                if server.post(path, {}, headers=node.headers(), timeout=5).status == 200:
                    return

    def stop(self) -> None:
        self._stopping.set()
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._loop.stop)
        for thread in self._threads:
            thread.join(15)
