"""Explore page: what each point-in-time feature means and how well it separates fraud."""
from datetime import datetime, timedelta

import streamlit as st

from core import explore, plots
from core.errors import RiskdeskError
from core.export import safe_csv_bytes
from core.features import FAMILIES, FeatureConfig, feature_names
from ui import dataset_or_stop, features_or_stop, lang, signed_in_store, tr, unavailable_families_note

db = signed_in_store()
st.title(tr("explore.title"))
st.caption(tr("explore.intro"))

ds = dataset_or_stop()

# -- the feature set -----------------------------------------------------------------------------
with st.expander(tr("explore.config.header")):
    c1, c2 = st.columns(2)
    family_labels = {tr(f"family.{f}"): f for f in FAMILIES}
    chosen = c1.multiselect(tr("explore.config.families"), list(family_labels), default=list(family_labels),
                            key=f"families_{lang()}", placeholder=tr("common.choose"))
    families = [family_labels[label] for label in chosen if label in family_labels]
    windows = c2.text_input(tr("explore.config.windows"), "1h, 24h, 7d, 30d")
    entity = c1.text_input(tr("explore.config.entity_windows"), "1d, 7d, 30d")
    delay = c2.number_input(tr("explore.config.delay"), 0, 365, 7)
    risk = c1.text_input(tr("explore.config.risk_windows"), "7, 30")
try:
    config = FeatureConfig(
        families=tuple(families) or FAMILIES,
        windows=tuple(w.strip() for w in windows.split(",") if w.strip()),
        entity_windows=tuple(w.strip() for w in entity.split(",") if w.strip()),
        risk_windows=tuple(int(x) for x in risk.replace(" ", "").split(",") if x),
        delay_days=int(delay))
except (RiskdeskError, ValueError) as exc:
    st.error(tr("common.error", error=exc))
    st.stop()

fs = features_or_stop(ds, config)
st.caption(tr("explore.feature_set", version=fs["version"], features=len(fs["catalogue"]), rows=f"{fs['rows']:,}",
              seconds=f"{fs['seconds']:.1f}"))
unavailable_families_note(ds)
catalogue = {f["name"]: f for f in fs["catalogue"]}
key = fs["table"]


@st.cache_data(show_spinner=False, max_entries=64)
def cached_ranking(table: str, _fs: dict):
    return explore.ranking(db, _fs)


@st.cache_data(show_spinner=False, max_entries=256)
def cached_distribution(table: str, name: str, log: bool, _fs: dict):
    return explore.distribution(db, _fs, name, log=log)


@st.cache_data(show_spinner=False, max_entries=256)
def cached_box(table: str, name: str, _fs: dict):
    return explore.box_stats(db, _fs, name)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_rates(dataset_id: int, _ds: dict):
    return {d: explore.rate_by(db, _ds, d) for d in explore.DIMENSIONS} | {"daily": explore.daily(db, _ds)}


@st.cache_data(show_spinner=False, max_entries=32)
def cached_psi(table: str, a: tuple, b: tuple, _fs: dict):
    return explore.psi(db, _fs, a, b)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_segments(dataset_id: int, k: int, as_of, days: int, _ds: dict):
    return explore.segments(db, _ds, k=k, as_of=as_of, days=days)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_corr(table: str, names: tuple, _fs: dict):
    return explore.correlation(db, _fs, list(names))


def describe(name: str, language: str = lang()) -> str:
    f = catalogue[name]
    return f"{name} — {f['zh'] if language == 'zh' else f['en']}"


tab_feature, tab_patterns, tab_rank, tab_corr, tab_seg, tab_psi = st.tabs([
    tr("explore.tab.feature"), tr("explore.tab.patterns"), tr("explore.tab.ranking"),
    tr("explore.tab.correlation"), tr("explore.tab.segments"), tr("explore.tab.stability")])

with tab_feature:
    names = feature_names(fs)
    name = st.selectbox(tr("explore.feature"), names, format_func=describe, key="explore_feature")
    f = catalogue[name]
    family = tr(f"family.{f['family']}")
    st.markdown(f"**{tr('explore.family')}:** {family} · **{tr('explore.rule')}:** "
                f"{f['rule_zh'] if lang() == 'zh' else f['rule_en']}")
    log = st.toggle(tr("explore.log_scale"), value=False, disabled=f["kind"] != "numeric", key="explore_log")
    c1, c2 = st.columns([3, 2])
    c1.plotly_chart(plots.distribution_by_label(cached_distribution(key, name, log, fs), name, lang(), log=log),
                    width="stretch")
    if f["kind"] == "numeric":
        c2.plotly_chart(plots.box_by_label(cached_box(key, name, fs), name, lang(), log=log), width="stretch")
    ranking = cached_ranking(key, fs)
    row = ranking[ranking["feature"] == name]
    if not row.empty:
        r = row.iloc[0]
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("AUC", f"{r['auc']:.3f}", help=tr("explore.auc_help"))
        m2.metric("KS", f"{r['ks']:.3f}")
        m3.metric("IV", f"{r['iv']:.3f}", help=tr("explore.iv_help"))
        m4.metric(tr("explore.missing"), f"{r['missing_rate']:.1%}")

