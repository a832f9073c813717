"""The memory cap: RISKDESK_MEMORY caps DuckDB (spilling to the workspace's tmp folder), a bad
value is refused with a message naming it, and the default is a documented share of RAM."""
import pytest

from core import config
from core.errors import RiskdeskError
from core.store import Store


@pytest.mark.parametrize("text, size", [("4GB", 4 * 10 ** 9), ("512MB", 512 * 10 ** 6), ("2.5GiB", int(2.5 * 2 ** 30)),
                                        ("1073741824", 2 ** 30), (" 8 g ", 8 * 10 ** 9)])
def test_riskdesk_memory_reads_sizes(monkeypatch, text, size):
    monkeypatch.setenv("RISKDESK_MEMORY", text)
    assert config.memory_limit() == size


@pytest.mark.parametrize("text", ["lots", "4XB", "-1GB", "100MB"])
def test_a_bad_or_too_small_cap_is_refused_by_name(monkeypatch, text):
    monkeypatch.setenv("RISKDESK_MEMORY", text)
    with pytest.raises(RiskdeskError, match="RISKDESK_MEMORY"):
        config.memory_limit()


def test_the_default_is_half_the_machines_memory(monkeypatch):
    monkeypatch.delenv("RISKDESK_MEMORY", raising=False)
    assert config.memory_limit() == int(config.machine_memory() * config.MEMORY_SHARE)


def test_the_store_caps_duckdb_and_spills_to_the_workspace(tmp_path, monkeypatch):
    monkeypatch.setenv("RISKDESK_MEMORY", "300MB")
    store = Store(tmp_path / "ws")
    limit = store.scalar("SELECT current_setting('memory_limit')")
    assert limit.endswith("MiB") and 250 <= float(limit.split()[0]) <= 300
    assert store.scalar("SELECT current_setting('temp_directory')") == str(tmp_path / "ws" / "tmp" / "duckdb")
    # a sort larger than the cap completes by spilling instead of failing
    n = store.scalar("SELECT count(*) FROM (SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR) AS s "
                     "FROM range(6000000) t(i) ORDER BY s)")
    assert n == 6_000_000
    store.close()


def test_scoring_a_dataset_goes_in_chunks_of_days_that_fit_the_memory_cap(tmp_path, small_demo_csv, monkeypatch):
    """10M rows scored in one frame took 24 GB and the server was killed: ensure_scored loads a
    share of the memory cap at a time, whole days each, and every row gets its one score."""
    from core import cases, models
    from core.ingest import ingest
    from core.store import Store
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "d")
    model = models.train(store, "d", kinds=["default"])["models"][0]
    monkeypatch.setattr(cases, "SCORE_SHARE", 1e-6)           # chunks of a few days' rows
    monkeypatch.setattr(cases, "MIN_SCORE_CHUNK", 100)
    messages = []
    cases.ensure_scored(store, model["model_id"], progress=lambda f, m: messages.append((f, m)))
    chunks = store.rows("SELECT count(*) FROM audit_log WHERE action = 'score_dataset'")[0][0]
    rows, distinct = store.rows("SELECT count(*), count(DISTINCT transaction_id) FROM model_scores "
                                "WHERE model_id = ? AND part = 'all'", [model["model_id"]])[0]
    whole = models.score(store, model["model_id"]).set_index("transaction_id")["score"]
    assert chunks > 3 and rows == distinct == len(whole) and messages[-1][0] == 1.0
    stored = dict(store.rows("SELECT transaction_id, score FROM model_scores WHERE model_id = ? AND part = 'all'",
                             [model["model_id"]]))
    assert len(stored) == len(whole) and all(abs(stored[str(t)] - s) < 1e-12 for t, s in whole.items())
    store.close()
