"""People, roles and API keys: passwords only as Argon2 hashes, keys only as hashes and shown
once, roles that allow exactly their actions, throttled sign-ins, and keys that die with their
user."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT
from core import people
from core.errors import RiskdeskError


def test_a_password_is_stored_only_as_an_argon2_hash(store, home):
    people.add_user(store, "ana", "analyst", "correct horse battery")
    stored = store.scalar("SELECT password_hash FROM users WHERE name = 'ana'")
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    store.close()
    assert b"correct horse battery" not in (home / "riskdesk.duckdb").read_bytes()


def test_sign_in_checks_the_password_and_says_the_same_for_an_unknown_name(store):
    people.add_user(store, "ana", "analyst", "correct horse battery")
    assert people.sign_in(store, "ana", "correct horse battery")["role"] == "analyst"
    with pytest.raises(people.NotSignedIn, match="wrong user name or password"):
        people.sign_in(store, "ana", "wrong horse battery")
    with pytest.raises(people.NotSignedIn, match="wrong user name or password"):
        people.sign_in(store, "nobody", "correct horse battery")


def test_repeated_failed_sign_ins_make_the_account_wait(store):
    people.add_user(store, "ana", "analyst", "correct horse battery")
    for _ in range(people.FREE_FAILURES):
        with pytest.raises(people.NotSignedIn, match="wrong"):
            people.sign_in(store, "ana", "guess")
    with pytest.raises(people.NotSignedIn, match="too many failed sign-ins; try again in"):
        people.sign_in(store, "ana", "correct horse battery")      # even the right password waits
    with store.write() as cur:        # the wait is over a little later
        cur.execute("UPDATE sign_in_failures SET failed_at = failed_at - INTERVAL 10 SECOND")
    assert people.sign_in(store, "ana", "correct horse battery")["name"] == "ana"
    assert store.scalar("SELECT count(*) FROM sign_in_failures") == 0


@pytest.mark.parametrize("role, allowed", [
    ("analyst", {"read", "export", "review", "rules", "ingest", "train"}),
    ("auditor", {"read", "export"}),
    ("admin", set(people.PERMISSIONS))])
def test_each_role_may_do_exactly_its_actions(role, allowed):
    assert {a for a in people.PERMISSIONS if people.can(role, a)} == allowed
    user = {"name": "x", "role": role}
    for action in set(people.PERMISSIONS) - allowed:
        with pytest.raises(people.NotAllowed, match=f"x \\({role}\\) may not"):
            people.require(user, action)


def test_an_api_key_carries_its_users_role_until_revoked(store):
    people.add_user(store, "ana", "auditor", None)
    made = people.create_key(store, "ana")
    assert made["key"].startswith("rdk_") and len(made["key"]) > 40
    assert store.scalar("SELECT count(*) FROM api_keys WHERE key_sha256 = ?", [made["key"]]) == 0
    assert people.authenticate_key(store, made["key"]) == {"name": "ana", "role": "auditor"}
    people.revoke_key(store, made["key_id"])
    with pytest.raises(people.NotSignedIn):
        people.authenticate_key(store, made["key"])
    for bad in (None, "", "Bearer x", "rdk_" + "x" * 43, "rdk_" + "x" * 500):
        with pytest.raises(people.NotSignedIn):
            people.authenticate_key(store, bad)


def test_a_removed_users_keys_stop_working_and_a_new_account_of_that_name_does_not_inherit_them(store):
    people.add_user(store, "bob", "admin", None)
    key = people.create_key(store, "bob")["key"]
    people.remove_user(store, "bob")
    with pytest.raises(people.NotSignedIn):
        people.authenticate_key(store, key)
    people.add_user(store, "bob", "auditor", None)
    with pytest.raises(people.NotSignedIn):
        people.authenticate_key(store, key)
    actions = [r[0] for r in store.rows("SELECT action FROM audit_log ORDER BY id")]
    assert actions == ["user_add", "api_key_create", "user_remove", "user_add"]


@pytest.mark.parametrize("name, role, password, words", [
    ("", "analyst", "long enough", "user name"), ("a b", "analyst", "long enough", "user name"),
    ("ana", "boss", "long enough", "role must be one of"), ("ana", "analyst", "short", "at least 8")])
def test_bad_accounts_are_refused(store, name, role, password, words):
    with pytest.raises(RiskdeskError, match=words):
        people.add_user(store, name, role, password)
    assert store.scalar("SELECT count(*) FROM users") == 0


def run(home, *args, stdin=""):
    import os
    env = {**os.environ, "RISKDESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "core", *args], input=stdin, capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=120)


def test_the_command_line_adds_users_and_shows_a_key_once(home):
    done = run(home, "users", "add", "ana", "--role", "analyst", "--password-stdin", "--json",
               stdin="correct horse battery\n")
    assert done.returncode == 0, done.stderr
    user = json.loads(done.stdout)["user"]
    assert (user["name"], user["role"], user["local"]) == ("ana", "analyst", True)
    made = run(home, "apikey", "create", "--user", "ana", "--json")
    key = json.loads(made.stdout)["key"]
    listed = run(home, "apikey", "list", "--json")
    assert key not in listed.stdout and json.loads(listed.stdout)["keys"][0]["user"] == "ana"
    again = run(home, "users", "add", "ana", "--role", "admin", "--password-stdin", "--json", stdin="another one\n")
    assert again.returncode == 1 and again.stdout == "" and again.stderr == "error: user 'ana' already exists\n"
    nobody = run(home, "apikey", "create", "--user", "nobody", "--json")
    assert nobody.returncode == 1 and nobody.stderr == "error: no user 'nobody'\n"
    revoked = run(home, "apikey", "revoke", key[4:12], "--json")
    assert json.loads(revoked.stdout) == {"key_id": key[4:12], "revoked": True}


def test_a_session_lives_until_sign_out_and_a_replayed_cookie_is_refused(store):
    from core import sessions
    people.add_user(store, "ana", "analyst", "correct horse battery")
    token = sessions.start(store, "ana")
    sid = sessions.session_id(token)
    assert sessions.lookup(store, sid)["name"] == "ana"
    assert store.scalar("SELECT count(*) FROM sessions WHERE token_sha256 = ?", [token]) == 0   # only the hash
    code = sessions.grant(token)
    assert sessions.redeem(store, code) == token
    with pytest.raises(people.NotSignedIn, match="expired"):
        sessions.redeem(store, code)                 # a grant works once
    sessions.end(store, sid)
    assert sessions.lookup(store, sessions.session_id(token)) is None     # the same cookie, replayed
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'sign_out' AND actor = 'ana'") == 1
    with pytest.raises(people.NotSignedIn):
        sessions.redeem(store, sessions.grant(token))    # nor can an old grant revive it


def test_a_session_ends_when_it_expires_or_its_user_is_removed(store):
    from core import sessions
    people.add_user(store, "ana", "analyst", None)
    people.add_user(store, "bob", "analyst", None)
    old, gone = sessions.session_id(sessions.start(store, "ana")), sessions.session_id(sessions.start(store, "bob"))
    with store.write() as cur:
        cur.execute("UPDATE sessions SET expires_at = now() - INTERVAL 1 SECOND WHERE token_sha256 = ?", [old])
    people.remove_user(store, "bob")
    assert sessions.lookup(store, old) is None and sessions.lookup(store, gone) is None


def test_an_identity_provider_sign_in_cannot_be_replayed_after_sign_out(store):
    from core import sessions
    people.add_user(store, "ana@example.com", "analyst", None)
    claims = {"iss": "http://idp", "sub": "42", "iat": 1767225600, "nonce": "n1", "email": "ana@example.com"}
    first = sessions.for_identity(store, claims, "ana@example.com")
    assert sessions.for_identity(store, claims, "ana@example.com")["session"] == first["session"]
    sessions.end(store, first["session"])
    with pytest.raises(people.NotSignedIn, match="ended"):
        sessions.for_identity(store, claims, "ana@example.com")      # the same identity cookie again
    fresh = sessions.for_identity(store, {**claims, "iat": 1767229200, "nonce": "n2"}, "ana@example.com")
    assert fresh["session"] != first["session"]                      # a new sign-in at the provider works
