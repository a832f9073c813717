"""Review queue: a period's transactions ranked by the model's score, filtered by band, rule,
outcome and amount; open one in the transaction view or export a batch of cases; and what
drives the model overall (SHAP on sampled real test rows)."""
from datetime import date

import pandas as pd
import streamlit as st

from core import cases, datasets, explain, labels, plots, report
from core import champion as champion_mod
from core import rules as rules_mod
from core.export import safe_csv_bytes
from ui import dataset_and_model_or_stop, lang, run_job, signed_in_store, tr

db = signed_in_store()
st.title(tr("queue.title"))
st.caption(tr("queue.intro"))

ds, model = dataset_and_model_or_stop()
model_id = model["model_id"]
waiting = labels.waiting_count(db, ds["id"], model_id)
used = (model["params"] or {}).get("labels") or {}
st.caption(tr("queue.feedback", waiting=f"{waiting:,}", decisions=f"{used.get('from_decisions', 0):,}",
              file=f"{used.get('from_file', 0):,}"))

if not cases.is_scored(db, model_id):
    finished = run_job(f"score_job_{model_id}", f"score:{model_id}", tr("queue.scoring", model=model_id),
                       lambda progress: cases.ensure_scored(db, model_id, progress))
    if finished is not None and finished.status == "failed":
        st.error(tr("common.error", error=finished.error))
    elif finished is not None:
        st.rerun()
    st.stop()


@st.cache_data(show_spinner=False, max_entries=128)
def cached_queue(model_id: str, filters: tuple, page: int, size: int, rules_revision: str, decisions: int):
    return cases.queue(db, model_id, limit=size, offset=page * size, **dict(filters))


tab_queue, tab_global = st.tabs([tr("queue.tab.queue"), tr("queue.tab.global")])

