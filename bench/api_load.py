"""Load on the one server (UI and REST API in one process) with locust, on the demo data:

    pip install -r bench/requirements.txt
    python bench/api_load.py [--users 20] [--seconds 45] [--wait 1.0] [--no-browser] [--no-pages]
                             [--browser-priority idle|nice]

Prepares a workspace (100k demo rows, a default model promoted to champion, an analyst's API
key and a local account), starts serve.py, then runs locust (bench/locustfile.py) three times:
  1. baseline - one user scoring single transactions back to back;
  2. paced    - `--users` users, each sending one request every `--wait` seconds on average
                (joining over 5 s, measured once all have joined), while a
                headless Chromium session trains models on the Compare page and a second page
                opens the Data or Monitor page every 5 s (the UI's response time is measured);
  3. flat out - `--users` users back to back (the server's capacity), no browser.
Prints p50 / p99 latency, errors, requests per second and ratios against the baseline.
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, demo_file

from scripts.browser import ARGS, CHROMIUM, sign_in
from serve import background

TRAINER, PASSWORD = "trainer", "bench-trainer-password"
RAMP_SECONDS = 5            # paced users join over this long
PAGE_EVERY = 5.0            # seconds between the second browser page's page opens
BROWSER_NICENESS = 10       # the browser stands in for an analyst's own machine: below the server


def prepare(home: Path) -> str:
    from core import champion, models, people
    from core.ingest import ingest
    from core.store import Store
    store = Store(home)
    ingest(store, demo_file(100_000), "bank")
    model = models.train(store, "bank", kinds=["default"])["models"][0]
    champion.promote(store, "bank", model["model_id"], "bench", "load test")
    people.add_user(store, "bench", "analyst", None)
    people.add_user(store, TRAINER, "analyst", PASSWORD)
    key = people.create_key(store, "bench")["key"]
    store.close()
    return key


def start_locust(url: str, key: str, users: int, seconds: int, wait: float, out: Path) -> subprocess.Popen:
    """Paced users (wait > 0) join over RAMP_SECONDS and are measured once all have joined:
    steady state, not the instant when every client connects at once."""
    env = {**os.environ, "RISKDESK_BENCH_KEY": key, "RISKDESK_BENCH_WAIT": str(wait)}
    rate = users / RAMP_SECONDS if wait else users
    return subprocess.Popen([sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                             "-u", str(users), "-r", f"{rate:g}", "-t", f"{seconds}s", "--host", url,
                             *(["--reset-stats"] if wait else []),
                             "--csv", str(out), "--only-summary", "--loglevel", "WARNING"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def result(out: Path) -> dict:
    with open(f"{out}_stats.csv", encoding="utf-8") as f:
        row = next(r for r in csv.DictReader(f) if r["Name"] == "Aggregated")
    return {"requests": int(row["Request Count"]), "errors": int(row["Failure Count"]),
            "p50": float(row["50%"]), "p99": float(row["99%"]), "rps": float(row["Requests/s"])}


def show(name: str, r: dict, base: dict | None = None) -> None:
    ratio = f"  p50 x{r['p50'] / base['p50']:.1f} of the baseline" if base else ""
    print(f"{name:<34} {r['requests']:>6} requests  p50 {r['p50']:6.0f} ms  p99 {r['p99']:6.0f} ms  "
          f"errors {r['errors']}  {r['rps']:5.1f} req/s{ratio}", flush=True)


def lower_priority_of_browser(idle: bool) -> None:
    """Chromium raises its own processes' priority (nice -8 as root). Here it shares the two
    cores with the server it measures; in use it runs on the analyst's machine. Put it below:
    at nice 10, or (idle) in Linux's SCHED_IDLE class, which runs only on CPU time the other
    processes leave: rendering the two pages otherwise took most of a core from the server.
    Linux schedules threads, not processes: every thread of every browser process is moved
    (its compositor and I/O threads had stayed at nice -8 and 0, above the server), again as
    the browser starts more. Chromium also starts a session of its own, and with the
    kernel's autogroups (sched_autogroup_enabled, on here) a session's threads share CPU as one
    group, equal to the server's whatever their nice or class: the browser's group is put at
    nice 19 (idle) or BROWSER_NICENESS."""
    import psutil
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] and "chrom" in proc.info["name"]:
            try:
                threads = [t.id for t in proc.threads()]
            except psutil.Error:
                continue
            try:
                Path(f"/proc/{proc.pid}/autogroup").write_text(str(19 if idle else BROWSER_NICENESS))
            except OSError:                   # no autogroups in this kernel
                pass
            for tid in threads:
                try:
                    os.setpriority(os.PRIO_PROCESS, tid, BROWSER_NICENESS)
                    if idle:
                        os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                except OSError:
                    pass


def paced_with_training(url: str, key: str, args, out: Path) -> tuple[dict, list[float], float | None]:
    """Locust users scoring while one browser session trains and another opens pages."""
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        lower_priority_of_browser(args.browser_priority == "idle")
        trainer = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(trainer, url + "/compare", TRAINER, PASSWORD)
        trainer.get_by_role("button", name="Train and compare").wait_for(timeout=120_000)
        trials = trainer.get_by_label("Trials", exact=True)
        trials.fill("5")
        trials.press("Enter")
        trainer.wait_for_timeout(1000)
        viewer = browser.new_page(viewport={"width": 1400, "height": 1000})
        sign_in(viewer, url, TRAINER, PASSWORD)
        lower_priority_of_browser(args.browser_priority == "idle")      # the renderers started since
        locust = start_locust(url, key, args.users, args.seconds, args.wait, out)
        time.sleep(3)                                    # the users are all running
        started = time.perf_counter()
        trainer.get_by_role("button", name="Train and compare").click()
        pages, trained = [], None
        while locust.poll() is None:
            lower_priority_of_browser(args.browser_priority == "idle")
            if args.no_pages:
                time.sleep(1)
            for path, heading in () if args.no_pages else (("/data", "Datasets"), ("/monitor", "Monitor")):
                t = time.perf_counter()
                viewer.goto(url + path)
                viewer.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
                pages.append(time.perf_counter() - t)
                time.sleep(max(0.0, PAGE_EVERY - (time.perf_counter() - t)))     # a person reading the page
            if trained is None and trainer.get_by_text("Trained 3 models").count():
                trained = time.perf_counter() - started
        if trained is None:
            trainer.get_by_text("Trained 3 models").wait_for(timeout=600_000)
            trained = time.perf_counter() - started
        browser.close()
    return result(out), pages, trained


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=int, default=45)
    ap.add_argument("--wait", type=float, default=1.0, help="seconds each paced user waits between requests")
    ap.add_argument("--no-browser", action="store_true", help="no training browser session beside the paced run")
    ap.add_argument("--no-pages", action="store_true", help="the browser trains, but opens no other page meanwhile")
    ap.add_argument("--browser-priority", choices=("idle", "nice"), default="idle",
                    help="the browser's share of this machine's CPU: SCHED_IDLE (default) or nice 10")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_api_"))
    key = prepare(tmp / "ws")
    with background(tmp / "ws", log=tmp / "server.log") as url:
        start_locust(url, key, 1, 5, 0, tmp / "warm").wait()
        start_locust(url, key, 1, args.seconds, 0, tmp / "base").wait()
        base = result(tmp / "base")
        show("1 user, back to back (baseline)", base)
        if args.no_browser:
            start_locust(url, key, args.users, args.seconds, args.wait, tmp / "paced").wait()
            paced, pages, trained = result(tmp / "paced"), [], None
        else:
            paced, pages, trained = paced_with_training(url, key, args, tmp / "paced")
        show(f"{args.users} users, 1 per {args.wait:g} s each" + (" + training" if trained else ""), paced, base)
        if pages:
            print(f"{'UI page opened while training':<34} {len(pages):>6} times     median {statistics.median(pages):5.1f} s"
                  f"  max {max(pages):5.1f} s   (training 3 models took {trained:.0f} s)")
        start_locust(url, key, args.users, args.seconds, 0, tmp / "flat").wait()
        show(f"{args.users} users, back to back", result(tmp / "flat"), base)
    print("goal: p99 <= 100 ms for single-transaction scoring, 0 errors, the UI responsive")


if __name__ == "__main__":
    main()
