"""Compare page: choose the out-of-time split on a timeline, train rules and models in the
background, and compare them on the test period: leaderboard with intervals, overlaid curves,
threshold and cost, decision bands, tuning history, and the model registry."""
from datetime import date

import streamlit as st

from core import champion as champion_mod
from core import approvals, compare, explain, labels, metrics, models, plots
from core import rules as rules_mod
from core.errors import RiskdeskError
from core.export import safe_csv_bytes
from core.i18n import t
from ui import (allowed, change_requests, dataset_or_stop, features_or_stop, lang, not_allowed_note, reviewer, run_job,
                signed_in_store, tr, unavailable_families_note)

db = signed_in_store()
st.title(tr("compare.title"))
st.caption(tr("compare.intro"))

ds = dataset_or_stop()
if "label" not in ds["mapping"] or not ds["fraud_rows"]:
    st.warning(tr("compare.no_labels", name=ds["name"]))
    st.stop()
fs = features_or_stop(ds)


@st.cache_data(show_spinner=False, max_entries=8)
def cached_timeline(table: str, _fs: dict):
    return models.timeline(db, _fs)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_scored(model_id: str, rules_revision: str):
    return compare.scored(db, model_id)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_curves(model_id: str, rules_revision: str):
    return compare.curves(cached_scored(model_id, rules_revision))


def kind_label(kind: str) -> str:
    return tr(f"kind.{kind}")


tab_train, tab_board, tab_charts, tab_threshold, tab_tuning, tab_registry = st.tabs([
    tr("compare.tab.train"), tr("compare.tab.leaderboard"), tr("compare.tab.charts"), tr("compare.tab.threshold"),
    tr("compare.tab.tuning"), tr("compare.tab.registry")])

