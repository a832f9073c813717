"""Monitor page: a period against a reference (the model's training period by default): drift
of every feature and of the score, alerts per day against capacity, rule hits over time,
missing values and new categories, and performance by week once labels arrive."""
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from core import datasets, monitor, plots
from core.errors import RiskdeskError
from ui import dataset_and_model_or_stop, lang, run_job, score_newest_batch, signed_in_store, tr

db = signed_in_store()
st.title(tr("monitor.title"))
st.caption(tr("monitor.intro"))
ds, model = dataset_and_model_or_stop()
score_newest_batch(ds)

first, last = date.fromisoformat(ds["start"][:10]), date.fromisoformat(ds["end"][:10])
train = [date.fromisoformat(d) for d in model["split"]["train"]]
c1, c2, c3 = st.columns([2, 2, 1])
current = c1.date_input(tr("monitor.current"), (max(first, last - timedelta(days=29)), last), min_value=first,
                        max_value=last, key="monitor_current")
reference = c2.date_input(tr("monitor.reference"), tuple(train), min_value=first, max_value=last,
                          key="monitor_reference", help=tr("monitor.reference_help"))
capacity = c3.number_input(tr("monitor.capacity"), 1, 100_000, 50, key="monitor_capacity")
if not (isinstance(current, tuple) and len(current) == 2 and isinstance(reference, tuple) and len(reference) == 2):
    st.stop()
args = (model["model_id"], str(current[0]), str(current[1]), str(reference[0]), str(reference[1]))
# the same report for every session until the dataset's state changes (a batch, a decision, a rule...)
key = f"monitor_job_{'_'.join(args)}_{capacity}_{hash(datasets.state(db, ds['id']))}"
if st.session_state.get("monitor_key") != key:
    finished = run_job(key, f"monitor:{key}", tr("monitor.running"), lambda progress: monitor.report(
        db, *args, dataset=ds["name"], capacity_k=int(capacity), progress=progress), reuse=True)
    if finished is None:
        st.stop()
    if finished.status == "failed":
        st.error(tr("common.error", error=finished.error))
        st.stop()
    st.session_state["monitor_key"], st.session_state["monitor_report"] = key, finished.result
report = st.session_state["monitor_report"]

over = sum(a["over_capacity"] for a in report["alerts"])
m1, m2, m3 = st.columns(3)
m1.metric(tr("monitor.score_psi"), f"{report['score_psi']:.3f}", help=tr(f"monitor.band.{report['score_band']}"))
m2.metric(tr("monitor.shifted"), sum(f["band"] == "shift" for f in report["features"]))
m3.metric(tr("monitor.over_capacity"), f"{over} / {len(report['alerts'])}")

tab_drift, tab_alerts, tab_rules, tab_quality, tab_perf = st.tabs(
    [tr("monitor.tab.drift"), tr("monitor.tab.alerts"), tr("monitor.tab.rules"), tr("monitor.tab.quality"),
     tr("monitor.tab.performance")])
with tab_drift:
    st.plotly_chart(plots.psi_bars(pd.DataFrame(report["features"]), lang()), width="stretch")
    st.dataframe([{tr("monitor.col.feature"): f["feature"], "PSI": round(f["psi"], 4),
                   tr("monitor.col.band"): tr(f"monitor.band.{f['band']}")} for f in report["features"]],
                 hide_index=True, width="stretch")
    pick = st.selectbox(tr("monitor.drill"), ["score"] + [f["feature"] for f in report["features"]], key="monitor_pick")
    try:
        frame = monitor.period_distribution(db, model["model_id"], pick, tuple(args[3:5]), tuple(args[1:3]), ds["name"])
        st.plotly_chart(plots.period_overlay(frame, pick, lang()), width="stretch")
    except RiskdeskError as exc:
        st.error(tr("common.error", error=exc))
with tab_alerts:
    st.plotly_chart(plots.alerts_vs_capacity(report["alerts"], lang()), width="stretch")
with tab_rules:
    if report["rule_hits"]:
        st.plotly_chart(plots.rule_hits_over_time(report["rule_hits"], lang()), width="stretch")
    else:
        st.info(tr("monitor.no_rules"))
with tab_quality:
    st.dataframe(report["missing"], hide_index=True, width="stretch", column_config={
        "feature": tr("monitor.col.feature"),
        "missing_reference": st.column_config.NumberColumn(tr("monitor.col.missing_reference"), format="percent"),
        "missing_current": st.column_config.NumberColumn(tr("monitor.col.missing_current"), format="percent"),
        "new_category_share": st.column_config.NumberColumn(tr("monitor.col.new_categories"), format="percent")})
with tab_perf:
    if report["performance"]:
        st.dataframe(report["performance"], hide_index=True, width="stretch", column_config={
            "week": tr("monitor.col.week"), "labelled": tr("monitor.col.labelled"), "frauds": tr("monitor.col.frauds"),
            "average_precision": st.column_config.NumberColumn(tr("metric.ap"), format="%.3f"),
            "capacity_precision": st.column_config.NumberColumn(tr("compare.col.cap_precision"), format="percent")})
    else:
        st.info(tr("monitor.no_labels"))
