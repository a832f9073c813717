"""The same feature definitions evaluated in plain Python, for the few rows of a REST request.

DuckDB plans and runs a window query in about 100 ms however few rows it is given; scoring one
transaction must take a few milliseconds. So the SQL of each feature (definitions.py) and of
each rule (core.rules.compile_sql) is compiled once, with sqlglot, into Python functions, which
are evaluated over the rows the request's transactions can see, with the full-build semantics
of the SQL: time-range frames `(t - n, t - end]` over microseconds, EXCLUDE GROUP (the same-time
peers), ROWS frames ordered by (timestamp, transaction_id), `row_number`, `lag`, NULLs as SQL
has them (NULL-equal partitions, aggregates that skip NULLs, three-valued logic, least() that
ignores NULLs, IEEE division).

Nothing is written twice: a construct this engine does not know raises `Unsupported` when the
definition is compiled (or a value of an unexpected type when it runs), and the caller falls
back to DuckDB. tests/test_pyengine.py checks that both engines agree, value for value.
"""
from __future__ import annotations

import calendar
import math
from datetime import datetime
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from .definitions import Definition

EPOCH = datetime(1970, 1, 1)
DAY_US, SECOND_US = 86_400 * 10 ** 6, 10 ** 6


class Unsupported(Exception):
    """A construct (or a value) this engine does not evaluate; use DuckDB instead."""


