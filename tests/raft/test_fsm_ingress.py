"""The ingress in the FSM: one owner per host and path, decided in the log's
order; the served domains merged from the API's entries and the jobs'
specs; certificates and ACME challenges as rows the API and the nodes read."""

from __future__ import annotations

from typing import Any

from raft.fsm import apply_batch
from raft.fsm_ingress import active_domains
from raft.state import State
from raft.views import StateView

SEALED = {"nonce": b"n" * 12, "ciphertext": b"c" * 16}


def job(name: str, *entries: tuple[str, str, str]) -> dict[str, Any]:
    """A normalized job whose group `web` declares (host, path, tls) entries."""
    ingress = [{"host": h, "path": p, "port": "http", "tls": t} for h, p, t in entries]
    return {
        "name": name,
        "groups": [{"name": "web", "count": 1, "ingress": ingress, "tasks": []}],
    }


def apply(state: State, *commands: dict[str, Any]) -> list[dict[str, Any]]:
    start = state.index + 1
    out = []
    for i, command in enumerate(commands):
        out += apply_batch(state, [command], start + i)
    return out


def route(path: str = "/", job_name: str = "shop") -> dict[str, str]:
    return {"path": path, "job": job_name, "group": "web", "port": "http"}


def test_a_host_and_path_has_one_owner() -> None:
    state = State()
    (first,) = apply(state, {"op": "job.upsert", "job": job("shop", ("a.test", "/", "acme"))})
    assert first["ok"]
    (second,) = apply(state, {"op": "job.upsert", "job": job("thief", ("a.test", "/", "off"))})
    assert not second["ok"] and second["status"] == 409
    assert "job 'shop'" in second["message"] and "thief" not in state.table("jobs")
    ok_path = {"op": "job.upsert", "job": job("api", ("a.test", "/api", "off"))}
    resubmit = {"op": "job.upsert", "job": job("shop", ("a.test", "/", "acme"))}
    assert all(r["ok"] for r in apply(state, ok_path, resubmit))
    taken = {
        "op": "ingress.put",
        "host": "a.test",
        "routes": [route()],
        "tls": "acme",
        "cert": None,
    }
    (refused,) = apply(state, taken)
    assert refused["status"] == 409 and "a.test" not in state.table("ingress")
    # Once the job is gone, the host and path are free.
    apply(state, {"op": "job.delete", "name": "shop"})
    (taken_now,) = apply(state, taken)
    assert taken_now["ok"]


def test_domains_merge_api_entries_and_jobs() -> None:
    state = State()
    apply(
        state,
        {
            "op": "job.upsert",
            "job": job("shop", ("a.test", "/", "off"), ("a.test", "/pay", "acme")),
        },
        {"op": "job.upsert", "job": job("blog", ("b.test", "/", "off"))},
        {"op": "ingress.put", "host": "c.test", "routes": [route()], "tls": "off", "cert": None},
    )
    domains = active_domains(state)
    assert domains["a.test"]["tls"] == "acme"  # one route asks for TLS: the host has it
    assert [r["path"] for r in domains["a.test"]["routes"]] == ["/", "/pay"]
    assert domains["b.test"]["tls"] == "off" and domains["b.test"]["owner"] == "blog"
    assert domains["c.test"]["source"] == "api" and domains["c.test"]["owner"] is None


def test_manual_tls_needs_its_certificate_and_bad_rows_are_refused() -> None:
    state = State()
    for command in (
        {"op": "ingress.put", "host": "m.test", "routes": [route()], "tls": "manual", "cert": None},
        {"op": "ingress.put", "host": "m.test", "routes": [{"path": "/"}], "tls": "off"},
        {"op": "ingress.put", "host": "", "routes": [route()], "tls": "off"},
        {"op": "cert.put", "host": "m.test", "fields": {"key": {"nonce": "plain"}}},
        {"op": "cert.put", "host": "m.test", "fields": {"private": "x"}},
        {"op": "cert.put", "host": "m.test", "fields": {"status": "great"}},
        {"op": "acme.challenge.put", "host": "m.test", "token": "", "key_authorization": "x"},
        {"op": "acme.alpn_challenge.put", "host": "m.test", "cert_pem": "PEM", "key": "plain"},
        {"op": "acme.alpn_challenge.put", "host": "", "cert_pem": "PEM", "key": SEALED},
    ):
        (result,) = apply(state, command)
        assert not result["ok"] and result["status"] == 400, command
    assert not state.table("ingress") and not state.table("certs") and not state.table("acme")


def test_certificates_and_challenges_rows() -> None:
    state = State()
    fields = {"status": "valid", "cert_pem": "PEM", "key": SEALED, "sha256": "ab", "not_after": 9}
    (put,) = apply(state, {"op": "cert.put", "host": "a.test", "fields": fields})
    assert put["ok"] and "key" not in put["cert"]  # an answer never carries the sealed key
    apply(state, {"op": "cert.renew", "host": "a.test"})
    row = state.table("certs")["a.test"]
    assert row["renew_requested"] is True and row["sha256"] == "ab" and row["key"] == SEALED
    account = {"key": SEALED, "url": "https://ca/acct/1", "directory": "https://ca/dir"}
    apply(state, {"op": "acme.account.put", **account})
    later = {**account, "url": "https://ca/acct/2", "only_if_absent": True}
    (kept,) = apply(state, {"op": "acme.account.put", **later})
    assert kept["changed"] is False and state.table("acme")["account"]["url"].endswith("/1")
    apply(
        state,
        {"op": "acme.challenge.put", "host": "a.test", "token": "t1", "key_authorization": "t1.k"},
    )
    assert state.table("acme")["challenge:t1"]["key_authorization"] == "t1.k"
    apply(state, {"op": "acme.challenge.delete", "token": "t1"})
    assert "challenge:t1" not in state.table("acme")


def test_tls_alpn_challenge_rows_are_per_host_with_a_sealed_key() -> None:
    state = State()
    put = {"op": "acme.alpn_challenge.put", "host": "a.test", "cert_pem": "PEM1", "key": SEALED}
    apply(state, put, {**put, "cert_pem": "PEM2"})  # a new order for the host replaces it
    apply(
        state,
        {"op": "acme.challenge.put", "host": "a.test", "token": "t", "key_authorization": "t.k"},
    )
    acme = StateView(state).acme
    assert acme.alpn_challenges() == {"a.test": {"cert_pem": "PEM2", "key": SEALED}}
    assert acme.challenges() == {"t": "t.k"}  # the http-01 answers are apart
    (deleted,) = apply(state, {"op": "acme.alpn_challenge.delete", "host": "a.test"})
    (again,) = apply(state, {"op": "acme.alpn_challenge.delete", "host": "a.test"})
    assert (deleted["changed"], again["changed"]) == (True, False)
    assert StateView(state).acme.alpn_challenges() == {}
