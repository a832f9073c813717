"""Locust users for bench/api_load.py: each scores single transactions on POST /api/v1/score
with the API key in RISKDESK_BENCH_KEY, pausing RISKDESK_BENCH_WAIT seconds on average between
requests (0: back to back). The pause is drawn from [0.5, 1.5] x the mean, as independent
clients arrive: with a constant pause the users stay in step and every second all of them
send at once."""
import itertools
import os

from locust import HttpUser, between, constant, task

WAIT = float(os.environ.get("RISKDESK_BENCH_WAIT", "1"))
_ids = itertools.count()


class Scorer(HttpUser):
    wait_time = between(0.5 * WAIT, 1.5 * WAIT) if WAIT else constant(0)

    def on_start(self):
        self.client.headers["Authorization"] = f"Bearer {os.environ['RISKDESK_BENCH_KEY']}"

    @task
    def score_one(self):
        n = next(_ids)
        self.client.post("/api/v1/score", name="POST /score (1 transaction)", json={"dataset": "bank", "transactions": [{
            "transaction_id": f"L{os.getpid()}-{n}", "customer_id": f"U{(n * 37) % 2000:06d}",
            "timestamp": "2024-05-01 10:00:00", "amount": 100.0 + n % 900, "channel": "mobile_banking",
            "counterparty_id": "M01002"}]})
