"""The in-memory copy of a dataset's rows that scoring requests read (core.history): the rows it
finds for a request are DuckDB's, row for row (customers without an id, entities, window
boundaries to the microsecond, ties, an id the request sends again), and it never answers for
rows that have changed since it was made."""
import time
from datetime import datetime, timedelta

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_pyengine import ROLES, demo_rows, row

from core import history, realtime
from core.features.definitions import FeatureConfig, definition
from core.store import Store

DEFINITION = definition(FeatureConfig(windows=("1h", "24h", "30d"), entity_windows=("1d", "7d"), risk_windows=(7,),
                                      delay_days=7), {"mapping": {r: r for r in ROLES}, "extras": []}, None)
DATASET = {"id": 1, "table": "tx_1"}
T0 = datetime(2024, 3, 1, 12, 0, 0)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("history") / "ws")
    yield s
    s.close()


def load(store: Store, stored: list[dict]) -> None:
    """The rows as a dataset's table, typed as ingest types them."""
    frame = pd.DataFrame([{**r, "trans_id": f"T{n:03d}"} for n, r in enumerate(stored)])
    with store.write() as cur:
        cur.register("raw", frame.rename(columns={"trans_id": "transaction_id", "user_id": "customer_id",
                                                  "trans_time": "timestamp", "pre_balance": "balance_before",
                                                  "post_balance": "balance_after", "trans_type": "transaction_type",
                                                  "counterparty": "counterparty_id"}))
        cur.execute("CREATE OR REPLACE TABLE tx_1 AS SELECT transaction_id, customer_id, "
                    "CAST(timestamp AS TIMESTAMP) AS timestamp, CAST(amount AS DOUBLE) AS amount, "
                    "CAST(label AS INTEGER) AS label, CAST(balance_before AS DOUBLE) AS balance_before, "
                    "CAST(balance_after AS DOUBLE) AS balance_after, channel, "
                    "CAST(transaction_type AS VARCHAR) AS transaction_type, device_id, counterparty_id FROM raw")
        cur.unregister("raw")


def from_duckdb(store: Store, requests: list[dict]) -> list[tuple]:
    cur = store.cursor()
    result = cur.execute(*realtime._near("tx_1", DEFINITION, requests))
    names = [c[0] for c in result.description]
    found = sorted(result.fetchall(), key=repr)
    cur.close()
    return names, found


request = st.fixed_dictionaries({
    "transaction_id": st.sampled_from(["R1", "R2", "T000", "T003"]),      # T...: a stored id sent again
    "customer_id": st.sampled_from(["A", "B", "C", "Z", None]),
    "device_id": st.sampled_from(["D1", "D2", None]),
    "counterparty_id": st.sampled_from(["M1", "M2", None]),
    "timestamp": st.sampled_from([timedelta(0), timedelta(days=1), timedelta(days=7, microseconds=1),
                                  timedelta(days=8), timedelta(days=37), timedelta(days=45, hours=1)]).map(lambda d: T0 + d),
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.lists(row, min_size=1, max_size=30), st.lists(request, min_size=1, max_size=3, unique_by=lambda r: r["transaction_id"]))
def test_the_rows_found_in_memory_are_duckdbs(store, stored, requests):
    load(store, stored)
    copy = history.build(store, DATASET, DEFINITION.keys)
    names, expected = from_duckdb(store, requests)
    columns = copy.near(requests, DEFINITION.keys, DEFINITION.lookback)
    assert sorted(zip(*[columns[n] for n in names]), key=repr) == expected


def test_the_copy_is_made_in_the_background_and_never_outlives_a_change_of_the_rows(tmp_path):
    from core import models
    from core.ingest import ingest
    frame = demo_rows(30_000)
    frame.iloc[:28_000].to_csv(tmp_path / "a.csv", index=False)
    frame.iloc[28_000:].to_csv(tmp_path / "b.csv", index=False)
    store = Store(tmp_path / "ws")
    ingest(store, tmp_path / "a.csv", "bank")
    models.train(store, "bank", kinds=["default"])
    p = realtime.plan(store, "bank")
    ask = [{"transaction_id": "new-1", "customer_id": frame.user_id[0], "timestamp": "2024-05-01 10:00:00",
            "amount": 50.0}]
    first = realtime.score_transactions(store, "bank", ask)       # asks DuckDB, starts the copy
    assert realtime.score_in_memory(store, "bank", ask) in (None, first)
    deadline = time.time() + 30
    while (copy := history.current(store, p.ds, p.d.keys)) is None and time.time() < deadline:
        time.sleep(0.05)
    assert copy is not None and copy.table.num_rows == 28_000
    assert realtime.score_transactions(store, "bank", ask) == first == realtime.score_in_memory(store, "bank", ask)
    assert realtime.score_in_memory(store, "bank", ask * (realtime.INLINE_ROWS + 1)) is None      # too many for here
    ingest(store, tmp_path / "b.csv", "bank", append=True)
    p = realtime.plan(store, "bank")
    assert history.current(store, p.ds, p.d.keys) is not copy                # the old rows are never read again
    assert realtime.score_in_memory(store, "bank", ask) is None
    stored_again = [{"transaction_id": frame.trans_id[29_000], "customer_id": "U1", "timestamp": "2024-05-01 10:00:00",
                     "amount": 1.0}]
    with pytest.raises(Exception, match="already in dataset"):
        realtime.score_transactions(store, "bank", stored_again)
    deadline = time.time() + 30
    while (copy := history.current(store, p.ds, p.d.keys)) is None and time.time() < deadline:
        time.sleep(0.05)
    assert copy.table.num_rows == 30_000
    with pytest.raises(Exception, match="already in dataset"):
        realtime.score_transactions(store, "bank", stored_again)
    store.close()


def test_rows_beyond_their_share_of_memory_stay_in_duckdb(store, monkeypatch):
    load(store, [{"user_id": "A", "trans_time": "2024-03-01 12:00:00", "amount": 1.0, "pre_balance": None,
                  "post_balance": None, "channel": None, "trans_type": None, "device_id": None, "counterparty": None,
                  "label": 0}])
    history.forget(store)
    assert history.fits(1) and not history.fits(10 ** 12)
    monkeypatch.setenv("RISKDESK_MEMORY", "1GB")
    monkeypatch.setattr(history, "ROW_BYTES", 10 ** 9)       # one row: more than a tenth of the cap
    assert history.current(store, DATASET, DEFINITION.keys) is None
    assert not [t for t in store._background if t.is_alive()]
