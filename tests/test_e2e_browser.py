"""End to end in headless Chromium (Debian's /usr/bin/chromium driven by Playwright): start the
app, load the demo data, see it in the catalogue; upload a GBK CSV and see its reject report."""
import os
import subprocess
import sys

import pytest

from conftest import PASSWORD, ROOT, USER, serve_workspace
from scripts.browser import ARGS, CHROMIUM
from scripts.browser import sign_in as sign_in_as

SHOTS = ROOT / "tests" / "screenshots"


@pytest.fixture
def page(server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        yield pg, server
        browser.close()


def test_load_demo_and_upload_gbk(page):
    pg, (url, tmp) = page
    SHOTS.mkdir(exist_ok=True)
    sign_in(pg, url)
    pg.get_by_role("button", name="Load demo data").click()
    rows = sum(1 for _ in open(ROOT / "sample_data" / "demo_transactions.csv", encoding="utf-8")) - 1
    pg.get_by_text(f"Demo data loaded: {rows:,} transactions.").wait_for(timeout=90_000)
    pg.get_by_role("heading", name="Datasets").wait_for()
    # The catalogue's inspector pages through the demo's rows, served from DuckDB.
    sidebar = pg.locator('section[data-testid="stSidebar"]')
    pg.get_by_text(f"page 1 of {-(-rows // 50):,} · {rows:,} rows").wait_for()
    pg.wait_for_timeout(1500)  # let the data grids draw
    pg.screenshot(path=str(SHOTS / "data_demo_en.png"), full_page=True)

    gbk = tmp / "客户交易.csv"
    gbk.write_bytes(("交易流水号,客户号,交易时间,交易金额,是否欺诈\r\n"
                     "A1,C1,2024/01/05 13:22:01,\"1,234.50\",否\r\n"
                     "A2,C1,2024-01-06 09:00,abc,否\r\n"
                     "A3,C2,2024-01-07 10:00,12,是\r\n").encode("gbk"))
    pg.locator('input[type="file"]').first.set_input_files(str(gbk))
    pg.get_by_text("encoding gb18030").wait_for(timeout=30_000)
    pg.get_by_role("button", name="Load into the workspace").click()
    pg.get_by_text("Loaded 2 rows into “客户交易”, rejected 1.").wait_for(timeout=60_000)
    pg.get_by_text("Rejected rows by reason").first.wait_for()
    pg.wait_for_timeout(1500)
    pg.screenshot(path=str(SHOTS / "data_upload_gbk_en.png"), full_page=True)

    # Switch the UI to Chinese.
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    pg.get_by_role("option", name="简体中文").click()
    pg.get_by_text("加载演示数据").wait_for(timeout=30_000)
    pg.wait_for_timeout(1500)
    pg.screenshot(path=str(SHOTS / "data_zh.png"), full_page=True)

    # Explore: the feature set is computed in the background, then every tab is there.
    sidebar.get_by_role("link", name="探索").click()
    pg.get_by_text("特征集").first.wait_for(timeout=120_000)
    pg.get_by_role("tab", name="特征排名").wait_for()
    pg.wait_for_timeout(2000)
    pg.screenshot(path=str(SHOTS / "explore_zh.png"), full_page=True)


@pytest.fixture
def demo_server(tmp_path):
    """The app on a workspace that already holds the demo data (loaded through the CLI)."""
    env = {**os.environ, "RISKDESK_HOME": str(tmp_path / "ws")}
    subprocess.run([sys.executable, "-m", "core", "demo"], cwd=ROOT, env=env, check=True, capture_output=True)
    yield from serve_workspace(tmp_path)


@pytest.fixture
def demo_page(demo_server):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        yield pg, demo_server
        browser.close()


def sign_in(pg, target, user=USER, password=PASSWORD):
    """Open `target` signed in with the test's local account."""
    sign_in_as(pg, target, user, password)


def settle(pg, timeout=60_000):
    """Wait until Streamlit has finished the current run of the page."""
    pg.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=timeout)
    pg.wait_for_timeout(500)


