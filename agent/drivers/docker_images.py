"""A docker task's image: whether to pull it, the pull itself, and what the
allocation's events say of it.

The task's ``pull`` policy (:mod:`domain.jobspec.images`) decides:
``missing`` pulls only when the engine does not have the image, ``always``
at every start, ``never`` not at all (a missing image then fails the start,
saying so). A pull streams the engine's progress; the task's event sink
(``TaskSpec.on_event``) hears ``pulling`` when it begins, a ``pulling``
line with the bytes so far every :data:`PROGRESS_EVERY` seconds of a long
pull, and ``pulled`` with the image's size and the time it took. A failed
pull is a :class:`DriverError` carrying the registry's own words (the
caller's ``driver_error`` event).

Registry credentials (``TaskSpec.registry_auth``) go to the engine in the
pull request's ``X-Registry-Auth`` header only: never into a message, a
log line or the engine's stored config. Whatever the engine answers is
scrubbed of the password all the same before anyone sees it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from docker.errors import ImageNotFound

from agent.drivers.base import EVENT_PULLED, EVENT_PULLING, DriverError, RegistryAuth, TaskSpec
from agent.drivers.docker_containers import explain
from agent.drivers.docker_errors import ENGINE_FAILURES

if TYPE_CHECKING:
    import docker

__all__ = ["PROGRESS_EVERY", "ensure_image", "pull_image"]

PROGRESS_EVERY = 30.0  # seconds between progress events of one pull
EventSink = Callable[[str, str], None]


def _no_events(kind: str, message: str) -> None:
    pass


def _has_image(client: docker.DockerClient, image: str) -> bool:
    try:
        client.images.get(image)
    except ImageNotFound:
        return False
    return True


def ensure_image(
    client: docker.DockerClient, spec: TaskSpec, node: str, *, allow_pull: bool
) -> None:
    """Make ``spec.image`` present as its ``pull`` policy says (``allow_pull``
    False: this node never pulls); DriverError when it cannot be."""
    image = spec.image or ""
    policy = spec.pull
    if policy == "missing" or policy == "never" or not allow_pull:
        if _has_image(client, image):
            return
        if policy == "never":
            raise DriverError(
                f"image {image!r} is not present on node {node} and the task says pull: never "
                f"(load it on the node, or set pull: missing)"
            )
        if not allow_pull:
            raise DriverError(
                f"image {image!r} is not present on node {node} and pulling is disabled"
            )
    pull_image(client, image, spec.registry_auth, spec.on_event or _no_events)


def _scrub(text: str, auth: RegistryAuth | None) -> str:
    if auth is not None and auth.password:
        text = text.replace(auth.password, "[redacted]")
    return text


def _megabytes(n: float) -> str:
    return f"{n / 1e6:.1f} MB"


class _Progress:
    """The bytes a pull fetched so far, from the engine's per-layer lines."""

    def __init__(self) -> None:
        self.layers: dict[str, tuple[int, int]] = {}  # layer -> (current, total)

    def feed(self, line: Mapping[str, Any]) -> None:
        layer = line.get("id")
        detail = line.get("progressDetail") or {}
        if not isinstance(layer, str) or not isinstance(detail, Mapping):
            return
        current, total = self.layers.get(layer, (0, 0))
        if line.get("status") == "Downloading":
            current = int(detail.get("current") or current)
            total = int(detail.get("total") or total)
        elif line.get("status") in ("Download complete", "Pull complete", "Already exists"):
            current = max(current, total)
        self.layers[layer] = (current, total)

    def text(self) -> str:
        done = sum(c for c, _ in self.layers.values())
        total = sum(t for _, t in self.layers.values())
        return f"{done / 1e6:.1f} of {_megabytes(total)}" if total else _megabytes(done)


def _follow(
    lines: Iterable[Any], image: str, sink: EventSink, clock: Callable[[], float]
) -> str | None:
    """Read the engine's pull stream to its end; the error it reported, if any."""
    progress = _Progress()
    last = clock()
    for line in lines:
        if not isinstance(line, Mapping):
            continue
        if line.get("error") or line.get("errorDetail"):
            detail = line.get("errorDetail") or {}
            message = detail.get("message") if isinstance(detail, Mapping) else None
            return str(message or line.get("error"))
        progress.feed(line)
        if clock() - last >= PROGRESS_EVERY:
            last = clock()
            sink(EVENT_PULLING, f"pulling image {image}: {progress.text()}")
    return None


def pull_image(
    client: docker.DockerClient,
    image: str,
    auth: RegistryAuth | None,
    sink: EventSink,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Pull ``image`` (with ``auth``, when given), telling ``sink`` how it goes."""
    who = f" as {auth.username!r}" if auth is not None else ""
    sink(EVENT_PULLING, f"pulling image {image}{who}")
    began = clock()
    credentials = {"username": auth.username, "password": auth.password} if auth else None
    size = 0
    try:
        lines = client.api.pull(image, stream=True, decode=True, auth_config=credentials)
        error = _follow(lines, image, sink, clock)
        if error is None:
            size = int(client.images.get(image).attrs.get("Size") or 0)
    except ENGINE_FAILURES as exc:
        error = explain(exc)
    if error is not None:
        raise DriverError(f"cannot pull image {image!r}{who}: {_scrub(error, auth)}")
    sink(EVENT_PULLED, f"pulled image {image} ({_megabytes(size)}) in {clock() - began:.1f} s")
