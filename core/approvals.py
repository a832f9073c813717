"""Maker-checker: a rule change, a champion promotion or a rollback asked for by one person takes
effect only when a second person, whose role allows it, approves it.

A request stores the checked change (change_requests); its review (change_reviews) approves,
rejects or, by its maker, withdraws it. Both tables are append-only and every step is in the
audit log. Approving applies the change through the same functions as before (rules.save_rule,
champion.promote / rollback), naming the maker as author and the checker as approver. A rule
change made against a version that has since changed is refused, so nobody approves a change
they have not seen. This module never imports streamlit.
"""
from __future__ import annotations

import json
import threading
from datetime import datetime

from . import champion, people, rules
from .datasets import get_dataset
from .errors import NotFound, RiskdeskError
from .store import Store

PERMISSION = {"rule": "rules", "promote": "promote", "rollback": "promote"}
AUDIT_ACTION = {"approved": "approve_change", "rejected": "reject_change", "withdrawn": "withdraw_change"}
_review_lock = threading.Lock()          # one review at a time: a request is applied at most once


def _person(store: Store, name: str, kind: str) -> str:
    """The account name of someone whose role allows this kind of change."""
    user = people.get_user(store, name)
    if user is None:
        raise people.NotSignedIn(f"no account named {name!r}")
    people.require(user, PERMISSION[kind])
    return user["name"]


