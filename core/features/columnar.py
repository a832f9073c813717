"""Window functions of a full build, computed by compiled loops beside DuckDB.

A full build of the standard features asks DuckDB for about 45 window functions over three
keys (customer, counterparty, device). DuckDB sorts the whole row once per window ordering and
runs each aggregate separately; a distinct count over a time range costs a second of CPU per
million rows. Here the window calls of two shapes are computed instead by
core.features.kernels:

* `fn(column) OVER name`, where `name` is a time-range window of the definition
  (Definition.frames) and fn is count, count(DISTINCT), sum, avg, max or stddev_samp;
* `row_number()`, `count(*) ... ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING` and
  `lag(timestamp)` over `PARTITION BY customer_id[, expression] ORDER BY timestamp,
  transaction_id` (DuckDB evaluates the expression).

DuckDB sorts the rows by time once; each key's order is a stable argsort of its codes, and
the results go back to time order. The feature SQL is rewritten to read the results in place
of the calls, and runs over the rows with the results appended, in time order, so nothing is
joined or sorted again. Up to IN_MEMORY_ROWS every column is fetched at once; beyond, only the
columns the calls read, and the rest a time slice at a time. Results that would not fit in
RISKDESK_MEMORY leave the whole build to DuckDB, which spills.

Same values as the SQL: its partitions (rows without a customer share one; rows without an
entity are each alone, as `coalesce('k:' || role, 'n:' || transaction_id)` makes them), frames
`(t - n, t - end]` with same-time peers in or, with EXCLUDE GROUP, out, aggregates that skip
NULLs, NULL for an empty sum, average or maximum and for a standard deviation of
fewer than two values. Sums may differ from DuckDB's in the last bits (another order of
addition); tests/test_columnar.py checks every value against the plain SQL.

Only full builds use this; catch-ups, the request path and Spark run the SQL as written.
"""
from __future__ import annotations

import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator

from ..config import memory_limit, threads
from ..errors import RiskdeskError
from ..store import quote_ident
from .definitions import Definition, entity_partition, feature_sql

_RANGE = re.compile(r"\b(count|sum|avg|max|stddev_samp)\((DISTINCT )?(\*|[a-z_][a-z0-9_]*)\) "
                    r"OVER ([a-z_][a-z0-9_]*)\b", re.IGNORECASE)
_SEQUENCE = re.compile(r"\b(row_number\(\)|count\(\*\)|lag\(timestamp\)) OVER \(PARTITION BY customer_id"
                       r"(?:, (?P<sub>(?:(?!ORDER BY|OVER).)+?))? ORDER BY timestamp, transaction_id"
                       r"(?P<rows> ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)?\)", re.IGNORECASE)
_COUNTS = ("count", "rank", "row_number")        # kept as 16- or 32-bit integers (never over the rows)
_NUMERIC = ("DOUBLE", "FLOAT", "INTEGER", "SMALLINT", "TINYINT", "BOOLEAN")
DAY_US, SECOND_US = 86_400 * 10 ** 6, 10 ** 6
IN_MEMORY_ROWS = 3_000_000
BYTES_PER_ROW = 100      # the columns the window calls read, and their order, beside the results


