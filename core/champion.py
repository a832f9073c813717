"""The champion: at most one model per dataset is "in production", set explicitly by a named
person with a reason. Promotions and rollbacks are appended to `champions` (never updated or
deleted) and to the audit log; the newest row names the current champion.
"""
from __future__ import annotations

from datetime import datetime

import numpy as np

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


MIN_FRAUDS = 30          # fewer frauds than this in the period: the comparison says the evidence is thin


def _paired_scores(store: Store, champion_id: str, challenger_id: str, period: tuple):
    """Both models' scores on the same labelled transactions of the period (labels from the
    file, overridden by conclusive review decisions): DataFrame day, y, a, b."""
    from .cases import ensure_scored
    from .labels import label_sql
    champion_model = get_model(store, champion_id)
    table = store.scalar("SELECT table_name FROM datasets WHERE id = ?", [champion_model["dataset_id"]])
    for model_id in (champion_id, challenger_id):
        ensure_scored(store, model_id)
    join, params = label_sql(champion_model["dataset_id"])
    return store.df(f"""
        SELECT CAST(t.timestamp AS DATE) AS day, coalesce(reviewed_label, t.label) AS y, a.score AS a, b.score AS b
        FROM (SELECT * FROM {table} {join}) t
        JOIN model_scores a ON a.model_id = ? AND a.part = 'all' AND a.transaction_id = CAST(t.transaction_id AS VARCHAR)
        JOIN model_scores b ON b.model_id = ? AND b.part = 'all' AND b.transaction_id = CAST(t.transaction_id AS VARCHAR)
        WHERE coalesce(reviewed_label, t.label) IS NOT NULL AND CAST(t.timestamp AS DATE) BETWEEN ? AND ?
        ORDER BY t.timestamp, t.transaction_id""", [*params, champion_id, challenger_id, *period])


def compare_with_champion(store: Store, dataset: str, challenger_id: str, start=None, end=None,
                          capacity_k: int = 50, resamples: int = 200, seed: int = 0) -> dict:
    """The challenger against the champion on the same labelled transactions of the latest
    period (default: the challenger's test period): average precision and recall at the daily
    review capacity, each with a paired bootstrap 95% interval of the difference (resampling
    whole days, so that capacity per day keeps its meaning). Promotion is offered only when the
    challenger is not worse (both differences' point estimates ≥ 0) and the evidence is enough
    (at least MIN_FRAUDS frauds)."""
    from . import metrics
    current = champion(store, dataset)
    if current is None:
        raise RiskdeskError(f"dataset {dataset!r} has no champion to compare with; promote one first")
    challenger = get_model(store, challenger_id)
    if challenger_id == current["model_id"]:
        raise RiskdeskError(f"model {challenger_id} is the champion itself")
    period = (str(start), str(end)) if start and end else tuple(challenger["split"]["test"])
    frame = _paired_scores(store, current["model_id"], challenger_id, period)
    y, days = frame["y"].to_numpy(dtype=int), frame["day"].to_numpy()
    frauds = int(y.sum())
    out = {"dataset": dataset, "champion": current["model_id"], "challenger": challenger_id,
           "period": {"start": period[0], "end": period[1]}, "transactions": int(len(y)), "frauds": frauds,
           "capacity_k": capacity_k}
    if frauds == 0 or frauds == len(y):
        out.update(enough=False, offer=False, reason="the period has no fraud (or nothing but fraud) to compare on")
        return out

    def measures(yy, aa, bb, dd):
        ap = metrics.average_precision(yy, bb) - metrics.average_precision(yy, aa)
        rec = (metrics.at_daily_capacity(yy, bb, dd, capacity_k)["recall"]
               - metrics.at_daily_capacity(yy, aa, dd, capacity_k)["recall"])
        return ap, rec

    a, b = frame["a"].to_numpy(dtype=float), frame["b"].to_numpy(dtype=float)
    point = measures(y, a, b, days)
    unique_days = np.unique(days)
    rows_of = {d: np.flatnonzero(days == d) for d in unique_days}
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        picked = rng.choice(unique_days, len(unique_days), replace=True)
        idx = np.concatenate([rows_of[d] for d in picked])
        block = np.concatenate([np.full(len(rows_of[d]), j) for j, d in enumerate(picked)])
        if 0 < y[idx].sum() < len(idx):
            draws.append(measures(y[idx], a[idx], b[idx], block))
    draws = np.array(draws)
    ci = lambda k: [float(v) for v in np.quantile(draws[:, k], [0.025, 0.975])] if len(draws) else [None, None]
    for k, name in enumerate(("average_precision", "capacity_recall")):
        out[f"{name}_difference"] = float(point[k])
        out[f"{name}_difference_ci"] = ci(k)
    out["champion_average_precision"] = metrics.average_precision(y, a)
    out["challenger_average_precision"] = metrics.average_precision(y, b)
    out["enough"] = frauds >= MIN_FRAUDS
    not_worse = point[0] >= 0 and point[1] >= 0
    out["offer"] = bool(out["enough"] and not_worse)
    out["reason"] = ("not worse on both measures" if out["offer"] else
                     f"only {frauds} frauds in the period: too few to tell the models apart" if not out["enough"]
                     else "worse than the champion on average precision or recall at capacity")
    return out
