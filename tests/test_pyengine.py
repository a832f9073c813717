"""The Python engine (core.features.pyengine) that scores a REST request's few rows without a
query to plan: compiled from the same SQL, it equals DuckDB value for value (NULL is NULL,
not NaN) on ties at one timestamp, NULL entities, rows on and just past window boundaries and
labels both sides of the delay, on demo rows, and on generated rows (hypothesis); rules fire
the same; and a request scores the same through either engine."""
from datetime import datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from test_spark import tricky_rows

from core.features.definitions import HANDBOOK, Definition, FeatureConfig, definition, feature_sql
from core.features.pyengine import Rows, Unsupported, compile_condition, compile_definition

ROLES = ("transaction_id", "customer_id", "timestamp", "amount", "label", "balance_before", "balance_after",
         "channel", "transaction_type", "device_id", "counterparty_id")
RENAMED = {"trans_id": "transaction_id", "user_id": "customer_id", "trans_time": "timestamp",
           "pre_balance": "balance_before", "post_balance": "balance_after", "trans_type": "transaction_type",
           "counterparty": "counterparty_id"}


def as_table(frame: pd.DataFrame) -> duckdb.DuckDBPyConnection:
    """The rows as a dataset table (the roles, typed as ingest types them) in a new database."""
    con = duckdb.connect()
    con.register("raw", frame.rename(columns=RENAMED)[list(ROLES)])
    con.execute("CREATE TABLE t AS SELECT transaction_id, customer_id, CAST(timestamp AS TIMESTAMP) AS timestamp, "
                "CAST(amount AS DOUBLE) AS amount, CAST(label AS INTEGER) AS label, "
                "CAST(balance_before AS DOUBLE) AS balance_before, CAST(balance_after AS DOUBLE) AS balance_after, "
                "channel, transaction_type, device_id, counterparty_id FROM raw")
    return con


def assert_same_features(frame: pd.DataFrame, config: FeatureConfig, roles=ROLES) -> int:
    con = as_table(frame)
    d = definition(config, {"mapping": {r: r for r in roles}, "extras": []}, None)
    result = con.execute(feature_sql("t", d))
    names = [c[0] for c in result.description]
    duck = {row[0]: dict(zip(names, row)) for row in result.fetchall()}
    stored = con.execute("SELECT *, label AS known_label FROM t")
    columns = [c[0] for c in stored.description]
    values = stored.fetchall()
    rows = Rows({c: [v[k] for v in values] for k, c in enumerate(columns)})
    ours = compile_definition(d).evaluate(rows, list(range(rows.n)))
    for tid, mine in zip(rows.columns["transaction_id"], ours):
        for f in d.features:
            a, b = duck[tid][f.name], mine[f.name]
            if a is None or b is None or isinstance(a, str) or isinstance(b, str):
                assert a == b, (f.name, tid, a, b)
            else:
                assert float(a) == pytest.approx(float(b), rel=1e-9, abs=1e-9, nan_ok=True), (f.name, tid, a, b)
    return len(d.features)


def demo_rows(n: int) -> pd.DataFrame:
    return pd.read_csv(ROOT / "sample_data" / "demo_transactions.csv", dtype=str, nrows=n)


@pytest.mark.parametrize("config", [FeatureConfig(), HANDBOOK,
                                    FeatureConfig(windows=("2h", "3d"), entity_windows=("12h",), risk_windows=(3,),
                                                  delay_days=0)], ids=["standard", "handbook", "short-no-delay"])
def test_python_engine_equals_duckdb_on_tricky_and_demo_rows(config):
    frame = pd.concat([tricky_rows(), demo_rows(1500)], ignore_index=True)
    assert assert_same_features(frame, config) >= 14


def test_python_engine_equals_duckdb_without_a_customer_or_entities():
    frame = tricky_rows()
    assert assert_same_features(frame, FeatureConfig(), roles=("transaction_id", "timestamp", "amount", "label",
                                                                "channel", "device_id"))


T0 = datetime(2024, 3, 1, 12, 0, 0)
OFFSETS = [timedelta(0), timedelta(seconds=1), timedelta(hours=1), timedelta(hours=1, microseconds=1),
           timedelta(hours=23, minutes=59, seconds=59), timedelta(days=1), timedelta(days=7), timedelta(days=8),
           timedelta(days=30), timedelta(days=30, microseconds=1), timedelta(days=37), timedelta(days=45)]
