"""The atomic load: a file into a new dataset table, with rejects, health warnings and its
catalogue entry, all or nothing.

The file is read by DuckDB's own readers (core.ingest.read), parsed with the SQL of
core.ingest.parse under the options core.ingest.infer worked out, split into loaded rows and
rejects (each with its source row, raw values and reason), checked for health
(core.ingest.health) and committed in one transaction. Any failure leaves the database
exactly as it was.

Row numbers count like a spreadsheet or text editor: for CSV the file line (the header is
line 1), for Excel the sheet row, for Parquet the record number (first record is row 1).
Without a transaction id column, each row's id is "R" and its row number in nine digits
(R000000002 is a CSV file's first data line), so the same file always gives the same ids.
"""
from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from pathlib import Path
from typing import Callable

from ..errors import RiskdeskError
from ..schema import check_dataset_name
from ..store import Store
from . import health
from .infer import Inference, infer
from .parse import ParseOptions, is_numeric_type, native_types, parse_sql, recover_cast_rejects
from .read import (CHUNK, SourceInfo, Stage, apply_line_breaks, col, inspect_source, newline_count_expr,
                   reader_rejects, shift_past_rejects, source_relation, stage_source)

Progress = Callable[[float, str], None]
# A label column whose values other than fraud/normal reach LABEL_BAD_ROWS rows and this
# share of its values is the wrong column (or has three classes), not a few bad rows: the
# load stops.
LABEL_BAD_SHARE, LABEL_BAD_ROWS = 0.01, 10


REASON_TEXT = {
    "missing_value": "{role} is empty",
    "not_a_number": "{role} {raw!r} is not a number",
    "not_a_timestamp": "{role} {raw!r} is not a date/time",
    "timestamp_out_of_range": "{role} {raw!r} is outside the years 1900-2200",
    "not_a_label": "{role} {raw!r} is not a label (use 1/0, true/false, yes/no, 是/否, fraud/normal)",
    "formula": "{role} {raw!r} is a spreadsheet formula, not a value",
    "duplicate_transaction_id": "transaction id {raw!r} appeared earlier in the file",
    "duplicate_in_dataset": "transaction id {raw!r} is already in the dataset (an earlier batch)",
    "malformed_row": "the row does not fit the header: {raw}",
    "line_too_long": "the line is longer than 2 MB",
}


def describe_reason(reason: str, role: str | None, raw: str | None = None) -> str:
    """English text for a reject reason; without `raw`, the value is left out."""
    template = REASON_TEXT.get(reason, reason)
    if not isinstance(raw, str):
        template = template.replace(" {raw!r}", "").replace(": {raw}", "")
        raw = ""
    raw_short = raw if len(raw) <= 60 else raw[:57] + "..."
    return template.format(role=role or "", raw=raw_short)


# -- the load --------------------------------------------------------------------------------

def find_by_sha(store: Store, sha256: str) -> list[dict]:
    return store.dicts("SELECT id, name, created_at FROM datasets WHERE source_sha256 = ? ORDER BY id",
                       [sha256])


