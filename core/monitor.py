"""Monitoring a model on a period against a reference period (by default the model's training
period): PSI of every feature and of the score (10 reference-quantile bins, bands 0.1 and
0.25), alerts per day against the daily review capacity, missing-value and new-category
rates, rule hit rates by day, and label-delayed performance by week once labels arrive.

Everything is aggregated in DuckDB over the dataset's feature table and the model's stored
scores (core.cases.ensure_scored); nothing here retrains or changes stored data except
scoring the dataset once.
"""
from __future__ import annotations

from datetime import date

import numpy as np

from . import metrics
from .errors import RiskdeskError
from .explore import bins_sql, psi, psi_band
from .features import build_features
from .models import feature_config, get_model, model_dataset
from .store import Store, quote_ident


def _period(start, end, what: str) -> tuple[str, str]:
    try:
        s, e = date.fromisoformat(str(start)), date.fromisoformat(str(end))
    except ValueError:
        raise RiskdeskError(f"the {what} period needs dates like 2024-01-31 (got {start} .. {end})") from None
    if e < s:
        raise RiskdeskError(f"the {what} period ends before it starts ({start} .. {end})")
    return str(s), str(e)


def _scores_sql(fs: dict) -> str:
    return (f"SELECT f.*, s.score FROM {fs['table']} f JOIN model_scores s "
            f"ON s.transaction_id = CAST(f.transaction_id AS VARCHAR) AND s.model_id = ? AND s.part = 'all'")


def score_psi(store: Store, fs: dict, model_id: str, reference: tuple, current: tuple) -> float:
    """PSI of the model's score, on ten bins cut at the reference period's deciles."""
    within = "CAST(timestamp AS DATE) BETWEEN ? AND ?"
    base = _scores_sql(fs)
    cuts = store.scalar(f"SELECT quantile_cont(score, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) "
                        f"FROM ({base}) WHERE {within}", [model_id, *reference]) or []
    cuts = sorted(set(c for c in cuts if c is not None))
    case = bins_sql("score", cuts, [str(i) for i in range(len(cuts) + 1)], "-1")
    rows = store.rows(f"""
        WITH a AS (SELECT {case} AS bin, count(*) AS n FROM ({base}) WHERE {within} GROUP BY 1),
             b AS (SELECT {case} AS bin, count(*) AS n FROM ({base}) WHERE {within} GROUP BY 1)
        SELECT coalesce(a.bin, b.bin), coalesce(a.n, 0), coalesce(b.n, 0) FROM a FULL JOIN b ON a.bin = b.bin""",
                      [model_id, *reference, model_id, *current])
    na, nb = sum(r[1] for r in rows), sum(r[2] for r in rows)
    if not na or not nb:
        raise RiskdeskError("each period must contain scored transactions")
    pa = np.clip(np.array([r[1] for r in rows]) / na, 1e-4, None)
    pb = np.clip(np.array([r[2] for r in rows]) / nb, 1e-4, None)
    return float(((pb - pa) * np.log(pb / pa)).sum())


def alerts_by_day(store: Store, fs: dict, model: dict, current: tuple, capacity_k: int) -> list[dict]:
    """Per day of the period: transactions, alerts (score at or above the verify threshold) and
    the capacity, so alert volume can be read against what the team can review."""
    rows = store.rows(f"""
        SELECT CAST(timestamp AS DATE) AS day, count(*), count(*) FILTER (WHERE score >= ?)
        FROM ({_scores_sql(fs)}) WHERE CAST(timestamp AS DATE) BETWEEN ? AND ? GROUP BY 1 ORDER BY 1""",
                      [float(model["threshold"]), model["model_id"], *current])
    return [{"day": str(d), "transactions": int(n), "alerts": int(a), "capacity": int(capacity_k),
             "over_capacity": int(a) > capacity_k} for d, n, a in rows]


def missing_and_new(store: Store, fs: dict, names: list[str], reference: tuple, current: tuple) -> list[dict]:
    """Missing-value rate of each feature in both periods, and for categorical features the
    share of current rows whose category never occurred in the reference period."""
    table, within = fs["table"], "CAST(timestamp AS DATE) BETWEEN ? AND ?"
    kinds = {f["name"]: f["kind"] for f in fs["catalogue"]}
    miss = ", ".join(f"avg(CAST({quote_ident(n)} IS NULL AS DOUBLE))" for n in names)
    ref = store.rows(f"SELECT {miss} FROM {table} WHERE {within}", list(reference))[0]
    cur = store.rows(f"SELECT {miss} FROM {table} WHERE {within}", list(current))[0]
    out = []
    for n, r, c in zip(names, ref, cur):
        entry = {"feature": n, "missing_reference": r, "missing_current": c}
        if kinds.get(n) == "categorical":
            col = quote_ident(n)
            entry["new_category_share"] = store.scalar(
                f"SELECT avg(CAST({col} NOT IN (SELECT DISTINCT {col} FROM {table} WHERE {within} AND {col} IS NOT NULL) "
                f"AS DOUBLE)) FROM {table} WHERE {within} AND {col} IS NOT NULL", [*reference, *current])
        out.append(entry)
    return out