@dataclass
class _Call:
    column: str             # its column in the key's table
    fn: str                 # count, sum, avg, max, stddev_samp; row_number, rank, lag
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
    """A full build's window calls, computed: the definition that reads them, and the rows to
    read them from (`sources`)."""
    definition: Definition
    relation: str = ""
    rows: Any = None                # every row, when it was fetched whole (an Arrow table)
    columns: dict = field(default_factory=dict)         # name -> Arrow array, rows in time order
    slices: list[tuple] = field(default_factory=list)   # (first, end, from time, to time) of the time order

    def sources(self, cur) -> Iterator[str | None]:
        """Relations (registered views, one at a time) whose rows, in (timestamp,
        transaction_id) order, are every row of the table with the computed columns; one None
        when nothing was computed (read the table's rows)."""
        if not self.columns:
            yield None
            return
        reader = cur.cursor() if self.rows is None else None     # the next slice's rows, read meanwhile
        try:
            with ThreadPoolExecutor(1) as ahead:
                pending = ahead.submit(self._slice, reader, *self.slices[0]) if reader else None
                for k, (first, end, _, _) in enumerate(self.slices):
                    rows = self.rows if reader is None else pending.result()
                    if reader is not None and k + 1 < len(self.slices):
                        pending = ahead.submit(self._slice, reader, *self.slices[k + 1])
                    yield from self._with_results(cur, rows, first, end)
        finally:
            if reader is not None:
                reader.close()

    def _with_results(self, cur, rows, first: int, end: int) -> Iterator[str]:
        """The rows of one time slice with the computed columns, as a registered view."""
        for name, column in self.columns.items():
            rows = rows.append_column(name, column.slice(first, end - first))
        view = f"_kern_{uuid.uuid4().hex[:12]}"
        cur.register(view, rows)
        try:
            yield view
        finally:
            cur.unregister(view)

    def _slice(self, cur, first: int, end: int, since, until):
        bounds = "timestamp >= ?" + (" AND timestamp < ?" if until is not None else "")
        rows = cur.sql(f"SELECT * FROM {self.relation} WHERE {bounds} ORDER BY timestamp, transaction_id",
                       params=[since] + ([until] if until is not None else [])).to_arrow_table()
        if rows.num_rows != end - first:
            raise RiskdeskError(f"the rows changed while their features were computed ({rows.num_rows:,} rows "
                                f"from {since}, expected {end - first:,})")
        return rows


def create_table(cur, target: str, table: str, pre: Precomputed, known_labels: str | None = None,
                 progress: Callable[[float], None] | None = None) -> None:
    """CREATE TABLE `target` with the features of every row of `table` (in time order), reading
    what `pre` computed; `progress` hears the share done after each time slice."""
    for n, source in enumerate(pre.sources(cur)):
        sql = feature_sql(table, pre.definition, known_labels=known_labels, source=source,
                          in_time_order=source is not None)
        cur.execute(f"CREATE TABLE {target} AS {sql}" if n == 0 else f"INSERT INTO {target} {sql}")
        if progress:
            progress((n + 1) / max(1, len(pre.slices)))