def ingest(store: Store, path: str | Path, dataset: str, mapping: dict[str, str] | None = None,
           encoding: str | None = None, sheet: str | None = None, replace: bool = False,
           source_name: str | None = None, progress: Progress | None = None,
           actor: str = "cli", info: SourceInfo | None = None, time_unit: str | None = None,
           time_origin: str | None = None, date_order: str | None = None,
           inference: Inference | None = None, append: bool = False) -> dict:
    """Load a file as dataset NAME. The mapping is the user's roles completed with suggestions
    (core.ingest.infer); times and numbers are read as the inference decides unless the user
    says otherwise. Returns the summary in the command-line JSON shape (with "warnings") plus
    the dataset id, the reading options and a reject summary. Nothing is stored unless at
    least one row loads.

    With `append`, the file is the dataset's next batch: it must have the same header, is
    read with the dataset's mapping and options, and a transaction id already in the dataset
    is rejected. The summary adds "rows_total" and "batch".

    The file is read straight into the new table inside one transaction; only the final
    catalogue step takes the write lock, so a long load does not hold up other writers."""
    report = progress or (lambda f, m: None)
    dataset = check_dataset_name(dataset)
    report(0.02, "inspecting")
    if info is None:
        info = inspect_source(path, source_name, encoding, sheet)
    target = _append_target(store, dataset, info, mapping, replace) if append else None
    if target is not None:
        inference = _batch_inference(info, target)
    elif inference is None:
        inference = infer(info, mapping, time_unit, time_origin, date_order)
    mapping, options = inference.mapping, inference.options
    existing = store.dicts("SELECT id, table_name FROM datasets WHERE name = ?", [dataset])
    if existing and not replace and target is None:
        raise RiskdeskError(f"dataset {dataset!r} already exists; choose another name, replace it or append to it")
    same_file = [d for d in find_by_sha(store, info.sha256) if d["name"] != dataset]
    if same_file and not replace:
        raise RiskdeskError(f"{info.name} was already loaded as dataset {same_file[0]['name']!r} "
                            "(same SHA-256); replace it or skip")
    warnings = health.before_load(info, inference)
    batch = target["next_batch"] if target else 1

    cur = store.cursor()
    stage = Stage(cur)
    table = None
    try:
        new_id = cur.execute("SELECT nextval('dataset_id_seq')").fetchall()[0][0]
        table = f"tx_{int(new_id)}"
        report(0.1, "reading and parsing")
        tmp_dir = store.home / "tmp"
        fast = native_types(info, mapping, options, inference.profiles)
        relation, params = source_relation(stage, fast, tmp_dir=tmp_dir, numbered=info.kind == "excel")
        with_nl = info.kind == "csv" and info.quoted
        if with_nl:
            relation = f"(SELECT *, {newline_count_expr(fast)} AS _nl FROM {relation})"
        # The new table is committed on its own (no catalogue entry yet, so nobody sees it):
        # work on committed rows is much cheaper than on a transaction's local storage. Any
        # failure below drops it again; a crash in between leaves an orphan that
        # Store() removes at the next start.
        cur.execute(f"CREATE TABLE {table} AS {parse_sql(fast, mapping, relation, options, with_nl)}", params)
        cur.begin()
        if info.kind != "excel":
            cur.execute(f"UPDATE {table} SET source_row = rowid + {2 if info.kind == 'csv' else 1}")
        structural = []
        if info.kind == "csv":
            structural, cast = reader_rejects(stage)
            shift_past_rejects(stage, table, "source_row", [line for line, *_ in structural + cast])
            recover_cast_rejects(stage, info, mapping, options, table, cast, with_nl, tmp_dir)
            structural = apply_line_breaks(stage, info, table, "source_row", structural, with_nl)
        if "label" in mapping:
            _check_label_values(cur, table, info, mapping["label"])
        if "transaction_id" not in mapping:
            prefix = f"B{batch}-R" if batch > 1 else "R"     # ids stay unique across batches
            cur.execute(f"UPDATE {table} SET transaction_id = ? || lpad(CAST(source_row AS VARCHAR), 9, '0')", [prefix])
        report(0.6, "checking duplicates")
        _mark_duplicates(cur, table)
        if target is not None:
            _mark_known_ids(cur, table, target["table"])
        loaded, bad = cur.execute(f"SELECT count(*) FILTER (WHERE _reason IS NULL), "
                                  f"count(*) FILTER (WHERE _reason IS NOT NULL) FROM {table}").fetchone()
        rejected = bad + len(structural)
        if loaded == 0:
            raise RiskdeskError(f"no row of {info.name} could be loaded: {rejected:,} rows rejected, e.g. "
                                f"{'line' if info.kind == 'csv' else 'row'} {_first_reject(cur, table, structural)}")
        report(0.75, "recording rejects")
        _store_rejects(stage, info, target["id"] if target else new_id, table, structural, bad, tmp_dir, batch)
        if bad:
            cur.execute(f"DELETE FROM {table} WHERE _reason IS NOT NULL")
        for column in ("_reason", "_reason_role", "_raw_value") + (("_nl",) if with_nl else ()):
            cur.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        extras = _type_extras(cur, table, info, mapping)
        report(0.8, "checking data health")
        warnings += health.after_load(cur, table, mapping, extras, loaded)
        if target is not None:
            return _append_rows(store, cur, target, table, info, loaded, rejected, warnings, actor, report)
        stats = cur.execute(f"SELECT min(timestamp), max(timestamp), count(label), coalesce(sum(label), 0) "
                            f"FROM {table}").fetchone()
        report(0.9, "storing")
        reading = {**options.public(), "encoding": info.encoding,
                   "suggestions": {r: s.public() for r, s in inference.suggestions.items()}}
        with store.locked():
            existing = store.dicts("SELECT id, table_name FROM datasets WHERE name = ?", [dataset])
            if existing and not replace:
                raise RiskdeskError(f"dataset {dataset!r} was created meanwhile; choose another name")
            for old in existing:
                drop_dataset_tables(cur, old["id"], old["table_name"])
            cur.execute(
                "INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [new_id, dataset, table, info.name, info.sha256, info.size, info.kind, info.encoding,
                 info.delimiter, info.sheet, datetime.now(), json.dumps(mapping, ensure_ascii=False),
                 json.dumps(extras, ensure_ascii=False), json.dumps(info.headers, ensure_ascii=False),
                 loaded, rejected, stats[0], stats[1], stats[2], stats[3],
                 json.dumps(reading, ensure_ascii=False, default=str),
                 json.dumps(warnings, ensure_ascii=False, default=str)])
            cur.execute("INSERT INTO batches VALUES (?, 1, ?, ?, ?, ?, ?, ?)",
                        [new_id, info.name, info.sha256, loaded, rejected, datetime.now(),
                         json.dumps(warnings, ensure_ascii=False, default=str)])
            store.audit(cur, actor, "replace_dataset" if existing else "ingest", "dataset", new_id,
                        {"name": dataset, "source": info.name, "sha256": info.sha256,
                         "rows_loaded": loaded, "rows_rejected": rejected, "mapping": mapping,
                         "options": options.public()})
            cur.commit()
            table = None  # committed: nothing to undo
    except BaseException:
        try:
            cur.rollback()
        except Exception:
            pass
        if table is not None:
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        raise
    finally:
        if target is not None and table is not None:   # a batch's rows went into the dataset's table
            cur.execute(f"DROP TABLE IF EXISTS {table}")
        stage.close()
        cur.close()
    report(1.0, "done")
    return {"dataset": dataset, "dataset_id": int(new_id), "rows_loaded": int(loaded),
            "rows_rejected": int(rejected), "mapping": mapping, "warnings": warnings,
            "options": options.public(), "reject_reasons": reject_summary(store, int(new_id))}


