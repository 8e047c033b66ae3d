"""Fake Docker engines behind the real docker driver (``DockerDriver(client=...)``).

:class:`EngineFake` is a docker SDK client over a tiny in-memory engine (it
lists, creates, starts, stops and removes containers, and has every image),
so the driver's own code runs. Its subclasses fail the way real engines do,
at the SDK level the driver sees:

* :class:`RefusingEngineFake`: while ``refusing``, every call raises
  ``requests.exceptions.ConnectionError`` (the socket is there, nobody
  answers; an ``OSError``, not a ``DockerException``);
* :class:`HangingEngineFake`: while ``hanging``, every call blocks until
  :meth:`HangingEngineFake.release` (a ``runc create`` stuck for minutes).

``calls`` records every engine operation that ran (not the refused ones'
outcome), so a test can tell a call that never reached the engine.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import requests
from docker.errors import NotFound

ENGINE_RELEASE_AFTER = 30.0  # a hung call ends by itself after this (no leaked threads)


class ContainerFake:
    """One container of the fake engine, as the SDK's Container model."""

    def __init__(self, engine: EngineFake, name: str, labels: dict[str, str]) -> None:
        self.engine = engine
        self.id = uuid.uuid4().hex * 2
        self.name = name
        self.labels = labels
        self.status = "created"
        self.created = time.time()
        self.attrs = self._inspect()

    def _inspect(self) -> dict[str, Any]:
        return {
            "Id": self.id,
            "Config": {"Labels": dict(self.labels)},
            "State": {"Running": self.status == "running", "Status": self.status, "ExitCode": 0},
        }

    def reload(self) -> None:
        self.engine.answer("inspect")
        self.attrs = self._inspect()

    def start(self) -> None:
        self.engine.answer("start")
        self.status = "running"

    def stop(self, timeout: int = 10) -> None:
        self.engine.answer("stop")
        self.status = "exited"

    def remove(self, force: bool = False, v: bool = False) -> None:
        self.engine.answer("remove")
        self.engine.by_name.pop(self.name, None)

    def stats(self, **kw: Any) -> dict[str, Any]:
        self.engine.answer("stats")
        return {"cpu_stats": {}, "memory_stats": {"usage": 1024}}


class _Api:
    def __init__(self, engine: EngineFake) -> None:
        self.engine = engine

    def containers(self, all: bool = False, filters: dict[str, Any] | None = None) -> list[Any]:
        self.engine.answer("list")
        return [
            {"Id": c.id, "Labels": dict(c.labels), "State": c.status, "Created": c.created}
            for c in self.engine.by_name.values()
        ]


class _Containers:
    def __init__(self, engine: EngineFake) -> None:
        self.engine = engine

    def get(self, name: str) -> ContainerFake:
        self.engine.answer("inspect")
        found = self.engine.by_name.get(name)
        if found is None:
            raise NotFound(f"No such container: {name}")
        return found

    def create(self, image: str, *, name: str, labels: dict[str, str], **kw: Any) -> ContainerFake:
        self.engine.answer("create")
        return self.engine.plant(name, labels, running=False)


class _Image:
    attrs: dict[str, Any] = {"Config": {"Cmd": ["sh"]}}


class _Images:
    def __init__(self, engine: EngineFake) -> None:
        self.engine = engine

    def get(self, image: str) -> _Image:
        self.engine.answer("image")
        return _Image()


class EngineFake:
    """A docker SDK client over an in-memory engine that always answers."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.by_name: dict[str, ContainerFake] = {}
        self.api = _Api(self)
        self.containers = _Containers(self)
        self.images = _Images(self)

    def answer(self, op: str) -> None:
        """Every engine operation passes here first: subclasses fail it."""
        self.calls.append(op)

    def plant(self, name: str, labels: dict[str, str], *, running: bool = True) -> ContainerFake:
        """A container that exists on the engine (e.g. left by a previous agent)."""
        container = ContainerFake(self, name, labels)
        container.status = "running" if running else "created"
        container.attrs = container._inspect()
        self.by_name[name] = container
        return container

    def ping(self) -> bool:
        self.answer("ping")
        return True

    def close(self) -> None:
        pass


class RefusingEngineFake(EngineFake):
    """While ``refusing``, every call fails as a closed socket does."""

    def __init__(self, refusing: bool = True) -> None:
        super().__init__()
        self.refusing = refusing

    def answer(self, op: str) -> None:
        if self.refusing:
            raise requests.exceptions.ConnectionError(
                f"('Connection aborted.', ConnectionRefusedError(111, 'Connection refused')) [{op}]"
            )
        super().answer(op)


class HangingEngineFake(EngineFake):
    """While ``hanging``, every call blocks until :meth:`release`; ``entered``
    counts the calls that reached the engine and hung there."""

    def __init__(self) -> None:
        super().__init__()
        self.hanging = False
        self.entered = 0
        self._released = threading.Event()
        self._lock = threading.Lock()

    def answer(self, op: str) -> None:
        if self.hanging:
            with self._lock:
                self.entered += 1
            self._released.wait(ENGINE_RELEASE_AFTER)
            raise requests.exceptions.ReadTimeout(f"engine hung during {op}")
        super().answer(op)

    def release(self) -> None:
        """End every hung call (each raises, as a socket timeout would)."""
        self.hanging = False
        self._released.set()
