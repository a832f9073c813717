"""People, roles and API keys: who may do what, and proof of who did it.

Roles (../shared/design.md, People and access):
* analyst - review cases, write rules, load data, train;
* auditor - read everything and export cases and the audit log; changes nothing;
* admin   - everything an analyst does, plus people, API keys and champion promotion.

Local accounts keep an Argon2id hash of the password (argon2-cffi), never the password.
API keys are random 256-bit tokens shown once; only their SHA-256 is stored (a fast hash is
enough for a key that long), and a key works only while neither it nor its user is removed.
Repeated failed sign-ins make the account wait, doubling from 1 second after the fifth
failure in 15 minutes, up to 5 minutes. This module never imports streamlit.
"""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime, timedelta

from .errors import RiskdeskError
from .store import Store

ROLES = ("analyst", "auditor", "admin")
PERMISSIONS = {
    "read": {"analyst", "auditor", "admin"},
    "export": {"analyst", "auditor", "admin"},
    "review": {"analyst", "admin"},
    "rules": {"analyst", "admin"},
    "ingest": {"analyst", "admin"},
    "train": {"analyst", "admin"},
    "promote": {"admin"},
    "people": {"admin"},
}
ACTION_WORDS = {"read": "read", "export": "export", "review": "record review decisions", "rules": "change rules",
                "ingest": "load data", "train": "train models", "promote": "promote or roll back the champion",
                "people": "manage people and keys"}
KEY_PREFIX = "rdk_"
MIN_PASSWORD = 8
FREE_FAILURES, FAILURE_WINDOW, MAX_WAIT = 5, timedelta(minutes=15), 300
_NAME_RE = re.compile(r"^[\w.@+-]{1,64}$")


class NotAllowed(RiskdeskError):
    """The signed-in person's role does not allow the action (HTTP 403)."""


class NotSignedIn(RiskdeskError):
    """No valid credential: unknown key, wrong password, removed user (HTTP 401)."""


def can(role: str | None, action: str) -> bool:
    """Whether a role may perform an action (see PERMISSIONS)."""
    if action not in PERMISSIONS:
        raise ValueError(f"unknown action {action!r}")
    return role in PERMISSIONS[action]


def require(user: dict | None, action: str) -> None:
    """Raise NotAllowed unless the user's role allows the action."""
    if not user:
        raise NotSignedIn("sign in first")
    if not can(user.get("role"), action):
        raise NotAllowed(f"{user['name']} ({user['role']}) may not {ACTION_WORDS.get(action, action)}")


def _hasher():
    from argon2 import PasswordHasher
    return PasswordHasher()


def _check_name(name: str) -> str:
    name = (name or "").strip()
    if not _NAME_RE.match(name):
        raise RiskdeskError(f"user name {name!r} must be 1-64 letters, digits or . _ @ + -")
    return name


def get_user(store: Store, name: str) -> dict | None:
    """The current (not removed) account with this name, without its password hash."""
    rows = store.dicts("SELECT name, role, created_at, password_hash IS NOT NULL AS local FROM users "
                       "WHERE name = ? AND removed_at IS NULL", [str(name)])
    return rows[0] if rows else None


def list_users(store: Store) -> list[dict]:
    return store.dicts("SELECT name, role, created_at, password_hash IS NOT NULL AS local FROM users "
                       "WHERE removed_at IS NULL ORDER BY name")


def add_user(store: Store, name: str, role: str, password: str | None, actor: str = "cli") -> dict:
    """Create an account. A password makes it a local account (Argon2id hash stored); without
    one it can only sign in through the identity provider."""
    name = _check_name(name)
    if role not in ROLES:
        raise RiskdeskError(f"role must be one of {', '.join(ROLES)} (got {role!r})")
    if password is not None and len(password) < MIN_PASSWORD:
        raise RiskdeskError(f"the password needs at least {MIN_PASSWORD} characters")
    hashed = None if password is None else _hasher().hash(password)
    with store.write() as cur:
        if cur.execute("SELECT count(*) FROM users WHERE name = ? AND removed_at IS NULL", [name]).fetchone()[0]:
            raise RiskdeskError(f"user {name!r} already exists")
        cur.execute("INSERT INTO users VALUES (?, ?, ?, ?, NULL)", [name, role, hashed, datetime.now()])
        store.audit(cur, actor, "user_add", "user", name, {"role": role, "local": hashed is not None})
    return get_user(store, name)


def remove_user(store: Store, name: str, actor: str = "cli") -> dict:
    """Remove an account: it can no longer sign in, and its API keys stop working."""
    with store.write() as cur:
        found = cur.execute("SELECT count(*) FROM users WHERE name = ? AND removed_at IS NULL", [name]).fetchone()[0]
        if not found:
            raise RiskdeskError(f"no user {name!r}")
        now = datetime.now()
        cur.execute("UPDATE users SET removed_at = ? WHERE name = ? AND removed_at IS NULL", [now, name])
        # keys die with their user, so that a later account of the same name does not inherit them
        cur.execute("UPDATE api_keys SET revoked_at = ? WHERE user_name = ? AND revoked_at IS NULL", [now, name])
        store.audit(cur, actor, "user_remove", "user", name, {})
    return {"name": name, "removed": True}


