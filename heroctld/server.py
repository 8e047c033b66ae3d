"""Process startup and shutdown: raft node, bridge, API, background tasks."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
from collections.abc import Callable

import aiohttp
from aiohttp import web

from agent.agent import Agent
from agent.config import AgentConfig, parse_port_range
from agent.http import endpoints as agent_endpoints
from api.app import build_app
from api.security.runtime import SECURITY, SecuritySettings
from domain.crypto import JOIN_AUDIENCE, KeyMaterial
from domain.heartbeats import Heartbeats
from domain.snapshot_archive import SnapshotSealer
from domain.tokens import generate_password, new_token_secret
from heroctld.advertise import WILDCARDS
from heroctld.config import ServerConfig
from heroctld.controllers.acl_bootstrap import bootstrap_from_env
from heroctld.controllers.acme import AcmeSettings as AcmeClientSettings
from heroctld.controllers.backup import backup_loop
from heroctld.controllers.certificates import CertificateSettings, certificate_loop
from heroctld.controllers.deployments import deployment_loop
from heroctld.controllers.drainer import drain_loop
from heroctld.controllers.gc import gc_loop
from heroctld.controllers.heartbeats import heartbeat_monitor
from heroctld.controllers.keyring import reencrypt_loop
from heroctld.controllers.leadership import Controller, Leadership, cancel_and_wait
from heroctld.controllers.pki import ensure_ca
from heroctld.controllers.scheduling import scheduling_loop
from heroctld.controllers.webhooks import webhook_loop
from heroctld.notify import Announcer, Notifier
from heroctld.reload import Reloader
from heroctld.tls import CaMismatch, ServerTls, fetch_join_ca
from httpkit.local_node import LOCAL_NODE
from raft.keys import derive_key
from raft.replica import CommandRejected, NoLeader, RaftConfig, Replica, ServerIdentity

log = logging.getLogger("heroctld")

MEMBERS_FILE = "members.json"


async def join_cluster(cfg: ServerConfig, tls: ServerTls) -> list[str]:
    """Ask a server of the cluster to add us; returns the full member list.

    A joining pysyncobj node does not discover peers, so it must start with
    the complete current membership (notes/pysyncobj.md #12). With TLS, the
    server's CA is checked first (heroctld.tls.fetch_join_ca: its MAC proves
    it holds our cluster key) and the request verifies the server with it,
    so no spoofed server ever sees our credential.
    """
    url = cfg.join if cfg.join.startswith("http") else f"{cfg.scheme}://{cfg.join}"
    body = {"raft_address": cfg.raft_address, "name": cfg.node_name, "api_address": cfg.api_address}
    connector = aiohttp.TCPConnector(ssl=tls.client_ctx if tls.enabled else True)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        for attempt in range(30):
            try:
                if tls.mode == "cluster-ca" and tls.ca_pem is None:
                    tls.trust(await fetch_join_ca(session, url, tls.keys))
                auth = KeyMaterial(cfg.cluster_key).server_token(cfg.node_name, JOIN_AUDIENCE)
                headers = {"Authorization": f"Bearer {auth}"}
                async with session.post(url + "/v1/cluster/peers", json=body, headers=headers) as r:
                    data = await r.json()
                    if r.status == 201:
                        return list(data["members"])
                    if r.status == 401:  # our server credential is made with the cluster key
                        log.error(
                            "join: %s refused us: this server has a different cluster key", url
                        )
                        raise SystemExit(2)
                    log.warning("join: %s answered %s: %s", url, r.status, data.get("message"))
            except (aiohttp.ClientConnectorCertificateError, CaMismatch) as e:
                log.error("join: refusing %s: %s", url, e)
                raise SystemExit(2) from None
            except (aiohttp.ClientError, TimeoutError, ValueError) as e:
                log.warning("join: %s not reachable (%s), attempt %d", url, e, attempt + 1)
            await asyncio.sleep(1.0)
    raise SystemExit(f"could not join the cluster through {url}")


async def initial_members(cfg: ServerConfig, tls: ServerTls) -> list[str]:
    path = os.path.join(cfg.data_dir, MEMBERS_FILE)
    if os.path.exists(path):  # restart: our first boot decided the members
        with open(path) as f:
            return list(json.load(f))
    members = await join_cluster(cfg, tls) if cfg.join else list(cfg.peers)
    os.makedirs(cfg.data_dir, exist_ok=True)
    with open(path, "w") as f:
        json.dump(members, f)
    return members


async def keep_registered(replica: Replica) -> None:
    """Keep this server's name and API address in the replicated servers table."""
    me = replica.identity
    row = {"name": me.name, "raft_address": me.raft_address, "api_address": me.api_address}
    while True:
        with replica.read() as view:
            current = view.servers.get(me.name)
        if current != row:
            try:
                await replica.write("server.register", **row)
                log.info(
                    "registered as %s (raft %s, api %s)", me.name, me.raft_address, me.api_address
                )
            except (NoLeader, CommandRejected) as e:
                log.debug("registration postponed: %s", e)
        await asyncio.sleep(1.0 if current != row else 5.0)


