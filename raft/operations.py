"""Every FSM operation, in one table: the op name a command carries -> the
function that applies it.

Like the switch over message types in Nomad's nomad/fsm.go: nothing registers
itself on import, and this table is the whole list (tests/raft/
test_operations.py checks that every op the code proposes is in it). An
operation validates its command, changes the tables and answers (a result or
a refusal, raft.fsm_results); it records the rows it changes in the tables
events speak about (raft.changes), and raft.event_derivation derives the
events from those, so no operation names its events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from raft import (
    fsm_acl,
    fsm_allocs,
    fsm_certs,
    fsm_cluster,
    fsm_deployments,
    fsm_ingress,
    fsm_jobs,
    fsm_nodes,
    fsm_pki,
    fsm_restore,
    fsm_secrets,
    fsm_sessions,
    fsm_webhooks,
)
from raft.changes import Changes
from raft.state import State

# (state, command, raft index, the change set it records into) -> its result
Operation = Callable[[State, dict[str, Any], int, Changes], dict[str, Any]]

OPERATIONS: dict[str, Operation] = {
    # cluster
    "noop": fsm_cluster.noop,
    "server.register": fsm_cluster.server_register,
    "server.forget": fsm_cluster.server_forget,
    # jobs and their allocations
    "job.upsert": fsm_jobs.job_upsert,
    "job.delete": fsm_jobs.job_delete,
    "job.scale": fsm_jobs.job_scale,
    "plan.apply": fsm_allocs.plan_apply,
    "alloc.update": fsm_allocs.alloc_update,
    "alloc.stop": fsm_allocs.alloc_stop,
    "alloc.restart": fsm_allocs.alloc_restart,
    "alloc.gc": fsm_allocs.alloc_gc,
    "job.revert": fsm_deployments.job_revert,
    "deployment.progress": fsm_deployments.deployment_progress,
    "deployment.status": fsm_deployments.deployment_status,
    "deployment.promote": fsm_deployments.deployment_promote,
    # nodes
    "node.register": fsm_nodes.node_register,
    "node.status": fsm_nodes.node_status,
    "node.drain": fsm_nodes.node_drain,
    "node.ingress_applied": fsm_nodes.node_ingress_applied,
    "node.drain_complete": fsm_nodes.node_drain_complete,
    "node.eligibility": fsm_nodes.node_eligibility,
    # secrets and the keyring
    "secret.put": fsm_secrets.secret_put,
    "secret.delete": fsm_secrets.secret_delete,
    "secret.reencrypt": fsm_secrets.secret_reencrypt,
    "keyring.rotate": fsm_secrets.keyring_rotate,
    "keyring.prune": fsm_secrets.keyring_prune,
    # access control and sessions
    "acl.bootstrap": fsm_acl.acl_bootstrap,
    "acl.policy.upsert": fsm_acl.policy_upsert,
    "acl.policy.delete": fsm_acl.policy_delete,
    "acl.role.upsert": fsm_acl.role_upsert,
    "acl.role.delete": fsm_acl.role_delete,
    "acl.token.create": fsm_acl.token_create,
    "acl.token.update": fsm_acl.token_update,
    "acl.token.delete": fsm_acl.token_delete,
    "acl.user.upsert": fsm_acl.user_upsert,
    "acl.user.delete": fsm_acl.user_delete,
    "auth.session.create": fsm_sessions.session_create,
    "auth.session.rotate": fsm_sessions.session_rotate,
    "auth.session.delete": fsm_sessions.session_delete,
    # webhooks and their deliveries
    "webhook.create": fsm_webhooks.webhook_create,
    "webhook.delete": fsm_webhooks.webhook_delete,
    "webhook.progress": fsm_webhooks.webhook_progress,
    "webhook.redeliver": fsm_webhooks.webhook_redeliver,
    # the cluster's TLS certificate authority
    "pki.ca.create": fsm_pki.ca_create,
    # ingress: domains served by the cluster
    "ingress.put": fsm_ingress.ingress_put,
    "ingress.delete": fsm_ingress.ingress_delete,
    "cert.put": fsm_certs.cert_put,
    "cert.renew": fsm_certs.cert_renew,
    "cert.delete": fsm_certs.cert_delete,
    "acme.account.put": fsm_certs.acme_account_put,
    "acme.challenge.put": fsm_certs.acme_challenge_put,
    "acme.challenge.delete": fsm_certs.acme_challenge_delete,
    "acme.alpn_challenge.put": fsm_certs.acme_alpn_challenge_put,
    "acme.alpn_challenge.delete": fsm_certs.acme_alpn_challenge_delete,
    # restoring a backup: the whole state (raft.fsm_restore)
    "state.restore": fsm_restore.state_restore,
    "state.restore.commit": fsm_restore.state_restore_commit,
    "state.restore.abort": fsm_restore.state_restore_abort,
}
