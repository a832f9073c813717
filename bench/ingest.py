"""Ingest speed: our full load (encoding detection, role inference from names and values,
parse, rejects, dedupe, health checks, commit) of a 1M-row CSV against a bare DuckDB read_csv
of the same file into a table, both in this process, run alternately.

    python bench/ingest.py [--rows 1000000] [--repeat 5] [--busy]

Prints the median times and the median of the per-pair ratios (target <= 1.5x).
"""
import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import duckdb

from _common import busy_core, demo_file, timed_pairs

from core.ingest import ingest
from core.store import Store


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--busy", action="store_true", help="keep one core busy in another process")
    args = ap.parse_args()
    path = demo_file(args.rows)
    tmp = Path(tempfile.mkdtemp(prefix="bench_ingest_"))
    runs = {"n": 0}

    def bare():
        db = tmp / f"bare_{runs['n']}.duckdb"
        runs["n"] += 1
        con = duckdb.connect(str(db))
        con.execute("CREATE TABLE t AS SELECT * FROM read_csv(?)", [str(path)])
        con.close()
        db.unlink()

    def ours():
        home = tmp / f"ws_{runs['n']}"
        runs["n"] += 1
        store = Store(home)
        result = ingest(store, path, "bench")
        store.close()
        shutil.rmtree(home)
        assert result["rows_loaded"] > 0.99 * args.rows

    with busy_core(args.busy):
        bare()  # warm the page cache
        t_bare, t_ours, ratios = timed_pairs(bare, ours, args.repeat)
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"rows: {args.rows:,}  file: {path.stat().st_size / 1e6:.0f} MB  busy core: {args.busy}")
    print(f"bare DuckDB read_csv -> table: {t_bare:.2f}s (median)")
    print(f"riskdesk ingest:               {t_ours:.2f}s (median)")
    print(f"ratio ingest / bare: {statistics.median(ratios):.2f}x  (pairs {', '.join(f'{r:.2f}' for r in ratios)}; "
          "target <= 1.5x)")


if __name__ == "__main__":
    main()