def test_train_explain_decide_and_export(demo_page):
    import csv
    from pypdf import PdfReader
    pg, (url, tmp) = demo_page
    SHOTS.mkdir(exist_ok=True)
    sign_in(pg, url + "/compare")
    pg.get_by_role("heading", name="Compare models").wait_for(timeout=120_000)
    pg.get_by_text("Transactions and fraud rate per day").wait_for(timeout=120_000)
    trials = pg.get_by_label("Trials", exact=True)
    trials.fill("2")
    trials.press("Enter")
    pg.wait_for_timeout(1000)
    pg.get_by_role("button", name="Train and compare").click()
    pg.get_by_text("Trained 3 models").wait_for(timeout=300_000)
    pg.get_by_role("tab", name="Leaderboard").click()
    pg.get_by_role("button", name="Download the leaderboard (CSV)").wait_for()
    pg.wait_for_timeout(1500)
    pg.screenshot(path=str(SHOTS / "compare_leaderboard_en.png"), full_page=True)

    # a fraud of the test period, found by id (a search box, not a dropdown); the reviewer's name first
    with open(ROOT / "sample_data" / "demo_transactions.csv", encoding="utf-8") as f:
        txid = next(r["trans_id"] for r in csv.DictReader(f)
                    if r["label"] == "1" and r["trans_time"] >= "2024-04-20" and float(r["amount"]) > 100)
    sign_in(pg, url + "/case")
    box = pg.get_by_label("Transaction id", exact=True)
    box.wait_for(timeout=120_000)
    box.fill(txid)
    box.press("Enter")
    pg.get_by_text("Why this score").first.wait_for(timeout=120_000)
    pg.get_by_text("Why it scored this way").wait_for()
    pg.wait_for_timeout(1500)
    pg.screenshot(path=str(SHOTS / "case_en.png"), full_page=True)

    pg.get_by_text("Confirmed fraud", exact=True).click()
    pg.get_by_label("Note", exact=True).fill("called the customer: not them <b>really</b>")
    pg.get_by_role("button", name="Record decision").click()
    pg.get_by_text("Decision #1 recorded.").wait_for(timeout=60_000)
    settle(pg)   # a download prepared by an earlier run of the page no longer exists

    with pg.expect_download(timeout=120_000) as download:
        pg.get_by_role("button", name="PDF").click()
    path = tmp / "case.pdf"
    download.value.save_as(path)
    text = "".join(p.extract_text() for p in PdfReader(str(path)).pages)
    assert txid in text and "alice" in text and "Confirmed fraud" in text


DOCS = ROOT / "docs"


def upload_and_load(pg, path, shot_prefix, lang):
    """Upload a file, check the suggested mapping is there without touching it, load it."""
    pg.locator('input[type="file"]').first.set_input_files(str(path))
    pg.get_by_text("Map columns to roles" if lang == "en" else "列映射").wait_for(timeout=60_000)
    settle(pg)
    pg.wait_for_timeout(2000)  # let the radio buttons and data grids draw
    pg.screenshot(path=str(SHOTS / f"{shot_prefix}_mapping_{lang}.png"), full_page=True)
    pg.get_by_role("button", name="Load into the workspace" if lang == "en" else "导入工作区").click()
    pg.get_by_text("Loaded " if lang == "en" else "已导入").first.wait_for(timeout=120_000)
    settle(pg)
    pg.wait_for_timeout(1500)
    pg.screenshot(path=str(SHOTS / f"{shot_prefix}_health_{lang}.png"), full_page=True)


