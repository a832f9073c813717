"""Window functions of a full build, computed by compiled loops beside DuckDB.

A full build of the standard features asks DuckDB for about 45 window functions over three
keys (customer, counterparty, device). DuckDB sorts the whole row once per distinct window
ordering, and a distinct count over a time range costs a second of CPU per million rows. Here
the window calls of two shapes are computed instead by core.features.kernels, in one pass per
key over the rows sorted by (key, timestamp, transaction_id), and stored in a temporary table
keyed by the row id `_row`:

* `fn(column) OVER name`, where `name` is a time-range window of the definition
  (Definition.frames) and fn is count, count(DISTINCT), sum, avg, max, min or stddev_samp;
* `row_number()`, `count(*) ... ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING` and
  `lag(timestamp)` over `PARTITION BY customer_id[, expression] ORDER BY timestamp,
  transaction_id` (the expression is evaluated by DuckDB).

The feature SQL is rewritten to read those columns in place of the calls; everything else
(expressions, NULL guards, other windows) stays as written and runs in DuckDB.

Same values as the SQL: its partitions (rows without a customer share one; rows without an
entity are each alone, as `coalesce('k:' || role, 'n:' || transaction_id)` makes them), frames
`(t - n, t - end]` with same-time peers in or, with EXCLUDE GROUP, out, aggregates that skip
NULLs, NULL for an empty sum, average, maximum or minimum and for a standard deviation of
fewer than two values. Sums may differ from DuckDB's in the last bits (another order of
addition); tests/test_columnar.py checks every value against the plain SQL.

Only full builds use this; catch-ups, the request path and Spark run the SQL as written.
"""
from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace

from ..store import quote_ident
from .definitions import Definition, entity_partition

_RANGE = re.compile(r"\b(count|sum|avg|max|min|stddev_samp)\((DISTINCT )?(\*|[a-z_][a-z0-9_]*)\) "
                    r"OVER ([a-z_][a-z0-9_]*)\b", re.IGNORECASE)
_SEQUENCE = re.compile(r"\b(row_number\(\)|count\(\*\)|lag\(timestamp\)) OVER \(PARTITION BY customer_id"
                       r"(?:, (?P<sub>(?:(?!ORDER BY|OVER).)+?))? ORDER BY timestamp, transaction_id"
                       r"(?P<rows> ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)?\)", re.IGNORECASE)
_NUMERIC = ("DOUBLE", "FLOAT", "INTEGER", "SMALLINT", "TINYINT", "BOOLEAN")
DAY_US, SECOND_US = 86_400 * 10 ** 6, 10 ** 6
ROWS_PER_CHUNK = 2_000_000
IN_MEMORY_ROWS = 3_000_000


@dataclass
class _Call:
    column: str             # its column in the key's table
    fn: str                 # count, sum, avg, max, min, stddev_samp; row_number, rank, lag
    arg: str = "*"          # a column, or * for count(*)
    distinct: bool = False
    window: str = ""        # a time-range window; "" for the sequence functions
    sub: str | None = None  # the sequence functions' sub-partition expression
    sql_type: str = ""


@dataclass
class _Key:
    role: str
    nulls_alone: bool       # rows without the key are each a partition of their own
    calls: list[_Call] = field(default_factory=list)


