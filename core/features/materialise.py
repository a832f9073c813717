"""Feature sets stored per dataset and version, kept level with the dataset.

A feature set is computed once from every row. When batches are appended (or the newest one
is removed), it catches up instead of being rebuilt: only the rows at or after the earliest
changed time are recomputed, over the context they can see (definitions.feature_sql), so the
result equals a build from one file. Rows before that time keep their stored values, and the
models' stored scores of recomputed rows are dropped (the queue scores them again). A feature
set whose definition changed with the data (an extra column's categories, say) is rebuilt.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Callable

from ..datasets import get_dataset
from ..errors import RiskdeskError
from ..labels import known_labels_sql, newest_decision
from ..schema import missing_families
from ..store import Store, quote_ident
from .columnar import create_table, precompute
from .definitions import KEY_COLUMNS, FeatureConfig, definition, feature_sql, source_rows

Progress = Callable[[float, str], None]


def _table_name(dataset_id: int, version: str) -> str:
    return f"feat_{int(dataset_id)}_{version}"


def _newest_batch(store: Store, dataset_id: int) -> int:
    return int(store.scalar("SELECT coalesce(max(batch), 1) FROM batches WHERE dataset_id = ?", [dataset_id]))


def _stored(store: Store, dataset_id: int, version: str) -> dict | None:
    rows = store.dicts("SELECT * FROM feature_sets WHERE dataset_id = ? AND version = ?", [dataset_id, version])
    return rows[0] if rows else None


def build_features(store: Store, dataset: str, config: FeatureConfig | None = None,
                   progress: Progress | None = None, rebuild: bool = False) -> dict:
    """Materialise a dataset's features, or bring the stored ones level with its batches.
    Returns the feature set entry: dataset, version, table, rows, seconds and the catalogue."""
    config = config or FeatureConfig()
    report = progress or (lambda f, m: None)
    ds = get_dataset(store, dataset)
    stored = _stored(store, ds["id"], config.version)
    if stored and not rebuild and catch_up(store, ds, config, stored, report):
        return _public(_stored(store, ds["id"], config.version), ds)
    _rebuild(store, ds, config, report)
    return _public(_stored(store, ds["id"], config.version), ds)


def _rebuild(store: Store, ds: dict, config: FeatureConfig, report: Progress) -> None:
    report(0.05, "computing features")
    d = definition(config, ds, store)
    if not d.features:
        raise RiskdeskError(f"dataset {ds['name']!r} has no roles for the chosen feature families")
    version = config.version
    table = _table_name(ds["id"], version)
    newest = _newest_batch(store, ds["id"])      # read first: rows of a later batch are caught up next time
    decided = newest_decision(store, ds["id"])
    start = time.perf_counter()
    cur = store.cursor()
    try:
        cur.execute(f"DROP TABLE IF EXISTS {table}_new")
        report(0.1, "computing windows")
        windows = precompute(cur, source_rows(ds["table"], d, _known(ds)), d)
        report(0.4, "computing features")
        create_table(cur, f"{table}_new", ds["table"], windows, _known(ds), lambda done: report(0.4 + 0.5 * done,
                                                                                                "computing features"))
        seconds = time.perf_counter() - start
        rows = cur.execute(f"SELECT count(*) FROM {table}_new").fetchone()[0]
        report(0.9, "storing")
        with store.write(cur):
            cur.execute(f"DROP TABLE IF EXISTS {table}")
            cur.execute(f"ALTER TABLE {table}_new RENAME TO {table}")
            cur.execute("DELETE FROM feature_sets WHERE dataset_id = ? AND version = ?", [ds["id"], version])
            cur.execute("INSERT INTO feature_sets (dataset_id, version, name, config, table_name, catalogue, rows, "
                        "seconds, created_at, batch, stale_from, labels_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)",
                        [ds["id"], version, config.name, json.dumps(asdict(config)), table,
                         json.dumps([f.public() for f in d.features], ensure_ascii=False), rows, seconds,
                         datetime.now(), newest, decided])
    except BaseException:
        try:
            cur.execute(f"DROP TABLE IF EXISTS {table}_new")
        except Exception:
            pass
        raise
    finally:
        cur.close()
    report(1.0, "done")


def _known(ds: dict) -> str:
    return known_labels_sql(ds["table"], ds["id"])


def catch_up(store: Store, ds: dict, config: FeatureConfig, stored: dict, report: Progress | None = None) -> bool:
    """Bring a stored feature set level with the dataset: recompute the rows at or after the
    earliest time a batch added or removed rows, and the label-delayed features of the rows
    that can see a newly decided transaction (same entity, at least the delay later). False
    when it must be rebuilt instead (its definition changed with the data)."""
    report = report or (lambda f, m: None)
    newest, decided = _newest_batch(store, ds["id"]), newest_decision(store, ds["id"])
    if (stored["batch"], stored["stale_from"], stored["labels_seen"]) == (newest, None, decided):
        return True
    d = definition(config, ds, store)
    if [f.public() for f in d.features] != json.loads(stored["catalogue"]):
        return False
    starts = [stored["stale_from"]] if stored["stale_from"] is not None else []
    if newest > stored["batch"]:
        first = store.scalar(f"SELECT min(timestamp) FROM {ds['table']} WHERE batch > ?", [stored["batch"]])
        starts += [first] if first is not None else []
    start = min(starts) if starts else None
    table = stored["table_name"]
    report(0.1, "computing the features of the new rows")
    cur = store.cursor()
    try:
        if start is not None:
            cur.execute(f"CREATE OR REPLACE TEMP TABLE _rows_caught_up AS "
                        f"{feature_sql(ds['table'], d, start, known_labels=_known(ds))}")
        relabelled = _relabel_sql(store, ds, config, d, stored["labels_seen"], decided, start)
        if relabelled:
            cur.execute(f"CREATE OR REPLACE TEMP TABLE _labels_caught_up AS {relabelled}")
        report(0.8, "storing")
        with store.write(cur):
            now = cur.execute("SELECT batch, stale_from, labels_seen FROM feature_sets WHERE dataset_id = ? AND "
                              "version = ?", [ds["id"], stored["version"]]).fetchone()
            if now != (stored["batch"], stored["stale_from"], stored["labels_seen"]):
                return True                      # another session caught up (or the data changed again) meanwhile
            changed = []
            if start is not None:
                changed.append(f"SELECT transaction_id FROM {table} WHERE timestamp >= '{start.isoformat(sep=' ')}'")
                cur.execute(f"DELETE FROM {table} WHERE timestamp >= ?", [start])
                cur.execute(f"INSERT INTO {table} SELECT * FROM _rows_caught_up")
            if relabelled:
                names = [c[0] for c in cur.execute("DESCRIBE _labels_caught_up").fetchall()[len(KEY_COLUMNS):]]
                sets = ", ".join(f"{quote_ident(n)} = s.{quote_ident(n)}" for n in names)
                cur.execute(f"UPDATE {table} SET {sets} FROM _labels_caught_up s "
                            f"WHERE {table}.transaction_id = s.transaction_id")
                changed.append("SELECT transaction_id FROM _labels_caught_up")
            if changed:        # the models' stored scores of these rows are out of date
                cur.execute("DELETE FROM model_scores WHERE part = 'all' AND model_id IN (SELECT model_id FROM models "
                            "WHERE dataset_id = ? AND feature_version = ?) AND transaction_id IN "
                            f"(SELECT CAST(transaction_id AS VARCHAR) FROM ({' UNION ALL '.join(changed)}))",
                            [ds["id"], stored["version"]])
            rows = cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            cur.execute("UPDATE feature_sets SET batch = ?, stale_from = NULL, labels_seen = ?, rows = ? "
                        "WHERE dataset_id = ? AND version = ?", [newest, decided, rows, ds["id"], stored["version"]])
    finally:
        try:
            cur.execute("DROP TABLE IF EXISTS _rows_caught_up; DROP TABLE IF EXISTS _labels_caught_up")
        finally:
            cur.close()
    report(1.0, "done")
    return True


def _relabel_sql(store: Store, ds: dict, config: FeatureConfig, d, seen: int, decided: int, recomputed_from) -> str | None:
    """The label-delayed features of rows that can see a transaction decided since `seen`: the
    same counterparty or device, at least the label delay after it (rows recomputed anyway are
    left out). None when there are none."""
    labelled = [f for f in d.features if "known_label" in f.sql]
    if decided <= seen or not labelled:
        return None
    part = d.subset(labelled)
    decided_rows = (f"SELECT * FROM {ds['table']} WHERE CAST(transaction_id AS VARCHAR) IN "
                    f"(SELECT transaction_id FROM decisions WHERE dataset_id = {int(ds['id'])} AND decision_id > {int(seen)} "
                    f"AND decision_id <= {int(decided)})")
    first = store.scalar(f"SELECT min(timestamp) FROM ({decided_rows})")
    if first is None:
        return None
    delay = timedelta(days=config.delay_days)
    only = " OR ".join(f"{k} IN (SELECT {k} FROM ({decided_rows}) WHERE {k} IS NOT NULL)" for k in sorted(part.keys))
    if recomputed_from is not None:
        only = f"({only}) AND timestamp < '{recomputed_from.isoformat(sep=' ')}'"
    return feature_sql(ds["table"], part, first + delay, only=only, known_labels=_known(ds))


def _public(row: dict, ds: dict) -> dict:
    return {"dataset": ds["name"], "dataset_id": ds["id"], "version": row["version"], "name": row["name"],
            "table": row["table_name"], "rows": row["rows"], "seconds": row["seconds"],
            "config": json.loads(row["config"]), "catalogue": json.loads(row["catalogue"]),
            "created_at": row["created_at"]}


def unavailable_families(ds: dict) -> list[dict]:
    """Feature families this dataset cannot have, with the roles each needs (for the UI)."""
    return missing_families(ds["mapping"])


def is_built(store: Store, dataset_id: int, config: FeatureConfig) -> bool:
    """Whether this feature set is already materialised for the dataset (perhaps behind its
    newest batch, which build_features catches up quickly)."""
    return bool(store.scalar("SELECT count(*) FROM feature_sets WHERE dataset_id = ? AND version = ?",
                             [dataset_id, config.version]))


def feature_names(fs: dict, kind: str | None = None) -> list[str]:
    return [f["name"] for f in fs["catalogue"] if kind is None or f["kind"] == kind]


def export_features(store: Store, fs: dict, out) -> dict:
    """Write transaction_id and one column per feature to Parquet."""
    out = Path(out)
    if out.suffix.lower() != ".parquet":
        raise RiskdeskError(f"{out.name}: --out must end in .parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    cols = ", ".join(["transaction_id"] + [quote_ident(n) for n in feature_names(fs)])
    store.to_parquet(f"SELECT {cols} FROM {fs['table']} ORDER BY timestamp, transaction_id", out)
    return {"out": str(out), "rows": fs["rows"], "features": len(fs["catalogue"])}