def train_from_compare(pg, lang):
    """On the Compare page: two tuning trials, train, wait for the three models, open the leaderboard."""
    words = {"en": ("Train and compare", "Trials", "Trained 3 models", "Leaderboard"),
             "zh": ("训练并对比", "试验次数", "已训练 3 个模型", "排行榜")}[lang]
    pg.get_by_role("button", name=words[0]).wait_for(timeout=120_000)
    trials = pg.get_by_label(words[1], exact=True)
    trials.fill("2")
    trials.press("Enter")
    pg.wait_for_timeout(1000)
    pg.get_by_role("button", name=words[0]).click()
    pg.get_by_text(words[2]).wait_for(timeout=300_000)
    settle(pg)
    pg.get_by_role("tab", name=words[3]).click()


def test_public_conventions_map_themselves_load_and_train(page):
    """PaySim (offsets, no ids) in English and Sparkov through Excel (scientific ids, mixed date
    orders) in Chinese: no manual mapping, a health report, then the default comparison."""
    from conventions import paysim_like, sparkov_like
    pg, (url, tmp) = page
    SHOTS.mkdir(exist_ok=True)
    paysim, sparkov = tmp / "PS_log.csv", tmp / "fraudTrain.csv"
    paysim_like(paysim, rows=1500)
    sparkov_like(sparkov, rows=1500)
    pg.set_viewport_size({"width": 1400, "height": 2400})   # the whole mapping step in one screenshot
    sign_in(pg, url)
    pg.get_by_role("heading", name="Upload a file").wait_for(timeout=60_000)
    upload_and_load(pg, paysim, "paysim", "en")
    body = pg.locator("body").inner_text()
    assert "“step” holds offsets, not dates" in body and "No transaction id column" in body
    assert "Loaded 1,499 rows into “PS_log”, rejected 1." in body

    sign_in(pg, url + "/compare")
    train_from_compare(pg, "en")
    pg.get_by_text("Rule R003 was left out of the rule-set model").wait_for(timeout=30_000)
    pg.screenshot(path=str(SHOTS / "paysim_compare_en.png"), full_page=True)

    # the same for Sparkov, in Chinese
    sign_in(pg, url)
    sidebar = pg.locator('section[data-testid="stSidebar"]')
    pg.get_by_role("heading", name="Upload a file").wait_for(timeout=60_000)
    sidebar.locator('[data-testid="stSelectbox"]').first.click()
    pg.get_by_role("option", name="简体中文").click()
    pg.get_by_role("heading", name="上传文件").wait_for(timeout=30_000)
    upload_and_load(pg, sparkov, "sparkov", "zh")
    body = pg.locator("body").inner_text()
    assert "混用了日期顺序" in body and "科学计数法" in body and "像是个人信息" in body
    assert "已导入 1,497 行到“fraudTrain”，拒绝 3 行。" in body
    sidebar.get_by_role("link", name="模型对比").click()
    train_from_compare(pg, "zh")
    settle(pg)
    pg.screenshot(path=str(SHOTS / "sparkov_compare_zh.png"), full_page=True)


@pytest.fixture
def champion_server(tmp_path):
    """The demo's first three months loaded, a default model promoted to champion, and April as
    an unlabelled next batch whose amounts tripled (so that the Monitor page has drift to show)."""
    import pandas as pd
    from core import champion, models
    from core.ingest import ingest
    from core.store import Store
    frame = pd.read_csv(ROOT / "sample_data" / "demo_transactions.csv", dtype=str, keep_default_na=False)
    base, april = frame[frame["trans_time"] < "2024-04-01"], frame[frame["trans_time"] >= "2024-04-01"]
    base.to_csv(tmp_path / "jan_mar.csv", index=False)
    april.assign(amount=(april["amount"].astype(float) * 3).round(2).astype(str), label="").to_csv(
        tmp_path / "april.csv", index=False)
    store = Store(tmp_path / "ws")
    ingest(store, tmp_path / "jan_mar.csv", "bank")
    model = models.train(store, "bank", kinds=["default"])["models"][0]
    champion.promote(store, "bank", model["model_id"], "alice", "first model in production")
    store.close()
    yield from serve_workspace(tmp_path)


