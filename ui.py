"""Streamlit helpers shared by app.py and the pages: the database handle, language, datasets,
and the progress panel for background jobs. UI only; all logic lives in core."""
from __future__ import annotations

import json
from datetime import date
from urllib.parse import parse_qsl, urlencode, urlsplit

import streamlit as st

from core import jobs
from core.i18n import DEFAULT, LANGUAGES, t
from core.store import Store, open_store


@st.cache_resource(show_spinner=False)
def _store_for(home: str) -> Store:
    return open_store(home)


def store() -> Store:
    """The one shared database handle of this server process (per workspace)."""
    from core import config
    return _store_for(str(config.home()))


def _lang_in_url() -> str | None:
    """The language a redirect of ours carried (?lang=zh): a new browser session starts in it."""
    wanted = st.query_params.get("lang")
    return wanted if wanted in LANGUAGES else None


def lang() -> str:
    return st.session_state.get("lang") or st.session_state.get("ui_lang") or _lang_in_url() or DEFAULT


def tr(key: str, **values) -> str:
    return t(key, lang(), **values)


def language_picker() -> None:
    if "lang" not in st.session_state and (st.session_state.get("ui_lang") or _lang_in_url()):
        st.session_state["lang"] = st.session_state.get("ui_lang") or _lang_in_url()
    st.sidebar.selectbox(tr("sidebar.language"), list(LANGUAGES), key="lang", format_func=LANGUAGES.get)
    # A plain copy survives runs in which the sidebar widget is not drawn.
    st.session_state["ui_lang"] = st.session_state["lang"]


def dataset_picker() -> dict | None:
    """Sidebar choice of the active dataset; returns its catalogue entry."""
    from core.datasets import list_datasets
    items = list_datasets(store())
    if not items:
        st.sidebar.caption(tr("sidebar.no_datasets"))
        st.session_state.pop("dataset", None)
        return None
    names = [d["name"] for d in items]
    chosen = _sidebar_choice(tr("sidebar.dataset"), names, "dataset", names[0])
    return next(d for d in items if d["name"] == chosen)


def _sidebar_choice(label: str, options: list[str], key: str, default: str) -> str:
    """A sidebar selectbox under `key`. A page asks for a value with `{key}_request` (applied
    before the widget exists: Streamlit forbids changing a drawn widget's value), and a plain
    copy in `active_{key}` survives runs in which the sidebar is not drawn."""
    requested = st.session_state.pop(f"{key}_request", None)
    if requested in options:
        st.session_state[key] = requested
    current = st.session_state.get(key) or st.session_state.get(f"active_{key}")
    st.session_state[key] = current if current in options else default
    st.sidebar.selectbox(label, options, key=key)
    st.session_state[f"active_{key}"] = st.session_state[key]
    return st.session_state[key]


def active_dataset() -> dict | None:
    """The catalogue entry of the sidebar's active dataset, or None."""
    from core.datasets import get_dataset
    from core.errors import RiskdeskError
    from core.datasets import list_datasets
    name = st.session_state.get("dataset") or st.session_state.get("active_dataset")
    if name:
        try:
            return get_dataset(store(), name)
        except RiskdeskError:
            pass
    items = list_datasets(store())
    return get_dataset(store(), items[0]["name"]) if items else None


def dataset_or_stop() -> dict:
    """The active dataset; stops the page with a hint to load one when there is none."""
    ds = active_dataset()
    if ds is None:
        st.info(tr("explore.no_dataset"))
        st.stop()
    return ds


def select_dataset(name: str | None) -> None:
    """Ask the sidebar to make `name` the active dataset on the next run."""
    st.session_state["dataset_request"] = name


def job_progress(state_key: str) -> jobs.Job | None:
    """Show the job whose id is in session_state[state_key]; poll while it runs.

    Returns the job when it has finished (done or failed), else None."""
    job = jobs.get(st.session_state.get(state_key))
    if job is None:
        return None
    if not job.running:
        return job

    @st.fragment(run_every=0.5)
    def _poll():
        current = jobs.get(st.session_state.get(state_key))
        if current is None or not current.running:
            st.rerun()
        st.progress(current.progress, text=tr("common.progress", label=current.label,
                                              message=current.message or "…"))
    _poll()
    return None


def run_job(state_key: str, job_key: str, label: str, fn, reuse: bool = False) -> jobs.Job | None:
    """Start `fn` as a background job once (a second click joins the running one) and show its
    progress. Returns the finished job on the run after it ends (and forgets it), else None.
    With `reuse`, a job done under the same key (in any session) is returned at once."""
    if state_key not in st.session_state:
        job = jobs.start(job_key, label, fn, reuse=reuse)
        if not job.running:                 # done before under the same key (reuse)
            return job
        st.session_state[state_key] = job.id
        st.rerun()
    finished = job_progress(state_key)
    if finished is not None:
        st.session_state.pop(state_key, None)
    return finished


