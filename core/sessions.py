"""Browser sessions that survive a page reload and end for good at sign-out.

A local sign-in in the app opens a session with a random token and hands the browser a
one-time grant for it (valid GRANT_SECONDS, in this process's memory), which the server's
/session/start route trades for the token in an HttpOnly cookie. Only the token's SHA-256 is stored, with its expiry; signing
out ends the row, so a copy of the cookie replayed later is refused. Identity-provider
sign-ins (st.login) are tracked by a fingerprint of their ID token, so the identity cookie
of a session that was signed out is refused as well. This module never imports streamlit.
"""
from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import datetime, timedelta

from .people import NotSignedIn, get_user
from .store import Store

COOKIE = "riskdesk_session"
SESSION_HOURS = 8
GRANT_SECONDS = 60

_grants: dict[str, tuple[str, float]] = {}
_grants_lock = threading.Lock()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _open(store: Store, token_sha256: str, user_name: str, method: str) -> None:
    now = datetime.now()
    with store.write() as cur:
        cur.execute("INSERT INTO sessions VALUES (?, ?, ?, ?, ?, NULL)",
                    [token_sha256, user_name, method, now, now + timedelta(hours=SESSION_HOURS)])


def start(store: Store, user_name: str) -> str:
    """A new session for a signed-in local user; returns the token for the cookie."""
    token = secrets.token_urlsafe(32)
    _open(store, _sha256(token), user_name, "password")
    return token


def grant(token: str) -> str:
    """A one-time code, valid GRANT_SECONDS, that /session/start trades for the cookie carrying
    `token` (so the token itself never appears in a URL)."""
    code = secrets.token_urlsafe(24)
    now = time.monotonic()
    with _grants_lock:
        for old in [c for c, (_, at) in _grants.items() if now - at > GRANT_SECONDS]:
            del _grants[old]
        _grants[code] = (token, now)
    return code


def redeem(store: Store, code: str) -> str:
    """The session token of a grant (usable once); raises NotSignedIn for an unknown, used or
    expired code, or a session that has ended meanwhile."""
    with _grants_lock:
        entry = _grants.pop(code or "", None)
    if entry is None or time.monotonic() - entry[1] > GRANT_SECONDS or lookup(store, session_id(entry[0])) is None:
        raise NotSignedIn("this sign-in link has expired; sign in again")
    return entry[0]


def session_id(token: str) -> str:
    """The stored id of a cookie's token (what the app keeps in its session state)."""
    return _sha256(token or "")


def lookup(store: Store, sid: str | None) -> dict | None:
    """The person a live session belongs to, {"name", "role", "session", "expires_at"}, or None
    when the session is unknown, ended, expired, or its user removed."""
    if not sid:
        return None
    rows = store.rows("SELECT user_name, expires_at FROM sessions WHERE token_sha256 = ? AND ended_at IS NULL "
                      "AND expires_at > ?", [sid, datetime.now()])
    user = get_user(store, rows[0][0]) if rows else None
    if user is None:
        return None
    return {"name": user["name"], "role": user["role"], "session": sid, "expires_at": rows[0][1]}


def end(store: Store, sid: str | None) -> None:
    """End a session (sign-out): its cookie, or its identity token, no longer signs anyone in."""
    if not sid:
        return
    with store.write() as cur:
        live = cur.execute("SELECT user_name, method FROM sessions WHERE token_sha256 = ? AND ended_at IS NULL",
                           [sid]).fetchall()
        if live:
            cur.execute("UPDATE sessions SET ended_at = ? WHERE token_sha256 = ?", [datetime.now(), sid])
            store.audit(cur, live[0][0], "sign_out", "user", live[0][0], {"method": live[0][1]})


def identity_fingerprint(claims: dict) -> str:
    """The fingerprint of an identity provider's sign-in: issuer, subject, issue time and nonce
    of its ID token (a new sign-in at the provider gives a new one)."""
    parts = [str(claims.get(k, "")) for k in ("iss", "sub", "iat", "nonce", "email")]
    return _sha256("oidc\n" + "\n".join(parts))


def for_identity(store: Store, claims: dict, user_name: str) -> dict:
    """The session for an identity-provider sign-in, opened on first sight. Raises NotSignedIn
    when that sign-in was signed out or has expired: the person signs in at the provider again."""
    sid = identity_fingerprint(claims)
    known = store.rows("SELECT ended_at, expires_at FROM sessions WHERE token_sha256 = ?", [sid])
    if not known:
        _open(store, sid, user_name, "oidc")
        with store.write() as cur:
            store.audit(cur, user_name, "sign_in", "user", user_name, {"method": "oidc", "issuer": claims.get("iss")})
    elif known[0][0] is not None or known[0][1] <= datetime.now():
        raise NotSignedIn("this sign-in has ended; sign in again")
    found = lookup(store, sid)
    if found is None:
        raise NotSignedIn(f"{user_name} has no riskdesk account")
    return found
