"""The docker driver: each task is one container on the node's Docker engine.

Every call blocks on the Docker API (the docker SDK is synchronous): the
agent calls these methods from an executor thread, never on its event loop.

What a container gets, and why:

* a name and labels derived from its task (:mod:`agent.drivers.docker_containers`),
  so a second start finds the first instead of making a duplicate and, after
  an agent restart, :meth:`DockerDriver.list` finds and adopts this node's
  containers;
* restart policy ``no``: the agent applies the group's restart policy itself;
* its ports published on the node's address only (``127.0.0.1`` in tests);
* a cpu limit (``nano_cpus``: the task's MHz as a share of this host's cores)
  and a memory limit (MB, no extra swap);
* its plain environment (``TaskSpec.env``) passed in the create call, never
  through an env file; its secrets through a shim, over the engine's API
  socket only (:mod:`agent.drivers.docker_secrets`);
* ``init`` (docker-init) as PID 1, so SIGTERM reaches the task and zombies
  are reaped even when the image's program does not expect to be PID 1;
* nothing of the host but what its job's submitter was granted at submit
  (:mod:`domain.job_policy`): not privileged unless the task says so, no
  added capabilities or devices, the default network, its own pid and ipc
  namespaces, ``no-new-privileges`` (a setuid binary gains nothing), and
  host directories only as the task's ``volumes`` (bind mounts whose source
  must exist: the engine never creates one).

Images are pulled as the task's ``pull`` policy says (``missing`` by
default; :mod:`agent.drivers.docker_images`, with the task's registry
credentials), unless the driver was built with ``allow_pull=False``.

Every public method raises only :class:`DriverError` (whatever the SDK or
the socket raised, :mod:`agent.drivers.docker_errors`), and every request
to the engine gives up after ``timeout`` seconds (the client's socket
timeout), so a hung engine fails calls instead of holding their threads.
A pull is the exception: the SDK streams it with no socket timeout, so its
bound is the caller's deadline (:mod:`agent.drivers.calls`), and its thread
stays until the engine ends the pull.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

from agent.drivers.base import (
    DriverError,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStats,
    host_cpu,
)
from agent.drivers.docker_containers import (
    container_hostname,
    container_name,
    explain,
    inspected_state,
    listed_state,
    ports_label,
)
from agent.drivers.docker_images import ensure_image
from agent.drivers.docker_secrets import deliver_secrets, find_shim, secrets_payload, shim_options

try:  # the SDK is a dependency, but keep import errors readable
    import docker
    from docker.errors import APIError, NotFound
    from docker.types import Mount

    from agent.drivers.docker_errors import ENGINE_FAILURES, engine_errors
except ImportError as exc:  # pragma: no cover
    raise ImportError("the docker driver needs the 'docker' package (pip install docker)") from exc

__all__ = ["DockerDriver"]

MIN_NANO_CPUS = 10_000_000  # 0.01 core: the engine refuses less


class DockerDriver:
    """Docker tasks of one node. ``client``: a docker SDK client (default:
    ``docker.from_env()`` with ``timeout``, seconds per engine request);
    ``host_cores``/``mhz_per_core``: how MHz map to cores (default: read
    from this machine)."""

    name = "docker"

    def __init__(
        self,
        node: str,
        *,
        client: docker.DockerClient | None = None,
        host_cores: int | None = None,
        mhz_per_core: int | None = None,
        allow_pull: bool = True,
        use_init: bool = True,
        timeout: float = 30.0,
        shim_binary: str | None = None,
    ) -> None:
        self.node = node
        self._client = client
        self._timeout = timeout
        cores, mhz = host_cpu()
        self.host_cores = host_cores or cores
        self.mhz_per_core = mhz_per_core or mhz
        self.allow_pull = allow_pull
        self.use_init = use_init
        self._shim = shim_binary
        self._prev_cpu: dict[str, tuple[int, float]] = {}  # container id -> (usage ns, time)
        self._lock = threading.Lock()

    # --- plumbing -------------------------------------------------------------

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            # Asks the engine its API version: raises when none answers.
            self._client = docker.from_env(timeout=max(1, math.ceil(self._timeout)))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def available(self) -> bool:
        try:
            return bool(self.client.ping())
        except (*ENGINE_FAILURES, DriverError):
            return False

    def shim_binary(self) -> str:
        """The static busybox that delivers secrets; DriverError if none."""
        self._shim = find_shim(self._shim)
        return self._shim

    def nano_cpus(self, mhz: int) -> int:
        """The task's MHz as a share of this host's cores, in 1e-9 cores."""
        cores = mhz / self.mhz_per_core
        nano = int(cores * 1_000_000_000)
        return max(MIN_NANO_CPUS, min(nano, self.host_cores * 1_000_000_000))

    def _container(self, alloc_id: str, task: str) -> Any:
        try:
            container = self.client.containers.get(container_name(alloc_id, task))
        except NotFound:
            raise TaskNotFound(f"no container for task {task!r} of allocation {alloc_id}") from None
        labels = container.labels or {}
        if labels.get("heroctl.node") != self.node or labels.get("heroctl.alloc_id") != alloc_id:
            raise TaskNotFound(
                f"container {container.name} does not belong to allocation {alloc_id} "
                f"on node {self.node}"
            )
        return container

    # --- the Driver contract ------------------------------------------------

    @engine_errors("cannot start the task's container")
    def start(self, spec: TaskSpec) -> TaskState:
        if spec.node != self.node:
            raise DriverError(f"task is for node {spec.node!r}, this driver runs {self.node!r}")
        if not spec.image:
            raise DriverError(f"task {spec.task!r} has no image")
        try:
            existing = self._container(spec.alloc_id, spec.task)
        except TaskNotFound:
            existing = None
        if existing is not None:
            existing.reload()
            if (existing.attrs.get("State") or {}).get("Running"):
                return inspected_state(existing.attrs, self.name)  # adopt: never a second copy
            self._remove_container(existing)
        ensure_image(self.client, spec, self.node, allow_pull=self.allow_pull)
        labels = spec.all_labels()
        labels["heroctl.ports"] = ports_label(spec)
        labels["heroctl.kill_timeout"] = str(spec.kill_timeout)
        kwargs: dict[str, Any] = {
            "name": container_name(spec.alloc_id, spec.task),
            "labels": labels,
            "environment": spec.full_env(),
            "ports": {f"{p.task_port}/tcp": (spec.host_ip, p.host_port) for p in spec.ports},
            "restart_policy": {"Name": "no"},
            "nano_cpus": self.nano_cpus(spec.cpu),
            "mem_limit": f"{spec.memory}m",
            "memswap_limit": f"{spec.memory}m",
            "init": self.use_init,
            "detach": True,
            "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "2"}},
            "hostname": container_hostname(spec.task),
            "privileged": spec.privileged,
            "ipc_mode": "private",
            "security_opt": [] if spec.privileged else ["no-new-privileges:true"],
            "mounts": [
                Mount(v.target, v.source, type="bind", read_only=v.read_only) for v in spec.volumes
            ],
        }
        if spec.user:
            kwargs["user"] = spec.user
        if spec.command is not None:
            kwargs["command"] = list(spec.command)
        secrets = dict(spec.secret_env)
        payload = b""
        if secrets:
            payload = secrets_payload(secrets)
            argv = self._image_argv(spec)
            kwargs.update(shim_options(argv, self.shim_binary()))
        try:
            container = self.client.containers.create(spec.image, **kwargs)
        except APIError as exc:
            if exc.response is not None and exc.response.status_code == 409:
                # a concurrent start won the race: that container is the task
                return inspected_state(self._container(spec.alloc_id, spec.task).attrs, self.name)
            raise DriverError(f"cannot create container for {spec.task!r}: {explain(exc)}") from exc
        try:
            if payload:
                self._start_with_secrets(container, payload)
            else:
                container.start()
        except Exception:
            # Never leave a created, unstarted container behind (the next
            # start would find it); the engine may be gone too: best effort.
            with contextlib.suppress(*ENGINE_FAILURES, DriverError):
                self._remove_container(container)
            raise
        container.reload()
        return inspected_state(container.attrs, self.name)

    def _image_argv(self, spec: TaskSpec) -> list[str]:
        """What the container would run without the shim: the image's
        entrypoint followed by the task's command (or the image's cmd)."""
        config = self.client.images.get(spec.image).attrs.get("Config") or {}
        entrypoint = config.get("Entrypoint") or []
        cmd = spec.command if spec.command is not None else (config.get("Cmd") or [])
        argv = [*entrypoint, *cmd]
        if not argv:
            raise DriverError(
                f"image {spec.image!r} has no entrypoint or cmd and the task no command"
            )
        return argv

    def _start_with_secrets(self, container: Any, payload: bytes) -> None:
        deliver_secrets(self.client, container, payload)

    @engine_errors("cannot stop the task's container")
    def stop(self, alloc_id: str, task: str, timeout: float | None = None) -> TaskState:
        container = self._container(alloc_id, task)
        if timeout is None:
            try:
                timeout = float(container.labels.get("heroctl.kill_timeout", "5"))
            except ValueError:
                timeout = 5.0
        if container.status in ("running", "paused", "restarting", "created"):
            container.stop(timeout=max(0, math.ceil(timeout)))
        container.reload()  # gone meanwhile: NotFound, a TaskNotFound to the caller
        return inspected_state(container.attrs, self.name)

    @engine_errors("cannot remove the task's container")
    def remove(self, alloc_id: str, task: str) -> None:
        try:
            container = self._container(alloc_id, task)
        except TaskNotFound:
            return
        self._remove_container(container)

    def _remove_container(self, container: Any) -> None:
        with self._lock:
            self._prev_cpu.pop(container.id, None)
        try:
            container.remove(force=True, v=True)
        except NotFound:
            pass
        except APIError as exc:
            if exc.response is None or exc.response.status_code != 409:
                raise
            # 409: a removal is already in progress

    @engine_errors("cannot inspect the task's container")
    def inspect(self, alloc_id: str, task: str) -> TaskState:
        return inspected_state(self._container(alloc_id, task).attrs, self.name)

    @engine_errors("cannot list containers")
    def list(self) -> list[TaskState]:
        """This node's containers, from one API call (no per-container
        inspect), so the agent can afford it on every reconcile. Here
        ``started_at`` is the container's creation time and ``finished_at``
        is unknown; :meth:`inspect` has the exact times."""
        rows = self.client.api.containers(
            all=True, filters={"label": [f"heroctl.node={self.node}"]}
        )
        return [listed_state(row, self.name) for row in rows]

    @engine_errors("cannot run a command in the task")
    def exec_command(
        self, alloc_id: str, task: str, argv: list[str], timeout: float = 10.0
    ) -> tuple[int, str]:
        """Run ``argv`` inside the running task (a ``command`` health check):
        (exit code, output). The engine has no exec timeout: the caller
        bounds its wait (``timeout`` is accepted for the protocol's sake)."""
        container = self._container(alloc_id, task)
        result = container.exec_run(list(argv), stdout=True, stderr=True, demux=False)
        output = result.output or b""
        code = result.exit_code if result.exit_code is not None else -1
        return code, output.decode("utf-8", errors="replace")

    @engine_errors("cannot read the task's logs")
    def logs(self, alloc_id: str, task: str, tail: int | None = 100) -> str:
        container = self._container(alloc_id, task)
        raw = container.logs(stdout=True, stderr=True, tail="all" if tail is None else max(0, tail))
        return raw.decode("utf-8", errors="replace")

    @engine_errors("cannot read the task's stats")
    def stats(self, alloc_id: str, task: str) -> TaskStats:
        container = self._container(alloc_id, task)
        raw = container.stats(stream=False, one_shot=True)
        now = time.time()
        cpu = (raw.get("cpu_stats") or {}).get("cpu_usage") or {}
        usage = int(cpu.get("total_usage") or 0)
        percent = 0.0
        with self._lock:
            prev = self._prev_cpu.get(container.id)
            self._prev_cpu[container.id] = (usage, now)
        if prev is not None and now > prev[1] and usage >= prev[0]:
            percent = (usage - prev[0]) / ((now - prev[1]) * 1e9) * 100.0
        mem = raw.get("memory_stats") or {}
        detail = mem.get("stats") or {}
        # cgroup v1 counts page cache in usage; v2 reports inactive_file.
        cache = detail.get(
            "total_inactive_file", detail.get("inactive_file", detail.get("cache", 0))
        )
        used = max(0, int(mem.get("usage") or 0) - int(cache or 0))
        return TaskStats(
            cpu_percent=round(percent, 2),
            memory_bytes=used,
            memory_limit_bytes=int(mem["limit"]) if mem.get("limit") else None,
            pids=(raw.get("pids_stats") or {}).get("current"),
            at=now,
        )
