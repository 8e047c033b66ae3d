"""What the driver tests share: a task spec with the usual names, a poll with a
deadline, and an HTTP GET retried until a task's server answers."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections.abc import Callable
from typing import TypeVar

from agent.drivers.base import TaskSpec

T = TypeVar("T")


def task_spec(**fields: object) -> TaskSpec:
    """A TaskSpec of job web, group app, task server with a fresh alloc id; ``fields``
    give the rest and may replace any of these."""
    base: dict[str, object] = {
        "alloc_id": uuid.uuid4().hex,
        "job": "web",
        "group": "app",
        "task": "server",
    }
    base.update(fields)
    return TaskSpec(**base)  # type: ignore[arg-type]


def poll(predicate: Callable[[], T], timeout: float, step: float) -> T:
    """The first truthy value of ``predicate``, or its last value once ``timeout``
    seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def get_text(port: int, path: str = "/", *, timeout: float, attempt: float, pause: float) -> str:
    """GET http://127.0.0.1:<port><path>, retried every ``pause`` seconds (each try
    waiting ``attempt`` seconds) until it answers or ``timeout`` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=attempt) as r:
                return r.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)
