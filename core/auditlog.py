"""Reading the audit log: who did what to which object, when. The log itself is written by
Store.audit inside each action's own transaction and is append-only; this module only reads
it, filtered and paged in DuckDB, and exports it with spreadsheet formulas neutralised."""
from __future__ import annotations

from datetime import date, timedelta

from .export import safe_csv_bytes
from .store import Store

COLUMNS = ("id", "logged_at", "actor", "action", "object_kind", "object_id", "model_id", "detail")
EXPORT_LIMIT = 100_000


def _where(person=None, action=None, object_kind=None, object_id=None, start: date | None = None,
           end: date | None = None) -> tuple[str, list]:
    clauses, params = [], []
    for column, value in (("actor", person), ("action", action), ("object_kind", object_kind),
                          ("object_id", object_id)):
        if value:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    if start:
        clauses.append("logged_at >= ?")
        params.append(start)
    if end:
        clauses.append("logged_at < ?")
        params.append(end + timedelta(days=1))
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def entries(store: Store, limit: int = 50, offset: int = 0, **filters) -> dict:
    """A page of audit rows, newest first: {"rows": DataFrame, "total": matching rows}."""
    where, params = _where(**filters)
    total = int(store.scalar(f"SELECT count(*) FROM audit_log{where}", params) or 0)
    rows = store.df(f"SELECT {', '.join(COLUMNS)} FROM audit_log{where} ORDER BY id DESC LIMIT ? OFFSET ?",
                    params + [int(limit), int(offset)])
    return {"rows": rows, "total": total}


def choices(store: Store) -> dict[str, list[str]]:
    """The people, actions and object kinds that occur, for filter menus."""
    return {column: [r[0] for r in store.rows(f"SELECT DISTINCT {column} FROM audit_log WHERE {column} IS NOT NULL "
                                              f"ORDER BY 1")]
            for column in ("actor", "action", "object_kind")}


def export_csv(store: Store, **filters) -> bytes:
    """The matching rows (newest first, at most EXPORT_LIMIT) as CSV, formulas neutralised."""
    return safe_csv_bytes(entries(store, limit=EXPORT_LIMIT, **filters)["rows"])
