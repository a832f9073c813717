"""Scoring transactions that are not stored: a REST request's rows, point in time against the
dataset's history.

A request's features come from the same definitions as a batch's (core.features), over the
stored rows its transactions can see (their customers' rows, their devices' and
counterparties' within the longest window) plus the request's own rows, so a transaction scores
exactly as it would after being appended, and nothing is written. For a few rows they are
evaluated in Python (core.features.pyengine: no query to plan), else, or for a definition that
engine cannot evaluate, by DuckDB over a temporary table. What does not change between
requests (the dataset, the model, its feature set, the rules, the bands) is kept per workspace
generation (core.store), and so are the dataset's rows when they fit in memory (core.history):
then a request asks nothing of the database, and the API scores a small one where it arrives
(score_in_memory). Else it costs one query for its near rows.

Ids already in the dataset, unknown fields, wrong types and oversized requests are refused with
a message naming the transaction and the field.
"""
from __future__ import annotations

import math
from datetime import datetime, timedelta

import threading
from dataclasses import dataclass

import numpy as np

from . import explain, history, metrics, models
from . import rules as rules_mod
from .champion import bands, champion
from .datasets import get_dataset, state
from .errors import RiskdeskError
from .features import definition, feature_sql
from .features.definitions import KEY_COLUMNS, Definition
from .features.pyengine import CompiledDefinition, Rows, Unsupported, compile_condition, compile_definition
from .labels import known_labels_sql, reviewed_labels
from .store import Store

MAX_TRANSACTIONS = 1000
PYTHON_ROWS = 50          # requests up to this many rows are evaluated in Python
INLINE_ROWS = 5           # and up to this many, with the rows in memory, where they arrive (score_in_memory)
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


@dataclass
class Plan:
    """What scoring a dataset's transactions with one model needs, apart from the rows."""
    ds: dict
    model: dict
    lm: explain.Loaded
    d: Definition
    compiled: CompiledDefinition | None         # None: DuckDB evaluates the features
    columns: list[str]
    rules: list[dict]
    conditions: list | None                      # per rule: a Python function of a feature row
    reviewed: dict[str, int]                     # transaction id -> reviewed label (core.labels)
    verify: float
    block: float | None


_plans: dict[tuple, tuple[int, tuple, Plan]] = {}     # (workspace, dataset, model) -> (generation, fingerprint, plan)
_plans_lock = threading.Lock()


def plan(store: Store, dataset: str, model_id: str | None = None) -> Plan:
    """The scoring plan for a dataset and model (default: the champion, else the newest tuned
    model). Checked once per workspace generation against what it is made of (datasets.state),
    rebuilt only when that changed, by one thread while the others wait for it: a write
    elsewhere (a sign-in, an audit entry, another dataset) leaves it as it is."""
    key = (str(store.path), dataset, model_id)
    entry = _plans.get(key)
    if entry is not None and entry[0] == store.generation:
        return entry[2]
    with _plans_lock:
        generation = store.generation          # read before what it stands for
        entry = _plans.get(key)
        if entry is not None and entry[0] == generation:
            return entry[2]
        fingerprint = state(store, get_dataset(store, dataset)["id"])
        if entry is None or entry[1] != fingerprint:
            entry = (generation, fingerprint, _build_plan(store, dataset, model_id))
        _plans[key] = (generation, fingerprint, entry[2])
        return entry[2]


def _build_plan(store: Store, dataset: str, model_id: str | None) -> Plan:
    ds = get_dataset(store, dataset)
    model = models.get_model(store, model_id) if model_id else default_model(store, dataset)
    if model["dataset_id"] != ds["id"]:
        raise RiskdeskError(f"model {model['model_id']} was trained on another dataset than {dataset!r}")
    if model["kind"] not in explain.EXPLAINABLE:
        raise RiskdeskError(f"model {model['model_id']} ({model['kind']}) does not score single transactions")
    lm = explain.load(store, model["model_id"])
    d = definition(models.feature_config(model), ds, store)
    try:
        compiled = compile_definition(d)
    except Unsupported:
        compiled = None
    rules = rules_mod.current_rules(store, include_disabled=False)
    conditions = rules_mod.conditions(rules_mod.applicable(rules, lm.fs)[0], lm.fs)
    try:
        compiled_rules = [(r, compile_condition(sql, tuple(params))) for r, sql, params in conditions]
    except Unsupported:
        compiled_rules = None
    current = champion(store, dataset)          # the champion decides with its own bands
    thresholds = bands(store, dataset) if current and current["model_id"] == model["model_id"] else None
    return Plan(ds=ds, model=model, lm=lm, d=d, compiled=compiled,
                columns=[r[0] for r in store.rows(f"DESCRIBE {ds['table']}")], rules=rules,
                conditions=compiled_rules, reviewed=reviewed_labels(store, ds["id"]),
                verify=thresholds["verify_threshold"] if thresholds else model["threshold"],
                block=thresholds["block_threshold"] if thresholds else model["block_threshold"])


