"""The dataset catalogue: listing, lookup, paginated rows and rejects, deletion."""
from __future__ import annotations

import json

from .errors import NotFound, RiskdeskError
from .ingest import describe_reason, drop_dataset_tables, refresh_catalogue
from .store import Store, quote_ident

PUBLIC_FIELDS = ("id", "name", "rows", "rows_rejected", "start", "end", "fraud_rate", "labelled_rows",
                 "fraud_rows", "source_name", "source_sha256", "source_bytes", "file_kind", "encoding",
                 "sheet", "created_at", "mapping", "extras", "reading", "warnings")


def _row_to_public(d: dict) -> dict:
    labelled = d["labelled_rows"] or 0
    return {
        "id": d["id"], "name": d["name"], "rows": d["rows_loaded"], "rows_rejected": d["rows_rejected"],
        "start": d["start_ts"].isoformat(sep=" ") if d["start_ts"] else None,
        "end": d["end_ts"].isoformat(sep=" ") if d["end_ts"] else None,
        "fraud_rate": (d["fraud_rows"] / labelled) if labelled else None,
        "labelled_rows": labelled, "fraud_rows": d["fraud_rows"],
        "source_name": d["source_name"], "source_sha256": d["source_sha256"],
        "source_bytes": d["source_bytes"], "file_kind": d["file_kind"], "encoding": d["encoding"],
        "sheet": d["sheet"], "created_at": d["created_at"].isoformat(sep=" ", timespec="seconds"),
        "mapping": json.loads(d["mapping"] or "{}"), "extras": json.loads(d["extras"] or "[]"),
        "table": d["table_name"], "headers": json.loads(d["headers"] or "[]"),
        "reading": json.loads(d.get("reading") or "{}"), "warnings": json.loads(d.get("warnings") or "[]"),
    }


def list_datasets(store: Store) -> list[dict]:
    """Every dataset, newest first, in the shape of `python -m core datasets --json`."""
    return [_row_to_public(d) for d in store.dicts("SELECT * FROM datasets ORDER BY id DESC")]


def get_dataset(store: Store, name_or_id: str | int) -> dict:
    """One dataset by name (or numeric id); raises if there is none."""
    if isinstance(name_or_id, int):
        rows = store.dicts("SELECT * FROM datasets WHERE id = ?", [name_or_id])
    else:
        rows = store.dicts("SELECT * FROM datasets WHERE name = ?", [name_or_id])
    if not rows:
        names = [d["name"] for d in store.dicts("SELECT name FROM datasets ORDER BY name")]
        hint = f" (datasets: {', '.join(names[:10])})" if names else " (the workspace has no datasets)"
        raise NotFound(f"no dataset {name_or_id!r}{hint}")
    return _row_to_public(rows[0])


def delete_dataset(store: Store, name: str, actor: str = "cli") -> None:
    """Drop a dataset's table, rejects and catalogue entry (recorded in the audit log)."""
    ds = get_dataset(store, name)
    with store.write() as cur:
        drop_dataset_tables(cur, ds["id"], ds["table"])
        store.audit(cur, actor, "delete_dataset", "dataset", ds["id"],
                    {"name": ds["name"], "sha256": ds["source_sha256"], "rows": ds["rows"]})


STATE_SQL = """
SELECT md5(CAST(d AS VARCHAR)) FROM datasets d WHERE d.id = $1
UNION ALL SELECT CAST(max(batch) AS VARCHAR) FROM batches WHERE dataset_id = $1
UNION ALL SELECT CAST(max(id) AS VARCHAR) FROM champions WHERE dataset_id = $1
UNION ALL SELECT CAST(max(decision_id) AS VARCHAR) FROM decisions WHERE dataset_id = $1
UNION ALL SELECT count(*) || '/' || max(model_id) FROM models WHERE dataset_id = $1
UNION ALL SELECT count(*) || '/' || max(created_at) FROM rules
UNION ALL SELECT md5(string_agg(CAST(f AS VARCHAR), ',' ORDER BY version)) FROM feature_sets f WHERE dataset_id = $1"""


def state(store: Store, dataset_id: int) -> tuple:
    """What everything computed from a dataset depends on: its row, batches, champion, review
    decisions, models, rules and feature sets. Equal states give equal results, so work keyed
    by it (scoring plans, monitoring reports) can be reused across sessions."""
    return tuple(r[0] for r in store.rows(STATE_SQL, [dataset_id]))


def list_batches(store: Store, name: str) -> list[dict]:
    """A dataset's batches, oldest first: source file, SHA-256, rows loaded and rejected, time."""
    ds = get_dataset(store, name)
    rows = store.dicts("SELECT batch, source_name, source_sha256, rows_loaded, rows_rejected, loaded_at "
                       "FROM batches WHERE dataset_id = ? ORDER BY batch", [ds["id"]])
    if not rows:   # loaded before batches were recorded: the whole dataset is batch 1
        rows = [{"batch": 1, "source_name": ds["source_name"], "source_sha256": ds["source_sha256"],
                 "rows_loaded": ds["rows"], "rows_rejected": ds["rows_rejected"], "loaded_at": ds["created_at"]}]
    for r in rows:
        r["loaded_at"] = str(r["loaded_at"])
    return rows


