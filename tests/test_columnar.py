"""Full builds compute window calls with compiled loops (core.features.columnar): every feature
equals the plain SQL's, type for type, NULL for NULL, on ties, window boundaries, NULL
customers, entities, amounts and labels, frames long enough to use whole blocks, data split in
time slices, and generated rows (hypothesis); a full build leaves no window to DuckDB, and
one whose results would not fit in memory is left to DuckDB whole."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_pyengine import ROLES, as_table, demo_rows, row
from test_spark import tricky_rows

from core.features import columnar
from core.features.definitions import HANDBOOK, Definition, FeatureConfig, definition, feature_sql, source_rows


def compare(frame: pd.DataFrame, config: FeatureConfig | Definition, roles=ROLES) -> int:
    """Build the features both ways; returns how many window calls the kernels computed."""
    con = as_table(frame)
    d = config if isinstance(config, Definition) else \
        definition(config, {"mapping": {r: r for r in roles}, "extras": []}, None)
    plain = con.execute(f"CREATE TABLE plain AS {feature_sql('t', d)}")
    fast = columnar.precompute(con, source_rows("t", d), d)
    columnar.create_table(con, "fast", "t", fast)
    assert con.execute("DESCRIBE plain").fetchall() == con.execute("DESCRIBE fast").fetchall()
    assert con.execute("SELECT list(transaction_id ORDER BY rowid) = list(transaction_id ORDER BY timestamp, "
                       "transaction_id) FROM fast").fetchone()[0], "stored in time order"
    a = con.execute("SELECT * FROM plain ORDER BY transaction_id").df()
    b = con.execute("SELECT * FROM fast ORDER BY transaction_id").df()
    for name in a.columns:
        x, y = a[name], b[name]
        assert x.isna().tolist() == y.isna().tolist(), name
        if x.dtype.kind in "fiu":
            np.testing.assert_allclose(x[x.notna()].astype(float), y[y.notna()].astype(float), rtol=1e-9, atol=1e-9,
                                       err_msg=name)
        else:
            assert x.tolist() == y.tolist(), name
    del plain
    return sum(f.sql.count("CAST(_k") for f in fast.definition.features)


@pytest.mark.parametrize("config", [FeatureConfig(), HANDBOOK,
                                    FeatureConfig(windows=("2h", "3d"), entity_windows=("12h",), risk_windows=(3,),
                                                  delay_days=0)], ids=["standard", "handbook", "short-no-delay"])
def test_kernels_equal_the_sql_on_tricky_and_demo_rows(config):
    frame = pd.concat([tricky_rows(), demo_rows(1500)], ignore_index=True)
    assert compare(frame, config) > 10


def test_a_full_build_leaves_no_window_to_duckdb():
    d = definition(FeatureConfig(), {"mapping": {r: r for r in ROLES}, "extras": []}, None)
    con = as_table(tricky_rows())
    fast = columnar.precompute(con, source_rows("t", d), d)
    assert [f.name for f in fast.definition.features if " OVER " in f.sql.upper()] == []
    assert not fast.definition.windows and fast.rows is not None and len(fast.slices) == 1


def test_long_frames_null_amounts_ties_and_time_slices(monkeypatch):
    """Frames of hundreds of rows (whole blocks of 32), NULL amounts and labels, repeated
    amounts (a standard deviation of exactly 0), many rows at the same minute, and the rows
    read back a time slice at a time; beyond the memory cap, DuckDB computes every window."""
    rng = np.random.default_rng(7)
    n = 900
    frame = pd.DataFrame({
        "trans_id": [f"T{i:05d}" for i in range(n)],
        "user_id": rng.choice(["A", "B", "C", None], n, p=[0.5, 0.3, 0.15, 0.05]),
        "trans_time": (pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 3 * 86400, n) // 60 * 60, unit="s"))
        .astype(str),
        "amount": np.where(rng.random(n) < 0.05, None, rng.choice([5.0, 5.0, 5.0, 1e9, 0.01, 123.45], n)),
        "pre_balance": 100.0, "post_balance": 50.0,
        "channel": rng.choice(["app", "web", None], n), "trans_type": "transfer",
        "device_id": rng.choice(["D1", "D2", "D3", None], n),
        "counterparty": rng.choice(["M1", "M2", None], n),
        "label": rng.choice([0, 1, None], n, p=[0.8, 0.1, 0.1]),
    })
    assert compare(frame, FeatureConfig()) > 30
    monkeypatch.setattr(columnar, "IN_MEMORY_ROWS", 400)       # beyond it: the rest of each row 100 rows at a time
    assert compare(frame, FeatureConfig(windows=("1h", "30d"))) > 10
    monkeypatch.setattr(columnar, "memory_limit", lambda: 100_000)
    assert compare(frame, FeatureConfig()) == 0


def test_counts_past_16_bits():
    """Counts are kept in 16 bits where they fit: one customer's 40,000 transactions in a few
    minutes need 32."""
    n = 40_000
    frame = pd.DataFrame({
        "trans_id": [f"T{i:05d}" for i in range(n)], "user_id": "A",
        "trans_time": (pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(n) % 7 * 60, unit="s")).astype(str),
        "amount": 1.0, "pre_balance": 100.0, "post_balance": 99.0, "channel": "app", "trans_type": "transfer",
        "device_id": "D1", "counterparty": "M1", "label": 0,
    })
    assert compare(frame, FeatureConfig(windows=("1h",), entity_windows=("1d",), risk_windows=(7,))) > 5


def test_a_window_the_kernels_do_not_know_stays_in_duckdb(monkeypatch):
    d = Definition()
    win = d.range_window("w_1h", "customer_id", 3600)
    d.add("count_1h", "velocity", f"count(*) OVER {win}", "", "", "", "")
    d.add("median_1h", "velocity", f"median(amount) OVER {win}", "", "", "", "")
    frame = pd.concat([tricky_rows(), demo_rows(300)], ignore_index=True)
    assert compare(frame, d) == 1
    monkeypatch.setattr(columnar, "IN_MEMORY_ROWS", 100)       # it needs every row at once: no slices
    assert compare(frame, d) == 0


def test_without_a_customer_or_entities():
    assert compare(tricky_rows(), FeatureConfig(), roles=("transaction_id", "timestamp", "amount", "label",
                                                          "channel", "device_id")) > 0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(row, min_size=1, max_size=40))
def test_kernels_equal_the_sql_on_generated_rows(rows):
    frame = pd.DataFrame([{**r, "trans_id": f"T{n:03d}"} for n, r in enumerate(rows)])
    compare(frame, FeatureConfig(windows=("1h", "24h", "30d"), entity_windows=("1d", "7d"), risk_windows=(7,),
                                 delay_days=7))


@settings(deadline=None)          # the first call loads the compiled loops
@given(st.lists(st.integers(-1, 6), max_size=60))
def test_stable_order_is_numpys_stable_argsort_with_nulls_last(codes):
    from core.features import kernels
    codes = np.array(codes, dtype=np.int64)
    expected = np.argsort(np.where(codes < 0, 99, codes), kind="stable")
    assert kernels.stable_order(codes, 7).tolist() == expected.tolist()
