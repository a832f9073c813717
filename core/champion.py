"""The champion: at most one model per dataset is "in production", set explicitly by a named
person with a reason. Promotions and rollbacks are appended to `champions` (never updated or
deleted) and to the audit log; the newest row names the current champion.
"""
from __future__ import annotations

from datetime import datetime

from .datasets import get_dataset
from .errors import RiskdeskError
from .models import get_model
from .store import Store

MAX_TEXT = 500


def _check_person_and_reason(person: str, reason: str) -> tuple[str, str]:
    person, reason = (person or "").strip(), (reason or "").strip()
    if not person or len(person) > 80:
        raise RiskdeskError("a promotion needs the name of the person making it (1 to 80 characters)")
    if not reason or len(reason) > MAX_TEXT:
        raise RiskdeskError(f"a promotion needs a reason (1 to {MAX_TEXT} characters)")
    return person, reason


def history(store: Store, dataset: str) -> list[dict]:
    """Promotions and rollbacks of a dataset's champion, newest first."""
    ds = get_dataset(store, dataset)
    rows = store.dicts("SELECT id, model_id, action, person, reason, changed_at FROM champions WHERE dataset_id = ? "
                       "ORDER BY id DESC", [ds["id"]])
    for r in rows:
        r["at"] = r.pop("changed_at").isoformat(sep=" ", timespec="seconds")
    return rows


def champion(store: Store, dataset: str) -> dict | None:
    """The dataset's champion model (registry entry), or None."""
    rows = history(store, dataset)
    return get_model(store, rows[0]["model_id"]) if rows else None


def _append(store: Store, ds: dict, model_id: str, action: str, person: str, reason: str) -> dict:
    with store.write() as cur:
        cur.execute("INSERT INTO champions VALUES (nextval('champion_id_seq'), ?, ?, ?, ?, ?, ?)",
                    [ds["id"], model_id, action, person, reason, datetime.now()])
        store.audit(cur, person, f"champion_{action}", "dataset", ds["id"],
                    {"dataset": ds["name"], "model_id": model_id, "reason": reason}, model_id=model_id)
    return {"dataset": ds["name"], "model_id": model_id, "action": action, "person": person, "reason": reason}


def promote(store: Store, dataset: str, model_id: str, person: str, reason: str) -> dict:
    """Make `model_id` the dataset's champion."""
    person, reason = _check_person_and_reason(person, reason)
    ds = get_dataset(store, dataset)
    model = get_model(store, model_id)
    if int(model["dataset_id"]) != int(ds["id"]):
        raise RiskdeskError(f"model {model_id} was trained on another dataset ({model['dataset_name']!r})")
    current = champion(store, dataset)
    if current is not None and current["model_id"] == model_id:
        raise RiskdeskError(f"model {model_id} is already the champion of {dataset!r}")
    return _append(store, ds, model_id, "promote", person, reason)


def rollback(store: Store, dataset: str, person: str, reason: str) -> dict:
    """Give the champion role back to the model that held it before the current one."""
    person, reason = _check_person_and_reason(person, reason)
    ds = get_dataset(store, dataset)
    held = [r["model_id"] for r in history(store, dataset)]
    if not held:
        raise RiskdeskError(f"dataset {dataset!r} has no champion to roll back")
    previous = next((m for m in held[1:] if m != held[0]), None)
    if previous is None:
        raise RiskdeskError(f"dataset {dataset!r} has had only one champion; there is nothing to roll back to")
    get_model(store, previous)   # still in the registry
    return _append(store, ds, previous, "rollback", person, reason)
