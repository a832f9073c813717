"""Explanation and export speed on the demo data (issue 5 targets: one transaction's
waterfall <= 150 ms with the model loaded; a batch export of 100 cases <= 60 s).

    python bench/explain.py [--model-kind tuned] [--n 200] [--batch 100]

Trains the model once in a temporary workspace, loads it (the first explanation, which also
imports SHAP, is reported apart), then times explain() + the plotly waterfall for n
transactions of the test period (p50 / p95), the PDF of one case, and the ZIP of `batch` cases
in all three formats.
"""
import argparse
import statistics
import tempfile
import time

from _common import busy_core

from core import explain, models, plots, report
from core.ingest import ingest
from core.sample import DEMO_FILE
from core.store import Store


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-kind", default="tuned", choices=["default", "tuned", "forest", "logistic"])
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--busy", action="store_true", help="keep another core busy while timing")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        ingest(store, DEMO_FILE, "demo")
        result = models.train(store, "demo", kinds=(args.model_kind,), trials=args.trials)
        model_id = result["models"][0]["model_id"]
        ids = [r[0] for r in store.rows("SELECT transaction_id FROM model_scores WHERE model_id = ? AND part = 'test' "
                                        "ORDER BY hash(transaction_id) LIMIT ?", [model_id, args.n + args.batch])]
        start = time.perf_counter()
        explain.explain(store, model_id, ids[0])
        first = time.perf_counter() - start
        with busy_core(args.busy):
            times = []
            for txid in ids[:args.n]:
                start = time.perf_counter()
                e = explain.explain(store, model_id, txid)
                plots.waterfall(e, "en")
                times.append(time.perf_counter() - start)
            start = time.perf_counter()
            report.to_pdf(report.case_record(store, model_id, ids[0]))
            pdf = time.perf_counter() - start
            start = time.perf_counter()
            data = report.batch_zip(store, model_id, ids[args.n:args.n + args.batch], report.FORMATS)
            batch = time.perf_counter() - start
        ms = [t * 1000 for t in times]
        print(f"model {args.model_kind} ({model_id}); busy core: {args.busy}")
        print(f"first explanation (loads the model, imports SHAP): {first * 1000:.0f} ms")
        print(f"waterfall (explain + plotly figure), {len(ms)} transactions: p50 {percentile(ms, 0.5):.1f} ms, "
              f"p95 {percentile(ms, 0.95):.1f} ms, mean {statistics.mean(ms):.1f} ms (target 150 ms)")
        print(f"one PDF case: {pdf * 1000:.0f} ms")
        print(f"batch of {args.batch} cases (PDF + HTML + JSON, ZIP {len(data) / 1e6:.1f} MB): {batch:.1f} s "
              f"(target 60 s)")
        store.close()


if __name__ == "__main__":
    main()
