"""Headless Chromium for the browser tests, the load bench and the screenshots script: Debian's
/usr/bin/chromium with the flags that keep it off the network, and signing in to the app."""
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


def sign_in(pg, target: str, user: str, password: str) -> None:
    """Open `target` and sign in with a local account, unless the session cookie already signs
    the browser in."""
    pg.goto(target)
    form, signed_in = pg.get_by_label("User name", exact=True), pg.get_by_text("Signed in as")
    form.or_(signed_in).first.wait_for(timeout=60_000)
    if form.is_visible():
        form.fill(user)
        pg.get_by_label("Password", exact=True).fill(password)
        pg.get_by_role("button", name="Sign in").click()
    signed_in.wait_for(timeout=60_000)
