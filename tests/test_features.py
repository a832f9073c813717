"""Point-in-time features: the handbook baseline reproduced exactly, append-invariance and
label delay as properties, deterministic ties."""
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from core.features import HANDBOOK, FeatureConfig, build_features, feature_names
from core.ingest import ingest

T0 = datetime(2024, 1, 1)


def load_frame(store, frame, name, tmp_path):
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    ingest(store, path, name)
    return name


def features_frame(store, dataset, config=None):
    fs = build_features(store, dataset, config or FeatureConfig())
    return store.df(f"SELECT * FROM {fs['table']} ORDER BY transaction_id").set_index("transaction_id"), fs


# -- the handbook's baseline -------------------------------------------------------------------

def handbook_reference(df):
    """The handbook's own pandas code (Le Borgne et al., 'Baseline feature transformation')."""
    df = df.copy()
    df["TX_DATETIME"] = pd.to_datetime(df["TX_DATETIME"])
    df["TX_DURING_WEEKEND"] = (df.TX_DATETIME.dt.weekday >= 5).astype(int)
    df["TX_DURING_NIGHT"] = (df.TX_DATETIME.dt.hour <= 6).astype(int)

    def customer(g):
        g = g.sort_values("TX_DATETIME").set_index("TX_DATETIME", drop=False)
        for n in (1, 7, 30):
            s = g["TX_AMOUNT"].rolling(f"{n}d").sum()
            c = g["TX_AMOUNT"].rolling(f"{n}d").count()
            g[f"CUSTOMER_ID_NB_TX_{n}DAY_WINDOW"] = list(c)
            g[f"CUSTOMER_ID_AVG_AMOUNT_{n}DAY_WINDOW"] = list(s / c)
        return g.reset_index(drop=True)

    def terminal(g, delay=7):
        g = g.sort_values("TX_DATETIME").set_index("TX_DATETIME", drop=False)
        fraud_delay = g["TX_FRAUD"].rolling(f"{delay}d").sum()
        tx_delay = g["TX_FRAUD"].rolling(f"{delay}d").count()
        for n in (1, 7, 30):
            fraud_w = g["TX_FRAUD"].rolling(f"{delay + n}d").sum() - fraud_delay
            tx_w = g["TX_FRAUD"].rolling(f"{delay + n}d").count() - tx_delay
            g[f"TERMINAL_ID_NB_TX_{n}DAY_WINDOW"] = list(tx_w)
            g[f"TERMINAL_ID_RISK_{n}DAY_WINDOW"] = list((fraud_w / tx_w).fillna(0))
        return g.reset_index(drop=True)

    df = pd.concat([customer(g) for _, g in df.groupby("CUSTOMER_ID")])
    df = pd.concat([terminal(g) for _, g in df.groupby("TERMINAL_ID")])
    return df.set_index("TRANSACTION_ID").sort_index()


def handbook_example():
    """Three customers and two terminals over ten weeks; no two transactions of a customer or
    of a terminal share a timestamp."""
    rng = np.random.default_rng(3)
    rows = []
    for i in range(160):
        t = T0 + timedelta(minutes=int(rng.integers(0, 70 * 24 * 60)), seconds=i)
        rows.append({"TRANSACTION_ID": f"X{i:03d}", "TX_DATETIME": t.strftime("%Y-%m-%d %H:%M:%S"),
                     "CUSTOMER_ID": f"C{i % 3}", "TERMINAL_ID": f"T{int(rng.integers(0, 2))}",
                     "TX_AMOUNT": float(rng.integers(1, 200)), "TX_FRAUD": int(rng.random() < 0.2)})
    return pd.DataFrame(rows)


def test_handbook_features_match_the_reference(store, tmp_path):
    df = handbook_example()
    load_frame(store, df, "hb", tmp_path)
    ours, fs = features_frame(store, "hb", HANDBOOK)
    ref = handbook_reference(df)
    names = feature_names(fs)
    assert names == ["TX_DURING_WEEKEND", "TX_DURING_NIGHT",
                     "CUSTOMER_ID_NB_TX_1DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW",
                     "CUSTOMER_ID_NB_TX_7DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_7DAY_WINDOW",
                     "CUSTOMER_ID_NB_TX_30DAY_WINDOW", "CUSTOMER_ID_AVG_AMOUNT_30DAY_WINDOW",
                     "TERMINAL_ID_NB_TX_1DAY_WINDOW", "TERMINAL_ID_RISK_1DAY_WINDOW",
                     "TERMINAL_ID_NB_TX_7DAY_WINDOW", "TERMINAL_ID_RISK_7DAY_WINDOW",
                     "TERMINAL_ID_NB_TX_30DAY_WINDOW", "TERMINAL_ID_RISK_30DAY_WINDOW"]
    for name in names:
        np.testing.assert_allclose(ours.loc[ref.index, name].astype(float), ref[name].astype(float),
                                   rtol=1e-12, atol=1e-12, err_msg=name)