with tab_queue:
    first, last = date.fromisoformat(ds["start"][:10]), date.fromisoformat(ds["end"][:10])
    test = model["split"]["test"]
    c1, c2, c3, c4 = st.columns([3, 2, 2, 2])
    period = c1.date_input(tr("queue.period"), (date.fromisoformat(test[0]), date.fromisoformat(test[1])),
                           min_value=first, max_value=last, key=f"queue_period_{model_id}")
    band_labels = {tr(f"band.{b}"): b for b in ("BLOCK", "VERIFY", "PASS")}
    bands = c2.multiselect(tr("queue.bands"), list(band_labels), key=f"queue_bands_{lang()}",
                           placeholder=tr("common.any"))
    rule_ids = [r["rule_id"] for r in rules_mod.current_rules(db, include_disabled=False)]
    rule = c3.selectbox(tr("queue.rule"), [""] + rule_ids, key="queue_rule",
                        format_func=lambda r: r or tr("common.any"))
    outcomes = c4.multiselect(tr("queue.outcomes"), list(cases.OUTCOMES), key="queue_outcomes",
                              help=tr("queue.outcomes_help"), placeholder=tr("common.any"))
    c1, c2, c3 = st.columns(3)
    min_amount = c1.number_input(tr("queue.min_amount"), 0.0, value=0.0, key="queue_min_amount")
    max_amount = c2.number_input(tr("queue.max_amount"), 0.0, value=0.0, key="queue_max_amount",
                                 help=tr("queue.max_amount_help"))
    size = c3.selectbox(tr("queue.page_size"), [25, 50, 100], index=1, key="queue_size")
    if not (isinstance(period, tuple) and len(period) == 2):
        st.stop()
    bands = champion_mod.bands(db, ds["name"]) or {}
    thresholds = ((("verify", bands["verify_threshold"]), ("block", bands["block_threshold"]))
                  if bands.get("model_id") == model_id and bands.get("verify_threshold") is not None else ())
    filters = (*thresholds, ("start", str(period[0])), ("end", str(period[1])),
               ("bands", tuple(band_labels[b] for b in bands if b in band_labels) or None),
               ("rule", rule or None), ("outcomes", tuple(outcomes) or None),
               ("min_amount", min_amount or None), ("max_amount", max_amount or None))
    page_key = f"queue_page_{hash(filters)}"
    page = st.session_state.get(page_key, 0)
    result = cached_queue(model_id, filters, page, size, rules_mod.revision(db), cases.revision(db, ds["id"]))
    total = result["total"]
    pages = max(1, -(-total // size))
    st.caption(tr("queue.total", n=f"{total:,}", page=page + 1, pages=pages, verify=f"{result['verify']:.4g}",
                  block="—" if result["block"] is None else f"{result['block']:.4g}"))
    rows = result["rows"].copy()
    if not rows.empty:
        rows["band"] = [tr(f"band.{b}") for b in rows["band"]]
        rows["review"] = [tr(f"decision.{d}") if isinstance(d, str) else "" for d in rows["review"]]
        rows["rules_fired"] = [" ".join(r) for r in rows["rules_fired"]]
        # as text: a date column shows "None" for a transaction nobody has reviewed
        rows["reviewed_at"] = ["" if pd.isna(t) else t.strftime("%Y-%m-%d %H:%M") for t in rows["reviewed_at"]]
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "transaction_id": tr("role.transaction_id"), "timestamp": tr("role.timestamp"),
        "customer_id": tr("role.customer_id"), "amount": st.column_config.NumberColumn(tr("role.amount"), format="%.2f"),
        "label": tr("case.label"), "score": st.column_config.ProgressColumn(tr("plot.score"), min_value=0.0,
                                                                            max_value=float(max(rows["score"].max(), 1.0)) if len(rows) else 1.0,
                                                                            format="%.4f"),
        "rules_fired": tr("case.rules"), "band": tr("compare.col.band"), "outcome": tr("queue.outcome"),
        "review": tr("case.review"),
        "reviewed_at": tr("case.time")})
    p1, p2, p3 = st.columns([1, 1, 4])
    if p1.button(tr("queue.previous"), disabled=page == 0, key="queue_prev"):
        st.session_state[page_key] = page - 1
        st.rerun()
    if p2.button(tr("queue.next"), disabled=page + 1 >= pages, key="queue_next"):
        st.session_state[page_key] = page + 1
        st.rerun()

    if not rows.empty:
        st.subheader(tr("queue.open_header"))
        c1, c2 = st.columns([3, 1])
        pick = c1.selectbox(tr("queue.open_pick"), list(result["rows"]["transaction_id"]), key="queue_open_pick")
        if c2.button(tr("queue.open"), key="queue_open", type="primary"):
            st.session_state["case_request"] = str(pick)
            st.switch_page("pages/case.py")

        st.subheader(tr("queue.batch_header"))
        c1, c2, c3 = st.columns([3, 2, 1])
        chosen = c1.multiselect(tr("queue.batch_pick"), list(result["rows"]["transaction_id"]),
                                default=list(result["rows"]["transaction_id"][:10]), key="queue_batch_pick",
                                placeholder=tr("common.choose"))
        formats = c2.multiselect(tr("queue.batch_formats"), list(report.FORMATS), default=list(report.FORMATS),
                                 key="queue_batch_formats", placeholder=tr("common.choose"))
        state_key = f"batch_job_{model_id}"
        if c3.button(tr("queue.batch_start"), disabled=not (chosen and formats), key="queue_batch_start"):
            st.session_state.pop("batch_zip", None)
            st.session_state[state_key + "_requested"] = (tuple(chosen), tuple(formats), lang())
        request = st.session_state.get(state_key + "_requested")
        if request:
            ids, fmts, language = request
            finished = run_job(state_key, f"batch:{model_id}:{hash(request)}", tr("queue.batch_running", n=len(ids)),
                               lambda progress: report.batch_zip(db, model_id, list(ids), fmts, language, progress))
            if finished is not None:
                st.session_state.pop(state_key + "_requested", None)
                if finished.status == "failed":
                    st.error(tr("common.error", error=finished.error))
                else:
                    st.session_state["batch_zip"] = (finished.result, len(ids))
        if "batch_zip" in st.session_state:
            data, n = st.session_state["batch_zip"]
            st.download_button(tr("queue.batch_download", n=n, size=f"{len(data) / 1e6:.1f}"), data,
                               file_name=f"cases_{model_id}.zip", mime="application/zip", key="queue_batch_download")
        st.download_button(tr("queue.download_page"), safe_csv_bytes(rows), file_name=f"queue_{model_id}.csv",
                           mime="text/csv", key="queue_csv")

with tab_global:
    if model["kind"] not in explain.EXPLAINABLE:
        st.info(tr("case.rules_model"))
        st.stop()
    sample = st.select_slider(tr("queue.sample"), [500, 1000, 2000, 5000, 10000], value=2000, key="global_sample")
    views = st.session_state.setdefault("global_views", {})
    if (model_id, sample) not in views:
        # SHAP on many rows runs in the background, in chunks, with progress, once for every
        # session until the dataset's state changes
        state = hash(datasets.state(db, ds["id"]))
        finished = run_job(f"global_job_{model_id}_{sample}", f"global:{model_id}:{sample}:{state}",
                           tr("queue.explaining", n=sample),
                           lambda progress: explain.global_view(db, model_id, sample, progress=progress), reuse=True)
        if finished is None:
            st.stop()
        if finished.status == "failed":
            st.error(tr("common.error", error=finished.error))
            st.stop()
        views[(model_id, sample)] = finished.result
    view = views[(model_id, sample)]
    st.caption(tr("queue.global_caption", n=f"{view['rows']:,}"))
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.shap_importance(view["importance"], lang()), width="stretch")
    c2.plotly_chart(plots.shap_beeswarm(view, lang()), width="stretch")
    names = list(view["importance"]["feature"])
    c1, c2 = st.columns(2)
    feature = c1.selectbox(tr("queue.dependence_feature"), names, key="dep_feature")
    colour = c2.selectbox(tr("queue.dependence_colour"), [""] + names, index=min(2, len(names)), key="dep_colour")
    st.plotly_chart(plots.shap_dependence(view, feature, colour or None, lang()), width="stretch")
