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


def write_parts(frame, tmp_path, cuts):
    paths = []
    for k, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(frame)])):
        path = tmp_path / f"part{k}.csv"
        frame.iloc[a:b].to_csv(path, index=False)
        paths.append(path)
    return paths


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(min_value=0.2, max_value=0.95), min_size=1, max_size=3, unique=True))
def test_features_after_appends_equal_the_one_file_load(tmp_path_factory, small_demo_csv, cuts):
    from core.store import Store
    tmp = tmp_path_factory.mktemp("batches")
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    rows = sorted({int(c * len(frame)) for c in cuts})
    store = Store(tmp / "ws")
    whole = tmp / "whole.csv"
    frame.to_csv(whole, index=False)
    ingest(store, whole, "whole")
    first, *rest = write_parts(frame, tmp, rows)
    ingest(store, first, "grown")
    for path in rest:
        result = ingest(store, path, "grown", append=True)
    assert result["rows_total"] == get_dataset(store, "whole")["rows"]
    pd.testing.assert_frame_equal(features_by_id(store, "grown"), features_by_id(store, "whole"))
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
    frame.iloc[:2000].to_csv(tmp_path / "a.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    before = features_by_id(store, "d")
    stats = {k: get_dataset(store, "d")[k] for k in ("rows", "rows_rejected", "start", "end", "fraud_rate")}
    broken = frame.iloc[2000:].copy()
    broken.iloc[0, broken.columns.get_loc("amount")] = "lots"
    broken.to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "b.csv", "d", append=True)
    assert get_dataset(store, "d")["rows_rejected"] == 1
    features_by_id(store, "d")            # computed with the batch
    removed = delete_newest_batch(store, "d")
    assert removed == {"dataset": "d", "batch": 2, "rows_removed": len(frame) - 2001, "rows_total": 2000}
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


def test_an_append_makes_the_queue_score_the_new_rows(store, tmp_path, small_demo_csv):
    from core import cases, models
    frame = pd.read_csv(small_demo_csv, dtype=str, keep_default_na=False).sort_values("trans_time", kind="stable")
    frame.iloc[:2500].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[2500:].to_csv(tmp_path / "b.csv", index=False)
    ingest(store, tmp_path / "a.csv", "d")
    model_id = models.train(store, "d", kinds=["default"], trials=1)["models"][0]["model_id"]
    cases.ensure_scored(store, model_id)
    assert cases.is_scored(store, model_id)
    ingest(store, tmp_path / "b.csv", "d", append=True)
    assert not cases.is_scored(store, model_id)
    cases.ensure_scored(store, model_id)
    scored = store.scalar("SELECT count(*) FROM model_scores WHERE model_id = ? AND part = 'all'", [model_id])
    assert scored == get_dataset(store, "d")["rows"]