def test_handbook_on_a_case_checked_by_hand(store, tmp_path):
    df = pd.DataFrame({
        "TRANSACTION_ID": ["a", "b", "c", "d", "e"],
        "TX_DATETIME": ["2024-01-01 10:00:00", "2024-01-01 20:00:00", "2024-01-02 09:00:00",
                        "2024-01-09 09:30:00", "2024-01-10 08:00:00"],
        "CUSTOMER_ID": ["C", "C", "C", "C", "D"], "TERMINAL_ID": ["T"] * 5,
        "TX_AMOUNT": [10.0, 20.0, 60.0, 5.0, 7.0], "TX_FRAUD": [1, 0, 0, 0, 0]})
    load_frame(store, df, "hand", tmp_path)
    f, _ = features_frame(store, "hand", HANDBOOK)
    # c at Jan 2 09:00: customer's 1-day window (Jan 1 09:00, Jan 2 09:00] holds a, b, c.
    assert f.loc["c", "CUSTOMER_ID_NB_TX_1DAY_WINDOW"] == 3
    assert f.loc["c", "CUSTOMER_ID_AVG_AMOUNT_1DAY_WINDOW"] == pytest.approx(30.0)
    # d at Jan 9 09:30: terminal window (t-8d, t-7d] = (Jan 1 09:30, Jan 2 09:30] holds a, b, c; a is fraud.
    assert f.loc["d", "TERMINAL_ID_NB_TX_1DAY_WINDOW"] == 3
    assert f.loc["d", "TERMINAL_ID_RISK_1DAY_WINDOW"] == pytest.approx(1 / 3)
    # e at Jan 10 08:00: (Jan 2 08:00, Jan 3 08:00] holds only c, which is not fraud.
    assert f.loc["e", "TERMINAL_ID_RISK_1DAY_WINDOW"] == 0
    assert f.loc["a", "TX_DURING_WEEKEND"] == 0 and f.loc["a", "TX_DURING_NIGHT"] == 0


# -- properties ---------------------------------------------------------------------------------

def frame_strategy(min_rows=3, max_rows=40):
    row = st.fixed_dictionaries({
        "minute": st.integers(0, 60 * 24 * 50),
        "customer": st.sampled_from(["C1", "C2", "C3"]),
        "cp": st.sampled_from(["P1", "P2", "P3", "P4"]),
        "device": st.one_of(st.none(), st.sampled_from(["D1", "D2", "D3"])),
        "channel": st.sampled_from(["mobile_banking", "POS"]),
        "amount": st.integers(1, 10_000),
        "label": st.integers(0, 1),
    })
    return st.lists(row, min_size=min_rows, max_size=max_rows)


def to_frame(rows, prefix="T"):
    return pd.DataFrame([{
        "trans_id": f"{prefix}{i:03d}", "user_id": r["customer"],
        "trans_time": (T0 + timedelta(minutes=r["minute"])).strftime("%Y-%m-%d %H:%M:%S"),
        "amount": r["amount"], "pre_balance": 20_000, "post_balance": 20_000 - r["amount"],
        "channel": r["channel"], "device_id": r["device"], "counterparty": r["cp"], "label": r["label"]}
        for i, r in enumerate(rows)])


SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


@SETTINGS
@given(early=frame_strategy(), late=frame_strategy(1, 15))
def test_appending_later_transactions_never_changes_earlier_features(tmp_path_factory, early, late):
    from core.store import Store
    tmp = tmp_path_factory.mktemp("prop")
    store = Store(tmp / "ws")
    first = to_frame(early)
    horizon = max(r["minute"] for r in early)
    later = to_frame([{**r, "minute": horizon + 1 + r["minute"]} for r in late], prefix="U")
    load_frame(store, first, "a", tmp)
    load_frame(store, pd.concat([first, later]), "b", tmp)
    fa, fs = features_frame(store, "a")
    fb, _ = features_frame(store, "b")
    names = feature_names(fs)
    pd.testing.assert_frame_equal(fa[names], fb.loc[fa.index, names], check_dtype=False)
    store.close()


