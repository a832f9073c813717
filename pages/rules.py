"""Rules page: the rule list, add / edit (new versions) / disable, live parse errors, and a
labelled backtest of the rule set on any period."""
from datetime import date

import streamlit as st

from core import approvals, plots
from core import rules as rules_mod
from core.errors import RiskdeskError
from core.export import safe_csv_bytes
from core.i18n import t
from ui import (allowed, change_requests, dataset_or_stop, features_or_stop, lang, not_allowed_note, reviewer,
                signed_in_store, tr)

db = signed_in_store()
st.title(tr("rules.title"))
st.caption(tr("rules.intro"))

ds = dataset_or_stop()
fs = features_or_stop(ds)
rules_mod.ensure_starter_rules(db)
current = rules_mod.current_rules(db)
by_id = {r["rule_id"]: r for r in current}


@st.cache_data(show_spinner=False, max_entries=64)
def cached_backtest(table: str, rules_json: str, start: str, end: str, _rules: list, _fs: dict):
    return rules_mod.backtest(db, _fs, _rules, start, end)


def shown(frame):
    """A copy with actions in the UI language (the stored values stay BLOCK / VERIFY)."""
    frame = frame.copy()
    frame["action"] = [tr(f"band.{a}") for a in frame["action"]]
    return frame


def backtest_columns() -> dict:
    return {"rule_id": tr("rules.col.id"), "version": tr("rules.col.version"), "name": tr("rules.col.name"),
            "action": tr("rules.col.action"), "score": tr("rules.col.score"), "hits": tr("rules.m.hits"),
            "hit_rate": st.column_config.NumberColumn(tr("rules.m.hit_rate"), format="percent"),
            "true_positives": tr("rules.m.tp"), "false_positives": tr("rules.m.fp"),
            "precision": st.column_config.NumberColumn(tr("metric.precision"), format="percent"),
            "recall": st.column_config.NumberColumn(tr("metric.recall"), format="percent"),
            "fraud_amount_caught": st.column_config.NumberColumn(tr("rules.m.amount"), format="percent")}


first, last = date.fromisoformat(ds["start"][:10]), date.fromisoformat(ds["end"][:10])
period = st.date_input(tr("rules.period"), (first, last), min_value=first, max_value=last, key="rules_period")
if not (isinstance(period, tuple) and len(period) == 2):
    st.stop()
start, end = map(str, period)

waiting = len(approvals.list_requests(db, ("rule",), status="pending"))
tab_list, tab_edit, tab_approval, tab_backtest = st.tabs([
    tr("rules.tab.list"), tr("rules.tab.edit"), tr("approval.header", n=waiting), tr("rules.tab.backtest")])

not_applicable = {r["rule_id"]: r["missing"] for r in rules_mod.applicable(current, fs)[1]}

with tab_list:
    table = [{**{k: r[k] for k in ("rule_id", "version", "expression", "score", "enabled", "author", "approved_by",
                                 "created_at")},
              "name": rules_mod.display_name(r, lang()), "action": tr(f"band.{r['action']}"),
              "applicable": (tr("rules.not_applicable", names=", ".join(not_applicable[r["rule_id"]]))
                             if r["rule_id"] in not_applicable else tr("rules.applicable"))} for r in current]
    st.dataframe(table, hide_index=True, width="stretch", column_order=[
        "rule_id", "version", "name", "expression", "action", "score", "enabled", "applicable", "author", "approved_by",
        "created_at"],
        column_config={
        "rule_id": tr("rules.col.id"), "version": tr("rules.col.version"), "name": tr("rules.col.name"),
        "expression": st.column_config.TextColumn(tr("rules.col.expression"), width="large"),
        "action": tr("rules.col.action"), "score": tr("rules.col.score"), "enabled": tr("rules.col.enabled"),
        "applicable": tr("rules.col.applicable"), "author": tr("rules.col.author"),
        "approved_by": tr("approval.col.approved_by"),
        "created_at": tr("rules.col.created")})
    if not_applicable:
        st.info(tr("rules.not_applicable_note", n=len(not_applicable), name=ds["name"]))
    with st.expander(tr("rules.grammar_header")):
        st.markdown(tr("rules.grammar"))
        st.caption(tr("rules.names", names=", ".join(sorted(f["name"] for f in fs["catalogue"]))))