def batch_period(store: Store, name: str, batch: int) -> tuple[str, str]:
    """First and last day of a batch's transactions (batch 1 of a dataset never appended to is
    all of it)."""
    ds = get_dataset(store, name)
    columns = {r[0] for r in store.rows(f"DESCRIBE {ds['table']}")}
    where, params = ("WHERE batch = ?", [int(batch)]) if "batch" in columns else ("", [])
    start, end = store.rows(f"SELECT CAST(min(timestamp) AS DATE), CAST(max(timestamp) AS DATE) FROM {ds['table']} "
                            f"{where}", params)[0]
    if start is None:
        raise RiskdeskError(f"dataset {name!r} has no batch {batch}")
    return str(start), str(end)


def delete_newest_batch(store: Store, name: str, actor: str = "cli") -> dict:
    """Remove the newest batch: exactly its rows and rejects, their features and the models'
    stored scores of them (review decisions stay: append-only). Features of later rows of
    earlier batches that saw the batch are recomputed on next use."""
    ds = get_dataset(store, name)
    batches = list_batches(store, name)
    if len(batches) < 2:
        raise RiskdeskError(f"dataset {name!r} has only its first batch; delete the dataset instead")
    newest = batches[-1]
    with store.write() as cur:
        table = ds["table"]
        cur.execute(f"DELETE FROM model_scores WHERE model_id IN (SELECT model_id FROM models WHERE dataset_id = ?) "
                    f"AND transaction_id IN (SELECT CAST(transaction_id AS VARCHAR) FROM {table} WHERE batch = ?)",
                    [ds["id"], newest["batch"]])
        removed, first = cur.execute(f"SELECT count(*), min(timestamp) FROM {table} WHERE batch = ?",
                                     [newest["batch"]]).fetchone()
        # feature sets lose the batch's rows now and recompute later rows it touched on next use
        for (feat,) in cur.execute("SELECT table_name FROM feature_sets WHERE dataset_id = ?", [ds["id"]]).fetchall():
            cur.execute(f"DELETE FROM {feat} WHERE transaction_id IN (SELECT transaction_id FROM {table} WHERE batch = ?)",
                        [newest["batch"]])
        cur.execute("UPDATE feature_sets SET stale_from = least(coalesce(stale_from, ?), ?), batch = least(batch, ?) "
                    "WHERE dataset_id = ?", [first, first, newest["batch"] - 1, ds["id"]])
        cur.execute(f"DELETE FROM {table} WHERE batch = ?", [newest["batch"]])
        cur.execute("DELETE FROM rejects WHERE dataset_id = ? AND batch = ?", [ds["id"], newest["batch"]])
        cur.execute("DELETE FROM batches WHERE dataset_id = ? AND batch = ?", [ds["id"], newest["batch"]])
        total = refresh_catalogue(cur, ds["id"], table)
        store.audit(cur, actor, "delete_batch", "dataset", ds["id"],
                    {"name": name, "batch": newest["batch"], "source": newest["source_name"], "rows": removed})
    return {"dataset": name, "batch": newest["batch"], "rows_removed": int(removed), "rows_total": int(total)}


def display_columns(ds: dict) -> list[tuple[str, str]]:
    """(SQL column, label) pairs for showing a dataset: mapped roles then extras by source name."""
    cols = [("source_row", "source_row")]
    if "transaction_id" not in ds["mapping"]:      # generated from the row number: shown all the same
        cols.append(("transaction_id", "transaction_id"))
    cols += [(role, role) for role in ds["mapping"]]
    cols += [(e["column"], e["source"]) for e in ds["extras"]]
    return cols


def page_rows(store: Store, ds: dict, page: int = 0, page_size: int = 50):
    """One page of a dataset's rows in source order (DataFrame), served from DuckDB."""
    page_size = max(1, min(int(page_size), 1000))
    cols = ", ".join(f"{quote_ident(c)} AS {quote_ident(label)}" for c, label in display_columns(ds))
    return store.df(f"SELECT {cols} FROM {ds['table']} ORDER BY source_row LIMIT ? OFFSET ?",
                    [page_size, max(0, int(page)) * page_size])


def rejects_frame(store: Store, dataset_id: int, limit: int | None = None, offset: int = 0):
    """Rejected rows with a readable reason (DataFrame)."""
    sql = ("SELECT source_row, reason, role, raw_value, raw_row FROM rejects WHERE dataset_id = ? "
           "ORDER BY source_row")
    params: list = [dataset_id]
    if limit is not None:
        sql += " LIMIT ? OFFSET ?"
        params += [int(limit), int(offset)]
    df = store.df(sql, params)
    df.insert(2, "message", [describe_reason(r, ro, v) for r, ro, v in
                             zip(df["reason"], df["role"], df["raw_value"])])
    return df
