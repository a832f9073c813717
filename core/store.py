"""The DuckDB workspace: one database file, numbered migrations, serialised writes.

Tables are named from internal ids (``tx_12``), never from user text. Reads use a fresh
cursor per call so that many Streamlit sessions can share one database handle; writes go
through :meth:`Store.write`, which holds a process-wide lock and wraps one transaction.
"""
from __future__ import annotations

import json
import os
import threading
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

import duckdb

from . import config
from .errors import RiskdeskError, WorkspaceBusy

DB_FILE = "riskdesk.duckdb"

# Append-only list: never edit a shipped migration, add a new one.
MIGRATIONS: list[tuple[int, str]] = [
    (1, """
        CREATE SEQUENCE dataset_id_seq START 1;
        CREATE TABLE datasets (
            id INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            table_name VARCHAR NOT NULL,
            source_name VARCHAR,
            source_sha256 VARCHAR,
            source_bytes BIGINT,
            file_kind VARCHAR,
            encoding VARCHAR,
            delimiter VARCHAR,
            sheet VARCHAR,
            created_at TIMESTAMP NOT NULL,
            mapping JSON,
            extras JSON,
            headers JSON,
            rows_loaded BIGINT,
            rows_rejected BIGINT,
            start_ts TIMESTAMP,
            end_ts TIMESTAMP,
            labelled_rows BIGINT,
            fraud_rows BIGINT
        );
        CREATE TABLE rejects (
            dataset_id INTEGER NOT NULL,
            source_row BIGINT,
            reason VARCHAR NOT NULL,
            role VARCHAR,
            raw_value VARCHAR,
            raw_row VARCHAR
        );
        CREATE SEQUENCE audit_id_seq START 1;
        CREATE TABLE audit_log (
            id BIGINT NOT NULL,
            logged_at TIMESTAMP NOT NULL,
            actor VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            object_kind VARCHAR,
            object_id VARCHAR,
            model_id VARCHAR,
            detail JSON
        );
    """),
    (2, """
        CREATE TABLE feature_sets (
            dataset_id INTEGER NOT NULL,
            version VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            config JSON,
            table_name VARCHAR NOT NULL,
            catalogue JSON,
            rows BIGINT,
            seconds DOUBLE,
            created_at TIMESTAMP NOT NULL
        );
    """),
    (3, """
        CREATE TABLE rules (
            rule_id VARCHAR NOT NULL,
            version INTEGER NOT NULL,
            name VARCHAR NOT NULL,
            expression VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            score DOUBLE NOT NULL,
            enabled BOOLEAN NOT NULL,
            author VARCHAR,
            created_at TIMESTAMP NOT NULL
        );
        CREATE TABLE models (
            model_id VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            dataset_id INTEGER NOT NULL,
            dataset_name VARCHAR,
            source_sha256 VARCHAR,
            feature_version VARCHAR,
            split JSON,
            params JSON,
            metrics JSON,
            threshold DOUBLE,
            block_threshold DOUBLE,
            features JSON,
            artifact VARCHAR,
            artifact_sha256 VARCHAR,
            train_seconds DOUBLE,
            run_id VARCHAR,
            created_at TIMESTAMP NOT NULL
        );
    """),
    (4, """
        -- Scores of a model's validation and test periods (real rows only), for the compare page.
        CREATE TABLE model_scores (
            model_id VARCHAR NOT NULL,
            part VARCHAR NOT NULL,
            transaction_id VARCHAR NOT NULL,
            score DOUBLE NOT NULL
        );
        -- Review decisions: append-only (the code never updates or deletes a row).
        CREATE SEQUENCE decision_id_seq START 1;
        CREATE TABLE decisions (
            decision_id BIGINT NOT NULL,
            dataset_id INTEGER NOT NULL,
            transaction_id VARCHAR NOT NULL,
            decision VARCHAR NOT NULL,
            note VARCHAR,
            reviewer VARCHAR NOT NULL,
            model_id VARCHAR,
            score DOUBLE,
            decided_at TIMESTAMP NOT NULL
        );
    """),
    (5, """
        -- How a dataset's file was read (time offsets, date order, decimal commas, the mapping's
        -- evidence) and its data health warnings at load.
        ALTER TABLE datasets ADD COLUMN reading JSON;
        ALTER TABLE datasets ADD COLUMN warnings JSON;
    """),
    (6, """
        -- A dataset grows by batches (batch 1 is the first load). Rejects carry their batch;
        -- transaction tables get a batch column when their first append arrives.
        CREATE TABLE batches (
            dataset_id INTEGER NOT NULL,
            batch INTEGER NOT NULL,
            source_name VARCHAR,
            source_sha256 VARCHAR,
            rows_loaded BIGINT,
            rows_rejected BIGINT,
            loaded_at TIMESTAMP NOT NULL,
            warnings JSON
        );
        ALTER TABLE rejects ADD COLUMN batch INTEGER DEFAULT 1;
    """),
    (7, """
        -- Champion history per dataset: append-only; the newest row names the champion.
        CREATE SEQUENCE champion_id_seq START 1;
        CREATE TABLE champions (
            id BIGINT NOT NULL,
            dataset_id INTEGER NOT NULL,
            model_id VARCHAR NOT NULL,
            action VARCHAR NOT NULL,
            person VARCHAR NOT NULL,
            reason VARCHAR NOT NULL,
            changed_at TIMESTAMP NOT NULL,
            capacity_k INTEGER,              -- VERIFY: the score above which k alerts a day are expected
            precision_target DOUBLE,         -- BLOCK: the score above which precision reaches this
            verify_threshold DOUBLE,
            block_threshold DOUBLE
        );
    """),
    (8, """
        -- Feature sets catch up with appended batches instead of being rebuilt: the newest
        -- batch whose rows they hold, and the time from which rows must be recomputed.
        ALTER TABLE feature_sets ADD COLUMN batch INTEGER DEFAULT 1;
        ALTER TABLE feature_sets ADD COLUMN stale_from TIMESTAMP;
        -- and the newest review decision whose label the label-delayed features have seen
        ALTER TABLE feature_sets ADD COLUMN labels_seen BIGINT DEFAULT 0;
    """),
    (9, """
        -- People (local accounts; OIDC users are added on first sign-in without a password),
        -- their API keys (only a SHA-256 of each key is kept) and failed sign-ins (throttling).
        CREATE TABLE users (
            name VARCHAR NOT NULL,
            role VARCHAR NOT NULL,
            password_hash VARCHAR,           -- Argon2id; NULL for identity-provider accounts
            created_at TIMESTAMP NOT NULL,
            removed_at TIMESTAMP
        );
        CREATE TABLE api_keys (
            key_id VARCHAR NOT NULL,         -- the key's first characters, for lists and revocation
            user_name VARCHAR NOT NULL,
            key_sha256 VARCHAR NOT NULL,
            created_at TIMESTAMP NOT NULL,
            revoked_at TIMESTAMP
        );
        CREATE TABLE sign_in_failures (
            user_name VARCHAR NOT NULL,
            failed_at TIMESTAMP NOT NULL
        );
    """),
    (10, """
        -- Browser sessions: a random token in an HttpOnly cookie (only its SHA-256 is kept), or
        -- for identity-provider sign-ins the fingerprint of the ID token. Ended at sign-out, so
        -- a replayed cookie no longer works.
        CREATE TABLE sessions (
            token_sha256 VARCHAR NOT NULL,
            user_name VARCHAR NOT NULL,
            method VARCHAR NOT NULL,         -- password | oidc
            created_at TIMESTAMP NOT NULL,
            expires_at TIMESTAMP NOT NULL,
            ended_at TIMESTAMP
        );
        -- Maker-checker: a rule change or a champion change is requested by one person and
        -- applied only when a second person approves it. Both tables are append-only.
        CREATE SEQUENCE change_request_seq START 1;
        CREATE TABLE change_requests (
            id BIGINT NOT NULL,
            kind VARCHAR NOT NULL,           -- rule | promote | rollback
            dataset_id INTEGER,
            subject VARCHAR,                 -- rule id (NULL for a new rule) or model id
            base_version INTEGER,            -- the rule version the change was made against
            payload JSON NOT NULL,
            requested_by VARCHAR NOT NULL,
            requested_at TIMESTAMP NOT NULL
        );
        CREATE TABLE change_reviews (
            request_id BIGINT NOT NULL,
            verdict VARCHAR NOT NULL,        -- approved | rejected | withdrawn
            reviewer VARCHAR NOT NULL,
            note VARCHAR,
            reviewed_at TIMESTAMP NOT NULL,
            result JSON
        );
        ALTER TABLE rules ADD COLUMN approved_by VARCHAR;
        ALTER TABLE champions ADD COLUMN approved_by VARCHAR;
    """),
]


