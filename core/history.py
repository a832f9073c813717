"""A dataset's stored rows in memory, indexed for scoring single transactions (core.realtime).

A scored transaction's features need its customer's stored rows, and its device's and
counterparty's within the longest window. Asking DuckDB for them took 7-8 ms of a 12 ms
request on the demo, and under load each of the query's tasks waited for the GIL again. A
dataset that fits in MEMORY_SHARE of RISKDESK_MEMORY (about ROW_BYTES a row) is kept here as one
Arrow table with its row positions grouped by each key in time order, so the near rows are a
few dictionary lookups and binary searches.

The copy is made in a background thread the first time a dataset is scored and again after its
rows change (a batch appended or deleted). Until it is ready, `current` answers None and the
caller asks DuckDB, so no request waits for it and both give the same rows.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

from . import config
from .store import Store

ROW_BYTES = 300         # measured on the demo: the Arrow columns, the id set and the key indexes
MEMORY_SHARE = 0.1      # of config.memory_limit(); larger datasets are asked from DuckDB per request
ID_CHUNK = 50_000       # ids turned into Python strings at a time (a million at once held the GIL 0.3-0.45 s)

EPOCH, MICROSECOND = datetime(1970, 1, 1), timedelta(microseconds=1)
VERSION_SQL = """SELECT (SELECT count(*) FROM {table}),
  (SELECT md5(string_agg(CAST(b AS VARCHAR), ',' ORDER BY batch)) FROM batches b WHERE dataset_id = ?)"""


@dataclass
class History:
    """One version of a dataset's rows: every column, each key's positions by time, the ids."""
    version: tuple
    table: object                                  # pyarrow.Table, the stored order
    micros: np.ndarray                             # timestamps, microseconds since 1970
    groups: dict[str, tuple[np.ndarray, dict]]     # key -> (positions by key and time, value -> (start, end))
    ids: set[str]                                  # not changed once made

    def holds_any(self, ids: list[str]) -> str | None:
        """The first of `ids` that is a stored transaction id, if any."""
        return next((i for i in ids if i in self.ids), None)

    def near(self, rows: list[dict], keys, lookback: float) -> dict[str, list]:
        """The stored rows that `rows` can see, as columns of Python values (what a DuckDB
        fetch gives): all of their customers' rows (NULL customers share one partition), and
        their devices' and counterparties' from `lookback` seconds before the first of them.
        A stored row with a request row's id is left out."""
        since = (min(r["timestamp"] for r in rows) - timedelta(seconds=lookback) - EPOCH) // MICROSECOND
        picked: set[int] = set()
        for key in keys:
            order, spans = self.groups[key]
            values = {r.get(key) for r in rows}
            if key != "customer_id":
                values.discard(None)
            for value in values:
                start, end = spans.get(value, (0, 0))
                if key != "customer_id" and end > start:
                    times = self.micros[order[start:end]]
                    start += int(np.searchsorted(times, since, side="left"))
                picked.update(order[start:end].tolist())
        positions = sorted(picked)
        columns = self.table.take(positions).to_pydict() if positions else \
            {name: [] for name in self.table.column_names}
        ids = {r["transaction_id"] for r in rows}
        if ids & set(map(str, columns["transaction_id"])):
            keep = [k for k, t in enumerate(columns["transaction_id"]) if str(t) not in ids]
            columns = {n: [v[k] for k in keep] for n, v in columns.items()}
        return columns


_histories: dict[tuple, History] = {}          # (workspace, table) -> the newest copy made
_checked: dict[tuple, tuple] = {}              # (workspace, table) -> (generation, version) last read
_building: set[tuple] = set()
_failed: dict[tuple, tuple] = {}               # (workspace, table) -> the version a copy could not be made of
_lock = threading.Lock()


def version(store: Store, ds: dict, cur=None) -> tuple:
    """What the dataset's rows are: their count and its batches."""
    sql = VERSION_SQL.format(table=ds["table"])
    return tuple((cur.execute(sql, [ds["id"]]).fetchall() if cur else store.rows(sql, [ds["id"]]))[0])


def fits(rows: int) -> bool:
    """Whether a copy of this many rows is kept in memory."""
    return rows * ROW_BYTES <= config.memory_limit() * MEMORY_SHARE


def at_hand(store: Store, ds: dict, keys) -> History | None:
    """The copy of the dataset's rows indexed by `keys`, if it is known to be current without
    asking the database (no write since it was last checked), else None."""
    slot = (str(store.path), ds["table"])
    checked, history = _checked.get(slot), _histories.get(slot)
    if checked is not None and checked[0] == store.generation and history is not None \
            and history.version == checked[1] and set(keys) <= history.groups.keys():
        return history
    return None


def current(store: Store, ds: dict, keys) -> History | None:
    """The in-memory copy of the dataset's rows as they are now, indexed by `keys`, else None
    (too large, or being made: a background thread starts making it)."""
    slot = (str(store.path), ds["table"])
    generation = store.generation
    checked = _checked.get(slot)
    if checked is None or checked[0] != generation:
        checked = _checked[slot] = (generation, version(store, ds))
    history = at_hand(store, ds, keys)
    if history is not None:
        return history
    older = _histories.get(slot)
    keys = set(keys) | (older.groups.keys() if older is not None else set())
    if not fits(checked[1][0]) or _failed.get(slot) == checked[1]:
        return None
    with _lock:
        if slot in _building:
            return None
        _building.add(slot)
    keys = tuple(sorted(keys))
    store.in_background(lambda: _build_quietly(store, ds, keys, slot, checked[1]), "riskdesk-history")
    return None


def _build_quietly(store: Store, ds: dict, keys: tuple, slot: tuple, at: tuple) -> None:
    try:
        _histories[slot] = build(store, ds, keys)
    except Exception:       # noqa: BLE001 - a closed store, a dropped table: requests keep asking DuckDB
        _histories.pop(slot, None)
        _failed[slot] = at
    finally:
        with _lock:
            _building.discard(slot)


def build(store: Store, ds: dict, keys) -> History:
    """Copy the dataset's rows and index them by `keys`, read in one transaction with their
    version."""
    import pyarrow as pa
    import pyarrow.compute as pc
    cur = store.cursor()
    try:
        cur.begin()
        try:
            at = version(store, ds, cur)
            table = cur.sql(f"SELECT * FROM {ds['table']}").to_arrow_table()
        finally:
            cur.rollback()
    finally:
        cur.close()
    micros = pc.cast(pc.cast(table["timestamp"], pa.timestamp("us")), pa.int64()).to_numpy(zero_copy_only=False)
    groups = {}
    for key in keys:
        encoded = pc.cast(table[key], pa.string()).combine_chunks().dictionary_encode()
        codes = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        order = np.lexsort((micros, codes))
        ordered = codes[order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], len(ordered)]
        names = encoded.dictionary.to_pylist()
        groups[key] = (order, {(names[c] if c >= 0 else None): (int(s), int(e))
                               for c, s, e in zip(ordered[starts].tolist(), starts.tolist(), ends.tolist())})
    ids: set[str] = set()
    text = pc.cast(table["transaction_id"], pa.string())
    for start in range(0, len(text), ID_CHUNK):     # one C call per chunk: the GIL is free in between
        ids.update(text.slice(start, ID_CHUNK).to_pylist())
    return History(version=at, table=table, micros=micros, groups=groups, ids=ids)


def forget(store: Store) -> None:
    """Drop the copies of a workspace's datasets (tests)."""
    for slot in [s for s in _histories if s[0] == str(store.path)]:
        _histories.pop(slot, None)
        _checked.pop(slot, None)
        _failed.pop(slot, None)

