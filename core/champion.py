"""The champion: at most one model per dataset is "in production", set explicitly by a named
person with a reason, with its PASS / VERIFY / BLOCK bands (VERIFY from the team's daily review
capacity, BLOCK from a precision target). Promotions and rollbacks are appended to `champions` (never updated or
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


def check_person_and_reason(person: str, reason: str) -> tuple[str, str]:
    person, reason = (person or "").strip(), (reason or "").strip()
    if not person or len(person) > 80:
        raise RiskdeskError("a promotion needs the name of the person making it (1 to 80 characters)")
    if not reason or len(reason) > MAX_TEXT:
        raise RiskdeskError(f"a promotion needs a reason (1 to {MAX_TEXT} characters)")
    return person, reason


def check_band_settings(capacity_k: int, precision_target: float) -> None:
    """Raise RiskdeskError unless the daily capacity and the precision target are usable."""
    if not 1 <= int(capacity_k) <= 1_000_000:
        raise RiskdeskError("the daily review capacity must be between 1 and 1,000,000")
    if not 0 < float(precision_target) <= 1:
        raise RiskdeskError("the precision target must be above 0 and at most 1")


def derive_bands(store: Store, model_id: str, capacity_k: int = 50, precision_target: float = 0.9) -> dict:
    """PASS / VERIFY / BLOCK thresholds from the model's validation scores: VERIFY where the
    team would get `capacity_k` alerts a day, BLOCK where precision reaches `precision_target`
    (never below VERIFY)."""
    from . import metrics
    check_band_settings(capacity_k, precision_target)
    model = get_model(store, model_id)
    table = store.scalar("SELECT table_name FROM datasets WHERE id = ?", [model["dataset_id"]])
    frame = store.df(f"SELECT CAST(t.timestamp AS DATE) AS day, t.label AS y, s.score FROM model_scores s "
                     f"JOIN {table} t ON s.transaction_id = CAST(t.transaction_id AS VARCHAR) "
                     f"WHERE s.model_id = ? AND s.part = 'valid'", [model_id])
    if frame.empty:
        return {"capacity_k": int(capacity_k), "precision_target": float(precision_target),
                "verify_threshold": model["threshold"], "block_threshold": model["block_threshold"]}
    s, labelled = frame["score"].to_numpy(dtype=float), frame["y"].notna().to_numpy()
    verify = metrics.capacity_threshold(s, frame["day"].to_numpy(), capacity_k)
    block = metrics.precision_threshold(frame["y"][labelled].to_numpy(dtype=int), s[labelled], float(precision_target),
                                        fallback=float(np.quantile(s, 0.999)))
    return {"capacity_k": int(capacity_k), "precision_target": float(precision_target),
            "verify_threshold": verify, "block_threshold": max(block, verify)}


def bands(store: Store, dataset: str) -> dict | None:
    """The current champion's thresholds (None without a champion)."""
    rows = history(store, dataset)
    if not rows:
        return None
    keys = ("capacity_k", "precision_target", "verify_threshold", "block_threshold")
    return {"model_id": rows[0]["model_id"], **{k: rows[0][k] for k in keys}}


def history(store: Store, dataset: str) -> list[dict]:
    """Promotions and rollbacks of a dataset's champion, newest first."""
    ds = get_dataset(store, dataset)
    rows = store.dicts("SELECT id, model_id, action, person, approved_by, reason, changed_at, capacity_k, "
                       "precision_target, verify_threshold, block_threshold FROM champions WHERE dataset_id = ? ORDER BY id DESC", [ds["id"]])
    for r in rows:
        r["at"] = r.pop("changed_at").isoformat(sep=" ", timespec="seconds")
    return rows


def champion(store: Store, dataset: str) -> dict | None:
    """The dataset's champion model (registry entry), or None."""
    rows = history(store, dataset)
    return get_model(store, rows[0]["model_id"]) if rows else None


