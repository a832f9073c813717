"""Exports that leave the workspace: CSV with spreadsheet formulas neutralised, HTML escaping."""
from __future__ import annotations

import html

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value):
    """Prefix text that a spreadsheet would run as a formula with a single quote."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def safe_csv_bytes(frame) -> bytes:
    """A DataFrame as UTF-8 CSV (with BOM, for Excel) with every text cell neutralised."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith(("string", "str")):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out.to_csv(index=False).encode("utf-8-sig")


def escape(text) -> str:
    """HTML-escape user text (notes, ids, values) for HTML exports."""
    return html.escape("" if text is None else str(text), quote=True)