row = st.fixed_dictionaries({
    "user_id": st.sampled_from(["A", "B", "C", None]),
    "trans_time": st.sampled_from(OFFSETS).map(lambda d: (T0 + d).isoformat(sep=" ")),
    "amount": st.sampled_from([0.0, 1.0, 9.99, 250.0, 1e6]),
    "pre_balance": st.sampled_from([None, 0.0, 100.0, 5000.0]),
    "post_balance": st.sampled_from([None, 0.0, 4.0, 4900.0]),
    "channel": st.sampled_from(["app", "web", None]),
    "trans_type": st.sampled_from(["transfer", None]),
    "device_id": st.sampled_from(["D1", "D2", None]),
    "counterparty": st.sampled_from(["M1", "M2", None]),
    "label": st.sampled_from([0, 1, None]),
})


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=30))
def test_python_engine_equals_duckdb_on_generated_rows(rows):
    frame = pd.DataFrame([{**r, "trans_id": f"T{n:03d}"} for n, r in enumerate(rows)])
    assert_same_features(frame, FeatureConfig(windows=("1h", "24h", "30d"), entity_windows=("1d", "7d"),
                                              risk_windows=(7,), delay_days=7))


def test_rule_conditions_fire_as_in_duckdb():
    from core.rules import compile_sql, parse
    features = pd.DataFrame({"cust_count_1h": [0, 3, None, 7], "amount_to_balance": [0.5, None, 2.0, 0.0],
                             "channel": ["app", "web", None, "app"], "tx_amount": [10.0, 999.0, 5.0, None]})
    expressions = ["cust_count_1h >= 3", "cust_count_1h BETWEEN 1 AND 5 AND channel == 'web'",
                   "channel IN ('app', 'atm') OR tx_amount > 500", "NOT (amount_to_balance > 1)",
                   "tx_amount / cust_count_1h > 2", "amount_to_balance IS NULL", "abs(-tx_amount) >= 10",
                   "channel != 'app'"]
    con = duckdb.connect()
    con.register("f", features)
    rows = Rows({c: [None if pd.isna(v) else v for v in features[c]] for c in features})
    rows.columns["cust_count_1h"] = [None if v is None else int(v) for v in rows.columns["cust_count_1h"]]
    for text in expressions:
        sql, params = compile_sql(parse(text))
        expected = [r[0] for r in con.execute(f"SELECT coalesce({sql}, false) FROM f", params).fetchall()]
        condition = compile_condition(f"coalesce({sql}, false)", tuple(params))
        assert [condition(rows, i) for i in range(rows.n)] == expected, text


def test_constructs_it_does_not_know_are_left_to_duckdb():
    d = Definition()
    win = d.range_window("w", "customer_id", 3600)
    d.add("median_1h", "velocity", f"median(amount) OVER {win}", "", "", "", "")
    with pytest.raises(Unsupported):
        compile_definition(d)