def _append(store: Store, ds: dict, model_id: str, action: str, person: str, reason: str, thresholds: dict,
            approved_by: str | None) -> dict:
    values = [thresholds[k] for k in ("capacity_k", "precision_target", "verify_threshold", "block_threshold")]
    with store.write() as cur:
        cur.execute("INSERT INTO champions (id, dataset_id, model_id, action, person, reason, changed_at, capacity_k, "
                    "precision_target, verify_threshold, block_threshold, approved_by) "
                    "VALUES (nextval('champion_id_seq'), ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [ds["id"], model_id, action, person, reason, datetime.now(), *values, approved_by])
        store.audit(cur, person, f"champion_{action}", "dataset", ds["id"],
                    {"dataset": ds["name"], "model_id": model_id, "reason": reason, **thresholds,
                     **({"approved_by": approved_by} if approved_by else {})}, model_id=model_id)
    return {"dataset": ds["name"], "model_id": model_id, "action": action, "person": person, "reason": reason,
            "approved_by": approved_by, **thresholds}


def check_promotion(store: Store, dataset: str, model_id: str, person: str, reason: str) -> tuple[dict, str, str]:
    """The dataset, person and reason of a valid promotion of `model_id` (raises RiskdeskError)."""
    person, reason = check_person_and_reason(person, reason)
    ds = get_dataset(store, dataset)
    model = get_model(store, model_id)
    if int(model["dataset_id"]) != int(ds["id"]):
        raise RiskdeskError(f"model {model_id} was trained on another dataset ({model['dataset_name']!r})")
    current = champion(store, dataset)
    if current is not None and current["model_id"] == model_id:
        raise RiskdeskError(f"model {model_id} is already the champion of {dataset!r}")
    return ds, person, reason


def promote(store: Store, dataset: str, model_id: str, person: str, reason: str, capacity_k: int = 50,
            precision_target: float = 0.9, approved_by: str | None = None) -> dict:
    """Make `model_id` the dataset's champion, with bands from its validation scores: VERIFY at
    the daily review capacity, BLOCK at the precision target (stored with the promotion). In the
    app this runs only when a second person approves it (core.approvals)."""
    ds, person, reason = check_promotion(store, dataset, model_id, person, reason)
    return _append(store, ds, model_id, "promote", person, reason,
                   derive_bands(store, model_id, capacity_k, precision_target), approved_by)


def rollback_target(store: Store, dataset: str) -> dict:
    """The champion row a rollback would return to (raises RiskdeskError when there is none)."""
    past = history(store, dataset)
    if not past:
        raise RiskdeskError(f"dataset {dataset!r} has no champion to roll back")
    previous = next((r for r in past[1:] if r["model_id"] != past[0]["model_id"]), None)
    if previous is None:
        raise RiskdeskError(f"dataset {dataset!r} has had only one champion; there is nothing to roll back to")
    get_model(store, previous["model_id"])   # still in the registry
    return previous


def rollback(store: Store, dataset: str, person: str, reason: str, approved_by: str | None = None) -> dict:
    """Give the champion role back to the model that held it before the current one."""
    person, reason = check_person_and_reason(person, reason)
    ds = get_dataset(store, dataset)
    previous = rollback_target(store, dataset)
    return _append(store, ds, previous["model_id"], "rollback", person, reason,
                   {k: previous[k] for k in ("capacity_k", "precision_target", "verify_threshold", "block_threshold")},
                   approved_by)


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
    for k, name in enumerate(("average_precision", "capacity_recall")):
        out[f"{name}_difference"] = float(point[k])
        out[f"{name}_difference_ci"] = ([float(v) for v in np.quantile(draws[:, k], [0.025, 0.975])]
                                        if len(draws) else [None, None])
    out["champion_average_precision"] = metrics.average_precision(y, a)
    out["challenger_average_precision"] = metrics.average_precision(y, b)
    out["enough"] = frauds >= MIN_FRAUDS
    not_worse = point[0] >= 0 and point[1] >= 0
    out["offer"] = bool(out["enough"] and not_worse)
    out["reason"] = ("not worse on both measures" if out["offer"] else
                     f"only {frauds} frauds in the period: too few to tell the models apart" if not out["enough"]
                     else "worse than the champion on average precision or recall at capacity")
    return out


def retrain_challenger(store: Store, dataset: str, actor: str, trials: int = 20, capacity_k: int | None = None,
                       progress=None) -> dict:
    """Train a challenger of the champion's kind and features on the newest labelled data (the
    file's labels, overridden by conclusive review decisions; days without labels left out),
    then compare it with the champion on the challenger's test period, the latest labelled one.
    Returns {"challenger": registry entry, "verdict": compare_with_champion(...)}."""
    from . import models
    from .features import build_features
    report = progress or (lambda f, m: None)
    current = champion(store, dataset)
    if current is None:
        raise RiskdeskError(f"dataset {dataset!r} has no champion to challenge; promote one first")
    config = models.feature_config(current)
    fs = build_features(store, dataset, config, progress=lambda f, m: report(0.05 * f, m))
    split = models.labelled_split(store, fs)
    imbalance = (current.get("params") or {}).get("imbalance")      # the strategy the champion settled on
    result = models.train(store, dataset, [current["kind"]], trials=trials, split=split, actor=actor,
                          imbalance=imbalance if imbalance in models.IMBALANCE else "search",
                          feature_config=config, progress=lambda f, m: report(0.05 + 0.85 * f, m))
    if not result["models"]:
        raise RiskdeskError(f"no {current['kind']} model could be trained on the labelled data")
    challenger = result["models"][0]
    report(0.92, "comparing with the champion")
    k = capacity_k or (bands(store, dataset) or {}).get("capacity_k") or 50
    verdict = compare_with_champion(store, dataset, challenger["model_id"], *split.test, capacity_k=int(k))
    with store.write() as cur:
        store.audit(cur, actor, "retrain_challenger", "dataset", get_dataset(store, dataset)["id"],
                    {"champion": current["model_id"], "challenger": challenger["model_id"],
                     "split": split.public(), "offer": verdict["offer"], "labels": challenger["params"].get("labels")},
                    model_id=challenger["model_id"])
    report(1.0, "done")
    return {"challenger": challenger, "verdict": verdict}