# -- training ----------------------------------------------------------------------------------------
with tab_train:
    try:
        default = models.make_split(db, fs)
    except RiskdeskError as exc:
        st.error(tr("common.error", error=exc))
        st.stop()
    first, last = date.fromisoformat(ds["start"][:10]), date.fromisoformat(ds["end"][:10])
    method = st.radio(tr("compare.split"), ["time", "random"], horizontal=True, key="split_method",
                      format_func=lambda m, language=lang(): t(f"compare.split.{m}", language))
    split_args: dict = {"random": method == "random"}
    if method == "random":
        st.warning(tr("compare.random_warning"))
    else:
        c1, c2, c3, c4 = st.columns([3, 3, 3, 1])

        def period(column, part, value):
            picked = column.date_input(tr(f"compare.period.{part}"), tuple(date.fromisoformat(v) for v in value),
                                       min_value=first, max_value=last, key=f"split_{part}_{ds['id']}")
            return picked if isinstance(picked, tuple) and len(picked) == 2 else None

        train_p = period(c1, "train", default.train)
        valid_p = period(c2, "valid", default.valid)
        test_p = period(c3, "test", default.test)
        c4.number_input(tr("compare.gap"), 0, 60, 0, key="split_gap", help=tr("compare.gap_help"))
        if not (train_p and valid_p and test_p):
            st.stop()
        split_args.update(train_start=str(train_p[0]), train_end=str(train_p[1]), valid_start=str(valid_p[0]),
                          valid_end=str(valid_p[1]), test_start=str(test_p[0]), test_end=str(test_p[1]))
    try:
        split = models.make_split(db, fs, **split_args)
        st.plotly_chart(plots.split_timeline(cached_timeline(fs["table"], fs), split.public(), lang()), width="stretch")
        counts = models.split_counts(db, fs, split)
        counts["part"] = [tr(f"plot.period.{part}") for part in counts["part"]]
        st.dataframe(counts, hide_index=True, width="stretch", column_config={
            "part": tr("compare.col.part"), "start": tr("compare.col.start"), "end": tr("compare.col.end"),
            "transactions": tr("plot.transactions"), "frauds": tr("compare.col.frauds"),
            "fraud_rate": st.column_config.NumberColumn(tr("plot.fraud_rate"), format="percent")})
    except RiskdeskError as exc:
        st.error(tr("common.error", error=exc))
        st.stop()

    kind_options = {kind_label(k): k for k in models.KINDS}
    c1, c2, c3, c4 = st.columns([3, 1, 1, 2])
    chosen = c1.multiselect(tr("compare.models"), list(kind_options),
                            default=[kind_label(k) for k in models.DEFAULT_KINDS], key=f"train_kinds_{lang()}",
                            placeholder=tr("common.choose"))
    trials = c2.number_input(tr("compare.trials"), 1, 500, 30, key="train_trials")
    budget = c3.number_input(tr("compare.budget"), 0, 3600, 0, key="train_budget", help=tr("compare.budget_help"))
    imbalance = c4.selectbox(tr("compare.imbalance"), models.IMBALANCE, key="train_imbalance",
                             format_func=lambda v, language=lang(): t(f"imbalance.{v}", language))
    confirmed = labels.confirmed_label_count(db, ds["id"])
    st.caption(tr("compare.confirmed_labels", n=f"{confirmed:,}"))
    kinds = [kind_options[c] for c in chosen if c in kind_options]
    state_key = f"train_job_{ds['id']}"
    if st.button(tr("compare.train"), type="primary", disabled=not kinds or not allowed("train"), key="train_start"):
        st.session_state.pop("train_message", None)
        st.session_state[state_key + "_requested"] = True
    if st.session_state.get(state_key + "_requested"):
        finished = run_job(state_key, f"train:{ds['id']}", tr("compare.training", name=ds["name"]),
                           lambda progress: models.train(db, ds["name"], kinds, int(trials), imbalance, split=split,
                                                         time_budget=float(budget) or None,
                                                         actor=reviewer() or "app", progress=progress))
        if finished is not None:
            st.session_state.pop(state_key + "_requested", None)
            if finished.status == "failed":
                st.session_state["train_message"] = ("error", tr("common.error", error=finished.error))
            else:
                st.session_state["compare_run"] = finished.result["run_id"]
                # the queue and transaction pages switch to the run's best explainable model
                explainable = [m for m in finished.result["models"] if m["kind"] in explain.EXPLAINABLE]
                if explainable:
                    best = max(explainable, key=lambda m: m["metrics"]["test"]["average_precision"] or 0)
                    st.session_state["model_request"] = best["model_id"]
                st.session_state["train_message"] = ("success", tr("compare.trained", n=len(finished.result["models"]),
                                                                   run=finished.result["run_id"]))
                st.session_state["train_skipped"] = finished.result["skipped"]
    if "train_message" in st.session_state:
        level, message = st.session_state["train_message"]
        (st.error if level == "error" else st.success)(message)
    for skipped in st.session_state.get("train_skipped") or []:
        st.info(tr("compare.kind_skipped", kind=tr(f"kind.{skipped['kind']}")))

def show_verdict(v: dict) -> None:
    """The challenger against the champion: differences with paired bootstrap intervals."""
    def ci(pair):
        return "–" if pair[0] is None else f"[{pair[0]:+.3f}, {pair[1]:+.3f}]"
    st.caption(tr("champion.period", start=v["period"]["start"], end=v["period"]["end"], n=f"{v['transactions']:,}",
                  frauds=f"{v['frauds']:,}"))
    if "average_precision_difference" in v:
        c1, c2 = st.columns(2)
        c1.metric(tr("champion.ap_diff"), f"{v['average_precision_difference']:+.3f}",
                  help=tr("champion.ci", ci=ci(v["average_precision_difference_ci"])))
        c2.metric(tr("champion.recall_diff", k=v["capacity_k"]), f"{v['capacity_recall_difference']:+.3f}",
                  help=tr("champion.ci", ci=ci(v["capacity_recall_difference_ci"])))
    if v["offer"]:
        st.success(tr("champion.offer"))
    elif not v.get("enough", False):
        st.warning(tr("champion.thin", frauds=v["frauds"], need=champion_mod.MIN_FRAUDS))
    else:
        st.warning(tr("champion.worse"))