WORKER_NICENESS = 5


def _native_threads() -> set[str]:
    try:
        return set(os.listdir("/proc/self/task"))
    except OSError:                   # not Linux
        return set()


def _lower_priority(thread_ids: set[str]) -> None:
    """Put the threads DuckDB started for a database (its query workers) below the threads
    that serve people and API requests. A query still runs in the thread that asked at that
    thread's priority, helped by the workers; a job's long query (training's frames, the
    Monitor's PSI) otherwise took both cores at normal priority and each API request waited
    for one."""
    python_threads = {str(t.native_id) for t in threading.enumerate()}     # started meanwhile elsewhere
    for tid in thread_ids - python_threads:
        try:
            niceness = os.getpriority(os.PRIO_PROCESS, int(tid))
            os.setpriority(os.PRIO_PROCESS, int(tid), min(19, niceness + WORKER_NICENESS))
        except (OSError, ValueError):
            pass


def connect(database: str = ":memory:", home: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the workspace's settings (config.duckdb_config), its own
    worker threads put below the threads that serve people and API requests. Every
    connection of riskdesk is made here: the workspace's, and ingest's and the demo's
    in-memory ones."""
    started = _native_threads()
    con = duckdb.connect(database, config=config.duckdb_config(home))
    _lower_priority(_native_threads() - started)
    return con


def arrow_to_pandas(table):
    """An Arrow table as pandas with DuckDB's `.df()` types: DECIMAL and HUGEINT as float64,
    DATE as datetime64[us], integers and booleans holding NULLs as pandas' nullable types."""
    import pyarrow as pa
    for i, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.float64()))
        elif pa.types.is_date(field.type):
            table = table.set_column(i, field.name, table.column(i).cast(pa.timestamp("us")))
    frame = table.to_pandas()
    for i, field in enumerate(table.schema):
        column = table.column(i)
        if column.null_count and (pa.types.is_integer(field.type) or pa.types.is_boolean(field.type)):
            frame.isetitem(i, column.to_pandas(types_mapper=_nullable_dtype))
    return frame


