"""Store.df fetches through Arrow (which lets other threads run) but must give the frames
DuckDB's own `.df()` gave: every caller was written against those types."""
import duckdb
import pandas as pd
import pytest

from core.store import Store, arrow_to_pandas

# (SQL type, a value, another value)
TYPES = [
    ("INTEGER", "1", "2"), ("BIGINT", "1", "-7"), ("SMALLINT", "1", "2"), ("TINYINT", "1", "2"),
    ("UBIGINT", "1", "2"), ("HUGEINT", "1", "2"), ("DECIMAL(10,2)", "1.5", "-2.25"),
    ("DOUBLE", "1.5", "2.5"), ("FLOAT", "1.5", "2.5"), ("BOOLEAN", "true", "false"),
    ("DATE", "'2024-01-01'", "'2024-02-29'"), ("TIMESTAMP", "'2024-01-01 10:00:00'", "'2024-03-01 00:00:01.5'"),
    ("VARCHAR", "'a'", "'中文'"),
]


@pytest.mark.parametrize("sql_type, first, second", TYPES)
@pytest.mark.parametrize("with_null", [False, True])
def test_arrow_frames_have_duckdbs_own_types_and_values(sql_type, first, second, with_null):
    third = "NULL" if with_null else second
    sql = f"SELECT CAST(v AS {sql_type}) AS v FROM (VALUES ({first}), ({second}), ({third})) t(v)"
    con = duckdb.connect()
    expected = con.sql(sql).df()
    got = arrow_to_pandas(con.sql(sql).to_arrow_table())
    pd.testing.assert_frame_equal(got, expected)


def test_store_df_binds_values_and_returns_an_empty_frame_with_columns(tmp_path):
    store = Store(tmp_path / "ws")
    try:
        frame = store.df("SELECT x, CAST(x AS DATE) AS d FROM (VALUES (TIMESTAMP '2024-01-02 03:04:05')) t(x) "
                         "WHERE x > ?", ["2030-01-01"])
        assert list(frame.columns) == ["x", "d"] and frame.empty
        assert store.df("SELECT ? AS name", ["O'Brien; DROP TABLE datasets"])["name"].tolist() == [
            "O'Brien; DROP TABLE datasets"]
    finally:
        store.close()


def test_duckdbs_own_threads_run_below_the_thread_that_opened_the_store(tmp_path, monkeypatch):
    import os
    import threading
    monkeypatch.setenv("RISKDESK_THREADS", "2")          # DuckDB starts a query worker at least
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = set(os.listdir("/proc/self/task"))
    store = Store(tmp_path / "ws")
    try:
        started = set(os.listdir("/proc/self/task")) - before - {str(t.native_id) for t in threading.enumerate()}
        assert started
        assert {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in started} == {min(19, mine + 5)}
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == mine
        assert store.df("SELECT count(*) AS n FROM range(100000)")["n"].tolist() == [100000]
    finally:
        store.close()


def test_every_connection_puts_its_duckdb_threads_below_its_opener(monkeypatch):
    import os
    import threading

    from core.store import connect
    monkeypatch.setenv("RISKDESK_THREADS", "2")
    mine = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    before = set(os.listdir("/proc/self/task"))
    con = connect()                     # ingest's and the demo's in-memory connections
    try:
        started = set(os.listdir("/proc/self/task")) - before - {str(t.native_id) for t in threading.enumerate()}
        assert started and {os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in started} == {min(19, mine + 5)}
        assert con.sql("SELECT count(*) FROM range(1000)").fetchall() == [(1000,)]
    finally:
        con.close()