def in_memory_rows() -> int:
    """Up to this many rows, every column of every row is fetched at once; beyond it, only the
    columns the window calls read, and the rest a time slice at a time."""
    return min(IN_MEMORY_ROWS, memory_limit() // 1000)


def precompute(cur, relation: str, d: Definition) -> Precomputed:
    """Compute the definition's window calls that the kernels know over `relation` (rows with
    `_row` and every column the features read). Returns the definition reading the results in
    their place and the rows to read them from (Precomputed.sources). A definition with nothing
    to compute, or whose results would not fit in memory, comes back as it was."""
    types = dict(cur.execute(f"SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM {relation})").fetchall())
    planner = _Planner(d, types)
    for f in d.features:
        planner.rewrite(f.sql)
    rows = cur.execute(f"SELECT count(*) FROM {relation}").fetchall()[0][0]
    result_bytes = sum(4 if c.fn in _COUNTS else 8 for c in planner.columns.values())
    if not planner.columns or rows * (BYTES_PER_ROW + result_bytes) > memory_limit() or rows >= 2 ** 31:
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
    result = Precomputed(d.subset(features), relation)
    whole = rows <= in_memory_rows()
    if result.definition.windows and not whole:
        return Precomputed(d)              # a window left to DuckDB needs every row at once
    _compute_keys(cur, result, d, list(planner.keys.values()), types, whole)
    return result


def _compute_keys(cur, result: Precomputed, d: Definition, keys: list[_Key], types: dict[str, str],
                  whole: bool) -> None:
    """Fetch the rows in time order (every column when `whole`, else the ones the calls read),
    compute every key's calls and keep the results (in memory: precompute counted them against
    the memory cap); when not whole, with the time slices to read the rest of each row by."""
    # each sub-partition expression's column in the fetched rows: a column as it is, else computed
    expressions = dict.fromkeys(c.sub for k in keys for c in k.calls if c.sub)
    subs = {e: e if e in types else f"_s{j}" for j, e in enumerate(expressions)}
    # text columns read as codes are numbered by DuckDB, in parallel (pyarrow's dictionary
    # encoding takes 2.5 s of one core per 10M rows)
    roles, columns = {k.role for k in keys}, {e for e, c in subs.items() if e == c}
    distinct = {c.arg for k in keys for c in k.calls if c.distinct}
    coded = sorted(c for c in roles | distinct | columns if types.get(c) == "VARCHAR")
    read = {"timestamp"} | roles | columns | {c.arg for k in keys for c in k.calls if c.arg != "*"}
    wanted = "_r.*" if whole else ", ".join(quote_ident(c) for c in sorted(read) if c not in coded)
    extra = f", epoch_us(timestamp) AS _ts{''.join(f', {e} AS {c}' for e, c in subs.items() if e != c)}"
    numbered = "".join(f" LEFT JOIN (SELECT _v{j}, CAST(row_number() OVER () - 1 AS INTEGER) AS _code{j} FROM "
                       f"(SELECT DISTINCT {quote_ident(c)} AS _v{j} FROM {result.relation} WHERE {quote_ident(c)} "
                       f"IS NOT NULL)) ON _v{j} = _r.{quote_ident(c)}" for j, c in enumerate(coded))
    with ThreadPoolExecutor(threads()) as pool:
        pool.submit(_warm_up)              # numba loads its cached machine code while DuckDB sorts
        fetched = cur.sql(f"SELECT {wanted}{extra}{''.join(f', _code{j}' for j in range(len(coded)))} "
                          f"FROM {result.relation} _r{numbered} ORDER BY _r.timestamp, _r.transaction_id").to_arrow_table()
        encode = _Codes(fetched, {c: f"_code{j}" for j, c in enumerate(coded)})
        times = _filled(fetched.column("_ts").combine_chunks(), 0)      # microseconds, in time order
        # each key's ranged and sequence calls are separate tasks (the kernels release the GIL)
        parts = [(k, [c for c in k.calls if bool(c.window) == ranged]) for k in keys for ranged in (True, False)]
        parts = [(k, part) for k, part in parts if part]
        if whole:
            sorts = dict(zip([k.role for k in keys], pool.map(lambda key: _sort(times, key, encode), keys)))
            for columns in pool.map(lambda p: _compute(fetched, p[1], d, subs, sorts[p[0].role], encode), parts):
                result.columns.update(columns)
        else:                              # a key at a time, its windows two at a time: less to hold
            with ThreadPoolExecutor(1) as ahead:           # the next key's order, sorted meanwhile
                sorting = ahead.submit(_sort, times, keys[0], encode) if keys else None
                for j, key in enumerate(keys):
                    sort = sorting.result()
                    sorting = ahead.submit(_sort, times, keys[j + 1], encode) if j + 1 < len(keys) else None
                    for _, calls in (p for p in parts if p[0] is key):
                        result.columns.update(_compute(fetched, calls, d, subs, sort, encode, pool))
                    del sort
    if whole:
        result.rows, result.slices = fetched, [(0, fetched.num_rows, None, None)]
    else:
        result.slices = _time_slices(times, fetched.column("timestamp"))


def _time_slices(ts, timestamps) -> list[tuple]:
    """Rows in time order cut about IN_MEMORY_ROWS / 4 at a time, never inside a group of rows at
    the same time: (first, end, from time, to time or None)."""
    import numpy as np
    n = len(ts)
    step = max(1, IN_MEMORY_ROWS // 4)
    edges = [0, *sorted({int(np.searchsorted(ts, ts[i], "left")) for i in range(step, n, step)} - {0}), n]
    return [(a, b, timestamps[a].as_py(), timestamps[b].as_py() if b < n else None) for a, b in zip(edges, edges[1:])]


def _warm_up() -> None:
    """Load the cached machine code of every signature a build calls (loading one takes 30-50
    ms and holds the GIL), while DuckDB sorts the rows."""
    import numpy as np

    from . import kernels

    def read_only(a):                        # as arrays read straight from Arrow's buffers are
        a = a.copy()
        a.flags.writeable = False
        return a

    starts, ts, one, zero = np.array([0, 1]), np.zeros(1, np.int64), np.ones(1, np.int32), np.zeros(1, np.int32)
    x, valid = np.zeros(1), np.ones(1, np.bool_)
    kernels.frame_bounds(starts, ts, 1, 0, True)
    kernels.value_stats(zero, one, x, valid, True, True)
    kernels.distinct_counts(starts, zero, one, zero, 1)
    kernels.sequence_ranks(starts, zero, 1)
    for codes in (zero, read_only(zero)):
        kernels.stable_order(codes, 1)
    for values in (zero, read_only(zero), ts, read_only(ts), x, read_only(x), valid):
        kernels.gather(values, zero, np.empty(1, values.dtype))
    for values, kind in ((ts, np.int64), (zero, np.int16), (zero, np.int32), (valid, np.bool_), (x, np.float64)):
        kernels.scatter(zero, values, np.empty(1, kind))


def _plain(c: _Call) -> str:
    """The aggregate without its window: the same result type."""
    return f"{c.fn}({'DISTINCT ' if c.distinct else ''}{c.arg})"


def _sort(times, key: _Key, encode: "_Codes") -> tuple:
    """The order that sorts the fetched rows (in time order, at `times`) by the key, stably,
    NULLs last; where each partition starts in it (and the end); the times in that order."""
    import numpy as np

    from . import kernels
    partition, size = encode(key.role, null=False)
    order = kernels.stable_order(partition, size)
    ordered = _gather(partition, order)
    boundary = ordered[1:] != ordered[:-1]
    if key.nulls_alone:
        boundary |= ordered[1:] < 0
    starts = np.concatenate([[0], np.flatnonzero(boundary) + 1, [len(order)]]).astype(np.int64)
    return order, starts, _gather(times, order)


def _compute(fetched, calls: list[_Call], d: Definition, subs: dict[str, str], sort: tuple, encode: "_Codes",
             pool: ThreadPoolExecutor | None = None) -> dict:
    """These calls of one key over `fetched` (rows in time order, with `_ts` and the
    sub-partition expressions' columns, `subs`), as Arrow arrays in the same row order; with a
    `pool`, a window (or sub-partition) per task."""
    import numpy as np
    import pyarrow as pa

    from . import kernels
    order, starts, ts = sort
    n = len(order)
    out: dict = {}
    codes: dict[tuple[str, bool], tuple] = {}       # per column, in key order
    values: dict[str, tuple] = {}

    def in_key_order(column: str, null: bool) -> tuple:
        if (column, null) not in codes:
            found, size = encode(column, null)
            codes[column, null] = (_gather(found, order), size)
        return codes[column, null]

    def in_key_order_values(column: str) -> tuple:
        if column not in values:
            x, valid = _values(fetched.column(column))
            values[column] = (_gather(x, order), _gather(valid, order))
        return values[column]

    def back(c: _Call, result, mask=None) -> None:      # to the fetched (time) order, as Arrow
        # counts in 16 bits where they fit (most do: a customer's transactions in 30 days), else
        # 32 (never more than the rows), cast as the values are put back: a 10M-row build holds
        # about 0.5 GB less
        kind = result.dtype if c.fn not in _COUNTS else np.int16 if result.max(initial=0) < 2 ** 15 else np.int32
        unordered = kernels.scatter(order, result, np.empty(n, kind))
        if mask is not None:
            mask = kernels.scatter(order, mask, np.empty_like(mask))
        array = _arrow(unordered, mask)
        out[c.column] = array.cast(pa.timestamp("us")) if c.fn == "lag" else array

    groups: dict[tuple, list[_Call]] = {}      # one window's frames, or one sub-partition's ranks, at a time
    for c in calls:
        groups.setdefault((c.window, c.sub), []).append(c)

    def run(window: str, sub: str | None, group: list[_Call]) -> None:
        if not window:
            sub_codes = (np.zeros(n, np.int32), 1) if sub is None else in_key_order(subs[sub], null=True)
            codes.pop((subs.get(sub), True), None)
            rank, previous = kernels.sequence_ranks(starts, *sub_codes)
            del sub_codes
            for c in group:
                if c.fn == "lag":
                    back(c, _gather(ts, np.maximum(previous, 0)), previous < 0)
                else:
                    back(c, rank + (c.fn == "row_number"))
            return
        _, seconds, end_days, exclude = d.frames[window]
        lo, hi = kernels.frame_bounds(starts, ts, seconds * SECOND_US, end_days * DAY_US, exclude == "GROUP")
        for arg in dict.fromkeys(c.arg for c in group):
            of_arg = [c for c in group if c.arg == arg]
            stats = None
            for c in of_arg:
                if arg == "*":
                    back(c, hi - lo)
                elif c.distinct:
                    back(c, kernels.distinct_counts(starts, lo, hi, *in_key_order(arg, null=False)))
                else:
                    if stats is None:
                        fns = {o.fn for o in of_arg}
                        stats = kernels.value_stats(lo, hi, *in_key_order_values(arg), "max" in fns, "stddev_samp" in fns)
                    back(c, *_result(c.fn, *stats))

    if pool is None:
        for (window, sub), group in groups.items():
            run(window, sub, group)
    else:
        inputs = {(c.arg, c.distinct) for c in calls if c.window and c.arg != "*"}   # shared by windows: made once
        list(pool.map(lambda i: in_key_order(i[0], null=False) if i[1] else in_key_order_values(i[0]), inputs))
        for done in [pool.submit(run, window, sub, group) for (window, sub), group in groups.items()]:
            done.result()
    return out


class _Codes:
    """Integer codes of the fetched rows' columns: NULL is -1, or (null=True) a code of its
    own. A column in `coded` was numbered by the query (0, 1, ... per distinct value, NULL
    for NULL); others are encoded here. Each column is encoded once per build, kept as 32-bit
    integers: the keys share columns (the customer is a key, and the counterparty's and the
    device's distinct count)."""

    def __init__(self, fetched, coded: dict[str, str]):
        self.fetched, self.coded = fetched, coded
        self.found: dict[str, tuple] = {}

    def __call__(self, column: str, null: bool) -> tuple:
        import numpy as np
        if column not in self.found:
            self.found[column] = self._encode(column)
        codes, size = self.found[column]
        return (np.where(codes < 0, size, codes) if null else codes).astype(np.int32, copy=False), size + 1

    def _encode(self, column: str) -> tuple:
        """The column's codes (NULL -1, as 32-bit integers) and how many values it has."""
        import numpy as np
        if column in self.coded:
            codes = _filled(self.fetched.column(self.coded[column]).combine_chunks(), -1).astype(np.int32, copy=False)
            return codes, int(codes.max(initial=-1)) + 1
        encoded = self.fetched.column(column).combine_chunks().dictionary_encode()
        return _filled(encoded.indices, -1).astype(np.int32, copy=False), len(encoded.dictionary)


def _gather(values, order):
    """values[order] as a new contiguous array (compiled: order is 32-bit)."""
    import numpy as np

    from . import kernels
    return kernels.gather(values, order, np.empty(len(order), values.dtype))


def _arrow(values, mask=None):
    """A numpy array as Arrow without a copy, NULL where `mask` is set (pyarrow's own mask
    conversion takes half a second per 10M rows; packing the bits takes 50 ms)."""
    import numpy as np
    import pyarrow as pa
    valid = None if mask is None else pa.py_buffer(np.packbits(~mask, bitorder="little"))
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), len(values), [valid, pa.py_buffer(values)])