def features_or_stop(ds: dict, config=None) -> dict:
    """The dataset's feature set (built in the background with progress if needed); stops
    this run of the page until it is ready."""
    from core.features import FeatureConfig, build_features, is_built
    config = config or FeatureConfig()
    if not is_built(store(), ds["id"], config):
        state_key = f"features_job_{ds['id']}"
        finished = run_job(state_key, f"features:{ds['id']}:{config.version}", tr("explore.building", name=ds["name"]),
                           lambda progress: build_features(store(), ds["name"], config, progress))
        if finished is not None and finished.status == "failed":
            st.error(tr("common.error", error=finished.error))
        elif finished is not None:
            st.rerun()
        st.stop()
    return build_features(store(), ds["name"], config)


def unavailable_families_note(ds: dict) -> None:
    """Say which feature families this dataset cannot have, and the roles they need."""
    from core.features import unavailable_families
    from core.i18n import role_name
    missing = unavailable_families(ds)
    if missing:
        st.info(tr("features.unavailable", families="; ".join(
            tr("features.family_needs", family=tr(f"family.{m['family']}"),
               roles=tr("features.or").join(role_name(r, lang()) for r in m["needs"])) for m in missing)))


def _oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:           # no secrets file at all
        return False


def current_user() -> dict | None:
    """The signed-in person {"name", "role", "session"}, or None."""
    return st.session_state.get("user")


def reviewer() -> str:
    """The signed-in person's name: every recorded action carries it."""
    user = current_user()
    return user["name"] if user else ""


def allowed(action: str) -> bool:
    """Whether the signed-in person's role allows the action (core.people.PERMISSIONS)."""
    from core.people import can
    user = current_user()
    return bool(user) and can(user["role"], action)


def not_allowed_note(action: str) -> None:
    user = current_user() or {"role": "?"}
    st.info(tr("auth.not_allowed", role=tr(f"person_role.{user['role']}"), action=tr(f"action.{action}")))


def _start_session(live: dict) -> dict:
    st.session_state["user"] = {"name": live["name"], "role": live["role"], "session": live["session"]}
    return st.session_state["user"]


def _go(path: str) -> None:
    """Send the browser to a path on this server (the session-cookie routes), with a link in
    case scripts do not run."""
    st.html(f"<script>window.location.replace({json.dumps(path)})</script>", unsafe_allow_javascript=True)
    st.markdown(f"[{tr('auth.continue')}]({path})")
    st.stop()


def _keeping_language(path: str, query: str = "") -> str:
    """`path` with its query and the current language, so that the page after a redirect (a
    new browser session) is in the same language."""
    params = [(k, v) for k, v in parse_qsl(query) if k != "lang"] + ([("lang", lang())] if lang() != DEFAULT else [])
    return path + (f"?{urlencode(params)}" if params else "")


def _this_page() -> str:
    url = urlsplit(st.context.url if isinstance(st.context.url, str) else "/")
    return _keeping_language(url.path or "/", url.query)


def restore_session() -> dict | None:
    """The person the browser's session cookie signs in (a reload, a new tab), if any."""
    from core import sessions
    if current_user() is None and not _oidc_configured():
        cookie = st.context.cookies.get(sessions.COOKIE)
        live = sessions.lookup(store(), sessions.session_id(cookie)) if isinstance(cookie, str) else None
        if live is not None:
            st.session_state.pop("auth_message", None)
            return _start_session(live)
    return current_user()


def sign_in_gate() -> dict:
    """Signed-in users only: the identity provider (st.login, OpenID Connect) when
    .streamlit/secrets.toml configures one, else local accounts with Argon2 passwords. Stops
    the page until someone is signed in. A session lives in the server's session table for
    core.sessions.SESSION_HOURS, survives a reload through its HttpOnly cookie, and ends at
    sign-out (a replayed cookie is refused)."""
    from core import people, sessions
    db = store()
    user = current_user()
    if user is not None:
        live = sessions.lookup(db, user.get("session"))
        if live is not None:
            user["role"] = live["role"]          # a changed role applies at once
            return user
        st.session_state.pop("user", None)
        st.session_state["auth_message"] = tr("auth.expired", hours=sessions.SESSION_HOURS)
    if restore_session() is not None:
        return current_user()
    st.title(tr("auth.title"))
    st.caption(tr("auth.intro"))
    if st.session_state.get("auth_message"):
        st.warning(st.session_state.pop("auth_message"))
    if _oidc_configured():
        _identity_provider_sign_in(db)
    if not people.list_users(db):
        _first_admin_form(db)
        st.stop()
    with st.form("sign_in"):
        name = st.text_input(tr("auth.name"), max_chars=64, key="auth_name")
        password = st.text_input(tr("auth.password"), type="password", max_chars=200, key="auth_password")
        if st.form_submit_button(tr("auth.sign_in"), type="primary"):
            st.session_state.pop("auth_password", None)      # never kept for the next person at this screen
            try:
                _signed_in(people.sign_in(db, name, password))
            except people.NotSignedIn as exc:
                st.error(str(exc))
    st.stop()