async def first_of(event: asyncio.Event, stop: asyncio.Event) -> bool:
    """Wait for ``event`` or ``stop``; True when ``event`` came first."""
    waits = [asyncio.ensure_future(event.wait()), asyncio.ensure_future(stop.wait())]
    _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    for w in pending:
        w.cancel()
    return event.is_set()


def _announce_dev_bootstrap(token: str, password: str | None) -> None:
    print(
        "\n==> ACL bootstrapped. Save these now; they are not shown again:\n"
        f"      admin password:   {password}\n"
        f"      management token: {token}\n"
        f"    log in with `heroctl login` (user admin) or `export HEROCTL_TOKEN={token}`\n",
        flush=True,
    )


def security_settings(cfg: ServerConfig) -> SecuritySettings:
    """The API's security settings; `--dev` bootstraps itself and prints the credentials."""
    settings = SecuritySettings(
        cluster_key=cfg.cluster_key,
        rate_default=cfg.rate_limit.default,
        rate_management=cfg.rate_limit.management,
        rate_service=cfg.rate_limit.service,
        jwt_ttl=max(1, cfg.auth.jwt_ttl),
        refresh_ttl=max(1, cfg.auth.refresh_ttl),
        max_sessions=cfg.auth.max_sessions,
        refresh_grace=cfg.auth.refresh_grace,
        webhooks_allow_private=cfg.webhooks.allow_private,
        bootstrap_token=cfg.bootstrap_token or None,
        admin_password=cfg.admin_password or None,
    )
    if cfg.dev:
        settings.bootstrap_token = settings.bootstrap_token or new_token_secret()
        settings.admin_password = settings.admin_password or generate_password()
        settings.announce_bootstrap = _announce_dev_bootstrap
    return settings


def embedded_agent_config(cfg: ServerConfig, ca_file: str | None = None) -> AgentConfig:
    """The agent every server runs (unless --no-agent): it talks to this
    server's own API with a server credential minted from the cluster key,
    verifying it with ``ca_file`` (the cluster CA's certificate does name
    127.0.0.1; a certificate of your own PKI names the advertise address),
    which also verifies the servers behind the API's domain on the ingress.
    Its ingress listens as ``[ingress]`` says (ValueError for settings it
    cannot use)."""
    keys = KeyMaterial(cfg.cluster_key)
    local = "127.0.0.1" if cfg.bind in ("0.0.0.0", "::", "") else cfg.bind
    if cfg.tls.mode == "files":
        local = cfg.advertise_host
    return AgentConfig(
        servers=[f"{cfg.scheme}://{local}:{cfg.api_port}"],
        ca_file=ca_file,
        token=lambda: keys.server_token(cfg.node_name, audience=cfg.node_name),  # its own API
        node_name=cfg.node_name,
        data_dir=cfg.data_dir,
        host_ip=cfg.agent.host_ip or cfg.advertise_host,
        address=cfg.advertise_host,
        port_range=parse_port_range(cfg.agent.port_range),
        cpu=cfg.agent.cpu,
        memory=cfg.agent.memory,
        disk=cfg.agent.disk,
        drivers=tuple(cfg.agent.drivers),
        log_retention=cfg.logs.retention,
        log_max_bytes=cfg.logs.max_bytes_per_alloc,
        metrics_interval=cfg.metrics.interval,
        ingress_http_port=cfg.ingress.http_port,
        ingress_https_port=cfg.ingress.https_port,
        ingress_bind=cfg.ingress.bind,
        ingress_proxy_protocol=cfg.ingress.proxy_protocol,
        ingress_trusted_proxies=tuple(cfg.ingress.trusted_proxies),
        ingress_release_timeout=cfg.agent.ingress_release_timeout,
    )