def _filled(array, fill):
    """An Arrow array of numbers (one chunk) as numpy, NULLs replaced by `fill`, read from its
    buffers: pyarrow's fill_null is slow here (0.4 s on a million dictionary indices), and its
    to_numpy imports pandas (0.2 s)."""
    import numpy as np
    kind = np.dtype(array.type.to_pandas_dtype())
    if len(array) == 0:
        return np.empty(0, kind)
    raw = np.frombuffer(array.buffers()[1], dtype=kind, count=len(array), offset=array.offset * array.type.byte_width)
    return raw if array.null_count == 0 else np.where(_valid(array), raw, fill)


def _valid(array):
    """Whether each value of an Arrow array (one chunk) is there, from its validity bitmap."""
    import numpy as np
    if array.null_count == 0:
        return np.ones(len(array), np.bool_)
    bits = np.unpackbits(np.frombuffer(array.buffers()[0], np.uint8), bitorder="little")
    return bits[array.offset:array.offset + len(array)].view(np.bool_)


def _values(column):
    """A numeric column as doubles (NULLs as 0) and whether each value is there."""
    import numpy as np
    column = column.combine_chunks().cast("double")
    return np.asarray(_filled(column, 0.0), dtype=np.float64), _valid(column)


def _result(fn: str, count, total, top, std):
    """An aggregate's values and NULL mask from the frame statistics."""
    import numpy as np
    if fn == "count":
        return count, None
    if fn == "avg":
        return total / np.maximum(count, 1), count < 1
    value = {"sum": total, "max": top, "stddev_samp": std}[fn]
    return value, count < (2 if fn == "stddev_samp" else 1)
