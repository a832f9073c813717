"""Screenshots of every page in both languages, for looking at the app as a user would.

    python scripts/screenshots.py --home WORKSPACE [--dataset NAME] [--out DIR]

Starts the app on the workspace (which must already hold the dataset), signs in as an
administrator "screenshots" (created with a random password when missing), opens the sign-in
page and each page in headless Chromium in English and Chinese and saves full-page PNGs.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from scripts.browser import ARGS, CHROMIUM  # noqa: E402  (the project root is on the path only now)
from serve import background  # noqa: E402
PAGES = [("", "Data", "数据"), ("explore", "Explore", "探索"), ("rules", "Rules", "规则"),
         ("compare", "Compare models", "模型对比"), ("monitor", "Monitor", "监控"), ("queue", "Review queue", "审核队列"),
         ("case", "Transaction", "交易详情"), ("audit", "Audit log", "审计日志"), ("people", "People", "用户")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--home", required=True)
    ap.add_argument("--out", default=str(ROOT / "screenshots"))
    ap.add_argument("--wait", type=float, default=4.0, help="seconds to let each page settle")
    ap.add_argument("--tabs", action="store_true", help="also every tab of each page")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import secrets
    from core import people
    from core.store import Store
    store = Store(args.home)           # before the server holds the database file
    password = secrets.token_urlsafe(12)
    if people.get_user(store, "screenshots") is not None:
        people.remove_user(store, "screenshots", actor="screenshots")
    people.add_user(store, "screenshots", "admin", password, actor="screenshots")
    store.close()
    with background(args.home) as url:
        from playwright.sync_api import sync_playwright
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for lang, index in (("en", 1), ("zh", 2)):
                pg = browser.new_page(viewport={"width": 1400, "height": 1000})
                pg.goto(url)
                pg.wait_for_timeout(3000)
                if lang == "zh":
                    pg.locator('section[data-testid="stSidebar"] [data-testid="stSelectbox"]').first.click()
                    pg.get_by_role("option", name="简体中文").click()
                    pg.wait_for_timeout(2000)
                pg.screenshot(path=str(out / f"sign_in_{lang}.png"), full_page=True)
                form = pg.locator('[data-testid="stForm"] input')
                form.nth(0).fill("screenshots")
                form.nth(1).fill(password)
                form.nth(1).press("Enter")      # submits the form
                pg.wait_for_timeout(3000)
                for path, en, zh in PAGES:
                    if path:
                        pg.locator('section[data-testid="stSidebar"]').get_by_role(
                            "link", name=zh if lang == "zh" else en).click()
                    start = time.time()
                    pg.wait_for_timeout(args.wait * 1000)
                    # wait while a progress bar (background job) is shown
                    while pg.locator('[data-testid="stProgress"]').count() and time.time() - start < 600:
                        pg.wait_for_timeout(1000)
                    pg.wait_for_timeout(args.wait * 1000)
                    name = out / f"{path or 'data'}_{lang}.png"
                    pg.screenshot(path=str(name), full_page=True)
                    print(f"{name}  ({time.time() - start:.1f} s)")
                    tabs = pg.get_by_role("tab")
                    for i in range(1, tabs.count() if args.tabs else 0):
                        tabs.nth(i).click()
                        pg.wait_for_timeout(args.wait * 1000)
                        name = out / f"{path or 'data'}_tab{i}_{lang}.png"
                        pg.screenshot(path=str(name), full_page=True)
                        print(name)
                pg.close()
            browser.close()


if __name__ == "__main__":
    main()
