"""A dataset grows by batches: same header and mapping, ids never stored twice, features equal
to loading everything as one file, and the newest batch can be taken back exactly."""
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.datasets import delete_newest_batch, get_dataset, list_batches
from core.errors import RiskdeskError
from core.features import build_features, feature_names
from core.ingest import ingest


def snapshot(store):
    """What a refused batch must leave as it was: tables, catalogue, batches, rejects, audit."""
    return (store.rows("SELECT table_name FROM information_schema.tables ORDER BY 1"),
            store.rows("SELECT id, rows_loaded, rows_rejected, start_ts, end_ts FROM datasets ORDER BY id"),
            store.rows("SELECT * FROM batches ORDER BY dataset_id, batch"),
            store.rows("SELECT count(*) FROM rejects"), store.rows("SELECT count(*) FROM audit_log"))


def features_by_id(store, name):
    fs = build_features(store, name)
    frame = store.df(f"SELECT * FROM {fs['table']}").set_index("transaction_id").sort_index()
    return frame[feature_names(fs)]


def split_into_batches(frame, cuts, late_share, seed):
    """Chronological parts at the cut points; with late_share, that share of each part's rows
    arrives one batch later (late rows: earlier in time than rows already stored)."""
    bounds = [int(c * len(frame)) for c in cuts]
    part = np.searchsorted(np.array(bounds), np.arange(len(frame)), side="right")
    late = np.random.default_rng(seed).random(len(frame)) < late_share
    return np.minimum(part + late, len(bounds))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(min_value=0.2, max_value=0.95), min_size=1, max_size=3, unique=True).map(sorted),
       late_share=st.sampled_from([0.0, 0.0, 0.02, 0.2]), seed=st.integers(0, 1000))
def test_features_after_appends_equal_the_one_file_load(tmp_path_factory, small_demo_csv, cuts, late_share, seed):
    from core.store import Store
    tmp = tmp_path_factory.mktemp("batches")
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    store = Store(tmp / "ws")
    whole = tmp / "whole.csv"
    frame.to_csv(whole, index=False)
    ingest(store, whole, "whole")
    parts = split_into_batches(frame, cuts, late_share, seed)
    before = None
    for k in sorted(set(parts)):
        path = tmp / f"part{k}.csv"
        frame[parts == k].to_csv(path, index=False)
        ingest(store, path, "grown", append=before is not None)
        if before is not None:      # rows older than the whole batch keep their stored values
            first = pd.to_datetime(frame[parts == k]["trans_time"]).min()
            kept = before[before.index.isin(frame[(parts < k) & (pd.to_datetime(frame["trans_time"]) < first)]
                                            ["trans_id"])]
            pd.testing.assert_frame_equal(features_by_id(store, "grown").loc[kept.index], kept)
        before = features_by_id(store, "grown")     # caught up after every batch
    assert get_dataset(store, "grown")["rows"] == get_dataset(store, "whole")["rows"]
    pd.testing.assert_frame_equal(before, features_by_id(store, "whole"))
    store.close()


def test_ids_already_in_the_dataset_are_rejected_and_reported(store, tmp_path, small_demo_csv):
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False)
    base, batch = frame.iloc[:2000], frame.iloc[1990:]
    base.to_csv(tmp_path / "a.csv", index=False)
    batch.to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    result = ingest(store, tmp_path / "b.csv", "d", append=True)
    assert (result["batch"], result["rows_loaded"], result["rows_rejected"]) == (2, len(frame) - 2000, 10)
    assert result["reject_reasons"] == [{"reason": "duplicate_in_dataset", "role": "transaction_id", "rows": 10,
                                         "first_row": 2}]
    assert store.scalar(f"SELECT count(*) - count(DISTINCT transaction_id) FROM {get_dataset(store, 'd')['table']}") == 0
    assert [b["rows_loaded"] for b in list_batches(store, "d")] == [2000, len(frame) - 2000]


