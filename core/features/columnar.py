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
from dataclasses import dataclass, field, replace

from ..store import quote_ident
from .definitions import Definition, entity_partition

_RANGE = re.compile(r"\b(count|sum|avg|max|min|stddev_samp)\((DISTINCT )?(\*|[a-z_][a-z0-9_]*)\) OVER ([a-z_][a-z0-9_]*)\b",
                    re.IGNORECASE)
_SEQUENCE = re.compile(r"\b(row_number\(\)|count\(\*\)|lag\(timestamp\)) OVER \(PARTITION BY customer_id"
                       r"(?:, (?P<sub>(?:(?!ORDER BY|OVER).)+?))? ORDER BY timestamp, transaction_id"
                       r"(?P<rows> ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)?\)", re.IGNORECASE)
_NUMERIC = ("DOUBLE", "FLOAT", "INTEGER", "SMALLINT", "TINYINT", "BOOLEAN")
DAY_US, SECOND_US = 86_400 * 10 ** 6, 10 ** 6
ROWS_PER_CHUNK = 2_000_000


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


def precompute(cur, relation: str, d: Definition) -> tuple[Definition, list[str]]:
    """Compute the definition's window calls that the kernels know over `relation` (rows with
    `_row` and every column the features read) into temporary tables on `cur`. Returns the
    definition reading those columns in their place, and the tables' names (join them on
    `_row`; drop them when done). A definition with nothing to compute comes back as it was."""
    types = dict(cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {relation})").fetchall())
    planner = _Planner(d, types)
    for f in d.features:
        planner.rewrite(f.sql)
    if not planner.columns:
        return d, []
    calls = [c for c in planner.columns.values() if c.window]
    described = dict(cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT "
                                 f"{', '.join(f'{_plain(c)} AS {c.column}' for c in calls) or '1 AS _none'} "
                                 f"FROM {relation})").fetchall())
    for c in planner.columns.values():
        c.sql_type = described.get(c.column) or ("TIMESTAMP" if c.fn == "lag" else "BIGINT")
    tables: list[str] = []
    try:
        for key in planner.keys.values():
            tables.append(_compute_key(cur, relation, d, key))
    except BaseException:
        for t in tables:
            cur.execute(f"DROP TABLE IF EXISTS {t}")
        raise
    features = []
    for f in d.features:
        sql = planner.rewrite(f.sql)
        features.append(replace(f, sql=sql, entity=f.entity if " OVER " in sql.upper() else None))
    return d.subset(features), tables


def _plain(c: _Call) -> str:
    """The aggregate without its window: the same result type."""
    return f"{c.fn}({'DISTINCT ' if c.distinct else ''}{c.arg})"


