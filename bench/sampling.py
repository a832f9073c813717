"""What training on a sample costs: the full fit against fits on every fraud plus a weighted,
time-stratified sample of normal transactions, on a dataset where the full fit still fits.

    python bench/sampling.py [--rows 1000000] [--limits 300000,100000] [--kinds default,tuned --trials 10]
                             [--no-full]

Loads the demo generator's output (`--rows`), trains on the default split with every training
row, then with RISKDESK_TRAIN_ROWS at each limit. The test period always uses every row, so the
APs are comparable. Prints each fit's training rows, seconds, test AP and AUC, and the AP ratio
and time ratio against the full fit. With --no-full (a dataset where the full fit does not fit
the machine), only the sampled fits, without ratios.
"""
import argparse
import os
import tempfile
import time

from _common import demo_file

from core import models
from core.features import build_features
from core.ingest import ingest
from core.store import Store


def fit(store, kinds, trials) -> dict:
    start = time.perf_counter()
    result = models.train(store, "bench", kinds=kinds, trials=trials)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "models": {m["kind"]: m for m in result["models"]}}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--limits", default="300000,100000")
    ap.add_argument("--kinds", default="default")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--no-full", action="store_true", help="skip the fit on every training row")
    args = ap.parse_args()
    kinds = tuple(args.kinds.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        ingest(store, demo_file(args.rows), "bench")
        build_features(store, "bench")
        os.environ.pop("RISKDESK_TRAIN_ROWS", None)
        full = None if args.no_full else fit(store, kinds, args.trials)
        runs = [("every row", full)] if full else []
        for limit in args.limits.split(","):
            os.environ["RISKDESK_TRAIN_ROWS"] = limit
            runs.append((f"sample of {int(limit):,}", fit(store, kinds, args.trials)))
        store.close()
    print(f"rows: {args.rows:,}  kinds: {', '.join(kinds)}")
    for name, run in runs:
        for kind, m in run["models"].items():
            test = m["metrics"]["test"]
            sampling = m["params"].get("sampling") or {}
            rows = sampling.get("kept_rows", m["metrics"]["train_rows"])
            ratios = ""
            if full:
                base = full["models"][kind]
                ratios = (f" (x{test['average_precision'] / base['metrics']['test']['average_precision']:.3f})"
                          f"  time x{m['train_seconds'] / base['train_seconds']:.2f}")
            print(f"{name:<18} {kind:<8} train rows {rows:>9,} of {sampling.get('rows', rows):,}  "
                  f"{m['train_seconds']:7.1f} s ({run['seconds']:.1f} s with loading)  test rows "
                  f"{m['metrics']['test'].get('rows', '?')}  test AP {test['average_precision']:.4f}  AUC {test['auc']:.4f}{ratios}")


if __name__ == "__main__":
    main()
