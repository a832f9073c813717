"""Data page: demo data, upload with column mapping and parse preview, reject report,
dataset catalogue with paginated rows, rejects and deletion."""
import math

import streamlit as st

from core import jobs
from core.config import UPLOAD_LIMIT_MB
from core.datasets import delete_dataset, get_dataset, list_datasets, page_rows, rejects_frame
from core.errors import RiskdeskError
from core.export import safe_csv_bytes
from core.i18n import human_size, reason_text, role_name
from core.ingest import (default_dataset_name, find_by_sha, ingest, inspect_source, preview_mapping,
                         reject_summary, sample_rows, save_upload)
from core.sample import load_demo
from core.schema import REQUIRED_ROLES, ROLES
from ui import job_progress, lang, select_dataset, store, tr

db = store()
actor = st.session_state.get("reviewer") or "app"

st.title(tr("data.title"))
st.caption(tr("data.intro"))


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
             disabled=jobs.running("demo") is not None, key="load_demo"):
    job = jobs.start("demo", tr("data.load_demo"), lambda progress: load_demo(db, progress, actor))
    st.session_state["demo_job"] = job.id
    st.rerun()

# -- upload and mapping ---------------------------------------------------------------------------
st.header(tr("data.upload.header"))
uploaded = st.file_uploader(tr("data.upload.label"), type=["csv", "txt", "tsv", "parquet", "xlsx"],
                            help=tr("data.upload.help", limit=UPLOAD_LIMIT_MB), key="uploader")
st.caption(tr("data.upload.limit", limit=UPLOAD_LIMIT_MB))

if uploaded is not None:
    state = st.session_state.get("upload")
    if not state or state["file_id"] != uploaded.file_id:
        path = save_upload(db, uploaded.name, uploaded)
        state = {"file_id": uploaded.file_id, "path": str(path), "name": uploaded.name, "sheet": None}
        st.session_state["upload"] = state
        st.session_state.pop("ingest_result", None)
    info = state.get("info")
    if info is None or info.sheet != state["sheet"] and info.kind == "excel":
        try:
            info = state["info"] = inspect_source(state["path"], state["name"], sheet=state["sheet"])
        except RiskdeskError as exc:
            st.error(tr("common.error", error=exc))
            info = None
    if info is not None:
        if info.kind == "csv":
            st.caption(tr("data.file.detected", kind="CSV", size=human_size(info.size), encoding=info.encoding,
                          delimiter={"\t": "TAB"}.get(info.delimiter, info.delimiter), columns=len(info.headers)))
        else:
            st.caption(tr("data.file.detected_other", kind=info.kind.capitalize(), size=human_size(info.size),
                          columns=len(info.headers)))
        if info.kind == "excel" and len(info.sheets) > 1:
            sheet = st.selectbox(tr("data.file.sheet"), info.sheets, index=info.sheets.index(info.sheet))
            if sheet != info.sheet:
                state["sheet"] = sheet
                st.rerun()
        with st.expander(tr("data.file.raw")):
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
            st.subheader(tr("data.mapping.header"))
            st.caption(tr("data.mapping.help"))
            none = tr("data.mapping.none")
            options = [none] + info.headers
            mapping = {}
            cols = st.columns(3)
            for k, role in enumerate(ROLES):
                suggested = info.suggested.get(role)
                label = role_name(role, lang()) + (" *" if role in REQUIRED_ROLES else "")
                choice = cols[k % 3].selectbox(label, options, index=options.index(suggested) if suggested else 0,
                                               key=f"map_{state['file_id']}_{role}")
                if choice != none:
                    mapping[role] = choice
            extras = [h for h in info.headers if h not in mapping.values()]
            if extras:
                st.caption(tr("data.mapping.extras", columns=", ".join(extras[:30])
                              + (" …" if len(extras) > 30 else "")))
            st.markdown(f"**{tr('data.mapping.preview')}**")
            st.caption(tr("data.mapping.preview_help"))
            try:
                st.dataframe(preview_mapping(info, mapping, 20), hide_index=True, width="stretch")
            except RiskdeskError as exc:
                st.error(tr("common.error", error=exc))

            default_name = same[0]["name"] if replace else default_dataset_name(info.name)
            name = st.text_input(tr("data.name"), value=default_name, key=f"name_{state['file_id']}")
            ingest_key = f"ingest:{name}"
            if st.button(tr("data.load"), type="primary", disabled=jobs.running(ingest_key) is not None,
                         key="load_file"):
                job = jobs.start(ingest_key, tr("data.loading", name=name), lambda progress: ingest(
                    db, info.path, name, mapping=mapping, replace=replace, source_name=info.name,
                    progress=progress, actor=actor, info=info))
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
    tab_rows, tab_rejects, tab_mapping, tab_delete = st.tabs(
        [tr("data.tab.rows"), tr("data.tab.rejects"), tr("data.tab.mapping"), tr("data.tab.delete")])
    with tab_rows:
        c1, c2 = st.columns([1, 1])
        size = c2.selectbox(tr("data.page_size"), [25, 50, 100, 500], index=1, key=f"psize_{ds['id']}")
        pages = max(1, math.ceil(ds["rows"] / size))
        page = c1.number_input(tr("data.page"), 1, pages, 1, key=f"page_{ds['id']}")
        rows = page_rows(db, ds, int(page) - 1, size)
        st.dataframe(rows.rename(columns={r: role_name(r, lang()) for r in ds["mapping"]} |
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
        st.dataframe([{tr("data.mapping.role"): role_name(r, lang()), tr("data.mapping.column"): c}
                      for r, c in ds["mapping"].items()], hide_index=True)
        if ds["extras"]:
            st.caption(tr("data.mapping.extras", columns=", ".join(e["source"] for e in ds["extras"])))
    with tab_delete:
        st.warning(tr("data.delete.warning", name=ds["name"], rows=f"{ds['rows']:,}"))
        typed = st.text_input(tr("data.delete.confirm"), key=f"del_{ds['id']}")
        if st.button(tr("data.delete.button"), disabled=typed != ds["name"], key=f"delbtn_{ds['id']}"):
            delete_dataset(db, ds["name"], actor)
            select_dataset(None)
            st.toast(tr("data.delete.done", name=ds["name"]))
            st.rerun()
