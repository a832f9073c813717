"""The command-line contract of ../shared/design.md."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def run(home, *args):
    env = {**os.environ, "RISKDESK_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_help_does_not_import_heavy_libraries():
    code = ("import sys, runpy; sys.argv=['core','--help']\n"
            "try:\n    runpy.run_module('core', run_name='__main__')\nexcept SystemExit: pass\n"
            "heavy=[m for m in ('pandas','duckdb','lightgbm','shap','optuna','sklearn','streamlit','numpy') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr


def test_sample_ingest_datasets_json(tmp_path):
    home = tmp_path / "ws"
    out = tmp_path / "s.parquet"
    proc = run(home, "sample", "--rows", "2000", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    sample = json.loads(proc.stdout)
    assert sample["rows"] > 1500 and 0.01 < sample["fraud_rate"] < 0.08

    proc = run(home, "ingest", str(out), "--dataset", "s", "--map", "counterparty_id=counterparty", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert set(result) >= {"dataset", "rows_loaded", "rows_rejected", "mapping"}
    assert result["rows_loaded"] == sample["rows"] and result["rows_rejected"] == 0
    assert result["mapping"]["counterparty_id"] == "counterparty"

    listed = json.loads(run(home, "datasets", "--json").stdout)["datasets"]
    assert len(listed) == 1
    ds = listed[0]
    assert set(ds) >= {"name", "rows", "rows_rejected", "start", "end", "fraud_rate", "source_sha256"}
    assert ds["fraud_rate"] == sample["fraud_rate"]


def test_sample_is_seeded(tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    assert run(tmp_path, "sample", "--rows", "500", "--out", str(a)).returncode == 0
    assert run(tmp_path, "sample", "--rows", "500", "--out", str(b)).returncode == 0
    assert a.read_bytes() == b.read_bytes()


def test_shipped_demo_matches_generator(tmp_path):
    """sample_data/ holds exactly what `python -m core sample` writes by default."""
    out = tmp_path / "demo.csv"
    assert run(tmp_path, "sample", "--out", str(out)).returncode == 0
    assert out.read_bytes() == (ROOT / "sample_data" / "demo_transactions.csv").read_bytes()


def test_bad_arguments_are_one_line(tmp_path):
    proc = run(tmp_path, "ingest")
    assert proc.returncode != 0 and proc.stdout == "" and len(proc.stderr.strip().splitlines()) == 1
    proc = run(tmp_path, "sample", "--rows", "5", "--out", str(tmp_path / "x.txt"))
    assert proc.returncode != 0 and "must end in .csv or .parquet" in proc.stderr


def test_the_command_line_goes_through_the_running_server_with_the_same_output_and_errors(tmp_path, small_demo_csv):
    import shutil
    import stat
    import urllib.error
    import urllib.request
    from serve import background
    home = tmp_path / "ws"
    shutil.copy(small_demo_csv, tmp_path / "first.csv")
    alone = run(home, "ingest", str(tmp_path / "first.csv"), "--dataset", "bank", "--json")
    assert alone.returncode == 0, alone.stderr
    direct = run(home, "datasets", "--json").stdout
    bad = ("monitor", "--dataset", "bank", "--model", "nope", "--start", "2024-01-01", "--end", "2024-01-02", "--json")
    refused = run(home, *bad)
    # on every interface, as ./start.sh serves
    with background(home, log=tmp_path / "server.log", threads=1, address=None) as url:
        record = home / "server.json"
        assert stat.S_IMODE(record.stat().st_mode) == 0o600              # the owner's local credential
        assert run(home, "datasets", "--json").stdout == direct          # same answer, through the server
        missing = run(home, "datasets", "--dataset-typo")
        assert (missing.returncode, missing.stdout) == (2, "") and missing.stderr.startswith("error: unrecognized")
        wrong = run(home, *bad)
        assert (wrong.returncode, wrong.stdout, wrong.stderr) == (1, "", refused.stderr) and "nope" in wrong.stderr
        # a relative path is read from the caller's folder, standard input reaches the server
        env = {**os.environ, "RISKDESK_HOME": str(home)}
        from core.sample import write_sample
        write_sample(tmp_path / "second.csv", rows=500, seed=3)
        appended = subprocess.run([sys.executable, "-m", "core", "ingest", "second.csv", "--dataset", "copy", "--json"],
                                  capture_output=True, text=True, cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)},
                                  timeout=300)
        assert appended.returncode == 0, appended.stderr
        assert json.loads(appended.stdout)["rows_loaded"] > 400
        added = subprocess.run([sys.executable, "-m", "core", "users", "add", "bob", "--role", "analyst",
                                "--password-stdin", "--json"], input="long enough secret\n", capture_output=True,
                               text=True, cwd=ROOT, env=env, timeout=300)
        assert added.returncode == 0 and json.loads(added.stdout)["user"]["local"], added.stderr
        forged = urllib.request.Request(url + "/local/cli", data=b'{"argv": ["datasets"]}', method="POST",
                                        headers={"Authorization": "Bearer guessed"})
        try:
            urllib.request.urlopen(forged)
            raise AssertionError("a request without the credential ran a command")
        except urllib.error.HTTPError as exc:
            assert exc.code == 403
    assert not (home / "server.json").exists()
    names = [d["name"] for d in json.loads(run(home, "datasets", "--json").stdout)["datasets"]]
    assert sorted(names) == ["bank", "copy"]
    from core import people
    from core.store import Store
    store = Store(home)
    assert people.sign_in(store, "bob", "long enough secret")["role"] == "analyst"
    store.close()


def test_the_local_command_line_is_recognised_by_any_form_of_a_loopback_address():
    """./start.sh listens dual-stack on every interface, where 127.0.0.1 arrives as
    ::ffff:127.0.0.1: the command line beside it was refused with 403 until this was known."""
    from server import from_this_machine
    assert all(from_this_machine(h) for h in ("127.0.0.1", "::1", "::ffff:127.0.0.1"))
    assert not any(from_this_machine(h) for h in ("192.0.2.2", "::ffff:192.0.2.2", "", None, "testclient"))
