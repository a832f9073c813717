"""People page (administrators): accounts and their roles, and API keys (shown once, stored
hashed, revocable). Every change goes through core.people and into the audit log."""
import streamlit as st

from core import people
from core.errors import RiskdeskError
from ui import allowed, not_allowed_note, reviewer, signed_in_store, tr

db = signed_in_store()
st.title(tr("people.title"))
st.caption(tr("people.intro"))
if not allowed("people"):
    not_allowed_note("people")
    st.stop()
me = reviewer()

users = people.list_users(db)
st.dataframe([{tr("auth.name"): u["name"], tr("people.role"): tr(f"person_role.{u['role']}"),
               tr("people.local"): "✓" if u["local"] else "", tr("people.created"): str(u["created_at"])[:19]}
              for u in users], hide_index=True, width="stretch")

st.subheader(tr("people.add"))
with st.form("people_add"):
    c1, c2, c3 = st.columns(3)
    name = c1.text_input(tr("auth.name"), max_chars=64, key="people_name")
    role = c2.selectbox(tr("people.role"), people.ROLES, key="people_role",
                        format_func=lambda r: tr(f"person_role.{r}"))
    password = c3.text_input(tr("auth.password"), type="password", max_chars=200, key="people_password",
                             help=tr("people.password_help"))
    if st.form_submit_button(tr("people.add_button"), type="primary"):
        try:
            people.add_user(db, name, role, password or None, actor=me)
            st.session_state["people_message"] = tr("people.added", name=name.strip())
            st.rerun()
        except RiskdeskError as exc:
            st.error(str(exc))
if st.session_state.get("people_message"):
    st.success(st.session_state.pop("people_message"))

others = [u["name"] for u in users if u["name"] != me]
if others:
    c1, c2 = st.columns([3, 1])
    gone = c1.selectbox(tr("people.remove_pick"), others, key="people_remove_pick")
    if c2.button(tr("people.remove"), key="people_remove"):
        people.remove_user(db, gone, actor=me)
        st.rerun()

st.subheader(tr("people.keys"))
c1, c2 = st.columns([3, 1])
owner = c1.selectbox(tr("people.key_owner"), [u["name"] for u in users], key="people_key_owner")
if c2.button(tr("people.key_create"), key="people_key_create"):
    made = people.create_key(db, owner, actor=me)
    st.session_state["people_new_key"] = made["key"]
if st.session_state.get("people_new_key"):
    st.warning(tr("people.key_once"))
    st.code(st.session_state.pop("people_new_key"), language=None)
keys = [k for k in people.list_keys(db) if k["revoked_at"] is None]
if keys:
    st.dataframe([{tr("people.key_id"): k["key_id"], tr("auth.name"): k["user"],
                   tr("people.created"): str(k["created_at"])[:19]} for k in keys], hide_index=True, width="stretch")
    c1, c2 = st.columns([3, 1])
    revoked = c1.selectbox(tr("people.key_pick"), [k["key_id"] for k in keys], key="people_key_pick")
    if c2.button(tr("people.key_revoke"), key="people_key_revoke"):
        people.revoke_key(db, revoked, actor=me)
        st.rerun()
