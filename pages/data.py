"""Data page: demo data; upload with the detected encoding, a decoded preview, the suggested
mapping (with how sure and why), how times are read, data health and a parse preview; the
reject and health report; the dataset catalogue with paginated rows, health, rejects, mapping,
batches (add the next, score it with the champion, take back the newest) and deletion."""
import math

import streamlit as st

from core import jobs
from core.config import UPLOAD_LIMIT_MB
from core.datasets import (delete_dataset, delete_newest_batch, get_dataset, list_batches,
                           list_datasets, page_rows, rejects_frame)
from core.errors import RiskdeskError
from core.export import safe_csv_bytes
from core.i18n import human_size, reason_text, role_name, t
from core.ingest import (DEFAULT_TIME_ORIGIN, ENCODING_CHOICES, ENCODING_NAMES, TIME_UNITS, default_dataset_name,
                         find_by_sha, infer, ingest, inspect_source, preview_mapping, profile_columns, reject_summary,
                         render_warning, sample_rows, save_upload)
from core.ingest.health import before_load
from core.sample import load_demo
from core.schema import REQUIRED_ROLES, ROLES
from ui import allowed, job_progress, lang, reviewer, score_newest_batch, select_dataset, signed_in_store, tr

db = signed_in_store()
actor = reviewer()
may_load = allowed("ingest")

st.title(tr("data.title"))
st.caption(tr("data.intro"))


def show_health(warnings: list[dict]) -> None:
    """The data health report: each warning says what riskdesk did about it."""
    st.subheader(tr("data.health.header"))
    if not warnings:
        st.caption(tr("data.health.none"))
    for w in warnings:
        st.markdown(f"- {render_warning(w, lang())}")


def batches_panel(ds: dict) -> None:
    """A dataset's batches; add the next one (same header and mapping) or take back the newest."""
    st.dataframe([{tr("data.batches.batch"): b["batch"], tr("data.catalogue.source"): b["source_name"],
                   tr("data.catalogue.sha"): b["source_sha256"][:16], tr("data.catalogue.rows"): b["rows_loaded"],
                   tr("data.catalogue.rejected"): b["rows_rejected"], tr("data.catalogue.created"): b["loaded_at"][:19]}
                  for b in list_batches(db, ds["name"])], hide_index=True, width="stretch")
    st.caption(tr("data.batches.help"))
    batch = st.file_uploader(tr("data.batches.upload"), type=["csv", "txt", "tsv", "parquet", "xlsx"],
                             key=f"batch_upload_{ds['id']}")
    key = f"append:{ds['id']}"
    if batch is not None and st.button(tr("data.batches.append"), type="primary", key=f"append_{ds['id']}",
                                       disabled=jobs.running(key) is not None or not may_load):
        path = save_upload(db, batch.name, batch)
        job = jobs.start(key, tr("data.loading", name=ds["name"]), lambda progress: ingest(
            db, path, ds["name"], source_name=batch.name, progress=progress, actor=actor, append=True))
        st.session_state["append_job"] = job.id
        st.rerun()
    done = job_progress("append_job")
    if done is not None:
        st.session_state.pop("append_job", None)
        if done.status == "done":
            r = done.result
            st.success(tr("data.batches.appended", batch=r["batch"], loaded=f"{r['rows_loaded']:,}",
                          rejected=f"{r['rows_rejected']:,}", total=f"{r['rows_total']:,}"))
            show_health(r["warnings"])
        else:
            st.error(tr("data.failed", error=done.error))
    score_newest_batch(ds)
    if len(list_batches(db, ds["name"])) > 1:
        typed = st.text_input(tr("data.batches.confirm"), key=f"del_batch_{ds['id']}")
        if st.button(tr("data.batches.delete"), disabled=typed != ds["name"] or not may_load,
                     key=f"del_batch_btn_{ds['id']}"):
            removed = delete_newest_batch(db, ds["name"], actor)
            st.toast(tr("data.batches.deleted", batch=removed["batch"], rows=f"{removed['rows_removed']:,}"))
            st.rerun()