def _append_target(store: Store, dataset: str, info: SourceInfo, mapping: dict | None, replace: bool) -> dict:
    """The dataset a batch is appended to, checked: same header, no new mapping, not loaded before."""
    if replace:
        raise RiskdeskError("--append and --replace exclude each other")
    if mapping:
        raise RiskdeskError("--append reuses the dataset's mapping; leave out --map")
    rows = store.dicts("SELECT * FROM datasets WHERE name = ?", [dataset])
    if not rows:
        raise RiskdeskError(f"no dataset {dataset!r} to append to; load the first file without --append")
    ds = rows[0]
    headers = json.loads(ds["headers"] or "[]")
    if info.headers != headers:
        missing = [h for h in headers if h not in info.headers]
        extra = [h for h in info.headers if h not in headers]
        detail = (f"missing {', '.join(missing[:5])}" if missing else "") + ("; " if missing and extra else "") + (
            f"new {', '.join(extra[:5])}" if extra else "") or "the columns are in another order"
        raise RiskdeskError(f"{info.name} does not have the header of dataset {dataset!r} ({detail}); "
                            "a batch must have the same columns in the same order")
    batches = store.dicts("SELECT batch, source_sha256 FROM batches WHERE dataset_id = ?", [ds["id"]])
    if info.sha256 == ds["source_sha256"] or any(b["source_sha256"] == info.sha256 for b in batches):
        raise RiskdeskError(f"{info.name} is already in dataset {dataset!r} (same SHA-256)")
    return {"id": ds["id"], "name": dataset, "table": ds["table_name"], "mapping": json.loads(ds["mapping"]),
            "reading": json.loads(ds.get("reading") or "{}"), "extras": json.loads(ds["extras"] or "[]"),
            "next_batch": max([b["batch"] for b in batches] or [1]) + 1}