def retrain_challenger(ds: dict, current: dict, capacity: int) -> None:
    """One click: a challenger of the champion's kind on the newest labelled data, compared with
    the champion; it becomes the picked model, so promotion follows the verdict."""
    state_key = f"challenger_job_{ds['id']}"
    if st.button(tr("champion.retrain"), help=tr("champion.retrain_help"), key="champion_retrain"):
        st.session_state[state_key + "_requested"] = True
    if not st.session_state.get(state_key + "_requested"):
        return
    finished = run_job(state_key, f"challenger:{ds['id']}", tr("champion.retraining", model=current["model_id"]),
                       lambda progress: champion_mod.retrain_challenger(db, ds["name"], reviewer() or "app",
                                                                         capacity_k=capacity, progress=progress))
    if finished is None:
        return
    st.session_state.pop(state_key + "_requested", None)
    if finished.status == "failed":
        st.error(tr("common.error", error=finished.error))
        return
    challenger = finished.result["challenger"]
    split, labels = challenger["split"], challenger["params"].get("labels") or {}
    st.session_state["challenger_note"] = tr(
        "champion.retrained", model=challenger["model_id"], train=" – ".join(split["train"]),
        test=" – ".join(split["test"]), labels=f"{labels.get('training_rows', 0):,}",
        decisions=f"{labels.get('from_decisions', 0):,}")
    st.session_state["challenger_verdict"] = finished.result["verdict"]
    st.session_state["champion_pick_next"] = challenger["model_id"]     # the picker exists already in this run
    st.rerun()


def champion_panel(ds: dict, registry: list[dict]) -> None:
    """The dataset's champion: who promoted which model and why; promote another or roll back."""
    st.subheader(tr("champion.header"))
    current = champion_mod.champion(db, ds["name"])
    st.caption(tr("champion.current", model=current["model_id"], kind=kind_label(current["kind"]))
               if current else tr("champion.none"))
    bands = champion_mod.bands(db, ds["name"])
    if bands and bands["verify_threshold"] is not None:
        st.caption(tr("champion.bands", verify=f"{bands['verify_threshold']:.4g}", k=bands["capacity_k"],
                      block=f"{bands['block_threshold']:.4g}", precision=f"{bands['precision_target']:.0%}"))
    who = reviewer() if allowed("promote") else ""
    if not who:
        not_allowed_note("promote")
    c1, c2 = st.columns([2, 3])
    ids = [m["model_id"] for m in registry if m["kind"] != "rules"]
    if st.session_state.get("champion_pick_next") in ids:
        st.session_state["champion_pick"] = st.session_state.pop("champion_pick_next")
    pick = c1.selectbox(tr("champion.model"), ids, key="champion_pick")
    reason = c2.text_input(tr("champion.reason"), key="champion_reason", max_chars=500)
    c1, c2 = st.columns(2)
    capacity = c1.number_input(tr("champion.capacity"), 1, 1_000_000, 50, key="champion_capacity")
    precision = c2.number_input(tr("champion.precision"), 0.05, 1.0, 0.9, 0.05, key="champion_precision")
    offered = current is None
    if current is not None and allowed("train"):
        retrain_challenger(ds, current, int(capacity))
    if current is not None and pick and pick != current["model_id"]:
        verdict = st.session_state.get("challenger_verdict")
        if st.button(tr("champion.compare"), key="champion_compare"):
            with st.spinner(tr("champion.comparing")):
                try:
                    verdict = champion_mod.compare_with_champion(db, ds["name"], pick)
                except RiskdeskError as exc:
                    st.error(tr("common.error", error=exc))
                    verdict = None
            st.session_state["challenger_verdict"] = verdict
        if verdict and verdict["challenger"] == pick and verdict["champion"] == current["model_id"]:
            if st.session_state.get("challenger_note"):
                st.caption(st.session_state["challenger_note"])
            show_verdict(verdict)
            offered = verdict["offer"]
    b1, b2 = st.columns(2)
    try:
        if b1.button(tr("champion.promote"), type="primary", disabled=not (who and reason.strip() and pick and offered),
                     key="champion_promote"):
            asked = approvals.request_promotion(db, who, ds["name"], pick, reason, int(capacity), float(precision))
            st.session_state["approval_done"] = tr("approval.requested", id=asked["id"])
            st.rerun()
        if current and b2.button(tr("champion.rollback"), disabled=not (who and reason.strip()),
                                 key="champion_rollback"):
            asked = approvals.request_rollback(db, who, ds["name"], reason)
            st.session_state["approval_done"] = tr("approval.requested", id=asked["id"])
            st.rerun()
    except RiskdeskError as exc:
        st.error(tr("common.error", error=exc))
    change_requests(("promote", "rollback"), ds["id"], describe_champion_change)
    past = champion_mod.history(db, ds["name"])
    if past:
        st.dataframe([{tr("champion.col.at"): r["at"], tr("champion.col.action"): tr(f"champion.action.{r['action']}"),
                       tr("compare.col.model_id"): r["model_id"], tr("champion.col.person"): r["person"],
                       tr("approval.col.approved_by"): r["approved_by"], tr("champion.reason"): r["reason"]}
                      for r in past], hide_index=True, width="stretch")