def show_reject_summary(dataset_id: int, key: str) -> None:
    summary = reject_summary(db, dataset_id)
    if not summary:
        st.caption(tr("data.rejects.none"))
        return
    st.subheader(tr("data.rejects.header"))
    st.dataframe(
        [{tr("data.rejects.reason"): reason_text(r["reason"], r["role"], lang()),
          tr("data.rejects.count"): r["rows"], tr("data.rejects.first"): r["first_row"]} for r in summary],
        hide_index=True, width="stretch")
    st.download_button(tr("data.rejects.download"), safe_csv_bytes(rejects_frame(db, dataset_id)),
                       file_name=f"rejects_{dataset_id}.csv", mime="text/csv", key=f"dl_rejects_{key}")


# -- demo data ---------------------------------------------------------------------------------
datasets = list_datasets(db)
if not datasets:
    st.info(tr("data.empty"))
demo_job = job_progress("demo_job")
if demo_job is not None:
    st.session_state.pop("demo_job", None)
    if demo_job.status == "done" and demo_job.result.get("existed"):
        st.session_state["flash"] = ("info", tr("data.demo_exists", name=demo_job.result["dataset"]))
    elif demo_job.status == "done":
        st.session_state["flash"] = ("success", tr("data.demo_loaded", rows=f"{demo_job.result['rows_loaded']:,}"))
        select_dataset(demo_job.result["dataset"])
    else:
        st.session_state["flash"] = ("error", tr("common.error", error=demo_job.error))
    st.rerun()
flash = st.session_state.pop("flash", None)
if flash:
    getattr(st, flash[0])(flash[1])
if st.button(tr("data.load_demo"), type="primary" if not datasets else "secondary",
             disabled=jobs.running("demo") is not None or not may_load, key="load_demo"):
    job = jobs.start("demo", tr("data.load_demo"), lambda progress: load_demo(db, progress, actor))
    st.session_state["demo_job"] = job.id
    st.rerun()

# -- upload, mapping, reading and health -------------------------------------------------------------
@st.cache_data(show_spinner=False, max_entries=16)
def read_source(path: str, name: str, encoding: str | None, sheet: str | None):
    """The file's facts and its column profiles (cached by file and encoding/sheet)."""
    info = inspect_source(path, name, encoding, sheet)
    return info, profile_columns(info)


@st.cache_data(show_spinner=False, max_entries=64)
def reading_for(path: str, name: str, encoding: str | None, sheet: str | None, mapping: tuple,
                unit: str | None, origin: str | None, order: str | None, complete: bool):
    info, profiles = read_source(path, name, encoding, sheet)
    return infer(info, dict(mapping) or None, unit, origin, order, profiles=profiles, complete=complete)


def reasons_text(suggestion) -> str:
    return "; ".join(t(f"infer.{code}", lang(), **params) for code, params in suggestion.reasons)


def mapping_step(info, state: dict, base) -> dict:
    """Role selectboxes with the suggestion's confidence and reasons; a column serves one role."""
    st.subheader(tr("data.mapping.header"))
    st.caption(tr("data.mapping.help"))
    none = tr("data.mapping.none")
    keys = {role: f"map_{state['file_id']}_{role}" for role in ROLES}
    for role, key in keys.items():
        if key not in st.session_state:
            st.session_state[key] = base.mapping.get(role, none)
    chosen = {role: st.session_state[key] for role, key in keys.items() if st.session_state[key] != none}
    rows = st.columns([2, 3, 5])
    for k, head in enumerate(("data.mapping.role", "data.mapping.column", "data.mapping.why")):
        rows[k].markdown(f"**{tr(head)}**")
    for role in ROLES:
        others = {c for r, c in chosen.items() if r != role}
        options = [none] + [h for h in info.headers if h not in others]
        c1, c2, c3 = st.columns([2, 3, 5])
        c1.markdown(role_name(role, lang()) + (" \\*" if role in REQUIRED_ROLES else ""))
        c2.selectbox(role_name(role, lang()), options, key=keys[role], label_visibility="collapsed")
        value = st.session_state[keys[role]]
        suggestion = base.suggestions.get(role)
        if value == none:
            c3.caption(tr("data.mapping.unmapped_required") if role in REQUIRED_ROLES else "")
        elif suggestion is not None and suggestion.column == value:
            c3.caption(tr("data.mapping.confidence", confidence=suggestion.confidence, reasons=reasons_text(suggestion)))
        else:
            c3.caption(tr("infer.chosen"))
    mapping = {role: st.session_state[key] for role, key in keys.items() if st.session_state[key] != none}
    extras = [h for h in info.headers if h not in mapping.values()]
    if extras:
        st.caption(tr("data.mapping.extras", columns=", ".join(extras[:30]) + (" …" if len(extras) > 30 else "")))
    if "transaction_id" not in mapping:
        st.caption(tr("health.generated_ids"))
    return mapping