def _signed_in(account: dict) -> None:
    """A local sign-in succeeded: open the session here and set its cookie in the browser."""
    from core import sessions
    token = sessions.start(store(), account["name"])
    _start_session({**account, "session": sessions.session_id(token)})
    st.caption(tr("auth.signing_in"))
    _go("/session/start?" + urlencode({"grant": sessions.grant(token), "next": _this_page()}))


def _identity_provider_sign_in(db) -> None:
    from core import people, sessions
    if not st.user.is_logged_in:
        st.button(tr("auth.oidc_sign_in"), on_click=st.login, type="primary")
        st.stop()
    claims = st.user.to_dict()
    name = claims.get("email") or claims.get("name") or ""
    if people.get_user(db, name) is None:
        st.error(tr("auth.unknown_oidc", name=name))
        st.button(tr("auth.sign_out"), on_click=st.logout)
        st.stop()
    try:
        _start_session(sessions.for_identity(db, claims, name))
    except people.NotSignedIn:
        st.info(tr("auth.ended"))
        st.button(tr("auth.oidc_sign_in"), on_click=st.login, type="primary")
        st.stop()
    st.rerun()


def _first_admin_form(db) -> None:
    from core import people
    from core.errors import RiskdeskError
    st.subheader(tr("auth.first_title"))
    st.caption(tr("auth.first_intro"))
    with st.form("first_admin"):
        name = st.text_input(tr("auth.name"), max_chars=64, key="first_name")
        password = st.text_input(tr("auth.password"), type="password", max_chars=200, key="first_password")
        again = st.text_input(tr("auth.repeat"), type="password", max_chars=200, key="first_again")
        if st.form_submit_button(tr("auth.create"), type="primary"):
            if password != again:
                st.error(tr("auth.mismatch"))
                return
            try:
                account = people.add_user(db, name, "admin", password, actor=name.strip())
            except RiskdeskError as exc:
                st.error(str(exc))
                return
            _signed_in(account)


def signed_in_store() -> Store:
    """The database handle for a page, once someone is signed in. Each page asks for it, so a
    page reached without app.py (Streamlit's legacy `pages/` mode under a bare `streamlit run`)
    still shows the sign-in form first."""
    sign_in_gate()
    return store()


def signed_in_box() -> None:
    user = current_user()
    st.sidebar.markdown(tr("auth.signed_in_as", name=user["name"], role=tr(f"person_role.{user['role']}")))
    if st.sidebar.button(tr("auth.sign_out"), key="sign_out"):
        from core import sessions
        sessions.end(store(), user.get("session"))
        st.session_state.pop("user", None)
        if _oidc_configured():
            st.logout()
            st.stop()
        _go("/session/end?" + urlencode({"next": _keeping_language("/")}))


def change_requests(kinds: tuple[str, ...], dataset_id: int | None, describe) -> None:
    """Maker-checker: the pending requests of these kinds, each shown by `describe(request)`,
    with who asked and buttons for a second person to approve or reject (the maker withdraws)."""
    from core import approvals
    from core.errors import RiskdeskError
    db = store()
    pending = approvals.list_requests(db, kinds, dataset_id, status="pending")
    st.subheader(tr("approval.header", n=len(pending)))
    st.caption(tr("approval.intro"))
    if "approval_done" in st.session_state:
        st.success(st.session_state.pop("approval_done"))
    if not pending:
        st.caption(tr("approval.none"))
    me = reviewer()
    for request in pending:
        rid, own = request["id"], request["requested_by"] == me
        may = allowed(approvals.PERMISSION[request["kind"]])
        with st.container(border=True):
            kind = tr(f"approval.kind.{request['kind']}")
            st.markdown(f"**{kind}** · " + tr(
                "approval.asked", id=rid, maker=request["requested_by"],
                at=request["requested_at"].isoformat(sep=" ", timespec="minutes")))
            describe(request)
            if own:
                st.caption(tr("approval.own"))
            note = st.text_input(tr("approval.note"), key=f"approval_note_{rid}", max_chars=500)
            c1, c2 = st.columns(2)
            try:
                if c1.button(tr("approval.approve"), key=f"approval_ok_{rid}", type="primary", disabled=own or not may):
                    approvals.approve(db, rid, me, note)
                    st.session_state["approval_done"] = tr("approval.approved", id=rid)
                    st.rerun()
                if c2.button(tr("approval.withdraw" if own else "approval.reject"), key=f"approval_no_{rid}",
                             disabled=not (own or may)):
                    done = approvals.reject(db, rid, me, note)
                    st.session_state["approval_done"] = tr("approval.rejected", id=rid,
                                                           status=tr(f"approval.status.{done['status']}"))
                    st.rerun()
            except RiskdeskError as exc:
                st.error(tr("common.error", error=exc))