def describe_champion_change(request: dict) -> None:
    p = request["payload"]
    if request["kind"] == "promote":
        st.markdown(tr("approval.promote", model=request["subject"], k=p["capacity_k"],
                       precision=f"{p['precision_target']:.0%}"))
    else:
        st.markdown(tr("approval.rollback", model=request["subject"]))
    st.text(f"{tr('champion.reason')}: {p['reason']}")


# -- results of a run --------------------------------------------------------------------------------
registry = models.list_models(db, ds["name"])
runs = list(dict.fromkeys(m["run_id"] for m in registry))
if not runs:
    for tab in (tab_board, tab_charts, tab_threshold, tab_tuning, tab_registry):
        tab.info(tr("compare.no_models"))
    st.stop()
if st.session_state.get("compare_run") not in runs:
    st.session_state["compare_run"] = runs[0]
rules_rev = rules_mod.revision(db)

with tab_board:
    run = st.selectbox(tr("compare.run"), runs, key="compare_run")
    in_run = [m for m in registry if m["run_id"] == run]
    split_info = in_run[0]["split"]
    if split_info["method"] == "random":
        st.warning(tr("compare.random_warning"))
    st.caption(tr("compare.split_caption", train=" – ".join(split_info["train"]),
                  valid=" – ".join(split_info["valid"] or ["–"]), test=" – ".join(split_info["test"]),
                  k=in_run[0]["metrics"].get("capacity_k", 50)))
    board = compare.leaderboard(db, [m["model_id"] for m in in_run])
    board.insert(1, "model", [kind_label(k) for k in board["kind"]])
    st.dataframe(board.drop(columns=["kind"]), hide_index=True, width="stretch", column_config={
        "model_id": tr("compare.col.model_id"), "model": tr("compare.col.model"),
        "average_precision": st.column_config.NumberColumn(tr("metric.ap"), format="%.3f"),
        "average_precision_ci": tr("compare.col.ap_ci"),
        "auc": st.column_config.NumberColumn("AUC", format="%.3f"), "auc_ci": tr("compare.col.auc_ci"),
        "ks": st.column_config.NumberColumn("KS", format="%.3f"),
        "precision": st.column_config.NumberColumn(tr("metric.precision"), format="percent"),
        "recall": st.column_config.NumberColumn(tr("metric.recall"), format="percent"),
        "f1": st.column_config.NumberColumn("F1", format="%.3f"),
        "capacity_precision": st.column_config.NumberColumn(tr("compare.col.cap_precision"), format="percent"),
        "capacity_recall": st.column_config.NumberColumn(tr("compare.col.cap_recall"), format="percent"),
        "fraud_amount_caught": st.column_config.NumberColumn(tr("rules.m.amount"), format="percent"),
        "threshold": st.column_config.NumberColumn(tr("compare.col.threshold"), format="%.4g"),
        "train_seconds": st.column_config.NumberColumn(tr("compare.col.seconds"), format="%.1f"),
        "test_rows": tr("compare.col.test_rows"), "test_frauds": tr("compare.col.test_frauds")})
    st.download_button(tr("compare.download"), safe_csv_bytes(board), file_name=f"leaderboard_{run}.csv",
                       mime="text/csv")
    st.caption(tr("compare.leaderboard_help"))
    for m in in_run:
        for r in (m["params"] or {}).get("skipped_rules") or []:
            st.info(tr("compare.rule_not_applicable", rule_id=r["rule_id"], names=", ".join(r["missing"])))
    unavailable_families_note(ds)