class _Planner:
    """Finds the calls the kernels compute, by partition key, and rewrites the SQL to read them."""

    def __init__(self, d: Definition, types: dict[str, str]):
        self.d, self.types = d, types
        self.keys: dict[str, _Key] = {}
        self.columns: dict[str, _Call] = {}      # by the SQL text each replaces

    def _add(self, text: str, role: str, nulls_alone: bool, call: _Call) -> str:
        if text not in self.columns:
            key = self.keys.setdefault(role, _Key(role, nulls_alone))
            if key.nulls_alone != nulls_alone:
                return text
            call.column = f"_k{len(self.columns)}"
            key.calls.append(call)
            self.columns[text] = call
        return f"CAST({self.columns[text].column} AS {self.columns[text].sql_type or '?'})"

    def _range(self, m: re.Match) -> str:
        fn, distinct, arg, window = m.group(1).lower(), bool(m.group(2)), m.group(3).lower(), m.group(4)
        if window not in self.d.frames:
            return m.group(0)
        partition, _, _, exclude = self.d.frames[window]
        role = self.d.reach[window][0]
        if exclude not in ("GROUP", "NO OTHERS") or partition not in (role, entity_partition(role)):
            return m.group(0)
        if arg == "*" and (fn != "count" or distinct):
            return m.group(0)
        numeric = self.types.get(arg, "").upper() in _NUMERIC
        if arg != "*" and not distinct and fn != "count" and not numeric:
            return m.group(0)
        return self._add(m.group(0), role, partition != role, _Call("", fn, arg, distinct, window))

    def _sequence(self, m: re.Match) -> str:
        fn = {"row_number()": "row_number", "count(*)": "rank", "lag(timestamp)": "lag"}[m.group(1).lower()]
        if (fn == "rank" and not m.group("rows")) or (fn == "lag" and self.types.get("timestamp") != "TIMESTAMP"):
            return m.group(0)
        return self._add(m.group(0), "customer_id", False, _Call("", fn, sub=m.group("sub")))

    def rewrite(self, sql: str) -> str:
        expanded = sql
        for name, spec in self.d.windows.items():
            if name not in self.d.frames:
                expanded = re.sub(rf"OVER \({name} ", f"OVER ({spec} ", expanded)
                expanded = re.sub(rf"OVER {name}\b", f"OVER ({spec})", expanded)
        out = _SEQUENCE.sub(self._sequence, _RANGE.sub(self._range, expanded))
        return sql if out == expanded else out


@dataclass
class Precomputed:
    """A full build's window calls, computed: the definition reading them, and where from."""
    definition: Definition
    source: str | None = None       # the relation to compute the features from (None: the table's rows)
    in_time_order: bool = False     # its rows are already in (timestamp, transaction_id) order
    tables: list[str] = field(default_factory=list)
    views: list[str] = field(default_factory=list)

    def close(self, cur) -> None:
        """Drop the temporary tables and views."""
        for t in self.tables:
            cur.execute(f"DROP TABLE IF EXISTS {t}")
        for v in self.views:
            cur.unregister(v)