def assert_equal_rows(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for n in x:
            assert x[n] == y[n] or (x[n] != x[n] and y[n] != y[n]), (n, x[n], y[n])      # NaN is NaN


def test_a_request_scores_the_same_through_either_engine(tmp_path, monkeypatch):
    from core import explain, history, models, realtime
    from core.ingest import ingest
    from core.rules import current_rules, ensure_starter_rules
    from core.store import Store
    frame = demo_rows(30_000)
    frame.iloc[:-30].to_csv(tmp_path / "base.csv", index=False)
    held = frame.iloc[-30:]
    store = Store(tmp_path / "ws")
    ingest(store, tmp_path / "base.csv", "bank")
    models.train(store, "bank", kinds=["default"])
    ensure_starter_rules(store)
    assert any("amount" in r["expression"] for r in current_rules(store))     # a key column, not a feature
    request = [{"transaction_id": r.trans_id, "customer_id": r.user_id, "timestamp": r.trans_time,
                "amount": float(r.amount), "channel": r.channel, "counterparty_id": r.counterparty,
                "device_id": r.device_id if isinstance(r.device_id, str) else None} for r in held.itertuples()]
    in_python = realtime.score_transactions(store, "bank", request)
    assert realtime.plan(store, "bank").compiled is not None
    monkeypatch.setattr(realtime, "PYTHON_ROWS", 0)
    in_duckdb = realtime.score_transactions(store, "bank", request)
    for a, b in zip(in_python["results"], in_duckdb["results"]):
        assert a["transaction_id"] == b["transaction_id"] and a["decision"] == b["decision"]
        assert a["score"] == pytest.approx(b["score"], abs=1e-12)
        assert a["reasons"] == b["reasons"] and a["rules_fired"] == b["rules_fired"]
    # the request path's SHAP (LightGBM's TreeSHAP on the encoded matrix) is shap's
    p = realtime.plan(store, "bank")
    features = realtime._features_in_python(store.cursor(), p, realtime._rows(p.ds, request), None)
    in_memory = history.build(store, p.ds, p.d.keys)         # the stored rows in memory (core.history)
    assert_equal_rows(realtime._features_in_python(None, p, realtime._rows(p.ds, request), in_memory), features)
    fast, base, margin = explain.contributions(p.lm, realtime._matrix(p, features))
    X = models.encode_categories(pd.DataFrame(features)[p.lm.names].astype(
        {n: float for n in p.lm.names if n not in p.lm.categories}), p.lm.categories)
    slow, slow_base, slow_margin = explain.contributions(p.lm, X)
    assert np.allclose(fast, slow, atol=1e-9) and base == pytest.approx(slow_base) and np.allclose(margin, slow_margin)
    # concurrent requests share the model: LightGBM's pred_contrib is not thread-safe by itself
    from concurrent.futures import ThreadPoolExecutor
    matrix = realtime._matrix(p, features)
    with ThreadPoolExecutor(16) as pool:
        outs = list(pool.map(lambda i: explain.contributions(p.lm, matrix[i % len(matrix):][:1])[0], range(800)))
    assert all(np.array_equal(o, fast[i % len(matrix):][:1]) for i, o in enumerate(outs))
    # a stored transaction sent again stands for itself (not beside itself): its stored features
    again = realtime._rows(p.ds, [{"transaction_id": r.trans_id, "customer_id": r.user_id, "timestamp": r.trans_time,
                                   "amount": float(r.amount), "channel": r.channel, "counterparty_id": r.counterparty,
                                   "device_id": r.device_id if isinstance(r.device_id, str) else None,
                                   "balance_before": float(r.pre_balance), "balance_after": float(r.post_balance),
                                   "transaction_type": r.trans_type}
                                  for r in frame.iloc[20_000:20_005].itertuples()])
    ids = [r["transaction_id"] for r in again]
    stored = {r["transaction_id"]: r for r in store.dicts(
        f"SELECT * FROM {p.lm.fs['table']} WHERE transaction_id IN ({', '.join('?' * len(ids))})", ids)}
    for engine in (lambda cur, p, rows: realtime._features_in_python(cur, p, rows, None),
                   lambda cur, p, rows: realtime._features_in_python(None, p, rows, in_memory),
                   lambda cur, p, rows: realtime._features_in_duckdb(cur, store, p, rows)):
        for f in engine(store.cursor(), p, again):
            for n in p.lm.names:
                a, b = f[n], stored[f["transaction_id"]][n]
                assert a == b if a is None or b is None or isinstance(a, str) else a == pytest.approx(b), (n, a, b)
    store.close()


def test_a_scoring_plan_is_kept_across_unrelated_writes_and_rebuilt_after_a_rule_change(tmp_path):
    from core import models, people, realtime
    from core.ingest import ingest
    from core.rules import save_rule
    from core.store import Store
    demo_rows(8000).to_csv(tmp_path / "base.csv", index=False)
    store = Store(tmp_path / "ws")
    ingest(store, tmp_path / "base.csv", "bank")
    models.train(store, "bank", kinds=["default"])
    first = realtime.plan(store, "bank")
    people.add_user(store, "someone", "analyst", None)          # a write, but not to what the plan is made of
    assert realtime.plan(store, "bank") is first
    save_rule(store, "Any amount", "tx_amount > 0", "VERIFY", 10, author="alice")
    again = realtime.plan(store, "bank")
    assert again is not first and [r["name"] for r in again.rules] == ["Any amount"]
    request = [{"transaction_id": "new-1", "customer_id": "U000192", "timestamp": "2024-05-01 10:00:00", "amount": 50.0}]
    assert [r["name"] for r in realtime.score_transactions(store, "bank", request)["results"][0]["rules_fired"]] \
        == ["Any amount"]
    store.close()
