"""A node registered by a test that acts on its allocations like an agent
would, at once and without running anything: what the API and CLI tests of
scale, plan and restart need from a cluster that carries its plans out.

It uses the agent's real routes: it registers and heartbeats every second
(the leader marks a node down after 10 s of silence), watches
`GET /v1/nodes/{id}/allocations` with a blocking query, and reports through
`POST /v1/allocations/status`: a pending allocation that should run ->
running (healthy, its tasks running); one that should stop -> complete; a
restart request (`restart_requested`) newer than the one it handled -> each
task it names restarted once (restarts + 1) and `restart_handled`, as the
real agent reports it (agent/decisions.py). Docker-backed tests show the
real agent doing the same with real containers.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.support.cluster import Server
from tests.support.nodes import HandNode


class ActingNode:
    def __init__(self, server: Server, name: str, *, cpu: int = 4000, memory: int = 4096) -> None:
        self.server = server
        self.node = HandNode(server, name=name)
        self.id = self.node.id
        self.name = name
        self.resources = {"cpu": cpu, "memory": memory, "disk": 20_000}
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []

    def start(self) -> ActingNode:
        r = self.node.register(
            address="127.0.0.1",
            resources=self.resources,
            drivers=["docker", "exec"],
            port_range=[23000, 23999],
        )
        assert r.status == 200, (r.status, r.body)
        assert self.node.heartbeat().status == 200
        for fn in (self._heartbeats, self._act):
            t = threading.Thread(target=fn, name=f"acting-node-{self.name}", daemon=True)
            t.start()
            self.threads.append(t)
        return self

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(15)

    def _heartbeats(self) -> None:
        while not self.stopping.wait(1.0):
            try:
                r = self.node.heartbeat()
                if r.status != 200:
                    self.errors.append(f"heartbeat: {r.status} {r.body}")
            except OSError as e:  # the server is being stopped
                self.errors.append(f"heartbeat: {e!r}")

    def _act(self) -> None:
        index = 0
        while not self.stopping.is_set():
            try:
                r = self.node.get(f"/v1/nodes/{self.id}/allocations?index={index}&wait=1s")
                if r.status != 200:
                    self.errors.append(f"allocations: {r.status} {r.body}")
                    self.stopping.wait(0.2)
                    continue
                index = int(r.header("X-HeroCtl-Index") or 0)
                updates = [u for u in map(self._update_for, r.body) if u is not None]
                if updates:
                    reply = self.node.report(updates)
                    if reply.status != 200 or reply.body["refused"]:
                        self.errors.append(f"report: {reply.status} {reply.body}")
            except (OSError, ValueError) as e:
                self.errors.append(f"act: {e!r}")
                self.stopping.wait(0.2)

    @staticmethod
    def _update_for(alloc: dict[str, Any]) -> dict[str, Any] | None:
        now = int(time.time() * 1000)
        tasks = [t["name"] for t in (alloc.get("group_spec") or {}).get("tasks") or ()]
        if alloc["desired_status"] == "stop":
            if alloc["status"] in ("pending", "running"):
                return {"id": alloc["id"], "status": "complete"}
            return None
        if alloc["status"] == "pending":
            states = {
                t: {"state": "running", "restarts": 0, "started_at": now, "failed": False}
                for t in tasks
            }
            event = {"ts": now, "type": "started", "message": "acting node started it"}
            return {
                "id": alloc["id"],
                "status": "running",
                "healthy": True,
                "task_states": states,
                "events": [event],
            }
        request = alloc.get("restart_requested") or {}
        asked = request.get("index") or 0
        if alloc["status"] == "running" and asked > (alloc.get("restart_handled") or 0):
            states = {k: dict(v) for k, v in (alloc.get("task_states") or {}).items()}
            events = []
            for t in tasks:
                if request.get("task") in (None, t):
                    state = states.setdefault(t, {"state": "running", "restarts": 0})
                    state["restarts"] = int(state.get("restarts") or 0) + 1
                    state["started_at"] = now
                    events.append(
                        {"ts": now, "type": "restarted", "message": "restarted", "task": t}
                    )
            return {
                "id": alloc["id"],
                "status": "running",
                "healthy": True,
                "task_states": states,
                "restart_handled": asked,
                "events": events,
            }
        return None
