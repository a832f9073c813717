"""Transaction page: find a transaction by id, see why it scored as it did (waterfall, reasons,
rules, the customer's history), record a review decision and export the case."""
import streamlit as st

from core import cases, explain, plots, report
from core import rules as rules_mod
from core.errors import RiskdeskError
from core.i18n import t
from ui import allowed, dataset_and_model_or_stop, lang, not_allowed_note, reviewer, signed_in_store, tr

db = signed_in_store()
st.title(tr("case.page_title"))

ds, model = dataset_and_model_or_stop()


@st.cache_data(show_spinner=False, max_entries=256)
def cached_explanation(model_id: str, dataset: str, transaction_id: str, language: str, rules_revision: str):
    return explain.explain(db, model_id, transaction_id, dataset, language)


if "case_request" in st.session_state:
    st.session_state["case_txid"] = st.session_state.pop("case_request")
txid = st.text_input(tr("case.search"), key="case_txid", placeholder="T000012345", help=tr("case.search_help")).strip()
if not txid:
    st.info(tr("case.search_hint"))
    top = cases.queue(db, model["model_id"], limit=5)["rows"] if cases.is_scored(db, model["model_id"]) else None
    if top is not None and len(top):
        st.caption(tr("case.examples"))
        cols = st.columns(len(top))
        for col, (_, row) in zip(cols, top.iterrows()):
            if col.button(f"{row['transaction_id']} · {row['score']:.3f}", key=f"example_{row['transaction_id']}"):
                st.session_state["case_request"] = str(row["transaction_id"])
                st.rerun()
    st.stop()

try:
    with st.spinner(tr("case.explaining")):
        e = cached_explanation(model["model_id"], ds["name"], txid, lang(), rules_mod.revision(db))
except RiskdeskError as exc:
    st.error(tr("common.error", error=exc))
    st.stop()

tx = e["transaction"]
decisions = cases.history(db, ds["id"], txid)
m = st.columns(6)
m[0].metric(tr("plot.score"), f"{e['score']:.4f}", help=tr("case.score_help"))
m[1].metric(tr("case.decision"), tr(f"band.{e['decision']}"))
m[2].metric(tr("plot.log_odds"), f"{e['margin']:.3f}", help=tr("case.margin_help", base=f"{e['base_value']:.3f}"))
m[3].metric(tr("role.amount"), explain.format_value(tx.get("amount")))
label = tx.get("label")
m[4].metric(tr("case.label"), "—" if label is None else tr("plot.fraud") if label == 1 else tr("plot.normal"))
m[5].metric(tr("case.review"), tr(f"decision.{decisions[-1]['decision']}") if decisions else "—")

left, right = st.columns([2, 3])
with left:
    st.subheader(tr("case.reasons"))
    for sentence in e["reasons"]:
        st.markdown(f"- {sentence}")
    st.subheader(tr("case.rules"))
    if e["rules_fired"]:
        st.dataframe([{"rule": f"{r['rule_id']} v{r['version']}", "name": r["name"], "expression": r["expression"],
                       "action": t(f"band.{r['action']}", lang()), "score": r["score"]} for r in e["rules_fired"]],
                     hide_index=True, width="stretch", column_config={
                         "rule": tr("rules.col.id"), "name": tr("rules.col.name"), "expression": tr("rules.col.expression"),
                         "action": tr("rules.col.action"), "score": tr("rules.col.score")})
    else:
        st.caption(tr("case.no_rules"))
with right:
    if e["contributions"]:
        top_n = st.slider(tr("case.top_n"), 5, 30, 10, key="case_top_n")
        st.plotly_chart(plots.waterfall(e, lang(), top_n), width="stretch", key="waterfall")
        st.caption(tr("case.additivity", base=f"{e['base_value']:.3f}",
                      total=f"{sum(c['shap'] for c in e['contributions']):+.3f}", margin=f"{e['margin']:.3f}"))
    else:
        st.info(tr("case.rules_model"))

history = e["history"]
st.plotly_chart(plots.customer_history(history, lang()), width="stretch")
with st.expander(tr("case.history_table", n=len(history))):
    st.dataframe(history, hide_index=True, width="stretch")
with st.expander(tr("case.transaction")):
    st.dataframe([{"field": k, "value": str(v)} for k, v in tx.items()], hide_index=True, width="stretch")

st.subheader(tr("case.decide"))
who = reviewer() if allowed("review") else ""
if not who:
    not_allowed_note("review")
with st.form("decision_form", clear_on_submit=True):
    choice = st.radio(tr("case.decision_choice"), cases.DECISIONS, horizontal=True, key="decision_choice",
                      format_func=lambda d, language=lang(): t(f"decision.{d}", language))
    note = st.text_area(tr("case.note"), max_chars=cases.MAX_NOTE, key="decision_note")
    if st.form_submit_button(tr("case.record"), type="primary", disabled=not who):
        try:
            saved = cases.record(db, ds["id"], txid, choice, who, note, model["model_id"], e["score"])
            st.session_state["decision_saved"] = tr("case.recorded", id=saved["decision_id"])
            st.rerun()
        except RiskdeskError as exc:
            st.error(tr("common.error", error=exc))
if "decision_saved" in st.session_state:
    st.success(st.session_state.pop("decision_saved"))
if decisions:
    st.dataframe([{**d, "decision": t(f"decision.{d['decision']}", lang())} for d in decisions], hide_index=True,
                 width="stretch", column_config={
                     "decision_id": "#", "decision": tr("case.decision"), "note": tr("case.note"),
                     "reviewer": tr("case.reviewer"), "model_id": tr("case.model"), "score": tr("case.score"),
                     "decided_at": tr("case.time")})

st.subheader(tr("case.export"))
st.caption(tr("case.export_help"))
language = lang()
cols = st.columns(3)
for col, fmt, mime in zip(cols, report.FORMATS, ("application/pdf", "text/html", "application/json")):
    col.download_button(tr(f"case.download_{fmt}"), key=f"download_{fmt}", mime=mime,
                        file_name=f"case_{txid}.{fmt}",
                        data=lambda fmt=fmt: report.render(report.case_record(db, model["model_id"], txid, ds["name"],
                                                                              language), fmt))