class Rows:
    """The rows a set of target rows can see: columns as Python lists, timestamps as naive
    datetimes. Partitions and orderings are cached per Rows."""

    def __init__(self, columns: dict[str, list]):
        self.columns = columns
        self.n = len(next(iter(columns.values()), []))
        self.cache: dict[Any, Any] = {}
        self._micros = None

    @property
    def micros(self) -> np.ndarray:
        """The timestamps in microseconds since 1970 (what time-range frames compare)."""
        if self._micros is None:
            self._micros = np.array([(t - EPOCH) // _MICRO for t in self.column("timestamp")], dtype=np.int64)
        return self._micros

    def column(self, name: str) -> list:
        try:
            return self.columns[name]
        except KeyError:
            raise Unsupported(f"no column {name}") from None


_MICRO = datetime(1970, 1, 1, 0, 0, 0, 1) - EPOCH
Fn = Callable[[Rows, int], Any]


# -- scalar functions, with SQL's NULLs ---------------------------------------------------------

def _number(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise Unsupported(f"not a number: {type(v).__name__}")
    return v


def _divide(a, b):
    a, b = float(_number(a)), float(_number(b))
    if b == 0:
        return math.nan if a == 0 or math.isnan(a) else math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def _int_divide(a, b):
    a, b = _number(a), _number(b)
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            raise Unsupported("integer division by zero")
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b >= 0) else -q
    raise Unsupported("// on non-integers")


def _compare(op: str, a, b):
    if isinstance(a, bool) != isinstance(b, bool) or isinstance(a, str) != isinstance(b, str):
        raise Unsupported("comparison of different types")
    if isinstance(a, datetime) != isinstance(b, datetime):
        raise Unsupported("comparison of different types")
    return {"=": a == b, "<>": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def _cast_integer(v):
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and math.isfinite(v):
        return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)       # half away from zero
    raise Unsupported(f"cannot cast {v!r} to INTEGER")


def _cast_double(v):
    if isinstance(v, (bool, int, float)):
        return float(v)
    raise Unsupported(f"cannot cast {type(v).__name__} to DOUBLE")


def _timestamp(v) -> datetime:
    if not isinstance(v, datetime):
        raise Unsupported("not a timestamp")
    return v


def _last_day(v):
    t = _timestamp(v)
    return t.replace(day=calendar.monthrange(t.year, t.month)[1], hour=0, minute=0, second=0, microsecond=0)


TIME_FUNCTIONS = {
    "Hour": lambda t: _timestamp(t).hour,
    "Day": lambda t: _timestamp(t).day,
    "DayOfWeekIso": lambda t: _timestamp(t).isoweekday(),
    "LastDay": _last_day,
    "TimeToUnix": lambda t: ((_timestamp(t) - EPOCH) // _MICRO) / SECOND_US,
}
ARITHMETIC = {
    "Add": lambda a, b: _number(a) + _number(b),
    "Sub": lambda a, b: _number(a) - _number(b),
    "Mul": lambda a, b: _number(a) * _number(b),
    "Div": _divide,
    "IntDiv": _int_divide,
}
COMPARISONS = {"EQ": "=", "NEQ": "<>", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}


# -- window aggregates over a frame's values (NULLs skipped) ------------------------------------

def _stddev_samp(values):
    if len(values) < 2:
        return None
    mean = math.fsum(values) / len(values)
    return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


AGGREGATES = {
    "Sum": lambda vs: (math.fsum(vs) if any(isinstance(v, float) for v in vs) else sum(vs)) if vs else None,
    "Avg": lambda vs: math.fsum(vs) / len(vs) if vs else None,
    "Max": lambda vs: max(vs) if vs else None,
    "Min": lambda vs: min(vs) if vs else None,
    "StddevSamp": _stddev_samp,
}


class _Compiler:
    def __init__(self, d: Definition | None):
        self.d = d
        self.params: list = []

    def compile(self, node) -> Fn:
        import sqlglot.expressions as exp
        kind = type(node).__name__
        if isinstance(node, exp.Paren):
            return self.compile(node.this)
        if isinstance(node, exp.Column):
            if node.table:
                raise Unsupported(f"qualified column {node.sql()}")
            name = node.name
            return lambda rows, i: rows.column(name)[i]
        if isinstance(node, exp.Literal):
            value = node.this if node.is_string else (int(node.this) if node.this.lstrip("-").isdigit()
                                                      else float(node.this))
            return lambda rows, i: value
        if isinstance(node, exp.Boolean):
            value = bool(node.this)
            return lambda rows, i: value
        if isinstance(node, exp.Null):
            return lambda rows, i: None
        if isinstance(node, exp.Placeholder):
            if not self.params:
                raise Unsupported("a placeholder without a value")
            value = self.params.pop(0)
            return lambda rows, i: value
        if isinstance(node, exp.Neg):
            inner = self.compile(node.this)
            return lambda rows, i: None if (v := inner(rows, i)) is None else -_number(v)
        if kind in ARITHMETIC:
            return self._binary(node, ARITHMETIC[kind])
        if kind in COMPARISONS:
            op = COMPARISONS[kind]
            return self._binary(node, lambda a, b: _compare(op, a, b))
        if isinstance(node, exp.DPipe):
            return self._binary(node, _concat)
        if isinstance(node, exp.And):
            return self._logic(node, all_true=True)
        if isinstance(node, exp.Or):
            return self._logic(node, all_true=False)
        if isinstance(node, exp.Not):
            inner = self.compile(node.this)
            return lambda rows, i: None if (v := inner(rows, i)) is None else not _boolean(v)
        if isinstance(node, exp.Is):
            if not isinstance(node.expression, exp.Null):
                raise Unsupported(node.sql())
            inner = self.compile(node.this)
            return lambda rows, i: inner(rows, i) is None
        if isinstance(node, exp.Between):
            this, low, high = self.compile(node.this), self.compile(node.args["low"]), self.compile(node.args["high"])
            return lambda rows, i: _and3([_maybe(_compare, ">=", this(rows, i), low(rows, i)),
                                          _maybe(_compare, "<=", this(rows, i), high(rows, i))])
        if isinstance(node, exp.In):
            if node.args.get("query") or node.args.get("unnest") or node.args.get("field"):
                raise Unsupported(node.sql())
            this, options = self.compile(node.this), [self.compile(e) for e in node.expressions]
            return lambda rows, i: _in(this(rows, i), [o(rows, i) for o in options])
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.Cast):
            return self._cast(node)
        if isinstance(node, exp.Coalesce):
            parts = [self.compile(node.this)] + [self.compile(e) for e in node.expressions]
            return lambda rows, i: next((v for v in (p(rows, i) for p in parts) if v is not None), None)
        if isinstance(node, exp.Nullif):
            a, b = self.compile(node.this), self.compile(node.expression)
            return lambda rows, i: None if (v := a(rows, i)) is None or _maybe(_compare, "=", v, b(rows, i)) else v
        if isinstance(node, (exp.Least, exp.Greatest)):
            parts = [self.compile(node.this)] + [self.compile(e) for e in node.expressions]
            pick = min if isinstance(node, exp.Least) else max
            return lambda rows, i: pick(vs) if (vs := [v for v in (p(rows, i) for p in parts) if v is not None]) else None
        if isinstance(node, exp.Abs):
            inner = self.compile(node.this)
            return lambda rows, i: None if (v := inner(rows, i)) is None else abs(_number(v))
        if kind in TIME_FUNCTIONS:
            inner, fn = self.compile(node.this), TIME_FUNCTIONS[kind]
            return lambda rows, i: None if (v := inner(rows, i)) is None else fn(v)
        if isinstance(node, exp.Window):
            return self._window(node)
        raise Unsupported(f"{kind}: {node.sql(dialect='duckdb')[:80]}")

    def _binary(self, node, fn) -> Fn:
        a, b = self.compile(node.this), self.compile(node.expression)

        def run(rows, i):
            x = a(rows, i)
            if x is None:
                return None
            y = b(rows, i)
            return None if y is None else fn(x, y)
        return run

    def _logic(self, node, all_true: bool) -> Fn:
        a, b = self.compile(node.this), self.compile(node.expression)
        combine = _and3 if all_true else _or3
        return lambda rows, i: combine([a(rows, i), b(rows, i)])

    def _case(self, node) -> Fn:
        if node.this is not None:
            raise Unsupported("CASE x WHEN")
        branches = [(self.compile(b.this), self.compile(b.args["true"])) for b in node.args["ifs"]]
        default = self.compile(node.args["default"]) if node.args.get("default") is not None else (lambda rows, i: None)

        def run(rows, i):
            for cond, value in branches:
                if _boolean(cond(rows, i)) is True:
                    return value(rows, i)
            return default(rows, i)
        return run

    def _cast(self, node) -> Fn:
        import sqlglot.expressions as exp
        inner, to = self.compile(node.this), node.to.this
        if to in (exp.DataType.Type.INT, exp.DataType.Type.BIGINT):
            fn = _cast_integer
        elif to == exp.DataType.Type.DOUBLE:
            fn = _cast_double
        elif to == exp.DataType.Type.BOOLEAN:
            fn = _boolean
        elif to == exp.DataType.Type.TIMESTAMP:
            fn = _timestamp
        else:
            raise Unsupported(f"CAST to {to}")
        return lambda rows, i: None if (v := inner(rows, i)) is None else fn(v)

    # -- windows ----------------------------------------------------------------------------

    def _window(self, node) -> Fn:
        import sqlglot
        import sqlglot.expressions as exp
        name = node.alias if node.args.get("alias") else ""
        spec = node
        frame = None                                  # (seconds, end_days, exclude) of a time range
        if name:
            if self.d is None or name not in self.d.windows:
                raise Unsupported(f"window {name}")
            if name in self.d.frames:
                _, seconds, end_days, exclude = self.d.frames[name]
                frame = (seconds, end_days, exclude)
                if node.args.get("spec") is not None:
                    raise Unsupported(f"a frame on top of the time range {name}")
                spec = sqlglot.parse_one(f"SELECT row_number() OVER (PARTITION BY {self.d.frames[name][0]} "
                                         f"ORDER BY timestamp)", read="duckdb").find(exp.Window)
            else:
                spec = sqlglot.parse_one(f"SELECT row_number() OVER ({self.d.windows[name]})", read="duckdb").find(exp.Window)
                if spec.args.get("spec") is not None and node.args.get("spec") is not None:
                    raise Unsupported(f"two frames on window {name}")
        rows_frame = node.args.get("spec") if node.args.get("spec") is not None else spec.args.get("spec")
        partition = _Keyed([self.compile(e) for e in spec.args.get("partition_by") or []],
                           tuple(e.sql(dialect="duckdb") for e in spec.args.get("partition_by") or []))
        order_by = spec.args.get("order")
        for o in (order_by.expressions if order_by else []):
            if o.args.get("desc") or o.args.get("nulls_first"):
                raise Unsupported("descending or NULLS FIRST order")
        order = _Keyed([self.compile(o.this) for o in (order_by.expressions if order_by else [])],
                       tuple(o.this.sql(dialect="duckdb") for o in (order_by.expressions if order_by else [])))
        if rows_frame is not None:
            if frame is not None or (rows_frame.args.get("kind") or "").upper() != "ROWS" \
                    or rows_frame.args.get("start") != "UNBOUNDED" or rows_frame.args.get("start_side") != "PRECEDING" \
                    or not isinstance(rows_frame.args.get("end"), exp.Literal) or rows_frame.args["end"].this != "1" \
                    or rows_frame.args.get("end_side") != "PRECEDING" or rows_frame.args.get("exclude"):
                raise Unsupported(f"window frame {rows_frame.sql()}")
        fn = node.this
        if isinstance(fn, (exp.RowNumber, exp.Lag)) and not order.parts:
            raise Unsupported(f"{fn.sql()} without ORDER BY")
        if isinstance(fn, exp.RowNumber):
            members = _Members(partition, order, None, True)
            return lambda rows, i: len(members(rows, i)) + 1
        if isinstance(fn, exp.Lag):
            if fn.args.get("offset") is not None or fn.args.get("default") is not None:
                raise Unsupported(fn.sql())
            value, members = self.compile(fn.this), _Members(partition, order, None, True)

            def lag(rows, i):
                before = members(rows, i)
                return value(rows, max(before, key=lambda j: order.key(rows, j))) if len(before) else None
            return lag
        aggregate = self._aggregate(fn)
        members = _Members(partition, order, frame, rows_frame is not None)
        return lambda rows, i: aggregate(rows, members(rows, i))

    def _aggregate(self, fn) -> Callable[[Rows, np.ndarray], Any]:
        import sqlglot.expressions as exp
        kind = type(fn).__name__
        if isinstance(fn, exp.Count):
            arg = fn.this
            if isinstance(arg, exp.Star):
                return lambda rows, idx: len(idx)
            distinct = isinstance(arg, exp.Distinct)
            if distinct:
                if len(arg.expressions) != 1:
                    raise Unsupported("count(DISTINCT a, b)")
                arg = arg.expressions[0]
            value = self.compile(arg)
            if distinct:
                return lambda rows, idx: len({v for v in (value(rows, j) for j in idx) if v is not None})
            return lambda rows, idx: sum(1 for j in idx if value(rows, j) is not None)
        if kind in AGGREGATES:
            if fn.args.get("expressions"):
                raise Unsupported(fn.sql())
            value, agg = self.compile(fn.this), AGGREGATES[kind]
            return lambda rows, idx: agg([_number(v) for v in (value(rows, j) for j in idx) if v is not None])
        raise Unsupported(f"window function {kind}")


class _Keyed:
    """Expressions evaluated per row into a tuple (a partition or an ordering), cached per Rows
    under their SQL, so that windows with the same PARTITION BY or ORDER BY share them."""

    def __init__(self, parts: list[Fn], sql: tuple):
        self.parts, self.sql = parts, sql

    def keys(self, rows: Rows) -> list[tuple]:
        found = rows.cache.get(self.sql)
        if found is None:
            found = rows.cache[self.sql] = [tuple(p(rows, j) for p in self.parts) for j in range(rows.n)]
        return found

    def key(self, rows: Rows, j: int) -> tuple:
        """The row's ordering key: ASC NULLS LAST, as DuckDB orders by default."""
        found = rows.cache.get(("order",) + self.sql)
        if found is None:
            found = rows.cache[("order",) + self.sql] = [tuple((v is None, 0 if v is None else v) for v in k)
                                                         for k in self.keys(rows)]
        return found[j]


class _Members:
    """The rows of target i's window frame: same partition (NULLs equal), then the frame: a time
    range (seconds, end_days, exclude) over the timestamp, or the rows ordered before it (ROWS
    UNBOUNDED PRECEDING AND 1 PRECEDING, or for row_number/lag), or, with ORDER BY and no
    frame, the rows up to its peers."""

    def __init__(self, partition: _Keyed, order: _Keyed, frame, before: bool):
        self.partition, self.order, self.frame, self.before = partition, order, frame, before

    def __call__(self, rows: Rows, i: int) -> np.ndarray:
        groups = rows.cache.get(("groups",) + self.partition.sql)
        if groups is None:
            found: dict[tuple, list[int]] = {}
            for j, k in enumerate(self.partition.keys(rows)):
                found.setdefault(k, []).append(j)
            groups = rows.cache[("groups",) + self.partition.sql] = {k: np.array(v, dtype=np.int64)
                                                                     for k, v in found.items()}
        idx = groups[self.partition.keys(rows)[i]]
        if self.frame is not None:
            seconds, end_days, exclude = self.frame
            t, ts = rows.micros[i], rows.micros[idx]
            keep = (ts >= t - (seconds * SECOND_US - 1)) & (ts <= t - end_days * DAY_US)
            if exclude == "GROUP":
                keep &= ts != t
            elif exclude != "NO OTHERS":
                raise Unsupported(f"EXCLUDE {exclude}")
            return idx[keep]
        if not self.order.parts:
            return idx
        mine = self.order.key(rows, i)
        if self.before:
            return np.array([j for j in idx if self.order.key(rows, j) < mine], dtype=np.int64)
        return np.array([j for j in idx if self.order.key(rows, j) <= mine], dtype=np.int64)


def _concat(a, b) -> str:
    if not (isinstance(a, str) and isinstance(b, str)):
        raise Unsupported("|| on non-text")
    return a + b


def _boolean(v):
    if v is None or isinstance(v, bool):
        return v
    raise Unsupported(f"not a boolean: {v!r}")


def _and3(values):
    values = [_boolean(v) for v in values]
    if any(v is False for v in values):
        return False
    return None if any(v is None for v in values) else True


def _or3(values):
    values = [_boolean(v) for v in values]
    if any(v is True for v in values):
        return True
    return None if any(v is None for v in values) else False


def _maybe(fn, op, a, b):
    return None if a is None or b is None else fn(op, a, b)


def _in(value, options):
    if value is None:
        return None
    if any(o is not None and _compare("=", value, o) for o in options):
        return True
    return None if any(o is None for o in options) else False


# -- the compiled forms -------------------------------------------------------------------------

class CompiledDefinition:
    """A definition's features as Python functions (see `compile_definition`)."""

    def __init__(self, d: Definition):
        import sqlglot
        self.names = [f.name for f in d.features]
        self.carry = sorted(d.carry)
        compiler = _Compiler(d)
        try:
            self.functions = [compiler.compile(sqlglot.parse_one(f.sql, read="duckdb")) for f in d.features]
        except sqlglot.errors.SqlglotError as exc:
            raise Unsupported(str(exc)) from None

    def evaluate(self, rows: Rows, targets: list[int]) -> list[dict]:
        """Each target row's features, as a full build over `rows` computes them (the carry-in
        columns are NULL, as in a full build). Raises Unsupported on a value it cannot handle."""
        for column in self.carry:
            rows.columns.setdefault(column, [None] * rows.n)
        try:
            return [{name: fn(rows, i) for name, fn in zip(self.names, self.functions)} for i in targets]
        except (TypeError, ValueError, OverflowError) as exc:
            raise Unsupported(str(exc)) from None


def _definition_key(d: Definition) -> tuple:
    return (tuple((f.name, f.sql) for f in d.features), tuple(sorted(d.windows.items())),
            tuple(sorted(d.frames.items())), tuple(sorted(d.carry)))


_compiled: dict[tuple, CompiledDefinition | Unsupported] = {}


def compile_definition(d: Definition) -> CompiledDefinition:
    """The definition compiled once per process (cached by its SQL); Unsupported if any feature
    uses a construct this engine does not evaluate."""
    key = _definition_key(d)
    found = _compiled.get(key)
    if found is None:
        try:
            found = CompiledDefinition(d)
        except Unsupported as exc:
            found = exc
        if len(_compiled) > 64:
            _compiled.clear()
        _compiled[key] = found
    if isinstance(found, Unsupported):
        raise found
    return found


@lru_cache(maxsize=512)
def compile_condition(sql: str, params: tuple) -> Fn:
    """A boolean SQL expression with ? placeholders (a compiled rule) as a function of one row."""
    import sqlglot
    compiler = _Compiler(None)
    compiler.params = list(params)
    try:
        fn = compiler.compile(sqlglot.parse_one(sql, read="duckdb"))
    except sqlglot.errors.SqlglotError as exc:
        raise Unsupported(str(exc)) from None
    if compiler.params:
        raise Unsupported("more values than placeholders")
    return fn
