"""Feature pipeline speed on generated transactions.

    python bench/features.py [--rows 1000000] [--busy] [--skip-pandas]
    python bench/features.py --rows 10000000 --only ours      # the 10M-row run

Compares, on the same loaded dataset:
  ours    core.features.build_features (all families, materialised, catalogued)
  sql     one hand-written DuckDB query computing the same windows (target: ours <= 1.5x)
  pandas  the seed article's approach: groupby customer + rolling over the last 7/30 rows with
          lambdas (target: ours >= 20x faster)
Each method runs in a fresh subprocess; wall time and that process's peak RSS are printed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from _common import OUT, busy_core, demo_file, peak_rss_mb, run_child

HAND_SQL = """
CREATE TABLE hand AS
SELECT transaction_id, hour(timestamp) AS hour, isodow(timestamp) - 1 AS dow,
  CAST(isodow(timestamp) >= 6 AS INTEGER) AS weekend, CAST(hour(timestamp) <= 6 AS INTEGER) AS night,
  CAST(day(timestamp) >= day(last_day(timestamp)) - 2 AS INTEGER) AS month_end,
  epoch(timestamp) - epoch(lag(timestamp) OVER s) AS since_prev,
  count(*) OVER h1, sum(amount) OVER h1, avg(amount) OVER h1, max(amount) OVER h1,
  count(*) OVER h24, sum(amount) OVER h24, avg(amount) OVER h24, max(amount) OVER h24,
  count(*) OVER d7, sum(amount) OVER d7, avg(amount) OVER d7, max(amount) OVER d7,
  count(*) OVER d30, sum(amount) OVER d30, avg(amount) OVER d30, max(amount) OVER d30,
  amount / NULLIF(avg(amount) OVER p30, 0), (amount - avg(amount) OVER p30) / NULLIF(stddev_samp(amount) OVER p30, 0),
  count(*) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
  count(*) OVER (PARTITION BY customer_id, hour(timestamp) // 3 ORDER BY timestamp, transaction_id
                 ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    / NULLIF(count(*) OVER (s ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0),
  row_number() OVER (PARTITION BY customer_id, device_id ORDER BY timestamp, transaction_id) = 1,
  row_number() OVER (PARTITION BY customer_id, channel ORDER BY timestamp, transaction_id) = 1,
  row_number() OVER (PARTITION BY customer_id, counterparty_id ORDER BY timestamp, transaction_id) = 1,
  count(DISTINCT device_id) OVER d7,
  amount / NULLIF(balance_before, 0), balance_after / NULLIF(balance_before, 0),
  balance_before > 0 AND balance_after <= 0.1 * balance_before,
  least(abs(balance_before - amount - balance_after), abs(balance_before + amount - balance_after)) > 0.01,
  count(*) OVER cp1, count(DISTINCT customer_id) OVER cp1, count(*) OVER cp7, count(DISTINCT customer_id) OVER cp7,
  count(*) OVER cp30, count(DISTINCT customer_id) OVER cp30,
  sum(label) OVER cpr7 / NULLIF(count(label) OVER cpr7, 0), count(label) OVER cpr7,
  sum(label) OVER cpr30 / NULLIF(count(label) OVER cpr30, 0), count(label) OVER cpr30,
  count(*) OVER dv1, count(DISTINCT customer_id) OVER dv1, count(*) OVER dv7, count(DISTINCT customer_id) OVER dv7,
  count(*) OVER dv30, count(DISTINCT customer_id) OVER dv30,
  sum(label) OVER dvr7 / NULLIF(count(label) OVER dvr7, 0), count(label) OVER dvr7,
  sum(label) OVER dvr30 / NULLIF(count(label) OVER dvr30, 0), count(label) OVER dvr30,
  channel, transaction_type
FROM {table}
WINDOW
  s AS (PARTITION BY customer_id ORDER BY timestamp, transaction_id),
  h1 AS (PARTITION BY customer_id ORDER BY timestamp RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
  h24 AS (PARTITION BY customer_id ORDER BY timestamp RANGE BETWEEN INTERVAL 24 HOUR PRECEDING AND CURRENT ROW),
  d7 AS (PARTITION BY customer_id ORDER BY timestamp RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW),
  d30 AS (PARTITION BY customer_id ORDER BY timestamp RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW),
  p30 AS (PARTITION BY customer_id ORDER BY timestamp RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND INTERVAL 1 MICROSECOND PRECEDING),
  cp1 AS (PARTITION BY coalesce(counterparty_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW),
  cp7 AS (PARTITION BY coalesce(counterparty_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW),
  cp30 AS (PARTITION BY coalesce(counterparty_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW),
  cpr7 AS (PARTITION BY coalesce(counterparty_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 14 DAY PRECEDING AND INTERVAL 7 DAY PRECEDING),
  cpr30 AS (PARTITION BY coalesce(counterparty_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 37 DAY PRECEDING AND INTERVAL 7 DAY PRECEDING),
  dv1 AS (PARTITION BY coalesce(device_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 1 DAY PRECEDING AND CURRENT ROW),
  dv7 AS (PARTITION BY coalesce(device_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW),
  dv30 AS (PARTITION BY coalesce(device_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW),
  dvr7 AS (PARTITION BY coalesce(device_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 14 DAY PRECEDING AND INTERVAL 7 DAY PRECEDING),
  dvr30 AS (PARTITION BY coalesce(device_id, transaction_id) ORDER BY timestamp RANGE BETWEEN INTERVAL 37 DAY PRECEDING AND INTERVAL 7 DAY PRECEDING)
ORDER BY timestamp, transaction_id
"""


def seed_pandas(csv: Path) -> int:
    """The seed article's feature code: per-customer rolling windows over the last N rows."""
    import pandas as pd
    df = pd.read_csv(csv, parse_dates=["trans_time"])
    df = df.sort_values(["user_id", "trans_time"])
    g = df.groupby("user_id")["amount"]
    for n in (7, 30):
        df[f"amt_mean_{n}"] = g.transform(lambda x: x.rolling(n, min_periods=1).mean())
        df[f"amt_std_{n}"] = g.transform(lambda x: x.rolling(n, min_periods=1).std())
        df[f"amt_max_{n}"] = g.transform(lambda x: x.rolling(n, min_periods=1).max())
        df[f"amt_sum_{n}"] = g.transform(lambda x: x.rolling(n, min_periods=1).sum())
        df[f"amt_ratio_{n}"] = df["amount"] / df[f"amt_mean_{n}"]
    df["secs_since_prev"] = df.groupby("user_id")["trans_time"].transform(lambda x: x.diff().dt.total_seconds())
    df["hour"] = df["trans_time"].dt.hour
    df["is_night"] = (df["hour"] <= 6).astype(int)
    df["new_device"] = df.groupby(["user_id", "device_id"]).cumcount().eq(0).astype(int)
    df["balance_ratio"] = df["post_balance"] / df["pre_balance"]
    return len(df)


def child(method: str, rows: int, home: Path, csv: Path, families: str | None = None) -> dict:
    from core.store import Store
    store = Store(home)
    start = time.perf_counter()
    if method == "ours":
        from core.features import FeatureConfig, build_features
        config = FeatureConfig(families=tuple(families.split(","))) if families else FeatureConfig()
        fs = build_features(store, "bench", config, rebuild=True)
        n = fs["rows"]
    elif method == "sql":
        from core.datasets import get_dataset
        ds = get_dataset(store, "bench")
        cur = store.cursor()
        cur.execute("DROP TABLE IF EXISTS hand")
        cur.execute(HAND_SQL.format(table=ds["table"]))
        n = cur.execute("SELECT count(*) FROM hand").fetchone()[0]
        cur.execute("DROP TABLE hand")
    else:
        n = seed_pandas(csv)
    seconds = time.perf_counter() - start
    store.close()
    return {"method": method, "seconds": seconds, "rows": n, "peak_rss_mb": peak_rss_mb()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--busy", action="store_true", help="keep one core busy in another process")
    ap.add_argument("--skip-pandas", action="store_true")
    ap.add_argument("--only", choices=["ours", "sql", "pandas"])
    ap.add_argument("--families", help="comma-separated families for ours (default: all)")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "HOME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    csv = demo_file(args.rows)
    if args.child:
        print(json.dumps(child(args.child[0], args.rows, Path(args.child[1]), csv, args.families)))
        return
    home = OUT / f"ws_features_{args.rows}"
    if not (home / "riskdesk.duckdb").exists():
        from core.ingest import ingest
        from core.store import Store
        shutil.rmtree(home, ignore_errors=True)
        store = Store(home)
        ingest(store, csv, "bench")
        store.close()
    methods = [args.only] if args.only else ["ours", "sql"] + ([] if args.skip_pandas else ["pandas"])
    results = {}
    with busy_core(args.busy):
        for m in methods:
            extra = ["--families", args.families] if args.families else []
            results[m] = run_child(__file__, ["--rows", str(args.rows), "--child", m, str(home), *extra])
    print(f"rows: {args.rows:,}  busy core: {args.busy}  families: {args.families or 'all'}")
    for m, r in results.items():
        print(f"{m:7s} {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mb']:7.0f} MB")
    if "ours" in results and "sql" in results:
        print(f"ours / hand-written SQL: {results['ours']['seconds'] / results['sql']['seconds']:.2f}x  (target <= 1.5x)")
    if "ours" in results and "pandas" in results:
        print(f"pandas / ours: {results['pandas']['seconds'] / results['ours']['seconds']:.1f}x faster  (target >= 20x)")


if __name__ == "__main__":
    main()
