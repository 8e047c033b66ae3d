"""The docker driver: each task is one container on the node's Docker engine.

Every call blocks on the Docker API (the docker SDK is synchronous): the
agent calls these methods from an executor thread, never on its event loop.

What a container gets, and why:

* a name derived from the allocation id and task (``heroctl-<task>-<alloc>``),
  so a second start of the same task finds the first instead of making a
  duplicate; and labels ``heroctl.alloc_id``, ``heroctl.job``,
  ``heroctl.group``, ``heroctl.task``, ``heroctl.node`` (plus the job
  version, kill timeout and host ports), so after an agent restart
  :meth:`DockerDriver.list` finds and adopts this node's containers;
* restart policy ``no``: the agent applies the group's restart policy itself;
* its ports published on the node's address only (``127.0.0.1`` in tests);
* a cpu limit (``nano_cpus``: the task's MHz as a share of this host's cores)
  and a memory limit (MB, no extra swap);
* its plain environment (``TaskSpec.env``) passed in the create call, never
  through an env file. The engine itself records a container's config, env
  included, in ``/var/lib/docker/containers/<id>/config.v2.json``, so
  secrets (``TaskSpec.secret_env``) never go there: the container starts
  under a tiny shim (a static busybox from the host, bind-mounted read-only
  at ``/.heroctl/busybox``) that reads them from the container's stdin,
  exports them and ``exec``s the real entrypoint and command. The secrets
  travel over the engine's API socket only and live in the task's memory;
  ``docker inspect`` does not show them. A shim that gets no complete
  payload (the agent died mid-start) exits 125 instead of running the task
  without its secrets;
* ``init`` (docker-init) as PID 1, so SIGTERM reaches the task and zombies
  are reaped even when the image's program does not expect to be PID 1.

Images are never pulled unless the driver was built with ``allow_pull``:
a missing image is a clear error (tests use only locally built images).
"""

from __future__ import annotations

import contextlib
import math
import re
import socket
import struct
import threading
import time
from datetime import datetime
from typing import Any

from agent.drivers.base import (
    CREATED,
    EXITED,
    RUNNING,
    UNKNOWN,
    DriverError,
    TaskNotFound,
    TaskSpec,
    TaskState,
    TaskStats,
    host_cpu,
)

try:  # the SDK is a dependency, but keep import errors readable
    import docker
    from docker.errors import APIError, DockerException, ImageNotFound, NotFound
except ImportError as exc:  # pragma: no cover
    raise ImportError("the docker driver needs the 'docker' package (pip install docker)") from exc

__all__ = ["DockerDriver", "container_name"]

MIN_NANO_CPUS = 10_000_000  # 0.01 core: the engine refuses less
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
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")
_EXITED_STATUS = re.compile(r"Exited \((-?\d+)\)")


def container_name(alloc_id: str, task: str) -> str:
    return _NAME_UNSAFE.sub("_", f"heroctl-{task}-{alloc_id}")


def _parse_time(value: str | None) -> float | None:
    """Docker's RFC 3339 timestamps (nanoseconds, 'Z') to unix seconds."""
    if not value or value.startswith("0001-01-01"):
        return None
    match = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)?$", value)
    if not match:
        return None
    base, frac, zone = match.groups()
    zone = "+00:00" if zone in (None, "Z") else zone
    stamp = datetime.fromisoformat(base + zone).timestamp()
    return stamp + (float("0" + frac[:10]) if frac else 0.0)


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


def _ports_label(spec: TaskSpec) -> str:
    return ",".join(f"{p.name}={p.host_port}" for p in spec.ports)