def test_a_batch_with_another_header_or_a_mapping_is_refused_and_changes_nothing(store, tmp_path, small_demo_csv):
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False)
    frame.iloc[:1000].to_csv(tmp_path / "a.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    frame.iloc[1000:].drop(columns=["channel"]).to_csv(tmp_path / "b.csv", index=False)
    frame.iloc[1000:].to_csv(tmp_path / "c.csv", index=False)
    before = snapshot(store)
    with pytest.raises(RiskdeskError, match="does not have the header of dataset 'd' \\(missing channel\\)"):
        ingest(store, tmp_path / "b.csv", "d", append=True)
    with pytest.raises(RiskdeskError, match="reuses the dataset's mapping"):
        ingest(store, tmp_path / "c.csv", "d", append=True, mapping={"amount": "amount"})
    with pytest.raises(RiskdeskError, match="no dataset 'nope' to append to"):
        ingest(store, tmp_path / "c.csv", "nope", append=True)
    with pytest.raises(RiskdeskError, match="already in dataset 'd'"):
        ingest(store, tmp_path / "a.csv", "d", append=True)
    assert snapshot(store) == before


def test_deleting_the_newest_batch_removes_exactly_its_rows(store, tmp_path, small_demo_csv):
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    late = frame.index.isin(frame.index[1000:2000:10])       # rows the second batch brings late
    base = frame.iloc[:2000][~late[:2000]]
    base.to_csv(tmp_path / "a.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    before = features_by_id(store, "d")
    stats = {k: get_dataset(store, "d")[k] for k in ("rows", "rows_rejected", "start", "end", "fraud_rate")}
    broken = pd.concat([frame.iloc[2000:], frame[late]])
    broken.iloc[0, broken.columns.get_loc("amount")] = "lots"
    broken.to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "b.csv", "d", append=True)
    assert get_dataset(store, "d")["rows_rejected"] == 1
    assert not features_by_id(store, "d").loc[before.index].equals(before)    # the late rows changed some
    removed = delete_newest_batch(store, "d")
    assert removed == {"dataset": "d", "batch": 2, "rows_removed": len(broken) - 1, "rows_total": len(base)}
    assert {k: get_dataset(store, "d")[k] for k in stats} == stats
    pd.testing.assert_frame_equal(features_by_id(store, "d"), before)
    with pytest.raises(RiskdeskError, match="only its first batch"):
        delete_newest_batch(store, "d")
    actions = [r[0] for r in store.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-2:] == ["append_batch", "delete_batch"]


def test_generated_ids_stay_unique_across_batches(store, tmp_path):
    from conventions import ulb_like
    ulb_like(tmp_path / "all.csv", rows=400)
    frame = pd.read_csv(tmp_path / "all.csv", dtype=str, keep_default_na=False)
    frame.iloc[:200].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[200:].to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "a.csv", "u")
    result = ingest(store, tmp_path / "b.csv", "u", append=True)
    assert result["rows_total"] == 399        # one amount is not a number
    ids = [r[0] for r in store.rows(f"SELECT transaction_id FROM {get_dataset(store, 'u')['table']} ORDER BY 1")]
    assert len(set(ids)) == 399 and ids[0] == "B2-R000000002" and ids[-1] == "R000000201"


def test_an_append_scores_only_the_new_rows_and_the_rows_they_changed(store, tmp_path, small_demo_csv):
    from core import cases, models
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    frame.iloc[:2500].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[2500:].to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    model_id = models.train(store, "d", kinds=["default"], trials=1)["models"][0]["model_id"]
    cases.ensure_scored(store, model_id)
    stored = "SELECT transaction_id, score FROM model_scores WHERE model_id = ? AND part = 'all' ORDER BY 1"
    before = dict(store.rows(stored, [model_id]))
    ingest(store, tmp_path / "b.csv", "d", append=True)
    cases.ensure_scored(store, model_id)
    after = dict(store.rows(stored, [model_id]))
    assert len(after) == get_dataset(store, "d")["rows"]
    first_new = pd.to_datetime(frame.iloc[2500:]["trans_time"]).min()
    older = set(frame[pd.to_datetime(frame["trans_time"]) < first_new]["trans_id"])
    assert older and all(after[t] == before[t] for t in older)
    fresh = models.score(store, model_id).set_index("transaction_id")["score"]
    assert np.allclose([after[t] for t in fresh.index], fresh.to_numpy(), rtol=0, atol=1e-12)
    audit = store.dicts("SELECT detail FROM audit_log WHERE action = 'score_dataset' ORDER BY logged_at")
    rescored = json.loads(audit[-1]["detail"])["rows"]
    assert rescored < len(after) - len(older) + 100      # the days of the new rows, not the history


def test_a_review_decision_reaches_only_label_delayed_features_after_the_delay(store, tmp_path, small_demo_csv):
    from core import cases
    ingest(store, small_demo_csv, "d")
    before = features_by_id(store, "d")
    ds = get_dataset(store, "d")
    rows = store.df(f"SELECT transaction_id, timestamp, counterparty_id, device_id, label FROM {ds['table']}")
    busiest = rows[rows["label"] == 0].groupby("counterparty_id")["transaction_id"].transform("count")
    flipped = rows.loc[busiest.idxmax()]          # a normal transaction of a busy counterparty
    # (its counterparty's and its device's fraud shares may change, from a week after it)
    cases.record(store, ds["id"], flipped["transaction_id"], "confirmed_fraud", "Ana")
    after = features_by_id(store, "d")
    changed = (after != before) & ~(after.isna() & before.isna())
    labelled = [c for c in after.columns if "fraud_share" in c or "labelled" in c]
    assert changed.any().any() and set(changed.columns[changed.any()]) <= set(labelled)
    moved = rows.set_index("transaction_id").loc[changed.index[changed.any(axis=1)]]
    assert ((moved["counterparty_id"] == flipped["counterparty_id"]) | (moved["device_id"] == flipped["device_id"])).all()
    assert (moved["timestamp"] >= flipped["timestamp"] + pd.Timedelta(days=7)).all()
    rebuilt = build_features(store, "d", rebuild=True)
    fresh = store.df(f"SELECT * FROM {rebuilt['table']}").set_index("transaction_id").sort_index()
    pd.testing.assert_frame_equal(after, fresh[feature_names(rebuilt)])