def _batch_inference(info: SourceInfo, target: dict) -> Inference:
    """The dataset's own mapping and reading options applied to a batch."""
    reading = target["reading"]
    options = ParseOptions.from_public(reading)
    inference = infer(info, target["mapping"], options.time_unit, options.time_origin if options.time_unit else None,
                      options.date_order, complete=False)
    inference.options = options
    if inference.time is not None:
        inference.time.options = options
    return inference


def _mark_known_ids(cur, batch_table: str, dataset_table: str) -> None:
    """A transaction id the dataset already has is rejected (never stored twice)."""
    cur.execute(f"""UPDATE {batch_table} SET _reason = 'duplicate_in_dataset', _reason_role = 'transaction_id',
                        _raw_value = transaction_id
                    WHERE _reason IS NULL AND transaction_id IN (SELECT transaction_id FROM {dataset_table})""")


def _append_rows(store: Store, cur, target: dict, table: str, info: SourceInfo, loaded: int, rejected: int,
                 warnings: list, actor: str, report: Progress) -> dict:
    """Move a parsed batch into the dataset's table, record the batch and refresh the
    catalogue. Feature sets catch up with the batch on their next use (core.features)."""
    extras = {e["column"]: e["type"] for e in target["extras"]}
    columns = [r[0] for r in cur.execute(f"DESCRIBE {target['table']}").fetchall()]
    select = []
    for c in columns:
        if c == "batch":
            select.append("CAST(? AS INTEGER) AS batch")
        elif c in extras:
            select.append(f"TRY_CAST({c} AS {extras[c]}) AS {c}")
        else:
            select.append(c)
    batch = target["next_batch"]
    report(0.9, "storing")
    with store.locked():
        if "batch" not in columns:
            cur.execute(f"ALTER TABLE {target['table']} ADD COLUMN batch INTEGER DEFAULT 1")
            select.append("CAST(? AS INTEGER) AS batch")
        cur.execute(f"INSERT INTO {target['table']} BY NAME SELECT {', '.join(select)} FROM {table}", [batch])
        total = refresh_catalogue(cur, target["id"], target["table"])
        cur.execute("INSERT INTO batches VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [target["id"], batch, info.name, info.sha256, loaded, rejected, datetime.now(),
                     json.dumps(warnings, ensure_ascii=False, default=str)])
        store.audit(cur, actor, "append_batch", "dataset", target["id"],
                    {"name": target["name"], "batch": batch, "source": info.name, "sha256": info.sha256,
                     "rows_loaded": loaded, "rows_rejected": rejected})
        cur.commit()
    report(1.0, "done")
    return {"dataset": target["name"], "dataset_id": int(target["id"]), "batch": batch, "rows_loaded": int(loaded),
            "rows_rejected": int(rejected), "rows_total": int(total), "mapping": target["mapping"],
            "warnings": warnings, "options": target["reading"],
            "reject_reasons": reject_summary(store, int(target["id"]), batch)}


