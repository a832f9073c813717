"""Load on the REST API: concurrent clients scoring single transactions against the one server
(UI and API in one process) on the demo data.

    python bench/api_load.py [--clients 20] [--requests 15]

Prepares a workspace (demo data, a default model promoted to champion, an analyst's API key),
starts serve.py, then measures one client alone (the baseline) and `--clients` clients at
once, each sending `--requests` single-transaction POST /score calls. Prints p50 and p99
latency, errors and the ratio of concurrent to single-client p50. (The issue's locust run with
a training browser session beside it is still to come; this is the plain-threads version.)
"""
import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from _common import demo_file

from serve import background


def prepare(home: Path) -> str:
    from core import champion, models, people
    from core.ingest import ingest
    from core.store import Store
    store = Store(home)
    ingest(store, demo_file(100_000), "bank")
    model = models.train(store, "bank", kinds=["default"])["models"][0]
    champion.promote(store, "bank", model["model_id"], "bench", "load test")
    people.add_user(store, "bench", "analyst", None)
    key = people.create_key(store, "bench")["key"]
    store.close()
    return key


def run(url: str, key: str, clients: int, per_client: int, tag: str) -> tuple[list[float], int]:
    import requests
    latencies, errors = [], []

    def client(c):
        session = requests.Session()
        for i in range(per_client):
            body = {"dataset": "bank", "transactions": [{
                "transaction_id": f"{tag}-{c}-{i}", "customer_id": f"U{(c * 37 + i) % 2000:06d}",
                "timestamp": "2024-05-01 10:00:00", "amount": 100.0 + i, "channel": "mobile_banking",
                "counterparty_id": "M01002"}]}
            start = time.perf_counter()
            r = session.post(url + "/api/v1/score", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=120)
            latencies.append(time.perf_counter() - start)
            if r.status_code != 200:
                errors.append(r.status_code)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, len(errors)


def summary(name: str, latencies: list[float], errors: int, seconds: float) -> float:
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) >= 2 else p50
    print(f"{name:<12} {len(latencies):>5} requests  p50 {p50 * 1000:7.0f} ms  p99 {p99 * 1000:7.0f} ms  "
          f"errors {errors}  {len(latencies) / seconds:6.1f} req/s")
    return p50


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=15)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bench_api_")) / "ws"
    key = prepare(home)
    with background(home) as url:
        run(url, key, 1, 3, "warm")
        start = time.perf_counter()
        alone = summary("1 client", *run(url, key, 1, args.requests, "one"), time.perf_counter() - start)
        start = time.perf_counter()
        together = summary(f"{args.clients} clients", *run(url, key, args.clients, args.requests, "many"),
                           time.perf_counter() - start)
        print(f"ratio p50 concurrent / alone: {together / alone:.1f}  (goal: p99 <= 100 ms, 0 errors)")


if __name__ == "__main__":
    main()