def time_step(state: dict, reading) -> tuple[str | None, str | None, str | None]:
    """How the time column is read: unit and origin for offsets, date order for year-last
    dates (with the rows each order would reject). Returns the user's (unit, origin, order)."""
    fid = state["file_id"]
    if reading.kind == "offset":
        st.markdown(f"**{tr('data.time.header', column=reading.column)}**")
        c1, c2 = st.columns(2)
        units = list(TIME_UNITS)
        unit = c1.selectbox(tr("data.time.unit"), units, index=units.index(reading.options.time_unit),
                            format_func=lambda u: tr(f"data.time.unit.{u}"), key=f"unit_{fid}")
        origin = c2.text_input(tr("data.time.origin"), reading.options.origin, key=f"origin_{fid}").strip()
        st.caption(tr("data.time.offset_help", origin=DEFAULT_TIME_ORIGIN))
        if reading.unit_reason != "user" and (unit, origin) == (reading.options.time_unit, reading.options.origin):
            return None, None, None     # as inferred (and the default origin, said as such)
        return unit, origin or DEFAULT_TIME_ORIGIN, None
    if reading.year_last:
        st.markdown(f"**{tr('data.time.order_header', column=reading.column)}**")
        orders = ["mdy", "dmy"]
        order = st.radio(tr("data.time.order"), orders, index=orders.index(reading.options.date_order),
                         key=f"order_{fid}", horizontal=True, label_visibility="collapsed",
                         format_func=lambda o: tr(f"data.time.{o}", rejected=f"{reading.rejects_if(o):,}"))
        if reading.mixed:
            st.warning(tr("data.time.mixed", day_first=f"{reading.day_first_only:,}",
                          month_first=f"{reading.month_first_only:,}"))
        elif reading.ambiguous:
            st.info(tr("data.time.ambiguous", rows=f"{reading.year_last:,}"))
        return None, None, order
    return None, None, None


st.header(tr("data.upload.header"))
uploaded = st.file_uploader(tr("data.upload.label"), type=["csv", "txt", "tsv", "parquet", "xlsx"],
                            help=tr("data.upload.help", limit=UPLOAD_LIMIT_MB), key="uploader")
st.caption(tr("data.upload.limit", limit=UPLOAD_LIMIT_MB))