def rule_hits_by_day(store: Store, fs: dict, current: tuple) -> list[dict]:
    """Hit rate of each enabled (applicable) rule per day of the period."""
    from . import rules as rules_mod
    active = rules_mod.applicable(rules_mod.current_rules(store, include_disabled=False), fs)[0]
    compiled = rules_mod.conditions(active, fs)
    if not compiled:
        return []
    rates = ", ".join(f"avg(CAST({sql} AS DOUBLE))" for _, sql, _ in compiled)
    rows = store.rows(f"SELECT CAST(timestamp AS DATE) AS day, {rates} FROM {fs['table']} "
                      "WHERE CAST(timestamp AS DATE) BETWEEN ? AND ? GROUP BY 1 ORDER BY 1",
                      [p for _, _, ps in compiled for p in ps] + list(current))
    return [{"day": str(day), **{r["rule_id"]: float(rate) for (r, _, _), rate in zip(compiled, rates)}}
            for day, *rates in rows]


def performance_by_week(store: Store, fs: dict, model: dict, current: tuple, capacity_k: int) -> list[dict]:
    """Average precision and precision at the daily capacity per week, on the rows whose labels
    (or conclusive review decisions) have arrived."""
    from .labels import label_sql
    join, join_params = label_sql(fs["dataset_id"])
    frame = store.df(f"""
        SELECT date_trunc('week', timestamp) AS week, CAST(timestamp AS DATE) AS day, score,
               coalesce(reviewed_label, label) AS y
        FROM ({_scores_sql(fs)}) {join}
        WHERE CAST(timestamp AS DATE) BETWEEN ? AND ? AND coalesce(reviewed_label, label) IS NOT NULL""",
                     [model["model_id"], *join_params, *current])
    out = []
    for week, part in frame.groupby("week"):
        y, s = part["y"].to_numpy(dtype=int), part["score"].to_numpy(dtype=float)
        entry = {"week": str(week.date()), "labelled": int(len(y)), "frauds": int(y.sum())}
        if 0 < y.sum() < len(y):
            entry["average_precision"] = metrics.average_precision(y, s)
            entry["capacity_precision"] = metrics.at_daily_capacity(y, s, part["day"].to_numpy(), capacity_k)["precision"]
        out.append(entry)
    return out


def report(store: Store, model_id: str, start, end, reference_start=None, reference_end=None,
           dataset: str | None = None, capacity_k: int = 50, progress=None) -> dict:
    """The monitoring report of a model on [start, end] against the reference period (default:
    the model's training period), in the shape of `python -m core monitor --json`."""
    from .cases import ensure_scored
    model = get_model(store, model_id)
    if model["kind"] == "rules":
        raise RiskdeskError("monitoring needs a scoring model, not the rule set")
    ds = model_dataset(store, model, dataset)
    if bool(reference_start) != bool(reference_end):
        raise RiskdeskError("give both --reference-start and --reference-end, or neither")
    reference = _period(reference_start or model["split"]["train"][0],
                        reference_end or model["split"]["train"][1], "reference")
    current = _period(start, end, "current")
    fs = build_features(store, ds["name"], feature_config(model), progress)
    ensure_scored(store, model_id, progress)
    names = [n for n in model["features"] if n in {f["name"] for f in fs["catalogue"]}]
    drift = psi(store, fs, reference, current, names)
    value = score_psi(store, fs, model_id, reference, current)
    return {"dataset": ds["name"], "model_id": model_id,
            "reference": {"start": reference[0], "end": reference[1]},
            "current": {"start": current[0], "end": current[1]},
            "score_psi": value, "score_band": psi_band(value),
            "features": drift.to_dict("records"),
            "alerts": alerts_by_day(store, fs, model, current, capacity_k),
            "missing": missing_and_new(store, fs, names, reference, current),
            "rule_hits": rule_hits_by_day(store, fs, current),
            "performance": performance_by_week(store, fs, model, current, capacity_k)}


def period_distribution(store: Store, model_id: str, feature: str, reference: tuple, current: tuple,
                        dataset: str | None = None):
    """A feature's (or the score's) share per bin in the reference and the current period, on
    the reference deciles (categories for categorical features): DataFrame bin, period, share."""
    model = get_model(store, model_id)
    ds = model_dataset(store, model, dataset)
    fs = build_features(store, ds["name"], feature_config(model))
    kinds = {f["name"]: f["kind"] for f in fs["catalogue"]}
    if feature != "score" and feature not in kinds:
        raise RiskdeskError(f"no feature {feature!r} in this model's feature set")
    base = _scores_sql(fs)
    col = "score" if feature == "score" else quote_ident(feature)
    within = "CAST(timestamp AS DATE) BETWEEN ? AND ?"
    if kinds.get(feature) == "categorical":
        label = f"coalesce(CAST({col} AS VARCHAR), '(missing)')"
    else:
        cuts = store.scalar(f"SELECT quantile_cont({col}, [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]) "
                            f"FROM ({base}) WHERE {within}", [model_id, *reference]) or []
        cuts = sorted(set(c for c in cuts if c is not None))
        bounds = [f"≤ {c:.4g}" for c in cuts] + [f"> {cuts[-1]:.4g}" if cuts else "all"]
        label = bins_sql(col, cuts, [f"'{i:02d} {bound}'" for i, bound in enumerate(bounds)], "'(missing)'")
    return store.df(f"""
        SELECT bin, period, n / sum(n) OVER (PARTITION BY period) AS share FROM (
            SELECT {label} AS bin, 'reference' AS period, count(*) AS n FROM ({base}) WHERE {within} GROUP BY 1
            UNION ALL
            SELECT {label}, 'current', count(*) FROM ({base}) WHERE {within} GROUP BY 1)
        ORDER BY bin, period""", [model_id, *reference, model_id, *current])
