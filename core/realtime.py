"""Scoring transactions that are not stored: a REST request's rows, point in time against the
dataset's history.

The request's rows join the stored rows only inside one query: their features come from the
same SQL as a batch's (core.features, the rows at or after the earliest request time that are
request rows), so a transaction scores exactly as it would after being appended, and nothing
is written. Ids already in the dataset, unknown fields, wrong types and oversized requests are
refused with a message naming the transaction and the field.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

from . import explain, metrics, models
from . import rules as rules_mod
from .champion import bands, champion
from .datasets import get_dataset
from .errors import RiskdeskError
from .features import definition, feature_sql
from .labels import known_labels_sql
from .store import Store

MAX_TRANSACTIONS = 1000
MAX_TEXT = 200
TEXT_ROLES = ("transaction_id", "customer_id", "channel", "transaction_type", "device_id", "counterparty_id")
NUMBER_ROLES = ("amount", "balance_before", "balance_after")


def default_model(store: Store, dataset: str) -> dict:
    """The dataset's champion, else its newest tuned model, else its newest explainable one."""
    current = champion(store, dataset)
    if current is not None:
        return current
    registry = [m for m in models.list_models(store, dataset) if m["kind"] in explain.EXPLAINABLE]
    tuned = [m for m in registry if m["kind"] == "tuned"]
    if not registry:
        raise RiskdeskError(f"dataset {dataset!r} has no model to score with; train one first")
    return (tuned or registry)[0]


def _timestamp(value, where: str) -> datetime:
    if not isinstance(value, str):
        raise RiskdeskError(f"{where}: timestamp must be a string like 2024-04-30 13:05:00")
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RiskdeskError(f"{where}: timestamp {value[:40]!r} is not a date and time like 2024-04-30 13:05:00") from None
    if ts.tzinfo is not None:
        raise RiskdeskError(f"{where}: timestamps are naive, in the data's own clock (no time zone)")
    return ts


def _rows(ds: dict, transactions) -> list[dict]:
    """The request's transactions as rows of the dataset's table, checked."""
    if not isinstance(transactions, list) or not transactions:
        raise RiskdeskError("transactions must be a non-empty list")
    if len(transactions) > MAX_TRANSACTIONS:
        raise RiskdeskError(f"at most {MAX_TRANSACTIONS:,} transactions per request (got {len(transactions):,})")
    roles = set(ds["mapping"]) - {"label"}
    extras = {e["source"]: e for e in ds["extras"]}
    rows, seen = [], set()
    for n, tx in enumerate(transactions):
        if not isinstance(tx, dict):
            raise RiskdeskError(f"transactions[{n}] must be an object")
        tid = tx.get("transaction_id")
        where = f"transaction {tid!r}" if isinstance(tid, str) else f"transactions[{n}]"
        unknown = sorted(set(tx) - roles - set(extras) - {"transaction_id", "timestamp", "amount"})
        if unknown:
            raise RiskdeskError(f"{where}: unknown field {unknown[0]!r} (this dataset's roles: {', '.join(sorted(roles))})")
        row = {"timestamp": _timestamp(tx.get("timestamp"), where)}
        for role in TEXT_ROLES:
            value = tx.get(role)
            if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT):
                raise RiskdeskError(f"{where}: {role} must be a non-empty string of at most {MAX_TEXT} characters")
            row[role] = value
        for role in NUMBER_ROLES:
            value = tx.get(role)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or not math.isfinite(value)):
                raise RiskdeskError(f"{where}: {role} must be a number")
            row[role] = None if value is None else float(value)
        if row["transaction_id"] is None or row["amount"] is None:
            raise RiskdeskError(f"{where}: transaction_id and amount are required")
        if row["transaction_id"] in seen:
            raise RiskdeskError(f"{where}: the id appears twice in the request")
        seen.add(row["transaction_id"])
        for source, e in extras.items():
            value = tx.get(source)
            if isinstance(value, bool) or (value is not None and not isinstance(value, (str, int, float))):
                raise RiskdeskError(f"{where}: {source} must be a string or a number")
            row[e["column"]] = value
        rows.append(row)
    return rows


def _near_sql(table: str, ds: dict, d) -> str:
    """The stored rows a request's rows can see: all of their customers' (windows and
    all-history carry-ins), and their counterparties' and devices' within the longest window
    (one bound parameter per such role). Computing over these alone gives the same features
    as over the whole table, in a fraction of the time."""
    near = []
    if "customer_id" in d.keys:
        near += ["customer_id IN (SELECT customer_id FROM _request_rows)",
                 "customer_id IS NULL AND EXISTS (SELECT 1 FROM _request_rows WHERE customer_id IS NULL)"]
    near += [f"({k} IN (SELECT {k} FROM _request_rows) AND timestamp >= ?)" for k in sorted(d.keys - {"customer_id"})]
    return f"SELECT * FROM {table} WHERE " + (" OR ".join(f"({c})" for c in near) or "FALSE")


