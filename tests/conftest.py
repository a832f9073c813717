import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RISKDESK_THREADS", "2")


def run_cli(home, *args, timeout=600):
    """`python -m core ARGS` on the workspace `home` in a fresh process (the real command line)."""
    import subprocess
    env = {**os.environ, "RISKDESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=timeout)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh workspace directory, also set as RISKDESK_HOME for code that reads it."""
    ws = tmp_path / "ws"
    monkeypatch.setenv("RISKDESK_HOME", str(ws))
    return ws


@pytest.fixture
def store(home):
    from core.store import Store
    s = Store(home)
    yield s
    s.close()


@pytest.fixture(scope="session")
def small_demo_csv(tmp_path_factory):
    """A small generated demo file (same generator as the shipped one)."""
    from core.sample import write_sample
    out = tmp_path_factory.mktemp("demo") / "demo_small.csv"
    write_sample(out, rows=3000, seed=7)
    return out


def db_fingerprint(home: Path) -> tuple:
    """Everything a failed load must leave untouched: tables, catalogue, rejects, audit."""
    import duckdb
    path = home / "riskdesk.duckdb"
    if not path.exists():
        return ("no database",)
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = sorted(r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall())
        datasets = con.execute("SELECT id, name, rows_loaded, source_sha256 FROM datasets ORDER BY id").fetchall()
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()
        audit = con.execute("SELECT count(*) FROM audit_log").fetchone()
        return tuple(tables), tuple(datasets), rejects, audit
    finally:
        con.close()


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """The shipped demo data trained with every kind (few trials, SMOTE forced on the tuned
    model). Uses the process-wide store, so the app (AppTest) sees the same database."""
    from core import models
    from core.ingest import ingest
    from core.sample import DEMO_FILE
    from core.store import open_store
    home = tmp_path_factory.mktemp("trained")
    store = open_store(home)
    ingest(store, DEMO_FILE, "demo")
    result = models.train(store, "demo", kinds=models.KINDS, trials=3, imbalance="smote")
    return store, result


USER, PASSWORD = "alice", "riskdesk-e2e-password"     # the browser tests' administrator


def serve_workspace(tmp_path):
    """The server on tmp_path/ws, with the administrator USER to sign in as: yields (url, tmp_path)."""
    from scripts.browser import CHROMIUM
    from serve import background
    assert os.path.exists(CHROMIUM), "Debian's chromium is required (apt-get install chromium); see .ci/run"
    from core import people
    from core.store import Store
    store = Store(tmp_path / "ws")          # before the server holds the file
    if people.get_user(store, USER) is None:
        people.add_user(store, USER, "admin", PASSWORD)
    store.close()
    with background(tmp_path / "ws", log=tmp_path / "server.log", threads=1) as url:
        yield url, tmp_path


@pytest.fixture
def server(tmp_path):
    """A browser test's server on its own workspace."""
    yield from serve_workspace(tmp_path)
