"""What each feature family costs in seconds and earns in average precision, on the demo data:

    python bench/family_cost.py [--rows 1000000] [--memory 4GB] [--families velocity,device]

Loads the file once, then for every family builds the feature set without that family
(build_features, rebuild) and trains the default GBDT on it (core.models.train, the app's
out-of-time split, AP on every test row). The first line is every family, after one untimed
build (which loads the compiled loops). Prints, per family,
the build's seconds and its share of the full build, and the test AP lost without it. A family
that costs much and earns little is a candidate to leave out (FeatureConfig.families).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import OUT, demo_file


def measure(store, config) -> tuple[float, float, int]:
    from core import models
    from core.features import build_features
    start = time.perf_counter()
    fs = build_features(store, "bench", config, rebuild=True)
    seconds = time.perf_counter() - start
    model = models.train(store, "bench", kinds=("default",), feature_config=config)["models"][0]
    return seconds, model["metrics"]["test"]["average_precision"], len(fs["catalogue"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--memory", help="RISKDESK_MEMORY, e.g. 4GB")
    ap.add_argument("--families", help="comma-separated families to leave out one at a time (default: all)")
    args = ap.parse_args()
    if args.memory:
        os.environ["RISKDESK_MEMORY"] = args.memory
    from core.features import FAMILIES, FeatureConfig
    from core.ingest import ingest
    from core.store import Store
    csv = demo_file(args.rows)
    with tempfile.TemporaryDirectory(dir=OUT) as home:
        store = Store(Path(home))
        ingest(store, csv, "bench")
        from core.features import build_features
        build_features(store, "bench", FeatureConfig())    # untimed: loads the compiled loops once
        full_s, full_ap, full_n = measure(store, FeatureConfig())
        print(f"{'every family':22s} {full_s:7.2f} s  {full_n:3d} features  AP {full_ap:.4f}", flush=True)
        for family in (args.families.split(",") if args.families else FAMILIES):
            config = FeatureConfig(families=tuple(f for f in FAMILIES if f != family))
            s, ap_, n = measure(store, config)
            print(f"{'without ' + family:22s} {s:7.2f} s  {n:3d} features  AP {ap_:.4f}   "
                  f"saves {1 - s / full_s:5.1%} of the time, loses {full_ap - ap_:+.4f} AP", flush=True)
        store.close()


if __name__ == "__main__":
    main()
