"""Explore statistics against references: AUC/KS vs scikit-learn, IV, PSI, segments."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from conftest import ROOT
from core import explore
from core.datasets import get_dataset
from core.features import build_features
from core.ingest import ingest


def test_auc_and_ks_match_sklearn():
    rng = np.random.default_rng(0)
    y = (rng.random(5000) < 0.1).astype(int)
    x = rng.normal(size=5000) + y * 0.8
    x[rng.random(5000) < 0.05] = np.nan
    x = np.round(x, 1)                                   # ties
    ok = ~np.isnan(x)
    auc, ks = explore._auc_ks(x, y, np.ones_like(x))
    assert auc == pytest.approx(roc_auc_score(y[ok], x[ok]), abs=1e-12)
    fpr, tpr, _ = roc_curve(y[ok], x[ok])
    assert ks == pytest.approx(np.max(tpr - fpr), abs=1e-12)


def test_weights_equal_repetition():
    x = np.array([1.0, 2.0, 2.0, 3.0, 4.0])
    y = np.array([0, 0, 1, 1, 0])
    w = np.array([1.0, 3.0, 1.0, 1.0, 2.0])
    auc, _ = explore._auc_ks(x, y, w)
    rep = np.repeat(np.arange(5), w.astype(int))
    assert auc == pytest.approx(roc_auc_score(y[rep], x[rep]))


def test_information_value_of_a_known_split():
    x = np.array([0.0] * 50 + [1.0] * 50)
    y = np.array([0] * 45 + [1] * 5 + [0] * 5 + [1] * 45)
    iv = explore._iv(x, y, np.ones(100), bins=2)
    p = np.array([5.5, 45.5]) / 50.5
    n = np.array([45.5, 5.5]) / 50.5
    assert iv == pytest.approx(float(np.sum((p - n) * np.log(p / n))))


@pytest.fixture
def demo_fs(store, small_demo_csv):
    ingest(store, small_demo_csv, "demo")
    return build_features(store, "demo"), get_dataset(store, "demo")


def test_ranking_distribution_and_psi(store, demo_fs):
    fs, ds = demo_fs
    ranking = explore.ranking(store, fs)
    assert len(ranking) == len(fs["catalogue"])
    assert ranking["auc"].between(0.5, 1).all() and ranking["missing_rate"].between(0, 1).all()
    dist = explore.distribution(store, fs, "amount_to_mean_30d", log=True)
    assert dist.groupby("label")["share"].sum().round(9).eq(1).all()
    same = explore.psi(store, fs, ("2024-01-01", "2024-02-28"), ("2024-01-01", "2024-02-28"))
    assert (same["psi"].abs() < 1e-9).all() and set(same["band"]) == {"stable"}
    drift = explore.psi(store, fs, ("2024-01-01", "2024-01-20"), ("2024-04-10", "2024-04-30"))
    assert drift.set_index("feature").loc["cust_prev_count", "band"] == "shift"
    rates = explore.rate_by(store, ds, "hour")
    assert rates["transactions"].sum() == ds["rows"]


def test_segments_use_only_history_up_to_the_date(store, demo_fs):
    _, ds = demo_fs
    seg = explore.segments(store, ds, k=3, as_of="2024-02-15", days=30)
    assert seg["table"]["customers"].sum() == store.scalar(
        f"SELECT count(DISTINCT customer_id) FROM {ds['table']} WHERE timestamp <= '2024-02-15' "
        "AND timestamp > TIMESTAMP '2024-02-15' - INTERVAL 30 DAY")


def test_features_command_writes_parquet(tmp_path, small_demo_csv):
    env = {**os.environ, "RISKDESK_HOME": str(tmp_path / "ws")}
    run = lambda *a: subprocess.run([sys.executable, "-m", "core", *a], capture_output=True, text=True, cwd=ROOT,
                                    env=env, timeout=300)
    assert run("ingest", str(small_demo_csv), "--dataset", "d").returncode == 0
    out = tmp_path / "f.parquet"
    proc = run("features", "--dataset", "d", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["transaction_id"] + result["features"]
    assert len(frame) == result["rows"] and frame["transaction_id"].is_unique
    bad = run("features", "--dataset", "nope", "--json")
    assert bad.returncode != 0 and bad.stdout == "" and "no dataset 'nope'" in bad.stderr
    # a family that costs more than it earns can be left out (bench/family_cost.py)
    lean = json.loads(run("features", "--dataset", "d", "--families", "amount,time,velocity", "--json").stdout)
    assert lean["feature_set"] != result["feature_set"] and set(lean["features"]) < set(result["features"])
    assert not any(f.startswith(("dev_", "cp_", "new_")) for f in lean["features"])
    bad = run("features", "--dataset", "d", "--families", "velocity,devices", "--json")
    assert bad.returncode != 0 and bad.stdout == "" and "unknown feature families: devices (choose from" in bad.stderr
