"""Incremental features: bringing a 1M-row dataset's features level with an appended batch of
1% of its rows, against rebuilding every row's features, on the same dataset in this process,
run alternately.

    python bench/append.py [--rows 1000000] [--share 0.01] [--repeat 3] [--busy]

Each pair: append the batch (not timed), time the catch-up (core.features.build_features),
time a full rebuild of the same grown dataset, then take the batch back. Prints the median
times, the rows each recomputed, and the median of the per-pair ratios (target <= 0.10).
"""
import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd

from _common import busy_core, demo_file

from core.datasets import delete_newest_batch
from core.features import FeatureConfig, build_features
from core.ingest import ingest
from core.store import Store


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--share", type=float, default=0.01, help="the batch's share of the rows")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--busy", action="store_true", help="keep one core busy in another process")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_append_"))
    frame = pd.read_csv(demo_file(args.rows), dtype=str, keep_default_na=False)
    cut = int(len(frame) * (1 - args.share))
    frame.iloc[:cut].to_csv(tmp / "base.csv", index=False)
    frame.iloc[cut:].to_csv(tmp / "batch.csv", index=False)
    store = Store(tmp / "ws")
    ingest(store, tmp / "base.csv", "bench")
    config = FeatureConfig()
    fs = build_features(store, "bench", config)
    print(f"{len(frame):,} rows over {frame['trans_time'].min()[:10]} .. {frame['trans_time'].max()[:10]}; "
          f"batch {len(frame) - cut:,} rows; {len(fs['catalogue'])} features")
    inc, full, ratios = [], [], []
    with busy_core(args.busy):
        for k in range(args.repeat):
            ingest(store, tmp / "batch.csv", "bench", append=True)
            steps = [("catch-up", lambda: build_features(store, "bench", config)),
                     ("rebuild", lambda: build_features(store, "bench", config, rebuild=True))]
            took = {}
            for name, fn in steps if k % 2 == 0 else steps[::-1]:
                if name == "catch-up" and k % 2:         # the rebuild went first: undo it for a fair catch-up
                    delete_newest_batch(store, "bench")
                    build_features(store, "bench", config)
                    ingest(store, tmp / "batch.csv", "bench", append=True)
                start = time.perf_counter()
                fn()
                took[name] = time.perf_counter() - start
            inc.append(took["catch-up"])
            full.append(took["rebuild"])
            ratios.append(took["catch-up"] / took["rebuild"])
            delete_newest_batch(store, "bench")
            build_features(store, "bench", config)
    print(f"catch-up  median {statistics.median(inc):7.2f} s   {[round(t, 2) for t in inc]}")
    print(f"rebuild   median {statistics.median(full):7.2f} s   {[round(t, 2) for t in full]}")
    print(f"ratio catch-up / rebuild: median {statistics.median(ratios):.3f}  pairs {[round(r, 3) for r in ratios]}"
          f"  (target <= 0.10)")
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