with tab_patterns:
    rates = cached_rates(ds["id"], ds)
    c1, c2 = st.columns(2)
    for i, dim in enumerate(explore.DIMENSIONS):
        frame = rates[dim]
        target = c1 if i % 2 == 0 else c2
        if frame is None:
            target.caption(tr("explore.no_role", role=tr(f"role.{dim}")))
            continue
        target.plotly_chart(plots.volume_and_rate(frame, "value", lang(), tr(f"explore.by.{dim}")),
                            width="stretch")
    st.plotly_chart(plots.volume_and_rate(rates["daily"], "day", lang(), tr("explore.daily")), width="stretch")

with tab_rank:
    st.caption(tr("explore.ranking_help", n=f"{explore.SAMPLE_NORMALS:,}"))
    ranking = cached_ranking(key, fs).copy()
    ranking.insert(1, "description", [catalogue[n]["zh" if lang() == "zh" else "en"] for n in ranking["feature"]])
    st.dataframe(ranking, hide_index=True, width="stretch", column_config={
        "auc": st.column_config.NumberColumn("AUC", format="%.3f"),
        "ks": st.column_config.NumberColumn("KS", format="%.3f"),
        "iv": st.column_config.NumberColumn("IV", format="%.3f"),
        "missing_rate": st.column_config.NumberColumn(tr("explore.missing"), format="percent"),
        "description": tr("explore.description"), "family": tr("explore.family"),
        "direction": tr("explore.direction")})
    st.download_button(tr("explore.download_ranking"), safe_csv_bytes(ranking),
                       file_name=f"feature_ranking_{ds['id']}_{fs['version']}.csv", mime="text/csv")

with tab_corr:
    numeric = [n for n in cached_ranking(key, fs)["feature"] if catalogue[n]["kind"] == "numeric"]
    chosen = st.multiselect(tr("explore.corr_features"), numeric, default=numeric[:12], key="explore_corr",
                            placeholder=tr("common.choose"))
    if len(chosen) >= 2:
        st.plotly_chart(plots.correlation_heatmap(cached_corr(key, tuple(chosen), fs), lang()), width="stretch")

with tab_seg:
    start, end = datetime.fromisoformat(ds["start"]), datetime.fromisoformat(ds["end"])
    c1, c2, c3 = st.columns(3)
    k = c1.slider(tr("explore.segments.k"), 2, 8, 5)
    as_of = c2.date_input(tr("explore.segments.as_of"), end.date(), min_value=start.date(), max_value=end.date())
    days = c3.number_input(tr("explore.segments.days"), 7, 365, 90)
    st.caption(tr("explore.segments.help"))
    try:
        seg = cached_segments(ds["id"], k, as_of + timedelta(days=1) - timedelta(microseconds=1), int(days), ds)
        table = seg["table"]
        st.dataframe(table, hide_index=True, width="stretch", column_config={
            "fraud_rate": st.column_config.NumberColumn(format="percent"),
            "share": st.column_config.NumberColumn(format="percent")})
        x = c1.selectbox("x", seg["profile"], index=1, key="seg_x")
        y = c2.selectbox("y", seg["profile"], index=2, key="seg_y")
        st.plotly_chart(plots.segment_scatter(seg["points"], x, y, lang()), width="stretch")
    except RiskdeskError as exc:
        st.warning(str(exc))

with tab_psi:
    first, last = datetime.fromisoformat(ds["start"]).date(), datetime.fromisoformat(ds["end"]).date()
    c1, c2 = st.columns(2)
    a = c1.date_input(tr("explore.psi.reference"), (first, min(last, first + timedelta(days=29))),
                      min_value=first, max_value=last, key="psi_a")
    b = c2.date_input(tr("explore.psi.compare"), (max(first, last - timedelta(days=29)), last),
                      min_value=first, max_value=last, key="psi_b")
    st.caption(tr("explore.psi.help"))
    if isinstance(a, tuple) and len(a) == 2 and isinstance(b, tuple) and len(b) == 2:
        try:
            table = cached_psi(key, tuple(map(str, a)), tuple(map(str, b)), fs)
            c1, c2 = st.columns([2, 3])
            c1.dataframe(table, hide_index=True, width="stretch",
                         column_config={"psi": st.column_config.NumberColumn(format="%.3f")})
            c2.plotly_chart(plots.psi_bars(table, lang(), explore.PSI_BANDS), width="stretch")
        except RiskdeskError as exc:
            st.warning(str(exc))