def _ports_from_label(text: str | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        name, _, port = item.partition("=")
        if name and port.isdigit():
            out[name] = int(port)
    return out


class DockerDriver:
    """Docker tasks of one node. ``client``: a docker SDK client (default:
    ``docker.from_env()``); ``host_cores``/``mhz_per_core``: how MHz map to
    cores (default: read from this machine)."""

    name = "docker"

    def __init__(
        self,
        node: str,
        *,
        client: docker.DockerClient | None = None,
        host_cores: int | None = None,
        mhz_per_core: int | None = None,
        allow_pull: bool = False,
        use_init: bool = True,
        timeout: float = 60.0,
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
            try:
                self._client = docker.from_env(timeout=int(self._timeout))
            except DockerException as exc:
                raise DriverError(f"cannot reach the Docker engine: {exc}") from exc
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def available(self) -> bool:
        try:
            return bool(self.client.ping())
        except (DockerException, DriverError, OSError):
            return False

    def shim_binary(self) -> str:
        """The static busybox that delivers secrets; DriverError if none."""
        if self._shim is not None:
            if not is_static_elf(self._shim):
                raise DriverError(f"secrets shim {self._shim} is not a static executable")
            return self._shim
        for path in SHIM_CANDIDATES:
            if is_static_elf(path):
                self._shim = path
                return path
        raise DriverError(
            "tasks with secrets need a static busybox on the node "
            "(apt-get install busybox-static): none found in " + ", ".join(SHIM_CANDIDATES)
        )

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
        except (APIError, DockerException) as exc:
            raise DriverError(f"docker: {exc}") from exc
        labels = container.labels or {}
        if labels.get("heroctl.node") != self.node or labels.get("heroctl.alloc_id") != alloc_id:
            raise TaskNotFound(
                f"container {container.name} does not belong to allocation {alloc_id} "
                f"on node {self.node}"
            )
        return container

    def _state(self, attrs: dict[str, Any]) -> TaskState:
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        st = attrs.get("State") or {}
        status = st.get("Status", "")
        if st.get("Running") or status in ("running", "paused", "restarting"):
            state = RUNNING
        elif status == "created":
            state = CREATED
        elif status in ("exited", "dead"):
            state = EXITED
        else:
            state = UNKNOWN
        return TaskState(
            **_label_fields(labels),
            driver=self.name,
            handle=attrs.get("Id", ""),
            state=state,
            exit_code=st.get("ExitCode") if state == EXITED else None,
            started_at=_parse_time(st.get("StartedAt")),
            finished_at=_parse_time(st.get("FinishedAt")) if state == EXITED else None,
            oom_killed=bool(st.get("OOMKilled")),
            error=st.get("Error") or "",
        )

    # --- the Driver contract ------------------------------------------------

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
            if existing.attrs["State"].get("Running"):
                return self._state(existing.attrs)  # adopt: never a second copy
            self._remove_container(existing)
        self._ensure_image(spec.image)
        labels = spec.all_labels()
        labels["heroctl.ports"] = _ports_label(spec)
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
            "hostname": _NAME_UNSAFE.sub("-", spec.task)[:63] or None,
        }
        if spec.command is not None:
            kwargs["command"] = list(spec.command)
        secrets = dict(spec.secret_env)
        payload = b""
        if secrets:
            payload = secrets_payload(secrets)
            argv = self._image_argv(spec)
            kwargs["entrypoint"] = [SHIM_PATH, "sh", "-c", SHIM_SCRIPT, "heroctl-shim"]
            kwargs["command"] = argv
            kwargs["volumes"] = {self.shim_binary(): {"bind": SHIM_PATH, "mode": "ro"}}
            kwargs["stdin_open"] = True
            kwargs["detach"] = False  # makes the engine set StdinOnce: EOF on detach
        try:
            container = self.client.containers.create(spec.image, **kwargs)
        except APIError as exc:
            if exc.response is not None and exc.response.status_code == 409:
                # a concurrent start won the race: that container is the task
                return self._state(self._container(spec.alloc_id, spec.task).attrs)
            raise DriverError(
                f"cannot create container for {spec.task!r}: {_explain(exc)}"
            ) from exc
        except DockerException as exc:
            raise DriverError(f"cannot create container for {spec.task!r}: {exc}") from exc
        try:
            if payload:
                self._start_with_secrets(container, payload)
            else:
                container.start()
        except (APIError, DockerException, OSError) as exc:
            self._remove_container(container)
            raise DriverError(f"cannot start container for {spec.task!r}: {_explain(exc)}") from exc
        container.reload()
        return self._state(container.attrs)

    def _image_argv(self, spec: TaskSpec) -> list[str]:
        """What the container would run without the shim: the image's
        entrypoint followed by the task's command (or the image's cmd)."""
        try:
            config = self.client.images.get(spec.image).attrs.get("Config") or {}
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot inspect image {spec.image!r}: {_explain(exc)}") from exc
        entrypoint = config.get("Entrypoint") or []
        cmd = spec.command if spec.command is not None else (config.get("Cmd") or [])
        argv = [*entrypoint, *cmd]
        if not argv:
            raise DriverError(
                f"image {spec.image!r} has no entrypoint or cmd and the task no command"
            )
        return argv

    def _start_with_secrets(self, container: Any, payload: bytes) -> None:
        sock = self.client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
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

    def _ensure_image(self, image: str) -> None:
        try:
            self.client.images.get(image)
            return
        except ImageNotFound:
            if not self.allow_pull:
                raise DriverError(
                    f"image {image!r} is not present on node {self.node} and pulling is disabled"
                ) from None
        except (APIError, DockerException) as exc:
            raise DriverError(f"docker: {exc}") from exc
        try:
            self.client.images.pull(image)
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot pull image {image!r}: {_explain(exc)}") from exc

    def stop(self, alloc_id: str, task: str, timeout: float | None = None) -> TaskState:
        container = self._container(alloc_id, task)
        if timeout is None:
            try:
                timeout = float(container.labels.get("heroctl.kill_timeout", "5"))
            except ValueError:
                timeout = 5.0
        try:
            if container.status in ("running", "paused", "restarting", "created"):
                container.stop(timeout=max(0, math.ceil(timeout)))
            container.reload()
        except NotFound:
            raise TaskNotFound(f"container for task {task!r} of {alloc_id} vanished") from None
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot stop container for {task!r}: {_explain(exc)}") from exc
        return self._state(container.attrs)

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
            if exc.response is not None and exc.response.status_code == 409:
                return  # removal already in progress
            raise DriverError(f"cannot remove container {container.name}: {_explain(exc)}") from exc

    def inspect(self, alloc_id: str, task: str) -> TaskState:
        return self._state(self._container(alloc_id, task).attrs)

    def list(self) -> list[TaskState]:
        """This node's containers, from one API call (no per-container
        inspect), so the agent can afford it on every reconcile. Here
        ``started_at`` is the container's creation time and ``finished_at``
        is unknown; :meth:`inspect` has the exact times."""
        try:
            rows = self.client.api.containers(
                all=True, filters={"label": [f"heroctl.node={self.node}"]}
            )
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot list containers: {_explain(exc)}") from exc
        out = []
        for row in rows:
            labels = row.get("Labels") or {}
            status = row.get("State", "")
            if status in ("running", "paused", "restarting"):
                state = RUNNING
            elif status == "created":
                state = CREATED
            elif status in ("exited", "dead"):
                state = EXITED
            else:
                state = UNKNOWN
            code = None
            if state == EXITED:
                match = _EXITED_STATUS.search(row.get("Status", ""))
                code = int(match.group(1)) if match else None
            out.append(
                TaskState(
                    **_label_fields(labels),
                    driver=self.name,
                    handle=row.get("Id", ""),
                    state=state,
                    exit_code=code,
                    started_at=float(row["Created"]) if row.get("Created") else None,
                )
            )
        return out

    def exec_command(
        self, alloc_id: str, task: str, argv: list[str], timeout: float = 10.0
    ) -> tuple[int, str]:
        """Run ``argv`` inside the running task (a ``command`` health check):
        (exit code, output). The engine has no exec timeout: the caller
        bounds its wait (``timeout`` is accepted for the protocol's sake)."""
        container = self._container(alloc_id, task)
        try:
            result = container.exec_run(list(argv), stdout=True, stderr=True, demux=False)
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot run a command in {task!r}: {_explain(exc)}") from exc
        output = result.output or b""
        code = result.exit_code if result.exit_code is not None else -1
        return code, output.decode("utf-8", errors="replace")

    def logs(self, alloc_id: str, task: str, tail: int | None = 100) -> str:
        container = self._container(alloc_id, task)
        try:
            raw = container.logs(
                stdout=True, stderr=True, tail="all" if tail is None else max(0, tail)
            )
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot read logs of {task!r}: {_explain(exc)}") from exc
        return raw.decode("utf-8", errors="replace")

    def stats(self, alloc_id: str, task: str) -> TaskStats:
        container = self._container(alloc_id, task)
        try:
            raw = container.stats(stream=False, one_shot=True)
        except (APIError, DockerException) as exc:
            raise DriverError(f"cannot read stats of {task!r}: {_explain(exc)}") from exc
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


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def _label_fields(labels: dict[str, str]) -> dict[str, Any]:
    """What a container's heroctl labels say about its task (inspect and list agree)."""
    return {
        "alloc_id": labels.get("heroctl.alloc_id", ""),
        "task": labels.get("heroctl.task", ""),
        "job": labels.get("heroctl.job", ""),
        "group": labels.get("heroctl.group", ""),
        "node": labels.get("heroctl.node", ""),
        "job_version": int(labels.get("heroctl.job_version", "0") or 0),
        "ports": _ports_from_label(labels.get("heroctl.ports")),
        "labels": dict(labels),
    }