def _nullable_dtype(arrow_type):
    import pandas as pd
    return pd.api.types.pandas_dtype(str(arrow_type).replace("int", "Int").replace("uInt", "UInt")
                                     .replace("bool", "boolean"))


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (doubling embedded quotes)."""
    return '"' + str(name).replace('"', '""') + '"'


# Per database file: a number that changes after every write made through a Store in this
# process (the only process that can write: the CLI goes through the server when one runs).
_generations: dict[Path, int] = {}


class Store:
    """One DuckDB database in a workspace directory."""

    def __init__(self, home: Path | str | None = None):
        self.home = Path(home).resolve() if home else config.home()
        self.home.mkdir(parents=True, exist_ok=True)
        for sub in ("models", "exports", "uploads", "tmp"):
            (self.home / sub).mkdir(exist_ok=True)
        self.path = self.home / DB_FILE
        try:
            self._con = connect(str(self.path), self.home)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WorkspaceBusy(
                    f"the workspace database {self.path} is in use by another riskdesk process; "
                    "stop it or set RISKDESK_HOME to another directory") from None
            raise RiskdeskError(f"cannot open the workspace database {self.path}: {exc}") from None
        self._lock = threading.RLock()
        self._background: list[threading.Thread] = []
        self._migrate()
        self._drop_orphans()
        self._changed()

    # -- connection handling -------------------------------------------------------------
    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A new cursor on the shared database (one per thread or per call)."""
        return self._con.cursor()

    def close(self) -> None:
        """Close the database, once the work started by `in_background` has finished."""
        for thread in list(self._background):
            thread.join()
        self._con.close()

    def in_background(self, fn, name: str) -> None:
        """Run `fn()` in a thread of its own, which `close` waits for."""
        thread = threading.Thread(target=fn, name=name, daemon=True)
        self._background = [t for t in self._background if t.is_alive()] + [thread]
        thread.start()

    @property
    def generation(self) -> int:
        """Changes after every write: what in-process caches of workspace state are keyed by."""
        return _generations.get(self.path, 0)

    def _changed(self) -> None:
        _generations[self.path] = _generations.get(self.path, 0) + 1

    @contextmanager
    def transaction(self, cur: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        """A transaction on `cur` without the write lock, for long work that touches only its
        own new tables; take :meth:`locked` for the part that changes shared tables."""
        cur.begin()
        try:
            yield cur
            cur.commit()
        except BaseException:
            cur.rollback()
            raise
        finally:
            self._changed()

    @contextmanager
    def locked(self) -> Iterator[None]:
        """The process-wide write lock."""
        with self._lock:
            try:
                yield
            finally:
                self._changed()

    @contextmanager
    def write(self, cur: duckdb.DuckDBPyConnection | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        """Serialised write transaction: commits on success, rolls back on any error."""
        with self._lock:
            own = cur is None
            cur = self._con.cursor() if own else cur
            try:
                with self.transaction(cur):
                    yield cur
            finally:
                if own:
                    cur.close()

    def rows(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        cur = self.cursor()
        try:
            return cur.execute(sql, params or []).fetchall()
        finally:
            cur.close()

    def dicts(self, sql: str, params: list | tuple | None = None) -> list[dict[str, Any]]:
        cur = self.cursor()
        try:
            res = cur.execute(sql, params or [])
            names = [d[0] for d in res.description]
            return [dict(zip(names, row)) for row in res.fetchall()]
        finally:
            cur.close()

    def df(self, sql: str, params: list | tuple | None = None):
        """A query's rows as a pandas frame, with the column types DuckDB's own `.df()` gives,
        fetched through Arrow: DuckDB's conversion to pandas holds the GIL from start to end
        (45 ms on 100k rows of features, during which no API request or page moves), Arrow's
        only in short steps."""
        cur = self.cursor()
        try:
            table = cur.sql(sql, params=list(params) if params else None).to_arrow_table()
        finally:
            cur.close()
        return arrow_to_pandas(table)

    def to_parquet(self, select: str, out: Path) -> None:
        """Write the rows of a SELECT (our own SQL, no user text) to a Parquet file."""
        cur = self.cursor()
        try:
            cur.execute(f"COPY ({select}) TO '{str(out).replace(chr(39), chr(39) * 2)}' (FORMAT parquet)")
        finally:
            cur.close()

    def scalar(self, sql: str, params: list | tuple | None = None) -> Any:
        rows = self.rows(sql, params)
        return rows[0][0] if rows else None

    # -- schema --------------------------------------------------------------------------
    def _migrate(self) -> None:
        with self._lock:
            cur = self._con.cursor()
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations "
                        "(version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL)")
            done = {v for (v,) in cur.execute("SELECT version FROM schema_migrations").fetchall()}
            for version, sql in MIGRATIONS:
                if version in done:
                    continue
                cur.begin()
                try:
                    cur.execute(sql)
                    cur.execute("INSERT INTO schema_migrations VALUES (?, ?)", [version, datetime.now()])
                    cur.commit()
                except BaseException:
                    cur.rollback()
                    raise
            cur.close()

    def _drop_orphans(self) -> None:
        """Drop dataset tables that no catalogue entry names (left by a crash mid-load)."""
        with self._lock:
            cur = self._con.cursor()
            try:
                orphans = cur.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                    "AND regexp_full_match(table_name, 'tx_[0-9]+') "
                    "AND table_name NOT IN (SELECT table_name FROM datasets) "
                    "UNION ALL SELECT table_name FROM information_schema.tables WHERE table_schema = 'main' "
                    "AND regexp_full_match(table_name, 'feat_[0-9]+_[0-9a-f]+(_new)?') "
                    "AND table_name NOT IN (SELECT table_name FROM feature_sets)").fetchall()
                for (name,) in orphans:
                    cur.execute(f"DROP TABLE IF EXISTS {quote_ident(name)}")
            finally:
                cur.close()

    def schema_version(self) -> int:
        return int(self.scalar("SELECT max(version) FROM schema_migrations") or 0)

    # -- audit ---------------------------------------------------------------------------
    @staticmethod
    def audit(cur: duckdb.DuckDBPyConnection, actor: str, action: str, object_kind: str,
              object_id: Any, detail: dict | None = None, model_id: str | None = None) -> None:
        """Append one audit row inside the caller's write transaction."""
        cur.execute(
            "INSERT INTO audit_log VALUES (nextval('audit_id_seq'), ?, ?, ?, ?, ?, ?, ?)",
            [datetime.now(), actor or "unknown", action, object_kind,
             None if object_id is None else str(object_id), model_id,
             json.dumps(detail or {}, ensure_ascii=False, default=str)])


_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def open_store(home: Path | str | None = None) -> Store:
    """The process-wide Store for a workspace (created on first use)."""
    path = Path(home).resolve() if home else config.home()
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = Store(path)
        return store