def in_memory_rows() -> int:
    """Up to this many rows, the rows and the computed columns are held in memory (about 1 kB a
    row with the standard features) and the features are read from them, in time order, with no
    join or sort; beyond it, the columns go to temporary tables in chunks and are joined."""
    from ..config import memory_limit
    return min(IN_MEMORY_ROWS, memory_limit() // 1000)


def precompute(cur, relation: str, d: Definition) -> Precomputed:
    """Compute the definition's window calls that the kernels know over `relation` (rows with
    `_row` and every column the features read). Returns the definition reading the results in
    their place and the relation holding them (Precomputed; close it when done). A definition
    with nothing to compute comes back as it was."""
    types = dict(cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {relation})").fetchall())
    planner = _Planner(d, types)
    for f in d.features:
        planner.rewrite(f.sql)
    if not planner.columns:
        return Precomputed(d)
    calls = [c for c in planner.columns.values() if c.window]
    described = dict(cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT "
                                 f"{', '.join(f'{_plain(c)} AS {c.column}' for c in calls) or '1 AS _none'} "
                                 f"FROM {relation})").fetchall())
    for c in planner.columns.values():
        c.sql_type = described.get(c.column) or ("TIMESTAMP" if c.fn == "lag" else "BIGINT")
    features = []
    for f in d.features:
        sql = planner.rewrite(f.sql)
        features.append(replace(f, sql=sql, entity=f.entity if " OVER " in sql.upper() else None))
    result = Precomputed(d.subset(features))
    keys = list(planner.keys.values())
    subs = list(dict.fromkeys(c.sub for k in keys for c in k.calls if c.sub))
    extra = f", epoch_us(timestamp) AS _ts{''.join(f', {s} AS _s{j}' for j, s in enumerate(subs))}"
    rows = cur.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    try:
        if rows <= in_memory_rows():
            _in_memory(cur, relation, d, keys, subs, extra, result)
        else:
            _in_chunks(cur, relation, d, keys, subs, extra, -(-rows // ROWS_PER_CHUNK), result)
    except BaseException:
        result.close(cur)
        raise
    return result


def _in_memory(cur, relation: str, d: Definition, keys: list[_Key], subs: list[str], extra: str,
               result: Precomputed) -> None:
    """Every row, in time order, with the computed columns appended: a registered Arrow view.
    Two threads: the kernels release the GIL, and each key's ranged and sequence calls are
    separate tasks."""
    with ThreadPoolExecutor(2) as pool:
        pool.submit(_warm_up)              # numba loads its cached machine code while DuckDB sorts
        fetched = cur.sql(f"SELECT *{extra} FROM {relation} ORDER BY timestamp, transaction_id").to_arrow_table()
        sorts = dict(zip([k.role for k in keys], pool.map(lambda key: _sort(fetched, key), keys)))
        parts = [(k.role, [c for c in k.calls if bool(c.window) == ranged]) for k in keys for ranged in (True, False)]
        computed = list(pool.map(lambda part: _compute(fetched, part[1], d, subs, sorts[part[0]]),
                                 [p for p in parts if p[1]]))
    for columns in computed:
        for name, column in columns.items():
            fetched = fetched.append_column(name, column)
    result.source, result.in_time_order = f"_kern_{uuid.uuid4().hex[:12]}", True
    cur.register(result.source, fetched)
    result.views.append(result.source)


def _in_chunks(cur, relation: str, d: Definition, keys: list[_Key], subs: list[str], extra: str, chunks: int,
               result: Precomputed) -> None:
    """Per key, whole partitions at a time (a hash of the key picks a chunk's), into a temporary
    table keyed by `_row`; the relation joined with them."""
    import pyarrow as pa
    for key in keys:
        table = f"_kern_{uuid.uuid4().hex[:12]}"
        role = quote_ident(key.role)
        wanted = "".join(f", {quote_ident(a)}" for a in sorted({c.arg for c in key.calls if c.arg != "*"}))
        for chunk in range(chunks):
            fetched = cur.sql(f"SELECT _row, {role}{wanted}{extra} FROM {relation} WHERE hash({role}) % {chunks} = "
                              f"{chunk} ORDER BY timestamp, transaction_id").to_arrow_table()
            columns = _compute(fetched, key.calls, d, subs, _sort(fetched, key))
            cur.register("_kern_chunk", pa.table({"_row": fetched.column("_row"), **columns}))
            try:
                cur.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM _kern_chunk" if chunk == 0 else
                            f"INSERT INTO {table} SELECT * FROM _kern_chunk")
            finally:
                cur.unregister("_kern_chunk")
            if chunk == 0:
                result.tables.append(table)
    joins = " ".join(f"LEFT JOIN {t} USING (_row)" for t in result.tables)
    result.source = f"(SELECT * FROM {relation} _s {joins})"


def _warm_up() -> None:
    import numpy as np

    from . import kernels
    empty = np.zeros(0, np.int64)
    kernels.sequence_ranks(np.zeros(1, np.int64), empty, 1)


def _plain(c: _Call) -> str:
    """The aggregate without its window: the same result type."""
    return f"{c.fn}({'DISTINCT ' if c.distinct else ''}{c.arg})"


def _sort(fetched, key: _Key) -> tuple:
    """The order that sorts `fetched` (rows in time order) by the key, stably, NULLs last; where
    each partition starts in it (and the end); the timestamps in that order."""
    import numpy as np
    partition, _ = _codes(fetched.column(key.role), null=False)
    order = np.argsort(np.where(partition < 0, np.iinfo(np.int64).max, partition), kind="stable")
    ordered = partition[order]
    boundary = ordered[1:] != ordered[:-1]
    if key.nulls_alone:
        boundary |= ordered[1:] < 0
    starts = np.concatenate([[0], np.flatnonzero(boundary) + 1, [len(order)]]).astype(np.int64)
    return order, starts, np.ascontiguousarray(fetched.column("_ts").to_numpy()[order])


def _compute(fetched, calls: list[_Call], d: Definition, subs: list[str], sort: tuple) -> dict:
    """These calls of one key over `fetched` (rows in time order, with `_ts` and the
    sub-partition expressions `_s<j>`), as Arrow arrays in the same row order."""
    import numpy as np
    import pyarrow as pa

    from . import kernels
    order, starts, ts = sort
    n = len(order)
    results: dict[str, tuple] = {}          # column -> (values, mask) in key order
    bounds: dict[str, tuple] = {}
    stats: dict[tuple[str, str], tuple] = {}
    ranks: dict[str | None, tuple] = {}
    codes: dict[str, tuple] = {}
    for c in calls:
        if not c.window:
            if c.sub not in ranks:
                sub = (np.zeros(n, np.int64), 1) if c.sub is None else \
                    _codes(fetched.column(f"_s{subs.index(c.sub)}"), null=True)
                ranks[c.sub] = kernels.sequence_ranks(starts, np.ascontiguousarray(sub[0][order]), sub[1])
            rank, previous = ranks[c.sub]
            results[c.column] = (ts[np.maximum(previous, 0)], previous < 0) if c.fn == "lag" else \
                (rank + (c.fn == "row_number"), None)
            continue
        if c.window not in bounds:
            _, seconds, end_days, exclude = d.frames[c.window]
            bounds[c.window] = kernels.frame_bounds(starts, ts, seconds * SECOND_US, end_days * DAY_US,
                                                    exclude == "GROUP")
        lo, hi = bounds[c.window]
        if c.arg == "*":
            results[c.column] = (hi - lo, None)
        elif c.distinct:
            if c.arg not in codes:
                values, size = _codes(fetched.column(c.arg), null=False)
                codes[c.arg] = (np.ascontiguousarray(values[order]), size)
            results[c.column] = (kernels.distinct_counts(starts, lo, hi, *codes[c.arg]), None)
        else:
            if (c.window, c.arg) not in stats:
                x, valid = _values(fetched.column(c.arg))
                stats[c.window, c.arg] = kernels.value_stats(lo, hi, np.ascontiguousarray(x[order]),
                                                             np.ascontiguousarray(valid[order]))
            results[c.column] = _result(c.fn, *stats[c.window, c.arg])
    out = {}
    for column, (values, mask) in results.items():      # back to the fetched order
        unordered = np.empty_like(values)
        unordered[order] = values
        if mask is not None:
            unmasked = np.empty_like(mask)
            unmasked[order] = mask
            mask = unmasked
        array = pa.array(unordered, mask=mask)
        out[column] = array.cast(pa.timestamp("us")) if column in {c.column for c in calls if c.fn == "lag"} else array
    return out


def _codes(column, null: bool):
    """Integer codes of a column's values: NULL is -1, or (null=True) a code of its own."""
    encoded = column.combine_chunks().dictionary_encode()
    size = len(encoded.dictionary)
    return _filled(encoded.indices, size if null else -1).astype("int64"), size + 1


def _filled(array, fill):
    """An Arrow array of numbers as numpy, NULLs replaced by `fill` (pyarrow's fill_null is
    slow here: 0.4 s on a million dictionary indices)."""
    import numpy as np
    if array.null_count == 0:
        return array.to_numpy(zero_copy_only=False)
    raw = np.frombuffer(array.buffers()[1], dtype=array.type.to_pandas_dtype(), count=len(array),
                        offset=array.offset * array.type.byte_width)
    return np.where(array.is_valid().to_numpy(zero_copy_only=False), raw, fill)


def _values(column):
    """A numeric column as doubles (NULLs as 0) and whether each value is there."""
    import numpy as np
    column = column.combine_chunks().cast("double")
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return np.asarray(_filled(column, 0.0), dtype=np.float64), valid


def _result(fn: str, count, total, top, bottom, std):
    """An aggregate's values and NULL mask from the frame statistics."""
    import numpy as np
    if fn == "count":
        return count, None
    if fn == "avg":
        return total / np.maximum(count, 1), count < 1
    value = {"sum": total, "max": top, "min": bottom, "stddev_samp": std}[fn]
    return value, count < (2 if fn == "stddev_samp" else 1)
