"""Training, comparison and the registry on real data: the out-of-time train on the demo data,
SMOTE isolation, reproducibility, backtest and cost numbers by hand, the CLI contract."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import ROOT
from core.errors import RiskdeskError
from core import compare, metrics, models
from core import rules as rules_mod
from core.features import build_features
from core.ingest import ingest
from core.store import Store


def by_kind(result):
    return {m["kind"]: m for m in result["models"]}


def test_out_of_time_train_on_the_demo_data(trained):
    store, result = trained
    split = result["split"]
    assert split["method"] == "time"
    assert split["train"][0] == "2024-01-01" and split["test"][1] == "2024-04-30"
    assert split["train"][1] < split["valid"][0] <= split["valid"][1] < split["test"][0]
    m = by_kind(result)
    assert set(m) == set(models.KINDS)
    for kind in ("default", "tuned", "forest"):
        test = m[kind]["metrics"]["test"]
        assert test["auc"] > 0.95 and test["average_precision"] > m["rules"]["metrics"]["test"]["average_precision"]
        lo, hi = test["average_precision_ci"]
        assert lo <= test["average_precision"] <= hi
    assert 0.6 < m["rules"]["metrics"]["test"]["auc"] < 0.9
    board = compare.leaderboard(store, [x["model_id"] for x in result["models"]])
    assert list(board["average_precision"]) == sorted(board["average_precision"], reverse=True)
    # lineage: dataset, source hash, feature version, params and artifact hash are in the registry
    d = m["default"]
    assert d["source_sha256"] and d["feature_version"] and d["params"]["max_depth"] == 6
    assert d["params"]["learning_rate"] == 0.3 and d["params"]["num_boost_round"] == 100
    assert models.load_artifact(store, d).num_trees() == 100


def test_smote_never_reaches_validation_or_test(trained):
    store, result = trained
    tuned = by_kind(result)["tuned"]
    assert tuned["params"]["imbalance"] == "smote" and tuned["params"]["synthetic_training_rows"] > 0
    fs = build_features(store, "demo")
    table = fs["table"]
    split = result["split"]
    for part, period in (("valid", split["valid"]), ("test", split["test"])):
        scored = store.rows("SELECT count(*), count(DISTINCT transaction_id) FROM model_scores "
                            "WHERE model_id = ? AND part = ?", [tuned["model_id"], part])[0]
        real = store.scalar(f"SELECT count(*) FROM {table} WHERE label IS NOT NULL AND "
                            "CAST(timestamp AS DATE) BETWEEN ? AND ?", list(period))
        matched = store.scalar(f"SELECT count(*) FROM model_scores s JOIN {table} t USING (transaction_id) "
                               "WHERE s.model_id = ? AND s.part = ?", [tuned["model_id"], part])
        assert scored == (real, real) and matched == real
    assert tuned["metrics"]["test"]["rows"] == store.scalar(
        f"SELECT count(*) FROM {table} WHERE CAST(timestamp AS DATE) BETWEEN ? AND ?", split["test"])
    assert tuned["metrics"]["train_rows"] == store.scalar(
        f"SELECT count(*) FROM {table} WHERE CAST(timestamp AS DATE) BETWEEN ? AND ?", split["train"])


def test_resampling_keeps_real_rows_and_adds_only_fraud():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400),
                      "c": pd.Categorical(rng.choice(["x", "y"], 400))})
    X.loc[::7, "a"] = np.nan
    y = (rng.random(400) < 0.05).astype(float)
    y[:10] = 1
    Xr, yr, made = models.resample_training(X, y, ["c"], 0.3, seed=1)
    assert made > 0 and len(Xr) == len(X) + made
    pd.testing.assert_frame_equal(Xr.iloc[:len(X)].reset_index(drop=True), X)
    assert (yr[len(X):] == 1).all() and (yr[:len(X)] == y).all()


def test_same_seed_same_model(tmp_path, small_demo_csv):
    shas = []
    for i in range(2):
        store = Store(tmp_path / f"ws{i}")
        ingest(store, small_demo_csv, "d")
        result = models.train(store, "d", kinds=("default", "tuned"), trials=2, imbalance="search", seed=7)
        shas.append([m["artifact_sha256"] for m in result["models"]])
        store.close()
    assert shas[0] == shas[1]


def hand_dataset(tmp_path):
    rows = [("T1", "C1", "2024-01-01 10:00:00", 100, 0), ("T2", "C1", "2024-01-01 02:00:00", 5000, 1),
            ("T3", "C2", "2024-01-02 12:00:00", 7000, 0), ("T4", "C2", "2024-01-02 03:00:00", 300, 1),
            ("T5", "C3", "2024-01-03 14:00:00", 50, 0), ("T6", "C3", "2024-01-03 15:00:00", 9000, 1)]
    path = tmp_path / "hand.csv"
    pd.DataFrame(rows, columns=["id", "customer", "time", "amount", "label"]).to_csv(path, index=False)
    return path


def test_backtest_numbers_by_hand(store, tmp_path):
    ingest(store, hand_dataset(tmp_path), "hand", mapping={"transaction_id": "id", "customer_id": "customer",
                                                          "timestamp": "time", "amount": "amount", "label": "label"})
    fs = build_features(store, "hand")
    rules = [{"rule_id": "A", "version": 1, "name": "big", "expression": "amount > 1000", "action": "VERIFY",
              "score": 10, "enabled": True},
             {"rule_id": "B", "version": 1, "name": "night", "expression": "is_night = 1", "action": "BLOCK",
              "score": 50, "enabled": True}]
    bt = rules_mod.backtest(store, fs, rules)
    a, b = (bt["rules"].set_index("rule_id").loc[k] for k in ("A", "B"))
    assert (a["hits"], a["true_positives"], a["false_positives"]) == (3, 2, 1)
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == pytest.approx(2 / 3)
    assert a["fraud_amount_caught"] == pytest.approx(14000 / 14300) and a["hit_rate"] == pytest.approx(0.5)
    assert (b["hits"], b["true_positives"], b["precision"]) == (2, 2, 1.0)
    assert b["fraud_amount_caught"] == pytest.approx(5300 / 14300)
    o = bt["overall"]
    assert (o["hits"], o["precision"], o["recall"]) == (4, 0.75, 1.0)
    assert o["auc"] == pytest.approx(8.5 / 9)        # scores: frauds 60, 50, 10; normals 0, 10, 0
    assert bt["overlap"].loc["A", "B"] == 1 and bt["overlap"].loc["A", "A"] == 3
    day = rules_mod.backtest(store, fs, rules, "2024-01-02", "2024-01-02")["overall"]
    assert (day["labelled"], day["hits"]) == (2, 2)
    ev = rules_mod.evaluate(store, fs, rules).set_index("transaction_id")
    assert list(ev["rule_decision"]) == ["BLOCK", "PASS", "BLOCK", "VERIFY", "PASS", "VERIFY"]


def test_cost_curve_and_hybrid_decision_by_hand():
    curve = metrics.cost_curve([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1], [100, 50, 30, 10], review_cost=20)
    assert list(curve["reviewed"]) == [1, 2, 3, 4, 0]
    assert list(curve["cost"]) == [50, 70, 60, 80, 130]
    frame = pd.DataFrame({"label": [1, 0, 1, 0], "score": [0.9, 0.8, 0.7, 0.1], "amount": [100, 50, 30, 10],
                          "rule_block": [False, False, False, True]})
    assert compare.suggest_threshold(frame, 20)["threshold"] == 0.9
    assert list(metrics.decide(frame["score"], 0.5, 0.85, frame["rule_block"])) == ["BLOCK", "VERIFY", "VERIFY", "BLOCK"]
    bands = compare.bands(frame, 0.5, 0.85).set_index("band")
    assert bands.loc["BLOCK", "transactions"] == 2 and bands.loc["PASS", "transactions"] == 0
    assert bands["share"].sum() == pytest.approx(1.0)


def run(home, *args):
    env = {**os.environ, "RISKDESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_cli_train_and_score_contract(tmp_path, small_demo_csv):
    home = tmp_path / "ws"
    assert run(home, "ingest", str(small_demo_csv), "--dataset", "d").returncode == 0
    proc = run(home, "train", "--dataset", "d", "--models", "rules,default", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [m["kind"] for m in out["models"]] == ["rules", "default"]
    for m in out["models"]:
        assert {"model_id", "kind", "metrics"} <= set(m) and "auc" in m["metrics"]
    model_id = out["models"][1]["model_id"]
    proc = run(home, "score", "--model", model_id, "--dataset", "d", "--out", str(tmp_path / "s.csv"), "--json")
    assert proc.returncode == 0, proc.stderr
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns) == ["transaction_id", "score", "decision"]
    assert len(scores) == json.loads(proc.stdout)["rows"] == len(pd.read_csv(small_demo_csv))
    assert set(scores["decision"]) <= {"PASS", "VERIFY", "BLOCK"}
    proc = run(home, "score", "--model", model_id, "--dataset", "d", "--start", "2024-02-01", "--end", "2024-02-01",
               "--out", str(tmp_path / "day.parquet"), "--json")
    day = pd.read_parquet(tmp_path / "day.parquet")
    raw = pd.read_csv(small_demo_csv)
    assert len(day) == (raw["trans_time"].str[:10] == "2024-02-01").sum()
    # with train/test dates only, tuning uses the tail of training and the model is refit
    proc = run(home, "train", "--dataset", "d", "--models", "tuned", "--trials", "2", "--train-start", "2024-01-01",
               "--train-end", "2024-03-15", "--test-start", "2024-03-20", "--test-end", "2024-04-30", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["split"]["tune_on_train_tail"] is True
    # a random split only on request, with a warning
    proc = run(home, "train", "--dataset", "d", "--models", "default", "--random-split")
    assert proc.returncode == 0 and "WARNING: random split" in proc.stdout, proc.stderr
    for bad in (["score", "--model", "nope", "--out", str(tmp_path / "x.csv")],
                ["train", "--dataset", "d", "--models", "magic"],
                ["train", "--dataset", "d", "--train-start", "2024-03-01", "--train-end", "2024-04-01",
                 "--test-start", "2024-02-01", "--test-end", "2024-02-10"]):
        proc = run(home, *bad, "--json")
        assert proc.returncode != 0 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1, bad


def test_models_belong_to_the_dataset_not_its_name(tmp_path, small_demo_csv):
    from core.datasets import delete_dataset
    from core.errors import RiskdeskError
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "d")
    model_id = models.train(store, "d", kinds=("default",))["models"][0]["model_id"]
    delete_dataset(store, "d")
    ingest(store, small_demo_csv, "d")          # same name, a new dataset
    assert models.list_models(store, "d") == [] and len(models.list_models(store)) == 1
    with pytest.raises(RiskdeskError, match="was deleted"):
        models.score(store, model_id)
    assert len(models.score(store, model_id, dataset="d")) == len(pd.read_csv(small_demo_csv))
    store.close()


def test_a_large_training_period_is_sampled_with_every_fraud_and_weights_that_restore_each_day(
        tmp_path, small_demo_csv, monkeypatch):
    from core import models
    from core.features import FeatureConfig, build_features
    from core.ingest import ingest
    from core.models.frames import load_frame, sampling_plan
    from core.store import Store
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "d")
    full = models.train(store, "d", kinds=["default"])["models"][0]
    assert full["params"]["sampling"] is None
    monkeypatch.setenv("RISKDESK_TRAIN_ROWS", "1000")
    sampled = models.train(store, "d", kinds=["default"])["models"][0]
    plan = sampled["params"]["sampling"]
    assert plan["rows"] == full["metrics"]["train_rows"] and abs(plan["kept_rows"] - 1000) <= 100   # rounding per day
    assert sampled["metrics"]["test"]["rows"] == full["metrics"]["test"]["rows"]          # metrics: every row
    assert sampled["split"] == full["split"]
    fs = build_features(store, "d", FeatureConfig())
    split = models.Split(**{**full["split"], "train": tuple(full["split"]["train"]), "test": tuple(full["split"]["test"]),
                            "valid": tuple(full["split"]["valid"])})
    every = load_frame(store, fs, split.train)
    kept = load_frame(store, fs, split.train, sample=sampling_plan(store, fs, split.train, 1000))
    assert kept.y.sum() == every.y.sum() and (kept.weight[kept.y == 1] == 1).all()          # every fraud, weight 1
    for day in set(every.day):                      # each day's normals are represented by their weights
        normals = ((every.day == day) & (every.y == 0)).sum()
        assert abs(kept.weight[(kept.day == day) & (kept.y == 0)].sum() - normals) < 1e-6
    store.close()


def test_training_says_before_starting_when_the_evaluation_periods_exceed_the_memory_cap(
        tmp_path, small_demo_csv, monkeypatch):
    from core import config, models
    from core.ingest import ingest
    from core.store import Store
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "d")
    monkeypatch.setattr(config, "memory_limit", lambda: 1_000_000)
    with pytest.raises(RiskdeskError, match="RISKDESK_MEMORY"):
        models.train(store, "d", kinds=["default"])
    assert models.list_models(store, "d") == []
    store.close()


_TEXT = ["atm", "web", "pos", "Web", "", "网银", "a'b"]


@given(values=st.lists(st.sampled_from(_TEXT + [None]), max_size=40),
       cats=st.lists(st.sampled_from(_TEXT), unique=True, min_size=1))
@settings(max_examples=60, deadline=None)
def test_text_categories_are_coded_as_in_training_unseen_and_null_as_missing(values, cats):
    X = pd.DataFrame({"channel": pd.array(values, dtype="str"), "n": np.arange(len(values), dtype=float)})
    coded = models.encode_categories(X, {"channel": cats})["channel"]
    assert list(coded.cat.categories) == cats
    assert [None if pd.isna(v) else v for v in coded] == [v if v in cats else None for v in values]
    assert X["channel"].dtype == "str"          # the caller's frame is left as it was