if uploaded is not None:
    state = st.session_state.get("upload")
    if not state or state["file_id"] != uploaded.file_id:
        path = save_upload(db, uploaded.name, uploaded)
        state = {"file_id": uploaded.file_id, "path": str(path), "name": uploaded.name, "sheet": None, "encoding": None}
        st.session_state["upload"] = state
        st.session_state.pop("ingest_result", None)
    try:
        info, _ = read_source(state["path"], state["name"], state["encoding"], state["sheet"])
    except RiskdeskError as exc:
        st.error(tr("common.error", error=exc))
        info = None
    if info is not None:
        if info.kind == "csv":
            c1, c2 = st.columns([3, 1])
            c1.caption(tr("data.file.detected", kind="CSV", size=human_size(info.size),
                          encoding=ENCODING_NAMES.get(info.encoding, info.encoding)
                          + (f" ({tr('data.file.auto')})" if info.encoding_detected else ""),
                          delimiter={"\t": "TAB"}.get(info.delimiter, info.delimiter), columns=len(info.headers)))
            choices = list(dict.fromkeys([info.encoding, *ENCODING_CHOICES]))
            encoding = c2.selectbox(tr("data.file.encoding"), choices, index=0, key=f"enc_{state['file_id']}",
                                    format_func=lambda e: ENCODING_NAMES.get(e, e))
            if encoding != info.encoding:
                state["encoding"] = encoding
                st.rerun()
        else:
            st.caption(tr("data.file.detected_other", kind=info.kind.capitalize(), size=human_size(info.size),
                          columns=len(info.headers)))
        if info.kind == "excel" and len(info.sheets) > 1:
            sheet = st.selectbox(tr("data.file.sheet"), info.sheets, index=info.sheets.index(info.sheet))
            if sheet != info.sheet:
                state["sheet"] = sheet
                st.rerun()
        with st.expander(tr("data.file.raw"), expanded=True):
            st.dataframe(sample_rows(info, 10), hide_index=True)

        just_loaded = (st.session_state.get("ingest_result") or {}).get("file_id") == state["file_id"]
        same = [] if just_loaded else find_by_sha(db, info.sha256)
        replace = False
        if same:
            st.warning(tr("data.file.same_sha", sha=info.sha256[:12], name=same[0]["name"],
                          when=same[0]["created_at"].strftime("%Y-%m-%d %H:%M")))
            choice = st.radio(" ", ["replace", "skip"], key=f"dup_{state['file_id']}", index=1,
                              label_visibility="collapsed",
                              format_func=lambda c: tr("data.file.replace", name=same[0]["name"])
                              if c == "replace" else tr("data.file.skip"))
            replace = choice == "replace"
            if not replace:
                st.info(tr("data.file.skipped"))

        if not just_loaded and (not same or replace):
            args = (state["path"], state["name"], state["encoding"], state["sheet"])
            inference = None
            try:
                base = reading_for(*args, (), None, None, None, True)
                mapping = mapping_step(info, state, base)
                inference = reading_for(*args, tuple(sorted(mapping.items())), None, None, None, False)
                unit, origin, order = time_step(state, inference.time)
                if (unit, origin, order) != (None, None, None):
                    inference = reading_for(*args, tuple(sorted(mapping.items())), unit, origin, order, False)
            except RiskdeskError as exc:
                st.error(tr("common.error", error=exc))
            if inference is not None:
                notes = before_load(info, inference)
                if notes:
                    st.markdown(f"**{tr('data.health.before')}**")
                    for w in notes:
                        st.markdown(f"- {render_warning(w, lang())}")
                st.markdown(f"**{tr('data.mapping.preview')}**")
                st.caption(tr("data.mapping.preview_help"))
                try:
                    st.dataframe(preview_mapping(info, inference.mapping, 20, inference.options), hide_index=True,
                                 width="stretch")
                except RiskdeskError as exc:
                    st.error(tr("common.error", error=exc))

                default_name = same[0]["name"] if replace else default_dataset_name(info.name)
                name = st.text_input(tr("data.name"), value=default_name, key=f"name_{state['file_id']}")
                ingest_key = f"ingest:{name}"
                if st.button(tr("data.load"), type="primary", disabled=jobs.running(ingest_key) is not None or not may_load,
                             key="load_file"):
                    job = jobs.start(ingest_key, tr("data.loading", name=name), lambda progress: ingest(
                        db, info.path, name, replace=replace, source_name=info.name, progress=progress,
                        actor=actor, info=info, inference=inference))
                    st.session_state["ingest_job"] = job.id
                    st.rerun()

    done = job_progress("ingest_job")
    if done is not None:
        st.session_state["ingest_result"] = ({"ok": True, **done.result} if done.status == "done"
                                             else {"ok": False, "error": done.error})
        st.session_state["ingest_result"]["file_id"] = state["file_id"] if done.status == "done" else None
        st.session_state.pop("ingest_job", None)
        if done.status == "done":
            select_dataset(done.result["dataset"])
            st.rerun()
    result = st.session_state.get("ingest_result")
    if result:
        if result["ok"]:
            st.success(tr("data.loaded", loaded=f"{result['rows_loaded']:,}", name=result["dataset"],
                          rejected=f"{result['rows_rejected']:,}"))
            show_health(result["warnings"])
            show_reject_summary(result["dataset_id"], "upload")
        else:
            st.error(tr("data.failed", error=result["error"]))

