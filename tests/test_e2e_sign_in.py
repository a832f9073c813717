"""Signing in, end to end in headless Chromium: a local session survives a reload and its cookie
is dead after sign-out; an OpenID Connect sign-in (oidc-provider-mock as the identity provider)
records a decision under that identity, and its identity cookie cannot be replayed after
sign-out."""

import pytest

from core.store import Store
from serve import background, free_port
from conftest import PASSWORD, USER
from scripts.browser import ARGS, CHROMIUM
from test_e2e_browser import SHOTS, settle, sign_in


@pytest.fixture
def browser(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def test_a_local_session_survives_a_reload_and_its_cookie_is_refused_after_sign_out(server, browser):
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    sign_in(pg, url)
    pg.reload()
    pg.get_by_text("Signed in as").wait_for(timeout=60_000)           # no second sign-in after a reload
    assert not pg.get_by_label("Password", exact=True).is_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "riskdesk_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    pg.locator('section[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    pg.get_by_role("heading", name="Sign in to riskdesk").wait_for(timeout=30_000)
    assert not any(c["name"] == "riskdesk_session" for c in context.cookies())

    replay = browser.new_context()
    replay.add_cookies([cookie])                      # a copy of the cookie, taken before sign-out
    other = replay.new_page()
    other.goto(url)
    other.get_by_role("heading", name="Sign in to riskdesk").wait_for(timeout=60_000)
    settle(other)
    assert "Signed in as" not in other.locator("body").inner_text()
    # the language chosen on the sign-in form stays after the redirects that set the cookie
    other.locator('section[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
    other.get_by_role("option", name="简体中文").click()
    other.get_by_label("用户名", exact=True).fill(USER)
    other.get_by_label("密码", exact=True).fill(PASSWORD)
    other.get_by_role("button", name="登录").click()
    other.get_by_text("当前登录").wait_for(timeout=60_000)


@pytest.fixture
def oidc_workspace(tmp_path, small_demo_csv):
    """A workspace with a trained model, an analyst known by the identity provider's e-mail, and
    the provider (oidc-provider-mock) configured in a secrets file for st.login."""
    import oidc_provider_mock
    from core import models, people
    from core.ingest import ingest
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "bank")
    model = models.train(store, "bank", kinds=["default"])["models"][0]
    people.add_user(store, "olivia@example.com", "analyst", None)
    txid = store.scalar("SELECT max(transaction_id) FROM " + store.scalar("SELECT table_name FROM datasets"))
    store.close()
    port = free_port()
    with oidc_provider_mock.run_server_in_thread() as provider:
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(f"""[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "{'x' * 32}"
client_id = "riskdesk"
client_secret = "riskdesk-secret"
server_metadata_url = "http://localhost:{provider.server_port}/.well-known/openid-configuration"
""")
        yield tmp_path, port, secrets, model["model_id"], txid


def test_sign_in_through_the_identity_provider_records_a_decision_under_that_identity(oidc_workspace):
    from playwright.sync_api import sync_playwright
    tmp, port, secrets, model_id, txid = oidc_workspace
    SHOTS.mkdir(exist_ok=True)
    with background(tmp / "ws", log=tmp / "server.log", threads=1, port=port,
                    options={"secrets.files": secrets}) as url, sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        pg = context.new_page()
        pg.goto(url)
        pg.get_by_role("button", name="Sign in with your organisation's account").click()
        pg.locator('input[name="sub"]').fill("olivia@example.com")         # the provider's own form
        pg.get_by_role("button", name="Authorize").click()
        pg.get_by_text("Signed in as").wait_for(timeout=60_000)
        assert "olivia@example.com" in pg.locator('section[data-testid="stSidebar"]').inner_text()

        pg.goto(url + "/case")
        box = pg.get_by_label("Transaction id", exact=True)
        box.wait_for(timeout=120_000)
        box.fill(txid)
        box.press("Enter")
        pg.get_by_text("Why this score").first.wait_for(timeout=120_000)
        pg.get_by_text("Confirmed fraud", exact=True).click()
        pg.get_by_role("button", name="Record decision").click()
        pg.get_by_text("Decision #1 recorded.").wait_for(timeout=60_000)
        pg.screenshot(path=str(SHOTS / "case_oidc_en.png"), full_page=True)

        identity = [c for c in context.cookies() if c["name"].startswith("_streamlit_user")]
        assert identity
        pg.locator('section[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
        pg.wait_for_timeout(3000)
        replay = chromium.new_context()
        replay.add_cookies(identity)                 # the identity cookie, copied before sign-out
        other = replay.new_page()
        other.goto(url)
        other.get_by_text("That sign-in was signed out or has expired").wait_for(timeout=60_000)
        assert "Signed in as" not in other.locator("body").inner_text()
        chromium.close()
    store = Store(tmp / "ws")
    assert store.rows("SELECT transaction_id, decision, reviewer FROM decisions") == [
        (txid, "confirmed_fraud", "olivia@example.com")]
    assert store.scalar("SELECT count(*) FROM audit_log WHERE action = 'sign_in' AND actor = 'olivia@example.com'") == 1
    store.close()
