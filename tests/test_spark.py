"""The same features on Spark: generated from the one definition, they equal DuckDB's column by
column (NULLs included) on data with ties at the same timestamp, NULL devices, counterparties
and channels, transactions exactly on window boundaries and labels on both sides of the label
delay, plus a slice of the demo data."""
import json
import shutil
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from conftest import run_cli



def tricky_rows() -> pd.DataFrame:
    t0 = datetime(2024, 3, 1, 12, 0, 0)
    steps = [timedelta(0), timedelta(0),                     # a tie at the same time
             timedelta(hours=1), timedelta(hours=1, seconds=1),  # exactly one hour later, and just past it
             timedelta(hours=24), timedelta(days=7), timedelta(days=7, microseconds=500_000),
             timedelta(days=8), timedelta(days=14), timedelta(days=30), timedelta(days=37), timedelta(days=38)]
    rows, n = [], 0
    for c, customer in enumerate(["C1", "C2", "C3"]):
        for i, step in enumerate(steps):
            n += 1
            rows.append({"trans_id": f"T{n:04d}", "user_id": customer, "trans_time": (t0 + step).isoformat(sep=" "),
                         "amount": round(10 + 37.5 * ((n * 7) % 11), 2), "pre_balance": 1000.0 + 10 * n,
                         "post_balance": (1000.0 + 10 * n) * (0.05 if n % 5 == 0 else 0.9),
                         "channel": ["app", "web", None][n % 3], "trans_type": ["transfer", "purchase"][n % 2],
                         "device_id": None if n % 4 == 0 else f"D{(n + c) % 3}",
                         "counterparty": None if n % 6 == 0 else f"M{n % 2}", "label": int(n % 5 == 0)})
    return pd.DataFrame(rows)


def test_spark_computes_the_same_features_as_duckdb(tmp_path, small_demo_csv):
    assert shutil.which("java"), "Spark needs Java: test.sh installs Debian's default-jre-headless"
    frame = pd.concat([tricky_rows(), pd.read_csv(small_demo_csv, dtype=str).head(600)], ignore_index=True)
    frame.to_csv(tmp_path / "tricky.csv", index=False)
    home = tmp_path / "ws"
    loaded = run_cli(home, "ingest", str(tmp_path / "tricky.csv"), "--dataset", "t", "--map", "counterparty_id=counterparty",
                     "--json")
    assert loaded.returncode == 0, loaded.stderr
    duck = run_cli(home, "features", "--dataset", "t", "--out", str(tmp_path / "duck.parquet"), "--json")
    assert duck.returncode == 0, duck.stderr
    spark = run_cli(home, "features", "--dataset", "t", "--engine", "spark", "--out", str(tmp_path / "spark.parquet"),
                    "--json")
    assert spark.returncode == 0, spark.stderr
    assert json.loads(spark.stdout)["engine"] == "spark"
    a = pd.read_parquet(tmp_path / "duck.parquet").set_index("transaction_id")
    b = pd.read_parquet(tmp_path / "spark.parquet").set_index("transaction_id")
    assert sorted(a.index) == sorted(b.index) and list(a.columns) == list(b.columns)
    b = b.loc[a.index]
    assert len(a.columns) > 40
    for column in a.columns:
        x, y = a[column], b[column]
        both_null = x.isna().to_numpy() & y.isna().to_numpy()
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y):
            same = np.isclose(x.astype(float), y.astype(float), rtol=1e-9, atol=1e-9, equal_nan=False)
        else:
            same = (x.astype(str) == y.astype(str)).to_numpy()
        differ = ~(both_null | same)
        assert not differ.any(), (column, list(a.index[differ][:5]), list(x[differ][:5]), list(y[differ][:5]))
    # scoring at scale: the LightGBM text model applied on Spark gives the same scores
    trained = run_cli(home, "train", "--dataset", "t", "--models", "default", "--json")
    assert trained.returncode == 0, trained.stderr
    model = json.loads(trained.stdout)["models"][0]
    on_duckdb = run_cli(home, "score", "--model", model["model_id"], "--out", str(tmp_path / "scores.csv"), "--json")
    on_spark = run_cli(home, "score", "--model", model["model_id"], "--engine", "spark", "--out",
                       str(tmp_path / "scores.parquet"), "--json")
    assert on_duckdb.returncode == 0 and on_spark.returncode == 0, on_duckdb.stderr + on_spark.stderr
    ours = pd.read_csv(tmp_path / "scores.csv", dtype={"transaction_id": str}).set_index("transaction_id")
    theirs = pd.read_parquet(tmp_path / "scores.parquet").set_index("transaction_id").loc[ours.index]
    assert np.allclose(ours["score"], theirs["score"], rtol=1e-9, atol=1e-12)
    from core.metrics import decide
    from core.models import get_model
    from core.store import Store
    store = Store(home)
    entry = get_model(store, model["model_id"])
    store.close()
    bands = decide(ours["score"], entry["threshold"], entry["block_threshold"])
    assert (theirs["decision"].to_numpy() == bands).all()