def _check_label_values(cur, table: str, info: SourceInfo, column: str) -> None:
    """Stop the load when the label column holds other values than fraud/normal in more than a
    few rows: it is the wrong column (or a label with three or more classes)."""
    bad, present = cur.execute(f"SELECT count(*) FILTER (WHERE _reason = 'not_a_label'), "
                               f"count(label) + count(*) FILTER (WHERE _reason = 'not_a_label') FROM {table}").fetchone()
    if bad >= LABEL_BAD_ROWS and bad > LABEL_BAD_SHARE * present:
        shown = cur.execute(f"SELECT _raw_value, count(*) FROM {table} WHERE _reason = 'not_a_label' "
                            f"GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3").fetchall()
        values = ", ".join(f"{v!r} ({n:,} rows)" for v, n in shown)
        raise RiskdeskError(f"{info.name}: column {column!r} is not a fraud label: besides fraud/normal it holds "
                            f"{values}; a label has two values (1/0, true/false, yes/no, 是/否, fraud/normal). "
                            "Map another column with --map label=COLUMN, or recode the file")


def _mark_duplicates(cur, table: str) -> None:
    """Repeated transaction ids: the first (by source row) loads, later ones are rejected."""
    dupes = cur.execute(f"SELECT count(transaction_id) - count(DISTINCT transaction_id) "
                        f"FROM {table} WHERE _reason IS NULL").fetchone()[0]
    if dupes:
        cur.execute(f"""UPDATE {table} SET _reason = 'duplicate_transaction_id',
                _reason_role = 'transaction_id', _raw_value = transaction_id
            FROM (SELECT source_row AS rr, row_number() OVER (PARTITION BY transaction_id ORDER BY source_row) AS k
                  FROM {table} WHERE _reason IS NULL) d
            WHERE {table}.source_row = d.rr AND d.k > 1""")


def _store_rejects(stage: Stage, info: SourceInfo, dataset_id: int, table: str, structural: list,
                   bad: int, tmp_dir: Path, batch: int = 1) -> None:
    """Rejected rows with their whole raw row as JSON (header -> value). Raw rows are read
    again from the source only when some rows were rejected after parsing."""
    cur = stage.cur
    if bad:
        raw, _ = stage_source(stage, info, tmp_dir=tmp_dir)
        pairs = ", ".join(f"?, r.{col(i)}" for i in range(len(info.headers)))
        cur.execute(f"INSERT INTO rejects SELECT ?, t.source_row, t._reason, t._reason_role, t._raw_value, "
                    f"json_object({pairs}), ? FROM {table} t LEFT JOIN {raw} r ON r._row = t.source_row "
                    f"WHERE t._reason IS NOT NULL ORDER BY t.source_row",
                    [dataset_id, *info.headers, batch])
    for line, etype, raw_line in structural:
        code = "line_too_long" if "LINE SIZE" in etype else "malformed_row"
        raw_line = None if raw_line is None else raw_line[:2000]
        cur.execute("INSERT INTO rejects VALUES (?, ?, ?, NULL, ?, ?, ?)",
                    [dataset_id, line, code, raw_line, raw_line, batch])


def _type_extras(cur, table: str, info: SourceInfo, mapping: dict) -> list[dict]:
    """Extra columns: text that is numeric in every loaded row becomes DOUBLE."""
    index = {h: i for i, h in enumerate(info.headers)}
    extras = [h for h in info.headers if h not in mapping.values()]
    meta = []
    text_cols = [k for k, h in enumerate(extras) if info.dtypes[index[h]] == "VARCHAR"]
    numeric: set[int] = set()
    if text_cols:
        flags = cur.execute("SELECT " + ", ".join(
            f"count(x_{k}) > 0 AND count(x_{k}) = count(TRY_CAST(x_{k} AS DOUBLE))" for k in text_cols)
            + f" FROM {table}").fetchone()
        numeric = {k for k, flag in zip(text_cols, flags) if flag}
    for k, h in enumerate(extras):
        dtype = info.dtypes[index[h]]
        if k in numeric:
            cur.execute(f"ALTER TABLE {table} ALTER COLUMN x_{k} TYPE DOUBLE USING TRY_CAST(x_{k} AS DOUBLE)")
            dtype = "DOUBLE"
        elif is_numeric_type(dtype):
            dtype = "DOUBLE" if dtype.upper().startswith(("FLOAT", "DOUBLE", "REAL", "DECIMAL")) else dtype
        meta.append({"column": f"x_{k}", "source": h, "type": dtype})
    return meta


