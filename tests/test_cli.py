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