# -- catalogue ---------------------------------------------------------------------------------------
datasets = list_datasets(db)
if datasets:
    st.header(tr("data.catalogue.header"))
    st.dataframe([{
        tr("data.catalogue.name"): d["name"], tr("data.catalogue.rows"): d["rows"],
        tr("data.catalogue.rejected"): d["rows_rejected"], tr("data.catalogue.start"): d["start"],
        tr("data.catalogue.end"): d["end"],
        tr("data.catalogue.fraud_rate"): None if d["fraud_rate"] is None else f"{d['fraud_rate']:.2%}",
        tr("data.catalogue.size"): human_size(d["source_bytes"]), tr("data.catalogue.source"): d["source_name"],
        tr("data.catalogue.sha"): d["source_sha256"][:16], tr("data.catalogue.created"): d["created_at"],
    } for d in datasets], hide_index=True, width="stretch", key="catalogue")

    names = [d["name"] for d in datasets]
    current = st.session_state.get("dataset")
    chosen = st.selectbox(tr("data.inspect"), names, index=names.index(current) if current in names else 0)
    ds = get_dataset(db, chosen)
    tab_rows, tab_health, tab_rejects, tab_mapping, tab_batches, tab_delete = st.tabs(
        [tr("data.tab.rows"), tr("data.tab.health"), tr("data.tab.rejects"), tr("data.tab.mapping"),
         tr("data.tab.batches"), tr("data.tab.delete")])
    with tab_batches:
        batches_panel(ds)
    with tab_health:
        show_health(ds["warnings"])
    with tab_rows:
        c1, c2 = st.columns([1, 1])
        size = c2.selectbox(tr("data.page_size"), [25, 50, 100, 500], index=1, key=f"psize_{ds['id']}")
        pages = max(1, math.ceil(ds["rows"] / size))
        page = c1.number_input(tr("data.page"), 1, pages, 1, key=f"page_{ds['id']}")
        rows = page_rows(db, ds, int(page) - 1, size)
        st.dataframe(rows.rename(columns={r: role_name(r, lang()) for r in ["transaction_id", *ds["mapping"]]} |
                                 {"source_row": tr("data.rejects.row")}), hide_index=True, width="stretch")
        st.caption(tr("data.page_of", page=int(page), pages=f"{pages:,}", rows=f"{ds['rows']:,}"))
    with tab_rejects:
        show_reject_summary(ds["id"], "catalogue")
        if ds["rows_rejected"]:
            frame = rejects_frame(db, ds["id"], limit=200)
            frame["message"] = [reason_text(r, ro, lang()) for r, ro in zip(frame["reason"], frame["role"])]
            st.dataframe(frame.rename(columns={
                "source_row": tr("data.rejects.row"), "message": tr("data.rejects.reason"),
                "raw_value": tr("data.rejects.raw"), "raw_row": tr("data.rejects.whole")}).drop(
                columns=["reason", "role"]), hide_index=True, width="stretch")
    with tab_mapping:
        evidence = ds["reading"].get("suggestions", {})
        st.dataframe([{tr("data.mapping.role"): role_name(r, lang()), tr("data.mapping.column"): c,
                       tr("data.mapping.why"): "; ".join(t(f"infer.{e['code']}", lang(), **{k: v for k, v in e.items()
                                                                                        if k != "code"})
                                                         for e in evidence.get(r, {}).get("reasons", []))}
                      for r, c in ds["mapping"].items()], hide_index=True)
        reading = ds["reading"]
        if reading.get("time_unit"):
            st.caption(tr("data.reading.offset", unit=tr(f"data.time.unit.{reading['time_unit']}"),
                          origin=reading["time_origin"]))
        if ds["extras"]:
            used = [e["source"] for e in ds["extras"] if e.get("use", True)]
            left = [e["source"] for e in ds["extras"] if not e.get("use", True)]
            st.caption(tr("data.mapping.extras", columns=", ".join(used) or "–"))
            if left:
                st.caption(tr("data.mapping.left_out", columns=", ".join(left)))
    with tab_delete:
        st.warning(tr("data.delete.warning", name=ds["name"], rows=f"{ds['rows']:,}"))
        typed = st.text_input(tr("data.delete.confirm"), key=f"del_{ds['id']}")
        if st.button(tr("data.delete.button"), disabled=typed != ds["name"] or not may_load, key=f"delbtn_{ds['id']}"):
            delete_dataset(db, ds["name"], actor)
            select_dataset(None)
            st.toast(tr("data.delete.done", name=ds["name"]))
            st.rerun()