with tab_edit:
    NEW = "__new__"
    choice = st.selectbox(tr("rules.choose"), [NEW] + list(by_id), key="rules_choice",
                          format_func=lambda r, language=lang(): (t("rules.new", language) if r == NEW else
                                                                  f"{r} · {rules_mod.display_name(by_id[r], language)}"))
    base = by_id.get(choice, {"name": "", "expression": "", "action": "VERIFY", "score": 20.0, "enabled": True})
    k = f"{choice}_{base.get('version', 0)}"
    name = st.text_input(tr("rules.col.name"), base["name"], key=f"rule_name_{k}", max_chars=120)
    expression = st.text_area(tr("rules.col.expression"), base["expression"], key=f"rule_expr_{k}", height=90,
                              placeholder="amount_to_mean_30d > 5 and new_device = 1")
    c1, c2, c3 = st.columns(3)
    action = c1.radio(tr("rules.col.action"), rules_mod.ACTIONS, index=rules_mod.ACTIONS.index(base["action"]),
                      key=f"rule_action_{k}", horizontal=True,
                      format_func=lambda a, language=lang(): t(f"band.{a}", language))
    score = c2.number_input(tr("rules.col.score"), 0.0, 1000.0, float(base["score"]), 5.0, key=f"rule_score_{k}")
    enabled = c3.checkbox(tr("rules.col.enabled"), bool(base["enabled"]), key=f"rule_enabled_{k}")

    draft_ok = False
    if expression.strip():
        try:
            node = rules_mod.validate(expression, fs)
            draft_ok = True
            st.success(tr("rules.parsed", text=rules_mod.to_text(node)))
        except rules_mod.RuleSyntaxError as exc:
            st.error(tr("rules.syntax_error", column=exc.position + 1, detail=exc.detail))
            st.code(exc.pointer(), language=None)
        except RiskdeskError as exc:
            st.error(str(exc))

    if draft_ok:
        draft = {"rule_id": choice if choice != NEW else "DRAFT", "version": 0, "name": name or "draft",
                 "expression": expression, "action": action, "score": score, "enabled": True}
        compare_with = [draft] + ([{**by_id[choice], "enabled": True}] if choice in by_id else [])
        try:
            result = rules_mod.backtest(db, fs, [{**r, "rule_id": f"{r['rule_id']} v{r['version'] or tr('rules.draft')}"}
                                                 for r in compare_with], start, end)
            st.caption(tr("rules.draft_backtest", start=start, end=end))
            st.dataframe(shown(result["rules"]).drop(columns=["version"]), hide_index=True, width="stretch",
                         column_config=backtest_columns())
        except RiskdeskError as exc:
            st.warning(str(exc))

    who = reviewer() if allowed("rules") else ""
    if not who:
        not_allowed_note("rules")
    b1, b2 = st.columns(2)
    if b1.button(tr("rules.save"), type="primary", disabled=not (draft_ok and who), key="rule_save"):
        try:
            asked = approvals.request_rule_change(db, who, name, expression, action, score, enabled,
                                                  rule_id=None if choice == NEW else choice, fs=fs)
            st.session_state["rules_saved"] = tr("approval.requested", id=asked["id"])
            st.rerun()
        except RiskdeskError as exc:
            st.error(tr("common.error", error=exc))
    if choice in by_id and b2.button(tr("rules.disable") if base["enabled"] else tr("rules.enable"),
                                     disabled=not who, key="rule_toggle"):
        asked = approvals.request_rule_change(db, who, base["name"], base["expression"], base["action"], base["score"],
                                              not base["enabled"], rule_id=choice)
        st.session_state["rules_saved"] = tr("approval.requested", id=asked["id"])
        st.rerun()
    if "rules_saved" in st.session_state:
        st.success(st.session_state.pop("rules_saved"))
    if choice in by_id:
        with st.expander(tr("rules.history")):
            st.dataframe(rules_mod.rule_history(db, choice), hide_index=True, width="stretch")



def describe_rule_change(request: dict) -> None:
    """The proposed rule beside the current version, and both backtested on the chosen period."""
    proposed = {"rule_id": request["subject"] or tr("approval.new_rule"), "version": 0, **request["payload"]}
    now = by_id.get(request["subject"])
    rows = [{"": tr("approval.proposed"), **proposed}] + ([{"": tr("approval.current"), **now}] if now else [])
    st.dataframe([{k: r[k] for k in ("", "name", "expression", "action", "score", "enabled")} for r in rows],
                 hide_index=True, width="stretch", column_config={
                     "name": tr("rules.col.name"), "expression": st.column_config.TextColumn(tr("rules.col.expression"),
                                                                                             width="large"),
                     "action": tr("rules.col.action"), "score": tr("rules.col.score"), "enabled": tr("rules.col.enabled")})
    try:
        tried = [{**r, "rule_id": r[""], "enabled": True} for r in rows]
        result = rules_mod.backtest(db, fs, tried, start, end)
        st.dataframe(shown(result["rules"]).drop(columns=["version"]), hide_index=True, width="stretch",
                     column_config=backtest_columns())
    except RiskdeskError as exc:
        st.warning(str(exc))


with tab_approval:
    change_requests(("rule",), None, describe_rule_change)

with tab_backtest:
    active = [r for r in current if r["enabled"]]
    if not active:
        st.info(tr("rules.none_enabled"))
        st.stop()
    try:
        bt = cached_backtest(fs["table"], rules_mod.dumps(active), start, end, active, fs)
    except RiskdeskError as exc:
        st.error(tr("common.error", error=exc))
        st.stop()
    for skipped in bt["skipped"]:
        st.info(tr("rules.skipped_in_backtest", rule_id=skipped["rule_id"], names=", ".join(skipped["missing"])))
    o = bt["overall"]
    cols = st.columns(6)
    cols[0].metric(tr("rules.m.hits"), f"{o['hits']:,}", help=tr("rules.m.hits_help", n=f"{o['labelled']:,}"))
    cols[1].metric(tr("metric.precision"), f"{o['precision']:.1%}")
    cols[2].metric(tr("metric.recall"), f"{o['recall']:.1%}")
    cols[3].metric(tr("rules.m.amount"), f"{o['fraud_amount_caught']:.1%}")
    cols[4].metric("AUC", f"{o.get('auc', float('nan')):.3f}", help=tr("rules.m.auc_help"))
    cols[5].metric(tr("metric.ap"), f"{o.get('average_precision', float('nan')):.3f}")
    st.dataframe(shown(bt["rules"]), hide_index=True, width="stretch", column_config=backtest_columns())
    st.download_button(tr("rules.download"), safe_csv_bytes(bt["rules"]), file_name=f"rule_backtest_{ds['id']}_{start}_{end}.csv",
                       mime="text/csv")
    st.plotly_chart(plots.rule_overlap(bt["overlap"], lang()), width="stretch")
