"""`python -m core ...`: the command line over the same functions the pages call.

Contract (../shared/design.md): every command takes --json and then prints exactly one JSON
object on stdout; on bad input it exits non-zero with one line on stderr, nothing on stdout,
and changes nothing. Heavy libraries are imported inside the commands.
"""
from __future__ import annotations

import argparse
import json
import sys

from .schema import FAMILIES


class _UsageError(Exception):
    """A command line argparse refuses (exit 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise _UsageError(message)


def _parse_maps(values: list[str] | None) -> dict[str, str]:
    from .errors import RiskdeskError
    from .schema import ROLES

    mapping: dict[str, str] = {}
    for item in values or []:
        if "=" not in item:
            raise RiskdeskError(f"--map {item!r}: expected ROLE=COLUMN")
        role, column = item.split("=", 1)
        role = role.strip()
        if role not in ROLES:
            raise RiskdeskError(f"--map {item!r}: unknown role {role!r} (roles: {', '.join(ROLES)})")
        if role in mapping:
            raise RiskdeskError(f"--map: role {role} is given twice")
        mapping[role] = column
    return mapping


def cmd_ingest(args) -> dict:
    from .ingest import describe_reason, ingest
    from .store import open_store

    mapping = _parse_maps(args.map)
    store = open_store()
    result = ingest(store, args.file, args.dataset, mapping=mapping or None, encoding=args.encoding,
                    sheet=args.sheet, replace=args.replace, actor="cli", time_unit=args.time_unit,
                    time_origin=args.time_origin, date_order=args.date_order, append=args.append)
    result["warnings"] = [{k: w[k] for k in ("code", "column", "message")} for w in result["warnings"]]
    lines = [f"loaded {result['rows_loaded']:,} rows into dataset {result['dataset']!r}"
             + (f" as batch {result['batch']} ({result['rows_total']:,} rows in all)" if "batch" in result else "")
             + f", rejected {result['rows_rejected']:,}",
             "mapping: " + ", ".join(f"{role}={column}" for role, column in result["mapping"].items())]
    for r in result.pop("reject_reasons"):
        lines.append(f"  {r['rows']:,} x {describe_reason(r['reason'], r['role'])} (first at row {r['first_row']})")
    lines += [f"warning [{w['code']}]: {w['message']}" for w in result["warnings"]]
    result["_text"] = "\n".join(lines)
    return result


def cmd_batches(args) -> dict:
    from .datasets import delete_newest_batch, list_batches
    from .store import open_store

    store = open_store()
    if args.delete_newest:
        result = delete_newest_batch(store, args.dataset, actor="cli")
        result["_text"] = (f"removed batch {result['batch']} of {result['dataset']!r}: {result['rows_removed']:,} rows; "
                           f"{result['rows_total']:,} remain")
        return result
    items = list_batches(store, args.dataset)
    return {"dataset": args.dataset, "batches": items, "_text": "\n".join(
        f"{b['batch']:>3}  {b['rows_loaded']:>10,} rows  {b['rows_rejected']:>7,} rejected  {b['loaded_at'][:19]}  "
        f"{b['source_name']}  {b['source_sha256'][:16]}" for b in items)}


def cmd_datasets(args) -> dict:
    from .datasets import list_datasets
    from .store import open_store

    items = list_datasets(open_store())
    for d in items:
        d.pop("headers", None)
        d.pop("table", None)
    result = {"datasets": items}
    if not args.json:
        if not items:
            result["_text"] = "no datasets"
        else:
            rows = []
            for d in items:
                rate = "" if d["fraud_rate"] is None else f"{d['fraud_rate']:.2%}"
                rows.append(f"{d['name']:<24} {d['rows']:>10,} rows  {d['rows_rejected']:>7,} rejected  "
                            f"{d['start'] or '':<19} .. {d['end'] or '':<19}  fraud {rate}")
            result["_text"] = "\n".join(rows)
    return result


def cmd_sample(args) -> dict:
    from .sample import write_sample

    result = write_sample(args.out, rows=args.rows, seed=args.seed)
    result["_text"] = (f"wrote {result['rows']:,} transactions ({result['fraud_rate']:.2%} fraud) "
                       f"to {result['out']}")
    return result


def _feature_config(args):
    """The feature set that --set and --families name."""
    import dataclasses

    from .errors import RiskdeskError
    from .features import NAMED
    config = NAMED[getattr(args, "set", None) or "standard"]
    if not getattr(args, "families", None):
        return config
    if config.name != "standard":
        raise RiskdeskError(f"--families chooses among the standard set's families, not the {config.name} set's")
    return dataclasses.replace(config, families=tuple(f.strip() for f in args.families.split(",") if f.strip()))


def cmd_features(args) -> dict:
    from .features import build_features, export_features, feature_names
    from .store import open_store

    store = open_store()
    if args.engine == "spark":
        return _spark_features(store, args)
    fs = build_features(store, args.dataset, _feature_config(args))
    result = {"dataset": fs["dataset"], "feature_set": fs["version"], "name": fs["name"], "rows": fs["rows"],
              "features": feature_names(fs), "seconds": round(fs["seconds"], 3)}
    if args.out:
        result["out"] = export_features(store, fs, args.out)["out"]
    result["_text"] = (f"{len(result['features'])} features for {fs['rows']:,} transactions of {fs['dataset']!r} "
                       f"(feature set {fs['version']})" + (f", written to {result['out']}" if args.out else ""))
    return result


def _spark_features(store, args) -> dict:
    import tempfile
    import time
    from pathlib import Path

    from .datasets import get_dataset
    from .errors import RiskdeskError
    from .features.spark import spark_features
    ds = get_dataset(store, args.dataset)
    out = Path(args.out) if args.out else store.home / "exports" / f"features_{ds['id']}_{args.set}_spark.parquet"
    if out.suffix.lower() != ".parquet":
        raise RiskdeskError(f"{out.name}: --out must end in .parquet")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=store.home / "tmp") as work:
        result = spark_features(store, ds, _feature_config(args), out, Path(work))
    seconds = round(time.perf_counter() - start, 3)
    return {"dataset": ds["name"], "rows": ds["rows"], **result, "seconds": seconds,
            "_text": f"{result['features']} features for {ds['rows']:,} transactions of {ds['name']!r} computed on "
                     f"Spark ({result['master']}) in {seconds:.1f} s, written to {result['out']}"}


def _spark_score(store, args) -> dict:
    import tempfile
    import time
    from pathlib import Path

    from .errors import RiskdeskError
    from .features.spark import spark_score
    from .models import feature_config, get_model, model_dataset
    if args.start or args.end:
        raise RiskdeskError("--engine spark scores every transaction: leave out --start and --end")
    out = Path(args.out)
    if out.suffix.lower() != ".parquet":
        raise RiskdeskError(f"{out.name}: --engine spark writes Parquet: --out must end in .parquet")
    model = get_model(store, args.model)
    ds = model_dataset(store, model, args.dataset)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=store.home / "tmp") as work:
        result = spark_score(store, model, ds, feature_config(model), out, Path(work))
    seconds = round(time.perf_counter() - start, 3)
    return {**result, "model_id": model["model_id"], "dataset": ds["name"], "seconds": seconds,
            "_text": f"scored {result['rows']:,} transactions of {ds['name']!r} on Spark ({result['master']}) in "
                     f"{seconds:.1f} s, written to {result['out']}"}


def _leaderboard_line(m: dict) -> str:
    t = m["metrics"]["test"]
    return (f"{m['kind']:<9} AP {t['average_precision']:.3f} [{t['average_precision_ci'][0]:.3f}, "
            f"{t['average_precision_ci'][1]:.3f}]  AUC {t['auc']:.3f}  KS {t['ks']:.3f}  "
            f"P/R@thr {t['at_threshold_precision']:.2f}/{t['at_threshold_recall']:.2f}  "
            f"{m['train_seconds']:.1f}s  {m['model_id']}")


def cmd_train(args) -> dict:
    from .models import train
    from .store import open_store

    kinds = [k.strip() for k in args.models.split(",") if k.strip()]
    result = train(open_store(), args.dataset, kinds=kinds, trials=args.trials, imbalance=args.imbalance,
                   time_budget=args.time_budget, seed=args.seed, actor="cli",
                   train_start=args.train_start, train_end=args.train_end, test_start=args.test_start,
                   test_end=args.test_end, valid_start=args.valid_start, valid_end=args.valid_end,
                   gap_days=args.gap_days, random=args.random_split, feature_config=_feature_config(args))
    models = [{"model_id": m["model_id"], "kind": m["kind"], "metrics": m["metrics"]["test"],
               "validation": m["metrics"]["validation"], "threshold": m["threshold"],
               "train_seconds": round(m["train_seconds"], 3),
               **({"skipped_rules": m["params"]["skipped_rules"]} if (m["params"] or {}).get("skipped_rules") else {})}
              for m in result["models"]]
    ranked = sorted(result["models"], key=lambda m: -(m["metrics"]["test"]["average_precision"] or 0))
    text = [f"split: {result['split']['method']}  train {result['split']['train']}  "
            f"valid {result['split']['valid']}  test {result['split']['test']}"]
    if args.random_split:
        text.append("WARNING: random split on request; out-of-time results would be more honest")
    text += [_leaderboard_line(m) for m in ranked]
    for m in result["models"]:
        for r in (m["params"] or {}).get("skipped_rules") or []:
            text.append(f"note: {m['kind']}: rule {r['rule_id']} is not applicable to this dataset "
                        f"(no feature {', '.join(r['missing'])}); left out")
    text += [f"note: {s['kind']} skipped: {s['reason']}" for s in result["skipped"]]
    return {"run_id": result["run_id"], "split": result["split"], "models": models, "skipped": result["skipped"],
            "_text": "\n".join(text)}


def cmd_score(args) -> dict:
    from .models import score, write_scores
    from .store import open_store

    if args.engine == "spark":
        return _spark_score(open_store(), args)
    frame = score(open_store(), args.model, args.dataset, args.start, args.end)
    result = write_scores(frame, args.out)
    result["model_id"] = args.model
    result["_text"] = f"scored {result['rows']:,} transactions to {result['out']}: " + ", ".join(
        f"{k} {v:,}" for k, v in sorted(result["decisions"].items()))
    return result


def cmd_explain(args) -> dict:
    from .report import write_case
    from .store import open_store

    result = write_case(open_store(), args.model, args.transaction, args.out, args.format, args.dataset, args.lang)
    result["_text"] = (f"case {result['transaction_id']}: score {result['score']:.4f}, {result['decision']}; "
                       f"{result['format'].upper()} written to {result['out']} (content SHA-256 {result['content_sha256']})")
    return result


def cmd_monitor(args) -> dict:
    from .monitor import report
    from .store import open_store

    result = report(open_store(), args.model, args.start, args.end, args.reference_start, args.reference_end,
                    dataset=args.dataset, capacity_k=args.capacity)
    over = sum(a["over_capacity"] for a in result["alerts"])
    lines = [f"{result['model_id']} on {result['dataset']!r}: {result['current']['start']} .. {result['current']['end']} "
             f"against {result['reference']['start']} .. {result['reference']['end']}",
             f"score PSI {result['score_psi']:.3f} ({result['score_band']}); "
             f"{over} of {len(result['alerts'])} days above the capacity of {args.capacity} alerts"]
    lines += [f"  {f['feature']:<28} PSI {f['psi']:.3f}  {f['band']}" for f in result["features"][:10]]
    result["_text"] = "\n".join(lines)
    return result


def cmd_demo(args) -> dict:
    from .sample import load_demo
    from .store import open_store

    from .people import demo_accounts

    store = open_store()
    result = load_demo(store, actor="cli")
    result.pop("reject_reasons", None)
    result["_text"] = (f"demo data already loaded as {result['dataset']!r}" if result["existed"]
                       else f"loaded the demo data as {result['dataset']!r}: {result['rows_loaded']:,} rows")
    accounts = demo_accounts(store)
    if accounts:
        result["accounts"] = [a["name"] for a in accounts]
        result["password_file"] = str(store.home / "demo-account.txt")
        result["_text"] += "".join(f"\nsign in as {a['name']} with password {a['password']}" for a in accounts)
        if len(accounts) > 1:
            result["_text"] += f"\n({accounts[1]['name']} is the second person who approves rule changes and promotions)"
    return result


def cmd_users(args) -> dict:
    from . import people
    from .errors import RiskdeskError
    from .store import open_store

    store = open_store()
    if args.action == "add":
        if not args.name or not args.role:
            raise RiskdeskError("users add needs NAME and --role analyst|auditor|admin")
        password = None
        if args.password_stdin:
            password = args.stdin.readline().rstrip("\r\n")
        user = people.add_user(store, args.name, args.role, password, actor="cli")
        return {"user": user, "_text": f"added {user['name']} ({user['role']}, "
                                       f"{'local password' if user['local'] else 'identity provider only'})"}
    if args.action == "remove":
        if not args.name:
            raise RiskdeskError("users remove needs NAME")
        result = people.remove_user(store, args.name, actor="cli")
        return {**result, "_text": f"removed {args.name}; their API keys no longer work"}
    items = people.list_users(store)
    return {"users": items, "_text": "\n".join(f"{u['name']:<24} {u['role']:<8} "
                                               f"{'local' if u['local'] else 'identity provider'}" for u in items)
            or "no users"}


def cmd_apikey(args) -> dict:
    from . import people
    from .errors import RiskdeskError
    from .store import open_store

    store = open_store()
    if args.action == "create":
        if not args.user:
            raise RiskdeskError("apikey create needs --user NAME")
        made = people.create_key(store, args.user, actor="cli")
        return {**made, "_text": f"{made['key']}\n(shown once: store it now; revoke with "
                                 f"`python -m core apikey revoke {made['key_id']}`)"}
    if args.action == "revoke":
        if not args.key_id:
            raise RiskdeskError("apikey revoke needs the key id (its first 8 characters after rdk_)")
        return {**people.revoke_key(store, args.key_id, actor="cli"), "_text": f"revoked {args.key_id}"}
    items = people.list_keys(store, args.user)
    return {"keys": items, "_text": "\n".join(
        f"{k['key_id']}  {k['user']:<24} created {str(k['created_at'])[:19]}"
        + (f"  revoked {str(k['revoked_at'])[:19]}" if k["revoked_at"] else "") for k in items) or "no API keys"}


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m core", description="riskdesk command line (see ../shared/design.md)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("ingest", help="load a CSV, Parquet or Excel file as a dataset")
    p.add_argument("file")
    p.add_argument("--dataset", required=True)
    p.add_argument("--map", action="append", metavar="ROLE=COLUMN", help="repeat once per role")
    p.add_argument("--encoding", help="the file's text encoding (default: detected)")
    p.add_argument("--sheet")
    p.add_argument("--time-unit", choices=["s", "ms", "m", "h", "d"],
                   help="the time column holds offsets in this unit (needs --time-origin)")
    p.add_argument("--time-origin", metavar="\"YYYY-MM-DD[ HH:MM:SS]\"",
                   help="what offset 0 stands for (default for a detected offset column: 2024-01-01 00:00:00)")
    p.add_argument("--date-order", choices=["mdy", "dmy"],
                   help="read dates like 08/03/2020 month-first or day-first (default: decided from the column)")
    p.add_argument("--replace", action="store_true")
    p.add_argument("--append", action="store_true", help="add the file as the dataset's next batch (same header)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("batches", help="list a dataset's batches (or delete the newest)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--delete-newest", action="store_true", help="remove the newest batch's rows and rejects")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_batches)

    p = sub.add_parser("datasets", help="list the datasets in the workspace")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("sample", help="write the demo data (CSV or Parquet by extension)")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("features", help="compute point-in-time features (and write them to Parquet)")
    p.add_argument("--dataset", required=True)
    p.add_argument("--out", help="FILE.parquet with transaction_id and one column per feature")
    p.add_argument("--set", choices=["standard", "handbook"], default="standard")
    p.add_argument("--families", help=FAMILIES_HELP)
    p.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                   help="spark: the same definitions on Apache Spark (local, or RISKDESK_SPARK_MASTER)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("train", help="train and compare models on an out-of-time split")
    p.add_argument("--dataset", required=True)
    p.add_argument("--models", default="rules,default,tuned", help="comma list of rules,default,tuned,logistic,forest")
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--time-budget", type=float, help="seconds for tuning (trials stop when it is spent)")
    for name in ("train-start", "train-end", "test-start", "test-end", "valid-start", "valid-end"):
        p.add_argument(f"--{name}", metavar="DATE")
    p.add_argument("--gap-days", type=int, default=0)
    p.add_argument("--random-split", action="store_true", help="random 60/20/20 split (not out-of-time)")
    p.add_argument("--imbalance", default="search", choices=["none", "class_weight", "smote", "search"])
    p.add_argument("--families", help=FAMILIES_HELP)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("score", help="score a dataset (or period) with a model")
    p.add_argument("--model", required=True)
    p.add_argument("--dataset")
    p.add_argument("--start", metavar="DATE")
    p.add_argument("--end", metavar="DATE")
    p.add_argument("--out", required=True, help="FILE.csv or FILE.parquet")
    p.add_argument("--engine", choices=["duckdb", "spark"], default="duckdb",
                   help="spark: features and the LightGBM model on Apache Spark (Parquet out, every transaction)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("explain", help="explain one transaction and export the case (PDF, HTML or JSON)")
    p.add_argument("--model", required=True)
    p.add_argument("--transaction", required=True, metavar="TXID")
    p.add_argument("--dataset", help="default: the model's training dataset")
    p.add_argument("--format", choices=["pdf", "html", "json"], help="default: from --out's extension")
    p.add_argument("--lang", choices=["en", "zh"], default="en")
    p.add_argument("--out", required=True)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("monitor", help="drift (PSI), alerts against capacity and performance of a model on a period")
    p.add_argument("--dataset", help="default: the model's training dataset")
    p.add_argument("--model", required=True)
    p.add_argument("--start", required=True, metavar="DATE")
    p.add_argument("--end", required=True, metavar="DATE")
    p.add_argument("--reference-start", metavar="DATE", help="default: the model's training period")
    p.add_argument("--reference-end", metavar="DATE")
    p.add_argument("--capacity", type=int, default=50, help="alerts the team can review per day")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_monitor)

    p = sub.add_parser("users", help="local accounts and roles: add, list, remove")
    p.add_argument("action", choices=["add", "list", "remove"])
    p.add_argument("name", nargs="?")
    p.add_argument("--role", choices=["analyst", "auditor", "admin"])
    p.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("apikey", help="API keys: create (shown once), list, revoke")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("key_id", nargs="?")
    p.add_argument("--user")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_apikey)

    p = sub.add_parser("demo", help="load the shipped demo data unless it is already loaded")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_demo)
    return parser


FAMILIES_HELP = f"comma list of feature families to compute (default: every one): {', '.join(FAMILIES)}"
PATH_ARGUMENTS = ("file", "out")      # resolved against the caller's folder when the server runs a command


def execute(argv: list[str], cwd: str | None = None, stdin=None) -> tuple[int, str, str]:
    """Run one command; returns (exit code, stdout, stderr). `cwd` is the folder relative file
    paths are read from (the caller's, when the server runs the command for it), `stdin` stands
    in for standard input. Raises WorkspaceBusy when another process holds the workspace."""
    from pathlib import Path

    from .errors import RiskdeskError, WorkspaceBusy

    try:
        args = build_parser().parse_args(argv)
    except _UsageError as exc:
        return 2, "", f"error: {exc}\n"
    for name in PATH_ARGUMENTS:
        if cwd and getattr(args, name, None):
            setattr(args, name, str(Path(cwd) / getattr(args, name)))
    args.stdin = stdin if stdin is not None else sys.stdin
    try:
        result = args.func(args)
    except WorkspaceBusy:
        raise
    except RiskdeskError as exc:
        return 1, "", f"error: {exc}\n"
    except KeyboardInterrupt:
        return 130, "", "error: interrupted\n"
    except Exception as exc:  # unexpected: still one line, no traceback
        if "RISKDESK_DEBUG" in __import__("os").environ:
            raise
        return 1, "", f"error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}\n"
    text = result.pop("_text", None)
    if args.json:
        return 0, json.dumps(result, ensure_ascii=False, default=str) + "\n", ""
    return 0, (text or json.dumps(result, ensure_ascii=False, default=str, indent=2)) + "\n", ""


def main(argv: list[str] | None = None) -> int:
    """The command line: runs the command here, or in the server that holds the workspace."""
    from . import config, localserver
    from .errors import WorkspaceBusy

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        code, out, err = execute(argv)
    except WorkspaceBusy as exc:
        record = localserver.find(config.home())
        if record is None:
            code, out, err = 1, "", f"error: {exc}\n"
        else:
            stdin = sys.stdin.read() if "--password-stdin" in argv else None
            code, out, err = localserver.forward(record, argv, stdin)
    sys.stdout.write(out)
    sys.stderr.write(err)
    return code