def _compute_key(cur, relation: str, d: Definition, key: _Key) -> str:
    import numpy as np
    import pyarrow as pa

    from . import kernels
    table = f"_kern_{uuid.uuid4().hex[:12]}"
    args = sorted({c.arg for c in key.calls if c.arg != "*"})
    subs = list(dict.fromkeys(c.sub for c in key.calls if c.sub))
    role = quote_ident(key.role)
    rows = cur.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    chunks = max(1, -(-rows // ROWS_PER_CHUNK))
    for chunk in range(chunks):
        where = f"WHERE hash({role}) % {chunks} = {chunk}" if chunks > 1 else ""
        fetched = cur.sql(
            f"SELECT _row, epoch_us(timestamp) AS _ts, {role} AS _key"
            f"{''.join(', ' + quote_ident(a) for a in args)}{''.join(f', {s} AS _s{j}' for j, s in enumerate(subs))} "
            f"FROM {relation} {where} ORDER BY {role} NULLS LAST, timestamp, transaction_id").to_arrow_table()
        starts = _partition_starts(fetched.column("_key"), key.nulls_alone)
        ts = fetched.column("_ts").to_numpy()
        out = {"_row": fetched.column("_row")}
        bounds: dict[str, tuple] = {}
        stats: dict[tuple[str, str], tuple] = {}
        ranks: dict[str | None, tuple] = {}
        codes: dict[str, tuple] = {}
        for c in key.calls:
            if not c.window:
                if c.sub not in ranks:
                    sub = (np.zeros(len(ts), np.int64), 1) if c.sub is None else \
                        _codes(fetched.column(f"_s{subs.index(c.sub)}"), null=True)
                    ranks[c.sub] = kernels.sequence_ranks(starts, *sub)
                rank, previous = ranks[c.sub]
                if c.fn == "lag":
                    out[c.column] = pa.array(ts[np.maximum(previous, 0)], mask=previous < 0).cast(pa.timestamp("us"))
                else:
                    out[c.column] = pa.array(rank + (c.fn == "row_number"))
                continue
            if c.window not in bounds:
                _, seconds, end_days, exclude = d.frames[c.window]
                bounds[c.window] = kernels.frame_bounds(starts, ts, seconds * SECOND_US, end_days * DAY_US,
                                                        exclude == "GROUP")
            lo, hi = bounds[c.window]
            if c.arg == "*":
                out[c.column] = pa.array(hi - lo)
            elif c.distinct:
                if c.arg not in codes:
                    codes[c.arg] = _codes(fetched.column(c.arg), null=False)
                out[c.column] = pa.array(kernels.distinct_counts(starts, lo, hi, *codes[c.arg]))
            elif c.fn == "count":
                valid = fetched.column(c.arg).is_valid().to_numpy(zero_copy_only=False)
                prefix = np.concatenate([[0], np.cumsum(valid, dtype=np.int64)])
                out[c.column] = pa.array(prefix[hi] - prefix[lo])
            else:
                if (c.window, c.arg) not in stats:
                    stats[c.window, c.arg] = kernels.value_stats(lo, hi, *_values(fetched.column(c.arg)))
                out[c.column] = _result(c.fn, *stats[c.window, c.arg])
        cur.register("_kern_chunk", pa.table(out))
        try:
            cur.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM _kern_chunk" if chunk == 0 else
                        f"INSERT INTO {table} SELECT * FROM _kern_chunk")
        finally:
            cur.unregister("_kern_chunk")
    return table


def _codes(column, null: bool):
    """Integer codes of a column's values: NULL is -1, or (null=True) a code of its own."""
    encoded = column.combine_chunks().dictionary_encode()
    size = len(encoded.dictionary)
    return _filled(encoded.indices, size if null else -1).astype("int64"), size + 1


def _filled(array, fill):
    """An Arrow array of numbers as numpy, NULLs replaced by `fill` (pyarrow's fill_null is
    slow here: 0.4 s on a million dictionary indices)."""
    import numpy as np
    values = array.to_numpy(zero_copy_only=False) if array.null_count == 0 else None
    if values is None:
        raw = np.frombuffer(array.buffers()[1], dtype=array.type.to_pandas_dtype(), count=len(array),
                            offset=array.offset * array.type.byte_width)
        values = np.where(array.is_valid().to_numpy(zero_copy_only=False), raw, fill)
    return values


def _partition_starts(key, nulls_alone: bool):
    """Where each partition begins in rows sorted by key (NULLs last), and the end."""
    import numpy as np
    codes, _ = _codes(key, null=False)
    if len(codes) == 0:
        return np.zeros(1, np.int64)
    valid = codes >= 0
    starts = codes[1:] != codes[:-1]
    if nulls_alone:
        starts |= ~valid[1:]
    return np.concatenate([[0], np.flatnonzero(starts) + 1, [len(codes)]]).astype(np.int64)


def _values(column):
    import numpy as np
    column = column.combine_chunks().cast("double")
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(_filled(column, 0.0), dtype=np.float64), np.ascontiguousarray(valid)


def _result(fn: str, count, total, top, bottom, std):
    import numpy as np
    import pyarrow as pa
    if fn == "count":
        return pa.array(count)
    value = {"sum": total, "max": top, "min": bottom, "stddev_samp": std}.get(fn)
    if fn == "avg":
        value = total / np.maximum(count, 1)
    return pa.array(value, mask=count < (2 if fn == "stddev_samp" else 1))