labels = {m["model_id"]: f"{kind_label(m['kind'])} ({m['model_id']})" for m in in_run}

with tab_charts:
    curves = {kind_label(m["kind"]): cached_curves(m["model_id"], rules_rev) for m in in_run}
    c1, c2 = st.columns(2)
    c1.plotly_chart(plots.curve_overlay(curves, "roc", lang()), width="stretch")
    c2.plotly_chart(plots.curve_overlay(curves, "pr", lang()), width="stretch")
    c1.plotly_chart(plots.curve_overlay(curves, "gain", lang()), width="stretch")
    c2.plotly_chart(plots.curve_overlay(curves, "lift", lang()), width="stretch")
    c1.plotly_chart(plots.curve_overlay(curves, "calibration", lang()), width="stretch")
    dist_model = c2.selectbox(tr("compare.model"), list(labels), format_func=labels.get, key="dist_model")
    chosen_model = next(m for m in in_run if m["model_id"] == dist_model)
    c2.plotly_chart(plots.score_distribution(cached_scored(dist_model, rules_rev), lang(),
                                             (chosen_model["threshold"], chosen_model["block_threshold"])),
                    width="stretch")

with tab_threshold:
    model_id = st.selectbox(tr("compare.model"), list(labels), format_func=labels.get, key="threshold_model")
    model = next(m for m in in_run if m["model_id"] == model_id)
    frame = cached_scored(model_id, rules_rev)
    top = float(max(frame["score"].max(), 1e-9))
    slider_key, request_key = f"thr_{model_id}", f"thr_request_{model_id}"
    if request_key in st.session_state:
        st.session_state[slider_key] = min(st.session_state.pop(request_key), top)
    threshold = st.slider(tr("compare.threshold"), 0.0, top, min(float(model["threshold"]), top), top / 1000,
                          format="%.4f", key=slider_key)
    at = metrics.at_threshold(frame["label"].to_numpy(int), frame["score"].to_numpy(float), threshold,
                              frame["amount"].to_numpy(float))
    c1, c2 = st.columns([2, 3])
    c1.plotly_chart(plots.confusion_matrix(at, lang()), width="stretch")
    m = c2.columns(3)
    m[0].metric(tr("metric.precision"), f"{at['precision']:.1%}")
    m[1].metric(tr("metric.recall"), f"{at['recall']:.1%}")
    m[2].metric("F1", f"{at['f1']:.3f}")
    m = c2.columns(3)
    m[0].metric(tr("compare.alert_rate"), f"{at['alert_rate']:.2%}")
    m[1].metric(tr("rules.m.amount"), f"{at['fraud_amount_caught']:.1%}")
    m[2].metric(tr("compare.alerts"), f"{at['tp'] + at['fp']:,}")

    st.subheader(tr("compare.cost_header"))
    c1, c2 = st.columns([1, 3])
    review_cost = c1.number_input(tr("compare.review_cost"), 0.0, 1e6, 5.0, 1.0, key="review_cost",
                                  help=tr("compare.review_cost_help"))
    suggestion = compare.suggest_threshold(frame, review_cost)
    c1.metric(tr("compare.suggested"), f"{suggestion['threshold']:.4g}")
    c1.caption(tr("compare.suggested_detail", reviewed=f"{suggestion['reviewed']:,}", caught=suggestion["caught"],
                  cost=f"{suggestion['cost']:,.0f}", nothing=f"{suggestion['cost_without_review']:,.0f}"))
    if c1.button(tr("compare.use_suggested"), key="use_suggested") and suggestion["threshold"] != float("inf"):
        st.session_state[request_key] = suggestion["threshold"]
        st.rerun()
    c2.plotly_chart(plots.cost_curve(suggestion["curve"], suggestion["threshold"], lang()), width="stretch")

    st.subheader(tr("compare.bands_header"))
    st.caption(tr("compare.bands_help"))
    c1, c2 = st.columns(2)
    verify = c1.number_input(tr("compare.verify_threshold"), 0.0, top, float(threshold), format="%.4f",
                             key=f"verify_{model_id}_{threshold}")
    block_default = model["block_threshold"] if model["block_threshold"] is not None else top
    block = c2.number_input(tr("compare.block_threshold"), 0.0, max(top, block_default), float(max(block_default, verify)),
                            format="%.4f", key=f"block_{model_id}")
    bands = compare.bands(frame, verify, block)
    bands["band"] = [tr(f"band.{b}") for b in bands["band"]]
    st.dataframe(bands, hide_index=True, width="stretch", column_config={
        "band": tr("compare.col.band"), "transactions": tr("plot.transactions"),
        "share": st.column_config.NumberColumn(tr("compare.col.share"), format="percent"),
        "frauds": tr("compare.col.frauds"),
        "fraud_share": st.column_config.NumberColumn(tr("compare.col.fraud_share"), format="percent"),
        "fraud_amount_share": st.column_config.NumberColumn(tr("compare.col.fraud_amount_share"), format="percent"),
        "fraud_rate": st.column_config.NumberColumn(tr("plot.fraud_rate"), format="percent")})