def test_the_daily_loop_append_score_monitor_decide_and_retrain(champion_server):
    """Append a batch, score it with the champion, see the drift on the Monitor page, open an
    alert, record a decision, retrain a challenger and compare it with the champion."""
    from playwright.sync_api import sync_playwright
    url, tmp = champion_server
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1400})
        outside = []        # offline for real: nothing the pages load may leave this machine
        pg.on("request", lambda r: outside.append(r.url) if not r.url.startswith((url, "data:", "blob:", "about:"))
              else None)
        sign_in(pg, url)
        sidebar = pg.locator('section[data-testid="stSidebar"]')
        settle(pg)
        pg.get_by_role("tab", name="Batches").click()
        pg.locator('input[type="file"]').last.set_input_files(str(tmp / "april.csv"))
        pg.get_by_role("button", name="Add the batch").click()
        pg.get_by_text("Batch 2: loaded").wait_for(timeout=120_000)
        settle(pg)

        # score the new batch with the champion: the queue opens on its alerts
        pg.get_by_role("button", name="Score batch 2 with the champion").click()
        pg.get_by_role("heading", name="Review queue").wait_for(timeout=180_000)
        settle(pg, 120_000)
        pg.get_by_text("Open a transaction").wait_for(timeout=60_000)
        pg.wait_for_timeout(1500)
        pg.screenshot(path=str(SHOTS / "loop_queue_en.png"), full_page=True)
        pg.locator('[data-testid="stBaseButton-primary"]', has_text="Open").click()
        pg.get_by_text("Why this score").first.wait_for(timeout=120_000)
        pg.get_by_text("Confirmed fraud", exact=True).click()
        pg.get_by_role("button", name="Record decision").click()
        pg.get_by_text("Decision #1 recorded.").wait_for(timeout=60_000)

        # the Monitor page: April against the champion's training period
        sidebar.get_by_role("link", name="Monitor").click()
        pg.get_by_text("Score PSI").wait_for(timeout=180_000)
        settle(pg, 120_000)
        pg.wait_for_timeout(2000)
        body = pg.locator("body").inner_text()
        shifted = int(body.split("Features that shifted (PSI ≥ 0.25)")[1].split()[0])
        assert shifted > 0, body[:2000]
        assert "tx_amount" in body
        pg.screenshot(path=str(DOCS / "screenshot-monitor-en.png"), full_page=True)

        # retrain a challenger on the newest labelled data and compare it with the champion
        sidebar.get_by_role("link", name="Compare models").click()
        pg.get_by_role("tab", name="Model registry").click()
        pg.get_by_role("button", name="Retrain challenger").click()
        pg.get_by_text("trained on").first.wait_for(timeout=300_000)
        settle(pg)
        body = pg.locator("body").inner_text()
        assert "1 from review decisions" in body or "from review decisions" in body
        assert ("it can be promoted" in body or "Too little evidence" in body or "is worse than the champion" in body)
        pg.wait_for_timeout(1500)
        pg.screenshot(path=str(SHOTS / "loop_challenger_en.png"), full_page=True)

        # the Monitor page in Chinese, for the README
        sidebar.locator('[data-testid="stSelectbox"]').first.click()
        pg.get_by_role("option", name="简体中文").click()
        sidebar.get_by_role("link", name="监控").click()
        pg.get_by_text("得分 PSI").wait_for(timeout=180_000)
        settle(pg, 120_000)
        pg.wait_for_timeout(2000)
        pg.screenshot(path=str(DOCS / "screenshot-monitor-zh.png"), full_page=True)
        sidebar.get_by_role("button", name="退出登录").click()
        pg.get_by_role("heading", name="登录 riskdesk").wait_for(timeout=30_000)   # signed out: the sign-in form
        settle(pg)
        assert "当前登录：" not in pg.locator("body").inner_text()      # the sidebar no longer names anyone
        browser.close()
    assert outside == []
