"""Schemathesis against the live server's OpenAPI document: generated requests, valid and
invalid, to every operation (its examples, coverage and fuzzing phases); no 5xx, and every
response matches its documented status codes, content type and schema."""
import subprocess
import sys
from pathlib import Path

from serve import background

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
          "response_headers_conformance,negative_data_rejection,missing_required_header,ignored_auth")


def test_every_operation_answers_within_its_schema_and_never_with_a_5xx(tmp_path, small_demo_csv):
    from core import models, people
    from core.ingest import ingest
    from core.store import Store
    store = Store(tmp_path / "ws")
    ingest(store, small_demo_csv, "bank")
    models.train(store, "bank", kinds=["default"])
    people.add_user(store, "ana", "analyst", None)
    key = people.create_key(store, "ana")["key"]
    txid = store.scalar("SELECT max(transaction_id) FROM " + store.scalar("SELECT table_name FROM datasets"))
    model_id = models.list_models(store, "bank")[0]["model_id"]
    store.close()
    # known names some of the time, so that generated requests also reach the logic behind the 404s
    config = tmp_path / "schemathesis.toml"
    config.write_text(f"""
[dictionaries]
dataset = {{ values = ["bank"] }}
transaction = {{ values = ["{txid}"] }}
model = {{ values = ["{model_id}"] }}
[parameters]
"path.dataset" = {{ dictionary = "dataset", probability = 0.6 }}
"path.transaction_id" = {{ dictionary = "transaction", probability = 0.6 }}
"query.model_id" = {{ dictionary = "model", probability = 0.5 }}
"body.dataset" = {{ dictionary = "dataset", probability = 0.6 }}
"body.model_id" = {{ dictionary = "model", probability = 0.5 }}
""")
    with background(tmp_path / "ws", log=tmp_path / "server.log", threads=1) as url:
        run = subprocess.run(
            [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config), "run",
             f"{url}/api/v1/openapi.json",
             "--header", f"Authorization: Bearer {key}", "--checks", CHECKS, "--max-examples", "20",
             "--phases", "examples,coverage,fuzzing", "--workers", "1", "--seed", "7",
             "--suppress-health-check", "all", "--no-color"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path, env={"SCHEMATHESIS_TELEMETRY": "false", "PATH": "/usr/bin:/bin"})
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