def model_picker(ds: dict | None) -> dict | None:
    """Sidebar choice of the model used for explanations and the review queue (models of the
    active dataset, newest first); returns its registry entry."""
    from core.explain import EXPLAINABLE
    from core.models import list_models
    if ds is None:
        return None
    items = [m for m in list_models(store(), ds["name"]) if m["kind"] in EXPLAINABLE]
    if not items:
        st.sidebar.caption(tr("sidebar.no_models"))
        return None
    ids = [m["model_id"] for m in items]
    from core.champion import champion
    current = champion(store(), ds["name"])
    default = current["model_id"] if current and current["model_id"] in ids else (
        [m["model_id"] for m in items if m["kind"] == "tuned"] or ids)[0]
    chosen = _sidebar_choice(tr("sidebar.model"), ids, "model", default)
    return next(m for m in items if m["model_id"] == chosen)


def active_model() -> dict | None:
    """The sidebar's model (or the newest explainable model of the active dataset)."""
    from core.errors import RiskdeskError
    from core.explain import EXPLAINABLE
    from core.models import get_model, list_models
    model_id = st.session_state.get("model") or st.session_state.get("active_model")
    if model_id:
        try:
            return get_model(store(), model_id)
        except RiskdeskError:
            pass
    ds = active_dataset()
    items = [m for m in list_models(store(), ds["name"]) if m["kind"] in EXPLAINABLE] if ds else []
    from core.champion import champion
    current = champion(store(), ds["name"]) if ds else None
    if current is not None and current["kind"] in EXPLAINABLE:
        return current
    return items[0] if items else None


def dataset_and_model_or_stop() -> tuple[dict, dict]:
    """The active dataset and sidebar model, with the caption naming them; stops the page with
    a hint when there is no trained model yet."""
    ds, model = active_dataset(), active_model()
    if ds is None or model is None:
        st.info(tr("case.no_model"))
        st.stop()
    st.caption(tr("case.page_caption", model=model["model_id"], kind=tr(f"kind.{model['kind']}"), dataset=ds["name"]))
    return ds, model


def score_newest_batch(ds: dict) -> None:
    """Score the newest batch with the champion, then open the review queue on its alerts."""
    from core import cases
    from core.champion import champion
    from core.datasets import batch_period, list_batches
    db = store()
    current = champion(db, ds["name"])
    if current is None:
        st.caption(tr("data.batches.no_champion"))
        return
    newest = list_batches(db, ds["name"])[-1]["batch"]
    if st.button(tr("data.batches.score", batch=newest, model=current["model_id"]), key=f"score_batch_{ds['id']}"):
        st.session_state[f"score_batch_requested_{ds['id']}"] = True
    if st.session_state.get(f"score_batch_requested_{ds['id']}"):
        finished = run_job(f"score_batch_job_{ds['id']}", f"score:{current['model_id']}",
                           tr("queue.scoring", model=current["model_id"]),
                           lambda progress: cases.ensure_scored(db, current["model_id"], progress))
        if finished is None:
            return
        st.session_state.pop(f"score_batch_requested_{ds['id']}", None)
        if finished.status == "failed":
            st.error(tr("common.error", error=finished.error))
            return
        start, end = batch_period(db, ds["name"], newest)
        st.session_state["model_request"] = current["model_id"]
        st.session_state[f"queue_period_{current['model_id']}"] = (date.fromisoformat(start), date.fromisoformat(end))
        st.session_state[f"queue_bands_{lang()}"] = [tr("band.BLOCK"), tr("band.VERIFY")]
        st.switch_page("pages/queue.py")