def _wait_seconds(store: Store, name: str, now: datetime) -> float:
    times = [r[0] for r in store.rows("SELECT failed_at FROM sign_in_failures WHERE user_name = ? AND failed_at > ? "
                                      "ORDER BY failed_at", [name, now - FAILURE_WINDOW])]
    if len(times) < FREE_FAILURES:
        return 0.0
    wait = min(2 ** (len(times) - FREE_FAILURES), MAX_WAIT)
    return max(0.0, (times[-1] + timedelta(seconds=wait) - now).total_seconds())


def sign_in(store: Store, name: str, password: str) -> dict:
    """Check a local account's password. Returns the user; raises NotSignedIn with the same
    message for an unknown name or a wrong password, and asks to wait after repeated failures."""
    from argon2.exceptions import InvalidHashError, VerificationError
    name = (name or "").strip()
    now = datetime.now()
    wait = _wait_seconds(store, name, now)
    if wait > 0:
        raise NotSignedIn(f"too many failed sign-ins; try again in {int(wait) + 1} seconds")
    rows = store.rows("SELECT password_hash FROM users WHERE name = ? AND removed_at IS NULL", [name])
    hashed = rows[0][0] if rows else None
    try:
        if hashed is None:
            _hasher().hash(password or "")       # same work whether or not the name exists
            raise VerificationError("no local account")
        _hasher().verify(hashed, password or "")
    except (VerificationError, InvalidHashError):
        with store.write() as cur:
            cur.execute("INSERT INTO sign_in_failures VALUES (?, ?)", [name, now])
        raise NotSignedIn("wrong user name or password") from None
    with store.write() as cur:
        cur.execute("DELETE FROM sign_in_failures WHERE user_name = ?", [name])
        store.audit(cur, name, "sign_in", "user", name, {"method": "password"})
    return get_user(store, name)


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(store: Store, user: str, actor: str = "cli") -> dict:
    """A new API key for the user (it carries the user's role). The key itself is returned
    only here: {"key", "key_id", "user"}."""
    if get_user(store, user) is None:
        raise RiskdeskError(f"no user {user!r}")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id = key[len(KEY_PREFIX):len(KEY_PREFIX) + 8]
    with store.write() as cur:
        cur.execute("INSERT INTO api_keys VALUES (?, ?, ?, ?, NULL)", [key_id, user, _key_hash(key), datetime.now()])
        store.audit(cur, actor, "api_key_create", "user", user, {"key_id": key_id})
    return {"key": key, "key_id": key_id, "user": user}


def list_keys(store: Store, user: str | None = None) -> list[dict]:
    """Keys (never their value): id, user, created, revoked."""
    where, params = ("WHERE user_name = ?", [user]) if user else ("", [])
    return store.dicts(f"SELECT key_id, user_name AS user, created_at, revoked_at FROM api_keys {where} "
                       f"ORDER BY created_at", params)


def revoke_key(store: Store, key_id: str, actor: str = "cli") -> dict:
    with store.write() as cur:
        found = cur.execute("SELECT user_name FROM api_keys WHERE key_id = ? AND revoked_at IS NULL", [key_id]).fetchall()
        if not found:
            raise RiskdeskError(f"no active API key {key_id!r}")
        cur.execute("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL", [datetime.now(), key_id])
        store.audit(cur, actor, "api_key_revoke", "user", found[0][0], {"key_id": key_id})
    return {"key_id": key_id, "revoked": True}


def authenticate_key(store: Store, key: str | None) -> dict:
    """The user an API key belongs to, with their role; NotSignedIn for a missing, unknown or
    revoked key, or one whose user was removed."""
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        raise NotSignedIn("a valid API key is required (Authorization: Bearer KEY)")
    digest = _key_hash(key)
    cache = (str(store.path), store.generation)       # revoking or removing is a write: a new generation
    if _key_cache.get("at") != cache:
        _key_cache.clear()
        _key_cache["at"] = cache
    user = _key_cache.get(digest)
    if user is None:
        rows = store.dicts("SELECT u.name, u.role FROM api_keys k JOIN users u ON u.name = k.user_name "
                           "AND u.removed_at IS NULL WHERE k.key_sha256 = ? AND k.revoked_at IS NULL", [digest])
        if not rows:
            raise NotSignedIn("a valid API key is required (Authorization: Bearer KEY)")
        user = rows[0]
        if len(_key_cache) < 10_000:
            _key_cache[digest] = user
    return dict(user)


_key_cache: dict = {}       # key SHA-256 -> user, for one workspace generation


DEMO_USERS = ("demo", "checker")


def demo_accounts(store: Store) -> list[dict]:
    """For workshops: when the workspace has no accounts, two administrators, "demo" and
    "checker" (a second person to approve changes: maker-checker), with random passwords
    written to demo-account.txt in the workspace (readable by its owner only). Returns
    [{"name", "password"}] of those still present while that file exists."""
    path = store.home / "demo-account.txt"
    if not list_users(store) and not path.exists():
        lines = []
        for name in DEMO_USERS:
            password = secrets.token_urlsafe(12)
            add_user(store, name, "admin", password, actor="demo")
            lines.append(f"{name} {password}")
        path.touch(mode=0o600)
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if not path.exists():
        return []
    pairs = [line.split()[:2] for line in path.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 2]
    return [{"name": n, "password": p} for n, p in pairs if get_user(store, n) is not None]