def _near(table: str, d: Definition, rows: list[dict]) -> tuple[str, list]:
    """A SELECT (and its values) of the stored rows a request's rows can see: all of their
    customers' rows (windows and all-history carry-ins), and their counterparties' and
    devices' within the longest window. Computing over these alone gives the same features as
    over the whole table. One branch per key, so each filters its own scan. A stored row with
    a request row's id is left out: the request stands for that transaction."""
    branches, params = [], []
    since = min(r["timestamp"] for r in rows) - timedelta(seconds=d.lookback)
    ids = [r["transaction_id"] for r in rows]
    other = f" AND CAST(transaction_id AS VARCHAR) NOT IN ({', '.join('?' * len(ids))})"
    for k in sorted(d.keys):
        values = sorted({r[k] for r in rows if r.get(k) is not None})
        if values:
            branches.append(f"SELECT * FROM {table} WHERE {k} IN ({', '.join('?' * len(values))})"
                            + (" AND timestamp >= ?" if k != "customer_id" else "") + other)
            params += values + ([since] if k != "customer_id" else []) + ids
    if "customer_id" in d.keys and any(r["customer_id"] is None for r in rows):
        branches.append(f"SELECT * FROM {table} WHERE customer_id IS NULL" + other)    # they share one partition
        params += ids
    return " UNION ".join(branches) or f"SELECT * FROM {table} WHERE FALSE", params


def _features_in_python(cur, p: Plan, rows: list[dict], stored: history.History | None) -> list[dict]:
    if stored is not None:
        columns = stored.near(rows, p.d.keys, p.d.lookback)
    else:
        result = cur.execute(*_near(p.ds["table"], p.d, rows))
        names = [c[0] for c in result.description]
        columns = {n: list(v) for n, v in zip(names, zip(*result.fetchall()))} or {n: [] for n in names}
    first = len(columns["timestamp"])
    # the known label (core.labels.known_labels_sql): the reviewed one, else the file's
    columns["known_label"] = [p.reviewed.get(str(t), label) for t, label in zip(columns["transaction_id"], columns["label"])] \
        if "label" in columns else [None] * first
    for r in rows:
        for n in columns:
            columns[n].append(r.get(n))
    features = p.compiled.evaluate(Rows(columns), list(range(first, first + len(rows))))
    return [{**{k: r.get(k) for k in KEY_COLUMNS}, **f} for r, f in zip(rows, features)]   # as a feature table's rows


def _features_in_duckdb(cur, store: Store, p: Plan, rows: list[dict]) -> list[dict]:
    import pandas as pd
    table = p.ds["table"]
    frame = pd.DataFrame([{c: r.get(c) for c in p.columns} for r in rows], columns=p.columns)
    cur.register("_request_rows", frame)
    try:
        first = min(r["timestamp"] for r in rows)
        near, params = _near(table, p.d, rows)
        cur.execute(f"CREATE OR REPLACE TEMP TABLE _near AS ({near}) UNION ALL BY NAME "
                    f"SELECT * REPLACE (CAST(timestamp AS TIMESTAMP) AS timestamp) FROM _request_rows", params)
        sql = feature_sql("_near", p.d, first,
                          only="CAST(transaction_id AS VARCHAR) IN (SELECT transaction_id FROM _request_rows)",
                          known_labels=known_labels_sql("_near", p.ds["id"]), grouped=False)
        result = cur.execute(sql)
        names = [c[0] for c in result.description]
        by_id = {str(r[0]): dict(zip(names, r)) for r in result.fetchall()}
    finally:
        cur.execute("DROP TABLE IF EXISTS _near")
        cur.unregister("_request_rows")
    return [by_id[r["transaction_id"]] for r in rows]


def _matrix(p: Plan, features: list[dict]):
    """The model's input: numbers as float, categories encoded as in training."""
    lm = p.lm
    numeric = {f["name"] for f in lm.fs["catalogue"] if f["kind"] == "numeric"}
    for n in lm.names:
        if n in numeric and any(isinstance(f[n], str) for f in features):
            raise RiskdeskError(f"feature {n} must be a number (got {next(f[n] for f in features if isinstance(f[n], str))!r})")
    if lm.kind in explain.TREE_KINDS:
        codes = {n: {c: k for k, c in enumerate(cats)} for n, cats in lm.categories.items()}
        return np.array([[codes[n].get(None if f[n] is None else str(f[n]), np.nan) if n in codes
                          else (np.nan if f[n] is None else float(f[n])) for n in lm.names] for f in features], dtype=float)
    import pandas as pd
    X = pd.DataFrame([{n: f[n] for n in lm.names} for f in features], columns=lm.names)
    for n in lm.names:
        if n in numeric:
            X[n] = X[n].astype("float64")
    return models.encode_categories(X, lm.categories)