with tab_tuning:
    tuned = [m for m in in_run if m["kind"] == "tuned" and m["params"].get("history")]
    if not tuned:
        st.info(tr("compare.no_tuning"))
    for m in tuned:
        p = m["params"]
        st.caption(tr("compare.tuning_caption", trials=p["trials"], best=p["best_trial"], strategy=p["imbalance"],
                      ap=f"{p['validation_average_precision']:.3f}", synthetic=f"{p.get('synthetic_training_rows') or 0:,}"))
        st.plotly_chart(plots.tuning_history(p["history"], lang()), width="stretch")
        st.dataframe(p["history"], hide_index=True, width="stretch")

with tab_registry:
    table = [{"model_id": m["model_id"], "model": kind_label(m["kind"]), "created_at": m["created_at"],
              "feature_version": m["feature_version"], "source_sha256": m["source_sha256"][:12],
              "artifact_sha256": m["artifact_sha256"][:12], "test_ap": m["metrics"]["test"]["average_precision"],
              "test_auc": m["metrics"]["test"]["auc"]} for m in registry]
    st.dataframe(table, hide_index=True, width="stretch", column_config={
        "model_id": tr("compare.col.model_id"), "model": tr("compare.col.model"), "created_at": tr("rules.col.created"),
        "feature_version": tr("compare.col.feature_version"), "source_sha256": tr("compare.col.source"),
        "artifact_sha256": tr("compare.col.artifact"),
        "test_ap": st.column_config.NumberColumn(tr("metric.ap"), format="%.3f"),
        "test_auc": st.column_config.NumberColumn("AUC", format="%.3f")})
    champion_panel(ds, registry)
    with st.expander(tr("compare.details")):
        pick = st.selectbox(tr("compare.model"), [m["model_id"] for m in registry], key="registry_pick")
        st.json(models.get_model(db, pick), expanded=False)
        confirm = st.text_input(tr("compare.delete_confirm", model=pick), key=f"delete_{pick}")
        if st.button(tr("compare.delete"), disabled=confirm != pick, key="delete_model"):
            compare.remove_model(db, pick, actor=reviewer() or "app")
            st.rerun()