@SETTINGS
@given(rows=frame_strategy(5, 40), pivot=st.integers(0, 39), delay=st.integers(1, 10))
def test_labels_newer_than_the_delay_are_never_used(tmp_path_factory, rows, pivot, delay):
    from core.store import Store
    tmp = tmp_path_factory.mktemp("delay")
    store = Store(tmp / "ws")
    frame = to_frame(rows)
    pivot = pivot % len(frame)
    t = pd.Timestamp(frame.trans_time[pivot])
    flipped = frame.copy()
    newer = pd.to_datetime(flipped.trans_time) > t - pd.Timedelta(days=delay)
    flipped.loc[newer, "label"] = 1 - flipped.loc[newer, "label"]
    load_frame(store, frame, "a", tmp)
    load_frame(store, flipped, "b", tmp)
    config = FeatureConfig(delay_days=delay, risk_windows=(7, 30))
    fa, fs = features_frame(store, "a", config)
    fb, _ = features_frame(store, "b", config)
    names = [n for n in feature_names(fs) if "fraud_share" in n or "labelled" in n]
    assert names
    key = frame.trans_id[pivot]
    pd.testing.assert_series_equal(fa.loc[key, names], fb.loc[key, names], check_dtype=False)
    store.close()


def test_ties_are_resolved_the_same_whatever_the_file_order(store, tmp_path):
    rows = [{"minute": m, "customer": c, "cp": "P1", "device": d, "channel": "mobile_banking",
             "amount": a, "label": 0} for m, c, d, a in
            [(0, "C1", "D1", 10), (0, "C1", "D2", 20), (0, "C2", "D1", 30), (5, "C1", "D1", 40), (5, "C1", "D3", 50)]]
    frame = to_frame(rows)
    load_frame(store, frame, "ordered", tmp_path)
    load_frame(store, frame.iloc[::-1], "reversed", tmp_path)
    fa, fs = features_frame(store, "ordered")
    fb, _ = features_frame(store, "reversed")
    names = feature_names(fs)
    pd.testing.assert_frame_equal(fa[names], fb.loc[fa.index, names], check_dtype=False)
    # Same-time transactions are all "at t": they see each other in time windows ...
    assert fa.loc["T000", "cust_count_1h"] == 2 and fa.loc["T001", "cust_count_1h"] == 2
    assert fa.loc["T003", "cust_count_1h"] == 4 and fa.loc["T004", "cust_count_1h"] == 4
    # ... but not in comparisons with the customer's own earlier history.
    assert fa.loc["T003", "amount_to_mean_30d"] == pytest.approx(40 / 15)
    # ... while "previous" and "first use" order them by transaction id.
    assert fa.loc["T001", "cust_prev_count"] == 1 and fa.loc["T001", "secs_since_prev"] == 0
    assert fa.loc["T001", "new_device"] == 1 and fa.loc["T003", "new_device"] == 0


def test_self_is_excluded_from_own_history(store, tmp_path):
    rows = [{"minute": m, "customer": "C1", "cp": "P1", "device": "D1", "channel": "POS", "amount": a, "label": 0}
            for m, a in [(0, 100), (60, 100), (120, 1000)]]
    load_frame(store, to_frame(rows), "own", tmp_path)
    f, _ = features_frame(store, "own")
    assert f.loc["T002", "amount_to_mean_30d"] == pytest.approx(10.0)
    assert np.isnan(f.loc["T000", "amount_to_mean_30d"])


def test_feature_sets_are_versioned_and_reused(store, small_demo_csv):
    ingest(store, small_demo_csv, "demo")
    a = build_features(store, "demo")
    b = build_features(store, "demo")
    assert a["version"] == b["version"] and a["created_at"] == b["created_at"]
    c = build_features(store, "demo", FeatureConfig(windows=("2h", "3d"), delay_days=3))
    assert c["version"] != a["version"] and "cust_count_2h" in feature_names(c)
    for entry in a["catalogue"]:
        assert entry["en"] and entry["zh"] and entry["rule_en"] and entry["family"]