def certificate_settings(cfg: ServerConfig) -> CertificateSettings:
    """The certificate controller's settings: the CA of `[acme]`, the API's `[api] domain`."""
    acme = AcmeClientSettings(
        directory=cfg.acme.directory,
        email=cfg.acme.email or None,
        ca_bundle=cfg.acme.ca_bundle or None,
    )
    return CertificateSettings(
        acme=acme, api_domain=cfg.api.domain or None, challenge=cfg.acme.challenge
    )


def server_tls(cfg: ServerConfig) -> ServerTls:
    """This server's TLS (heroctld.tls), with what it can load before raft
    runs: the files of `files` mode, the certificate of its last run."""
    names = [cfg.advertise_host, *(() if cfg.bind in ("0.0.0.0", "::", "") else (cfg.bind,))]
    tls = ServerTls(cfg.tls, cfg.data_dir, cfg.cluster_key, cfg.node_name, names)
    if not tls.enabled:
        if cfg.dev:
            print(f"==> --dev: plain HTTP (no TLS) on {cfg.api_address}", flush=True)
            ing = cfg.ingress
            if not cfg.no_agent and ing.http_port:
                print(
                    f"==> --dev: the ingress on http://{ing.bind}:{ing.http_port} and "
                    f"https://{ing.bind}:{ing.https_port} (when nginx is installed)",
                    flush=True,
                )
        else:
            log.warning(
                "TLS is off ([tls] mode = off): the API and agent traffic are plain HTTP; "
                "serve it only behind a TLS proxy or on a trusted network"
            )
        return tls
    try:
        tls.start()
    except (OSError, ssl.SSLError, ValueError) as e:
        raise SystemExit(
            f"tls: cannot load {cfg.tls.cert_file} / {cfg.tls.key_file}: {e}"
        ) from None
    return tls


def systemd_status(cfg: ServerConfig, replica: Replica, listening: bool) -> tuple[bool, str]:
    """(ready, the status line) for systemd: ready once the API serves and a leader is known."""
    term = replica.raft_status()["term"]
    if not listening:
        return False, f"starting: raft on {cfg.raft_address}; the API waits for a certificate"
    leader = replica.leader_server()
    if replica.is_leader:
        role = "leader"
    elif leader is not None:
        role = f"follower of {leader['name'] or leader['raft_address']}"
    else:
        return False, f"no leader known (term {term}): waiting for a majority of the servers"
    return True, f"{role} (term {term}), API on {cfg.api_address}"


async def serve(cfg: ServerConfig, reload: Callable[[], ServerConfig] | None = None) -> None:
    """Run the server until SIGTERM or SIGINT. SIGHUP applies what ``reload()``
    (the configuration read again) changed that can change (heroctld.reload).
    Under systemd it says when it is ready, and what it is (heroctld.notify)."""
    notifier = Notifier.from_environ()
    watchdog = asyncio.create_task(notifier.watchdog(), name="systemd-watchdog")
    asyncio.get_running_loop().add_signal_handler(  # until the reloader takes over
        signal.SIGHUP, log.info, "SIGHUP while starting: nothing reloaded"
    )
    try:
        await _serve(cfg, reload, notifier)
    finally:
        watchdog.cancel()