def _stored_id(cur, p: Plan, ids: list[str], stored: history.History | None) -> str | None:
    """The first of `ids` that the dataset already holds, if any."""
    if stored is not None:
        return stored.holds_any(ids)
    found = cur.execute(f"SELECT transaction_id FROM {p.ds['table']} WHERE transaction_id "
                        f"IN ({', '.join('?' * len(ids))})", ids).fetchall()
    return found[0][0] if found else None


def _fired(store: Store, p: Plan, features: list[dict]) -> list[list[str]]:
    """The ids of the enabled rules that fire on each row, in rule order."""
    if p.conditions is not None:
        try:
            rows = Rows({n: [f[n] for f in features] for n in features[0]})
            return [[r["rule_id"] for r, condition in p.conditions if condition(rows, i)] for i in range(len(features))]
        except Unsupported:
            pass
    import pandas as pd
    cur = store.cursor()
    try:
        cur.register("_request_features", pd.DataFrame(features))
        (sql, params) = rules_mod.hit_sql(p.rules, p.lm.fs)["fired"]
        return [list(r[0] or []) for r in cur.execute(f"SELECT {sql} FROM _request_features", params).fetchall()]
    finally:
        cur.close()


def score_transactions(store: Store, dataset: str, transactions, model_id: str | None = None,
                       lang: str = "en") -> dict:
    """Score transactions that are not stored, point in time against the dataset's history:
    {"model_id", "results": [{"transaction_id", "score", "decision", "reasons", "rules_fired"}]}.
    The model defaults to the champion (else the newest tuned model)."""
    p = plan(store, dataset, model_id)
    return _score(store, p, dataset, transactions, history.current(store, p.ds, p.d.keys), lang)


def score_in_memory(store: Store, dataset: str, transactions, model_id: str | None = None,
                    lang: str = "en") -> dict | None:
    """score_transactions, when it can run now without the database: at most INLINE_ROWS
    transactions, the plan made and current, the dataset's rows in memory (core.history), and
    features and rules evaluated in Python. Else None. A few milliseconds of Python, so the API
    scores such a request where it arrives instead of handing it to a worker thread."""
    entry = _plans.get((str(store.path), dataset, model_id))
    if not isinstance(transactions, list) or len(transactions) > INLINE_ROWS or entry is None \
            or entry[0] != store.generation:
        return None
    p = entry[2]
    stored = history.at_hand(store, p.ds, p.d.keys) if p.compiled is not None and p.conditions is not None else None
    return None if stored is None else _score(store, p, dataset, transactions, stored, lang)


def _score(store: Store, p: Plan, dataset: str, transactions, stored: history.History | None, lang: str) -> dict:
    rows = _rows(p.ds, transactions)
    ids = [r["transaction_id"] for r in rows]
    in_python = p.compiled is not None and len(rows) <= PYTHON_ROWS
    cur = None if stored is not None else store.cursor()
    try:
        known = _stored_id(cur, p, ids, stored)
        if known is not None:
            raise RiskdeskError(f"transaction {known!r} is already in dataset {dataset!r}: "
                                f"fetch its case instead of scoring it again")
        features = None
        if in_python:
            try:
                features = _features_in_python(cur, p, rows, stored)
            except Unsupported:
                features = None
        if features is None:
            cur = cur or store.cursor()
            features = _features_in_duckdb(cur, store, p, rows)
    finally:
        if cur is not None:
            cur.close()
    fired = _fired(store, p, features)
    values, base, margin = explain.contributions(p.lm, _matrix(p, features))
    scores = explain.probability(margin)
    by_id = {r["rule_id"]: r for r in p.rules}
    blocked = [any(by_id[r]["action"] == "BLOCK" for r in f) for f in fired]
    decisions = metrics.decide(scores, p.verify, p.block, blocked)
    catalogue = {f["name"]: f for f in p.lm.fs["catalogue"]}
    results = []
    for i, tid in enumerate(ids):
        contribs = explain.ranked_contributions(p.lm.names, values[i], features[i])
        results.append({"transaction_id": tid, "score": float(scores[i]), "decision": str(decisions[i]),
                        "reasons": explain.reasons(contribs, margin[i] >= base, catalogue, lang),
                        "rules_fired": [{k: by_id[r][k] for k in ("rule_id", "name", "action", "score")}
                                        for r in fired[i]]})
    return {"model_id": p.model["model_id"], "dataset": dataset, "results": results}