def _request(store: Store, kind: str, maker: str, payload: dict, dataset_id: int | None = None,
             subject: str | None = None, base_version: int | None = None) -> dict:
    with store.write() as cur:
        request_id = cur.execute("SELECT nextval('change_request_seq')").fetchone()[0]
        cur.execute("INSERT INTO change_requests VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [request_id, kind, dataset_id, subject, base_version, json.dumps(payload), maker, datetime.now()])
        store.audit(cur, maker, "request_change", "change_request", request_id,
                    {"kind": kind, "subject": subject, **payload})
    return get_request(store, request_id)


def request_rule_change(store: Store, maker: str, name: str, expression: str, action: str, score: float,
                        enabled: bool = True, rule_id: str | None = None, fs: dict | None = None) -> dict:
    """Ask for a new rule (rule_id None) or a new version of one; applied on approval."""
    maker = _person(store, maker, "rule")
    payload = rules.check_rule(name, expression, action, score, enabled, fs)
    base = None
    if rule_id:
        base = rules.current_version(store, rule_id)
        if base is None:
            raise NotFound(f"no rule {rule_id!r}")
    return _request(store, "rule", maker, payload, subject=rule_id, base_version=base)


def request_promotion(store: Store, maker: str, dataset: str, model_id: str, reason: str,
                      capacity_k: int = 50, precision_target: float = 0.9) -> dict:
    """Ask for `model_id` to become the dataset's champion; applied (bands derived) on approval."""
    maker = _person(store, maker, "promote")
    ds, _, reason = champion.check_promotion(store, dataset, model_id, maker, reason)
    champion.check_band_settings(capacity_k, precision_target)
    return _request(store, "promote", maker, {"reason": reason, "capacity_k": int(capacity_k),
                                              "precision_target": float(precision_target)},
                    dataset_id=ds["id"], subject=model_id)


def request_rollback(store: Store, maker: str, dataset: str, reason: str) -> dict:
    """Ask for the champion role to go back to the previous champion; applied on approval."""
    maker = _person(store, maker, "rollback")
    ds = get_dataset(store, dataset)
    _, reason = champion.check_person_and_reason(maker, reason)
    champion.rollback_target(store, dataset)
    return _request(store, "rollback", maker, {"reason": reason}, dataset_id=ds["id"],
                    subject=champion.champion(store, dataset)["model_id"])


_SELECT = """
    SELECT r.id, r.kind, r.dataset_id, d.name AS dataset, r.subject, r.base_version, r.payload, r.requested_by,
           r.requested_at, coalesce(v.verdict, 'pending') AS status, v.reviewer, v.reviewed_at, v.note, v.result
    FROM change_requests r LEFT JOIN change_reviews v ON v.request_id = r.id
    LEFT JOIN datasets d ON d.id = r.dataset_id"""


def _decoded(row: dict) -> dict:
    row["payload"] = json.loads(row["payload"])
    row["result"] = json.loads(row["result"]) if row["result"] else None
    return row


def get_request(store: Store, request_id: int) -> dict:
    rows = store.dicts(_SELECT + " WHERE r.id = ?", [int(request_id)])
    if not rows:
        raise NotFound(f"no change request {request_id}")
    return _decoded(rows[0])


def list_requests(store: Store, kinds: tuple[str, ...] = tuple(PERMISSION), dataset_id: int | None = None,
                  status: str | None = None, limit: int = 200) -> list[dict]:
    """Change requests, newest first: of some kinds, one dataset (None: any) and one status."""
    where, params = [f"r.kind IN ({', '.join('?' * len(kinds))})"], list(kinds)
    if dataset_id is not None:
        where.append("r.dataset_id = ?")
        params.append(int(dataset_id))
    if status is not None:
        where.append("coalesce(v.verdict, 'pending') = ?")
        params.append(status)
    rows = store.dicts(_SELECT + f" WHERE {' AND '.join(where)} ORDER BY r.id DESC LIMIT {int(limit)}", params)
    return [_decoded(r) for r in rows]


def _apply(store: Store, request: dict, checker: str) -> dict:
    p, maker = request["payload"], request["requested_by"]
    if request["kind"] == "rule":
        if request["subject"] and rules.current_version(store, request["subject"]) != request["base_version"]:
            raise RiskdeskError(f"rule {request['subject']} has changed since this request (it was version "
                                f"{request['base_version']}); reject it and ask for the change again")
        return rules.save_rule(store, p["name"], p["expression"], p["action"], p["score"], p["enabled"],
                               rule_id=request["subject"], author=maker, approved_by=checker)
    if request["kind"] == "promote":
        return champion.promote(store, request["dataset"], request["subject"], maker, p["reason"], p["capacity_k"],
                                p["precision_target"], approved_by=checker)
    current = champion.champion(store, request["dataset"])
    if current is None or current["model_id"] != request["subject"]:
        raise RiskdeskError(f"the champion of {request['dataset']!r} has changed since this rollback was asked for; "
                            "reject it and ask again")
    return champion.rollback(store, request["dataset"], maker, p["reason"], approved_by=checker)


def _review(store: Store, request_id: int, reviewer: str, verdict: str, note: str, result: dict | None) -> dict:
    with store.write() as cur:
        cur.execute("INSERT INTO change_reviews VALUES (?, ?, ?, ?, ?, ?)",
                    [int(request_id), verdict, reviewer, note or None, datetime.now(),
                     json.dumps(result, default=str) if result is not None else None])
        store.audit(cur, reviewer, AUDIT_ACTION[verdict], "change_request",
                    request_id, {"note": note, **(result or {})})
    return get_request(store, request_id)


def _pending(store: Store, request_id: int) -> dict:
    request = get_request(store, request_id)
    if request["status"] != "pending":
        raise RiskdeskError(f"change request {request_id} was already {request['status']} by {request['reviewer']}")
    return request


def approve(store: Store, request_id: int, checker: str, note: str = "") -> dict:
    """Apply a pending change, approved by a second person whose role allows it."""
    with _review_lock:
        request = _pending(store, request_id)
        if checker == request["requested_by"]:
            raise people.NotAllowed("a change needs a second person: its maker cannot approve it")
        checker = _person(store, checker, request["kind"])
        return _review(store, request_id, checker, "approved", note, _apply(store, request, checker))


def reject(store: Store, request_id: int, reviewer: str, note: str = "") -> dict:
    """Turn a pending change down (a second person) or withdraw it (its maker); nothing is applied."""
    with _review_lock:
        request = _pending(store, request_id)
        if reviewer == request["requested_by"]:
            return _review(store, request_id, reviewer, "withdrawn", note, None)
        return _review(store, request_id, _person(store, reviewer, request["kind"]), "rejected", note, None)
