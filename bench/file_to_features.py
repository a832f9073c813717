"""From the file to features, whole processes, on the demo generator's output:

    python bench/file_to_features.py [--rows 1000000] [--memory 4GB] [--only ours|floor|pandas] [--busy]
    python bench/file_to_features.py --rows 10000000 --memory 4GB --only ours,floor

Each method runs in a fresh process from the same CSV file, timed from start to finish, with
its peak RSS:
  ours    ingest (reading, type inference, checks, rejects) + build_features (every family)
  floor   one hand-written DuckDB query from the file: four customer windows (1h, 24h, 7d,
          30d) with counts and sums, the gap since the previous transaction, balance ratios
          and time of day - the least any tool does for these features
  pandas  the seed article's code (bench/features.py seed_pandas)
RISKDESK_MEMORY (--memory) applies to ours and the floor. Prints seconds, peak RSS and the
ratios ours / floor (goal <= 3x) and pandas / ours (goal >= 15x).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _common import ROOT, busy_core, demo_file, peak_rss_mb, run_child

FLOOR_SQL = """
CREATE TABLE floor AS
SELECT trans_id, hour(ts) AS hour, CAST(hour(ts) <= 6 AS INTEGER) AS night,
  epoch(ts) - epoch(lag(ts) OVER (PARTITION BY user_id ORDER BY ts, trans_id)) AS since_prev,
  count(*) OVER h1 AS c1h, sum(amount) OVER h1 AS s1h, count(*) OVER h24 AS c24h, sum(amount) OVER h24 AS s24h,
  count(*) OVER d7 AS c7d, sum(amount) OVER d7 AS s7d, count(*) OVER d30 AS c30d, sum(amount) OVER d30 AS s30d,
  amount / NULLIF(pre_balance, 0) AS amount_to_balance, post_balance / NULLIF(pre_balance, 0) AS after_to_before
FROM (SELECT *, CAST(trans_time AS TIMESTAMP) AS ts FROM read_csv(?, header = true))
WINDOW
  h1 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 1 HOUR PRECEDING AND CURRENT ROW),
  h24 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 24 HOUR PRECEDING AND CURRENT ROW),
  d7 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 7 DAY PRECEDING AND CURRENT ROW),
  d30 AS (PARTITION BY user_id ORDER BY ts RANGE BETWEEN INTERVAL 30 DAY PRECEDING AND CURRENT ROW)
"""


def child(method: str, csv: Path, home: Path) -> dict:
    start = time.perf_counter()
    if method == "ours":
        from core.features import build_features
        from core.ingest import ingest
        from core.store import Store
        store = Store(home)
        ingest(store, csv, "bench")
        rows = build_features(store, "bench")["rows"]
        store.close()
    elif method == "floor":
        import duckdb

        from core import config
        con = duckdb.connect(str(home / "floor.duckdb"), config=config.duckdb_config(home))
        con.execute(FLOOR_SQL, [str(csv)])
        rows = con.execute("SELECT count(*) FROM floor").fetchone()[0]
        con.close()
    else:
        from features import seed_pandas
        rows = seed_pandas(csv)
    return {"method": method, "seconds": time.perf_counter() - start, "rows": rows, "peak_rss_mb": peak_rss_mb()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--memory", help="RISKDESK_MEMORY for ours and the floor, e.g. 4GB")
    ap.add_argument("--only", default="ours,floor,pandas", help="comma-separated: ours, floor, pandas")
    ap.add_argument("--busy", action="store_true", help="keep one core busy in another process")
    ap.add_argument("--child", nargs=2, metavar=("METHOD", "HOME"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    csv = demo_file(args.rows)
    if args.child:
        print(json.dumps(child(args.child[0], csv, Path(args.child[1]))))
        return
    env = {**os.environ, **({"RISKDESK_MEMORY": args.memory} if args.memory else {})}
    results = {}
    with busy_core(args.busy):
        for method in args.only.split(","):
            with tempfile.TemporaryDirectory(dir=ROOT / "bench" / "out") as home:
                results[method] = run_child(__file__, ["--rows", str(args.rows), "--child", method, home], env)
    print(f"rows: {args.rows:,}  RISKDESK_MEMORY: {args.memory or '(default)'}  busy core: {args.busy}")
    for m, r in results.items():
        print(f"{m:7s} {r['seconds']:8.2f} s   peak RSS {r['peak_rss_mb']:7.0f} MB   ({r['rows']:,} rows)")
    if {"ours", "floor"} <= set(results):
        print(f"ours / floor: {results['ours']['seconds'] / results['floor']['seconds']:.1f}x  (goal <= 3x)")
    if {"ours", "pandas"} <= set(results):
        print(f"pandas / ours: {results['pandas']['seconds'] / results['ours']['seconds']:.1f}x  (goal >= 15x)")


if __name__ == "__main__":
    main()
