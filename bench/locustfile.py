"""Locust users for bench/api_load.py: each scores single transactions on POST /api/v1/score
with the API key in RISKDESK_BENCH_KEY, pausing RISKDESK_BENCH_WAIT seconds (0: back to back)
between requests."""
import itertools
import os

from locust import HttpUser, constant, task

WAIT = float(os.environ.get("RISKDESK_BENCH_WAIT", "1"))
_ids = itertools.count()


class Scorer(HttpUser):
    wait_time = constant(WAIT)

    def on_start(self):
        self.client.headers["Authorization"] = f"Bearer {os.environ['RISKDESK_BENCH_KEY']}"

    @task
    def score_one(self):
        n = next(_ids)
        self.client.post("/api/v1/score", name="POST /score (1 transaction)", json={"dataset": "bank", "transactions": [{
            "transaction_id": f"L{os.getpid()}-{n}", "customer_id": f"U{(n * 37) % 2000:06d}",
            "timestamp": "2024-05-01 10:00:00", "amount": 100.0 + n % 900, "channel": "mobile_banking",
            "counterparty_id": "M01002"}]})
