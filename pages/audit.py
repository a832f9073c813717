"""Audit log page: every recorded action, filtered by person, action, object and period,
paged in DuckDB and exported to CSV (formula cells neutralised)."""
import math
from datetime import date

import streamlit as st

from core import auditlog
from ui import signed_in_store, tr

db = signed_in_store()
st.title(tr("audit.title"))
st.caption(tr("audit.intro"))

options = auditlog.choices(db)
c1, c2, c3, c4 = st.columns(4)
any_ = tr("common.any")
person = c1.selectbox(tr("audit.person"), [any_] + options["actor"], key="audit_person")
action = c2.selectbox(tr("audit.action"), [any_] + options["action"], key="audit_action")
kind = c3.selectbox(tr("audit.object_kind"), [any_] + options["object_kind"], key="audit_kind")
object_id = c4.text_input(tr("audit.object_id"), max_chars=200, key="audit_object").strip()
period = st.date_input(tr("audit.period"), (), key="audit_period", max_value=date.today())
start, end = (period[0], period[1]) if isinstance(period, tuple) and len(period) == 2 else (None, None)
filters = {"person": None if person == any_ else person, "action": None if action == any_ else action,
           "object_kind": None if kind == any_ else kind, "object_id": object_id or None, "start": start, "end": end}

size = 50
total = auditlog.entries(db, limit=0, **filters)["total"]
pages = max(1, math.ceil(total / size))
page = st.number_input(tr("audit.page"), 1, pages, 1, key=f"audit_page_{hash(tuple(filters.items()))}")
result = auditlog.entries(db, limit=size, offset=(page - 1) * size, **filters)
st.caption(tr("audit.count", total=f"{total:,}", page=page, pages=pages))
st.dataframe(result["rows"], hide_index=True, width="stretch",
             column_config={c: tr(f"audit.col.{c}") for c in auditlog.COLUMNS if c != "id"})
# built when clicked (deferred), not on every run of the page
st.download_button(tr("audit.download"), lambda: auditlog.export_csv(db, **filters), file_name="riskdesk_audit_log.csv",
                   mime="text/csv", key="audit_csv")
