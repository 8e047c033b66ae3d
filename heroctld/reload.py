"""SIGHUP: apply what can change without a restart (``systemctl reload heroctld``).

The configuration is read again as at start (the file, the environment,
the same command-line flags, which still win) and checked the same way; a
file that no longer reads is logged and changes nothing. Applied at once:

- ``log_level``;
- ``[rate_limit]`` and ``[auth]``: the API reads them at each request;
- ``[tls]`` in ``files`` mode: the certificate, key and CA files (paths
  and contents; they are also picked up by themselves when they change).

Anything else that changed is named in the log as waiting for a restart
(values are never logged: the file may hold the cluster key).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from api.security.runtime import SecuritySettings
from heroctld.config import ConfigError, ServerConfig
from heroctld.tls import ServerTls

__all__ = ["LOG_LEVELS", "Reloader", "set_log_level"]

log = logging.getLogger("heroctld")

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TLS_FILES = ("cert_file", "key_file", "ca_file")
RELOADED = ("log_level", "rate_limit", "auth")
GENERATED_IN_DEV = ("data_dir", "cluster_key")  # --dev makes new ones at each load


def set_log_level(level: str) -> bool:
    """Set the root logger's level by name; False (and nothing changed) for an unknown one."""
    if level.lower() not in LOG_LEVELS:
        return False
    logging.getLogger().setLevel(getattr(logging, level.upper()))
    return True


def _changed(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The names of the settings that differ, ``[table] key`` for a table's."""
    names = []
    for f in dataclasses.fields(old):
        a, b = getattr(old, f.name), getattr(new, f.name)
        if dataclasses.is_dataclass(a) and dataclasses.is_dataclass(b) and not prefix:
            names += _changed(a, b, f"[{f.name}] ")
        elif a != b:
            names.append(prefix + f.name)
    return names


class Reloader:
    """Re-reads the configuration with ``load`` and applies it to the
    running server's ``cfg``, ``security`` settings and ``tls``."""

    def __init__(
        self,
        cfg: ServerConfig,
        load: Callable[[], ServerConfig] | None,
        security: SecuritySettings,
        tls: ServerTls,
    ) -> None:
        self.cfg, self.load, self.security, self.tls = cfg, load, security, tls

    def reload(self) -> list[str]:
        """Apply what can be applied; the names of the settings applied."""
        if self.load is None:
            log.info("reload: this server was not started from a configuration; nothing to do")
            return []
        try:
            new = self.load()
        except ConfigError as e:
            log.error("reload: %s; keeping the running settings", e)
            return []
        cfg, applied = self.cfg, []
        if new.log_level != cfg.log_level:
            if set_log_level(new.log_level):
                cfg.log_level = new.log_level
                applied.append("log_level")
            else:
                log.error("reload: log_level %r is not one of %s", new.log_level, LOG_LEVELS)
        if new.rate_limit != cfg.rate_limit:
            cfg.rate_limit = new.rate_limit
            s = self.security
            s.rate_default, s.rate_management, s.rate_service = (
                new.rate_limit.default,
                new.rate_limit.management,
                new.rate_limit.service,
            )
            applied.append("[rate_limit]")
        if new.auth != cfg.auth:
            cfg.auth = a = new.auth
            s = self.security
            s.jwt_ttl, s.refresh_ttl = max(1, a.jwt_ttl), max(1, a.refresh_ttl)
            s.max_sessions, s.refresh_grace = a.max_sessions, a.refresh_grace
            applied.append("[auth]")
        applied += self._tls_files(new)
        waiting = [
            name
            for name in _changed(cfg, new)
            if name not in RELOADED and not (cfg.dev and name in GENERATED_IN_DEV)
        ]
        if applied:
            log.info("reload: applied %s", ", ".join(applied))
        else:
            log.info("reload: nothing that can change without a restart changed")
        if waiting:
            log.warning("reload: changed, applied at the next restart: %s", ", ".join(waiting))
        return applied

    def _tls_files(self, new: ServerConfig) -> list[str]:
        """files mode: new paths, or new contents, served from now on."""
        old, tls = self.cfg.tls, self.tls
        if old.mode != "files" or new.tls.mode != "files":
            return []
        before = tls.serial
        paths = {name: getattr(new.tls, name) for name in TLS_FILES}
        previous = {name: getattr(old, name) for name in TLS_FILES}
        for name, value in paths.items():
            setattr(old, name, value)  # the settings the server's TLS reads
        try:
            tls.start()
        except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
            for name, value in previous.items():
                setattr(old, name, value)
            log.error("reload: cannot load %s / %s: %s", new.tls.cert_file, new.tls.key_file, e)
            return []
        return ["[tls] files"] if paths != previous or tls.serial != before else []