def score_transactions(store: Store, dataset: str, transactions, model_id: str | None = None,
                       lang: str = "en") -> dict:
    """Score transactions that are not stored, point in time against the dataset's history:
    {"model_id", "results": [{"transaction_id", "score", "decision", "reasons", "rules_fired"}]}.
    The model defaults to the champion (else the newest tuned model)."""
    import pandas as pd
    ds = get_dataset(store, dataset)
    model = models.get_model(store, model_id) if model_id else default_model(store, dataset)
    if model["dataset_id"] != ds["id"]:
        raise RiskdeskError(f"model {model['model_id']} was trained on another dataset than {dataset!r}")
    if model["kind"] not in explain.EXPLAINABLE:
        raise RiskdeskError(f"model {model['model_id']} ({model['kind']}) does not score single transactions")
    rows = _rows(ds, transactions)
    lm = explain.load(store, model["model_id"])
    table = ds["table"]
    cur = store.cursor()
    try:
        columns = [r[0] for r in cur.execute(f"DESCRIBE {table}").fetchall()]
        ids = [r["transaction_id"] for r in rows]
        known = cur.execute(f"SELECT CAST(transaction_id AS VARCHAR) FROM {table} WHERE CAST(transaction_id AS VARCHAR) "
                            f"IN (SELECT unnest(CAST(? AS VARCHAR[])))", [ids]).fetchall()
        if known:
            raise RiskdeskError(f"transaction {known[0][0]!r} is already in dataset {dataset!r}: "
                                f"fetch its case instead of scoring it again")
        frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows], columns=columns)
        cur.register("_request_rows", frame)
        d = definition(models.feature_config(model), ds, store)
        first = min(r["timestamp"] for r in rows)
        cur.execute(f"CREATE OR REPLACE TEMP TABLE _near AS {_near_sql(table, ds, d)} UNION ALL BY NAME "
                    f"SELECT * REPLACE (CAST(timestamp AS TIMESTAMP) AS timestamp) FROM _request_rows",
                    [first - timedelta(seconds=d.lookback)] * (len(d.keys) - ("customer_id" in d.keys)))
        sql = feature_sql("_near", d, first,
                          only="CAST(transaction_id AS VARCHAR) IN (SELECT transaction_id FROM _request_rows)",
                          known_labels=known_labels_sql("_near", ds["id"]), grouped=False)
        features = cur.execute(sql).df()
        features["transaction_id"] = features["transaction_id"].astype(str)
        features = features.set_index("transaction_id").loc[ids].reset_index()
        cur.register("_request_features", features)
        hits = rules_mod.hit_sql(rules_mod.current_rules(store, include_disabled=False), lm.fs)
        (fired_sql, fired_params), (block_sql, block_params) = hits["fired"], hits["block"]
        fired = cur.execute(f"SELECT {fired_sql}, {block_sql} FROM _request_features", fired_params + block_params).fetchall()
    finally:
        try:
            cur.execute("DROP TABLE IF EXISTS _near")
        finally:
            cur.close()
    X = features[lm.names].copy()
    numeric = {f["name"] for f in lm.fs["catalogue"] if f["kind"] == "numeric"}
    for n in lm.names:
        if n in numeric:
            X[n] = X[n].astype("float64")
    X = models.encode_categories(X, lm.categories)
    values, base, margin = explain.contributions(lm, X)
    scores = explain.probability(margin)
    current = champion(store, dataset)          # the champion decides with its own bands
    thresholds = bands(store, dataset) if current and current["model_id"] == model["model_id"] else None
    verify = thresholds["verify_threshold"] if thresholds else model["threshold"]
    block = thresholds["block_threshold"] if thresholds else model["block_threshold"]
    decisions = metrics.decide(scores, verify, block, [bool(b) for _, b in fired])
    catalogue = {f["name"]: f for f in lm.fs["catalogue"]}
    by_id = {r["rule_id"]: r for r in rules_mod.current_rules(store, include_disabled=False)}
    results = []
    for i, tid in enumerate(ids):
        contribs = explain.ranked_contributions(lm.names, values[i], features.iloc[i])
        results.append({"transaction_id": tid, "score": float(scores[i]), "decision": str(decisions[i]),
                        "reasons": explain.reasons(contribs, margin[i] >= base, catalogue, lang),
                        "rules_fired": [{k: by_id[r][k] for k in ("rule_id", "name", "action", "score")}
                                        for r in (fired[i][0] or [])]})
    return {"model_id": model["model_id"], "dataset": dataset, "results": results}