def _first_reject(cur, table: str, structural: list) -> str:
    row = cur.execute(f"SELECT source_row, _reason, _reason_role, _raw_value FROM {table} "
                      f"WHERE _reason IS NOT NULL ORDER BY source_row LIMIT 1").fetchone()
    candidates = []
    if row:
        candidates.append((row[0], describe_reason(row[1], row[2], row[3])))
    if structural:
        line, etype, raw = structural[0]
        code = "line_too_long" if "LINE SIZE" in etype else "malformed_row"
        candidates.append((line, describe_reason(code, None, (raw or "")[:60])))
    if not candidates:
        return "?"
    number, text = min(candidates)
    return f"{number}: {text}"


def drop_dataset_tables(cur, dataset_id: int, table_name: str) -> None:
    """Drop a dataset's table, feature tables, rejects and catalogue row (inside the caller's
    write transaction)."""
    if not re.fullmatch(r"tx_\d+", table_name):
        raise RiskdeskError(f"refusing to drop unexpected table {table_name!r}")
    cur.execute(f"DROP TABLE IF EXISTS {table_name}")
    _drop_feature_sets(cur, dataset_id)
    cur.execute("DELETE FROM rejects WHERE dataset_id = ?", [dataset_id])
    cur.execute("DELETE FROM batches WHERE dataset_id = ?", [dataset_id])
    cur.execute("DELETE FROM datasets WHERE id = ?", [dataset_id])


def refresh_catalogue(cur, dataset_id: int, table: str) -> int:
    """Recount a dataset's rows, rejects, period and labels after a batch came or went; returns
    the row count."""
    rows, start, end, labelled, frauds = cur.execute(
        f"SELECT count(*), min(timestamp), max(timestamp), count(label), coalesce(sum(label), 0) FROM {table}").fetchone()
    rejected = cur.execute("SELECT count(*) FROM rejects WHERE dataset_id = ?", [dataset_id]).fetchone()[0]
    cur.execute("UPDATE datasets SET rows_loaded = ?, rows_rejected = ?, start_ts = ?, end_ts = ?, labelled_rows = ?, "
                "fraud_rows = ? WHERE id = ?", [rows, rejected, start, end, labelled, frauds, dataset_id])
    return rows


def _drop_feature_sets(cur, dataset_id: int) -> None:
    """Forget a dataset's materialised features (they are rebuilt on next use)."""
    for (feat,) in cur.execute("SELECT table_name FROM feature_sets WHERE dataset_id = ?", [dataset_id]).fetchall():
        if re.fullmatch(r"feat_\d+_[0-9a-f]+", feat):
            cur.execute(f"DROP TABLE IF EXISTS {feat}")
    cur.execute("DELETE FROM feature_sets WHERE dataset_id = ?", [dataset_id])


def reject_summary(store: Store, dataset_id: int, batch: int | None = None) -> list[dict]:
    """Reject counts by reason and role, most frequent first, with the first row of each (of
    one batch, or of all)."""
    where, params = ("AND batch = ?", [dataset_id, batch]) if batch else ("", [dataset_id])
    return store.dicts(
        "SELECT reason, role, count(*) AS rows, min(source_row) AS first_row FROM rejects "
        f"WHERE dataset_id = ? {where} GROUP BY reason, role ORDER BY rows DESC, reason", params)


def save_upload(store: Store, name: str, fileobj) -> Path:
    """Copy an uploaded file object into the workspace's uploads folder; returns its path."""
    import shutil

    safe = re.sub(r"[^\w.\-]", "_", Path(name).name)[-80:] or "upload"
    target = store.home / "uploads" / f"{uuid.uuid4().hex[:8]}_{safe}"
    with open(target, "wb") as out:
        shutil.copyfileobj(fileobj, out, CHUNK)
    return target


def default_dataset_name(file_name: str) -> str:
    """A valid dataset name derived from a file name."""
    stem = re.sub(r"[^\w .()\-]", "_", Path(file_name).stem).strip(" ._-")
    stem = stem.replace("..", "_")[:64]
    return stem if stem and re.match(r"^\w", stem) else "dataset"
