"""Training speed on the demo data: the full comparison (rules, default GBDT, tuned LightGBM)
with the machine idle, then with another process keeping one core busy (design.md, Threads).

    python bench/train.py [--trials 30] [--threads N ...]

Prints each run's seconds, the busy/idle ratio, and the per-trial time of the tuned model.
The workspace is a temporary directory; features are built once before timing.
"""
import argparse
import os
import tempfile
import time

from _common import busy_core

from core import models
from core.features import build_features
from core.ingest import ingest
from core.sample import DEMO_FILE
from core.store import Store


def run(store, trials: int) -> dict:
    start = time.perf_counter()
    result = models.train(store, "demo", kinds=("rules", "default", "tuned"), trials=trials)
    seconds = time.perf_counter() - start
    by_kind = {m["kind"]: m for m in result["models"]}
    return {"seconds": seconds, **{f"{k}_seconds": m["train_seconds"] for k, m in by_kind.items()},
            **{f"{k}_ap": m["metrics"]["test"]["average_precision"] for k, m in by_kind.items()},
            **{f"{k}_auc": m["metrics"]["test"]["auc"] for k, m in by_kind.items()}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        ingest(store, DEMO_FILE, "demo")
        build_features(store, "demo")
        print(f"threads setting: {os.environ.get('RISKDESK_THREADS', 'cores')}, trials {args.trials}")
        idle = run(store, args.trials)
        with busy_core():
            busy = run(store, args.trials)
        for name, r in (("idle", idle), ("busy core", busy)):
            print(f"{name:10s} total {r['seconds']:6.1f} s  rules {r['rules_seconds']:.2f} s  default "
                  f"{r['default_seconds']:.1f} s  tuned {r['tuned_seconds']:.1f} s "
                  f"({r['tuned_seconds'] / args.trials:.2f} s/trial)")
        print(f"busy/idle ratio: total {busy['seconds'] / idle['seconds']:.2f}x, "
              f"tuned {busy['tuned_seconds'] / idle['tuned_seconds']:.2f}x")
        print("test period: " + ", ".join(f"{k} AP {idle[k + '_ap']:.3f} AUC {idle[k + '_auc']:.3f}"
                                          for k in ("rules", "default", "tuned")))
        store.close()


if __name__ == "__main__":
    main()