async def _serve(
    cfg: ServerConfig, reload: Callable[[], ServerConfig] | None, notifier: Notifier
) -> None:
    loop = asyncio.get_running_loop()
    tls = server_tls(cfg)
    try:  # before anything starts: [ingress] settings nginx could not use stop here
        agent_cfg = None if cfg.no_agent else embedded_agent_config(cfg, tls.ca_file)
    except ValueError as e:
        raise SystemExit(f"heroctld: {e}") from None
    members = await initial_members(cfg, tls)
    raft_cfg = RaftConfig(
        self_address=cfg.raft_address,
        partners=members,
        data_dir=cfg.data_dir,
        raft_key=derive_key(cfg.cluster_key, "raft-transport"),
        election_timeout_min=cfg.raft.election_timeout_min,
        election_timeout_max=cfg.raft.election_timeout_max,
        leader_fallback_timeout=cfg.raft.leader_fallback_timeout,
        compaction_min_entries=int(cfg.raft.compaction_min_entries),
        compaction_min_time=cfg.raft.compaction_min_time,
        flush_journal=bool(cfg.raft.flush_journal),
        max_frame=cfg.raft.max_frame,
        extra={"bindAddress": cfg.raft_listen},
    )
    identity = ServerIdentity(cfg.node_name, cfg.raft_address, cfg.api_address)
    replica = Replica.start(identity, raft_cfg, loop, timeout=cfg.raft.no_leader_timeout)
    heartbeats = Heartbeats(ttl=cfg.node_ttl)
    settings = security_settings(cfg)
    keys = KeyMaterial(cfg.cluster_key)
    app = build_app(
        replica,
        settings,
        heartbeats,
        extra_routes=[agent_endpoints.routes],
        tls_client=tls.client_ctx if tls.enabled else None,
        cluster_ca=lambda: tls.ca_pem,
        api_domain=cfg.api.domain or None,  # every node's ingress serves manage.<domain>
    )
    # Blocking queries (agents watching allocations, followers of a deploy)
    # would hold a shutdown up to their wait: give handlers a few seconds.
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    stop = asyncio.Event()
    received: list[str] = []

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    listening = False
    announcer = Announcer(notifier, lambda: systemd_status(cfg, replica, listening))
    reloader = Reloader(cfg, reload, app[SECURITY].settings, tls)  # the settings the API reads
    loop.add_signal_handler(signal.SIGHUP, announcer.reload, reloader.reload)
    controllers: dict[str, Controller] = {
        "scheduler": lambda: scheduling_loop(replica),
        "deployments": lambda: deployment_loop(replica),
        "heartbeats": lambda: heartbeat_monitor(replica, heartbeats),
        "drainer": lambda: drain_loop(replica),
        "webhooks": lambda: webhook_loop(
            replica, cfg.cluster_key, allow_private=cfg.webhooks.allow_private
        ),
        "gc": lambda: gc_loop(replica, cfg.gc),
        "backup": lambda: backup_loop(
            replica, cfg.backup, SnapshotSealer(cfg.cluster_key), cfg.data_dir
        ),
        "certificates": lambda: certificate_loop(replica, keys, certificate_settings(cfg)),
        "keyring": lambda: reencrypt_loop(replica, keys),
        "acl-bootstrap": lambda: bootstrap_from_env(
            replica,
            keys,
            settings.bootstrap_token,
            settings.admin_password,
            settings.announce_bootstrap,
        ),
    }
    if tls.mode == "cluster-ca":
        controllers["tls-ca"] = lambda: ensure_ca(replica, tls.keys)
    leadership = Leadership(replica, controllers)
    tasks = [
        asyncio.create_task(keep_registered(replica), name="register"),
        asyncio.create_task(leadership.run(), name="leadership"),
        asyncio.create_task(tls.run(replica), name="tls"),
        asyncio.create_task(announcer.run(), name="systemd-status"),
    ]
    agent = None if agent_cfg is None else Agent(agent_cfg)
    if agent is not None:  # the API reads this node's logs and metrics from its agent
        local = app[LOCAL_NODE]
        local.logs, local.metrics, local.node_id = agent.logs, agent.metrics, agent.node_id
    try:
        # A new server of a cluster-ca cluster listens once it has signed its
        # certificate: raft (its own port) elects, the leader makes the CA.
        if tls.enabled and not await first_of(tls.ready, stop):
            log.info("shutting down before serving (%s)", ", ".join(received))
            return
        site = web.TCPSite(
            runner,
            cfg.bind,
            cfg.api_port,
            reuse_address=True,
            ssl_context=tls.server_ctx if tls.enabled else None,
        )
        await site.start()
        listening = True
        if cfg.bind in WILDCARDS:
            log.info(
                "listening on every address (%s), advertising %s", cfg.bind, cfg.advertise_host
            )
        log.info(
            "heroctld %s serving API on %s, raft on %s, members %s",
            cfg.node_name,
            cfg.api_address,
            cfg.raft_address,
            ",".join(members),
        )
        if agent is not None:
            await agent.start()
        await stop.wait()
        log.info("shutting down (%s)", ", ".join(received))
        announcer.stopping()
        await replica.step_down()
    finally:
        replica.close()
        await cancel_and_wait(tasks, timeout=5.0)  # Leadership stops the controllers
        if agent is not None:
            await agent.stop()  # its tasks keep running; the next start adopts them
        await runner.cleanup()
        await replica.stop()
        log.info("stopped")
