"""Review decisions on transactions (append-only) and the review queue. How decisions become
training labels is core.labels."""
from __future__ import annotations

from datetime import datetime

from .errors import RiskdeskError
from .store import Store, quote_ident

DECISIONS = ("confirmed_fraud", "legitimate", "escalate")
MAX_NOTE = 4000
OUTCOMES = ("TP", "FP", "FN", "TN")


def record(store: Store, dataset_id: int, transaction_id: str, decision: str, reviewer: str, note: str = "",
           model_id: str | None = None, score: float | None = None) -> dict:
    """Append one review decision (and an audit row). Nothing is ever updated or deleted."""
    if decision not in DECISIONS:
        raise RiskdeskError(f"decision must be one of {', '.join(DECISIONS)} (got {decision!r})")
    reviewer = (reviewer or "").strip()
    if not reviewer:
        raise RiskdeskError("a decision needs the reviewer's name")
    if len(reviewer) > 80:
        raise RiskdeskError("the reviewer's name is longer than 80 characters")
    note = note or ""
    if len(note) > MAX_NOTE:
        raise RiskdeskError(f"the note is longer than {MAX_NOTE} characters")
    table = store.scalar("SELECT table_name FROM datasets WHERE id = ?", [dataset_id])
    if table is None:
        raise RiskdeskError(f"no dataset with id {dataset_id}")
    if not store.scalar(f"SELECT count(*) FROM {quote_ident(table)} WHERE CAST(transaction_id AS VARCHAR) = ?",
                        [str(transaction_id)]):
        raise RiskdeskError(f"no transaction {transaction_id!r} in this dataset")
    now = datetime.now()
    with store.write() as cur:
        decision_id = cur.execute("SELECT nextval('decision_id_seq')").fetchone()[0]
        cur.execute("INSERT INTO decisions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [decision_id, dataset_id, str(transaction_id), decision, note, reviewer, model_id,
                     None if score is None else float(score), now])
        store.audit(cur, reviewer, "review_decision", "transaction", transaction_id,
                    {"decision": decision, "decision_id": decision_id, "dataset_id": dataset_id,
                     "note_chars": len(note)}, model_id=model_id)
    return {"decision_id": int(decision_id), "decided_at": now.isoformat(sep=" ", timespec="seconds")}


def history(store: Store, dataset_id: int, transaction_id: str) -> list[dict]:
    """All decisions on a transaction, oldest first."""
    rows = store.dicts("SELECT decision_id, decision, note, reviewer, model_id, score, decided_at FROM decisions "
                       "WHERE dataset_id = ? AND transaction_id = ? ORDER BY decision_id", [dataset_id, str(transaction_id)])
    for r in rows:
        r["decided_at"] = r["decided_at"].isoformat(sep=" ", timespec="seconds")
    return rows


def is_scored(store: Store, model_id: str) -> bool:
    return bool(store.scalar("SELECT count(*) FROM model_scores WHERE model_id = ? AND part = 'all'", [model_id]))


def revision(store: Store, dataset_id: int) -> int:
    """Changes whenever a decision is recorded on the dataset (a cache key)."""
    return int(store.scalar("SELECT count(*) FROM decisions WHERE dataset_id = ?", [dataset_id]) or 0)


SCORE_SHARE = 0.25      # of the memory cap, for one chunk's features as model input
MIN_SCORE_CHUNK = 10_000


def ensure_scored(store: Store, model_id: str, progress=None) -> None:
    """Keep a score of every transaction of the model's dataset (part 'all' in model_scores):
    the first time all of them, after an append only the days holding new or recomputed rows.
    Scored in chunks of whole days, each small enough to load as the model's input within a
    share of the memory cap (RISKDESK_MEMORY): 10M rows in one frame took 24 GB."""
    from . import config, models
    from .features import build_features
    from .models.frames import frame_bytes
    model = models.get_model(store, model_id)
    fs = build_features(store, models.model_dataset(store, model)["name"], models.feature_config(model))
    days = store.rows(f"SELECT CAST(timestamp AS DATE) AS day, count(*) FROM {fs['table']} f WHERE NOT EXISTS "
                      f"(SELECT 1 FROM model_scores s WHERE s.model_id = ? AND s.part = 'all' "
                      f"AND s.transaction_id = CAST(f.transaction_id AS VARCHAR)) GROUP BY ALL ORDER BY day",
                      [model_id])
    if not days:
        return
    budget = max(MIN_SCORE_CHUNK, int(config.memory_limit() * SCORE_SHARE // frame_bytes(fs, 1)))
    chunks, rows = [[]], 0
    for day, n in days:
        if chunks[-1] and rows + n > budget:
            chunks.append([])
            rows = 0
        chunks[-1].append(day)
        rows += n
    total, done = sum(n for _, n in days), 0
    for chunk in chunks:
        frame = models.score(store, model_id, start=chunk[0], end=chunk[-1])[["transaction_id", "score"]]
        frame["transaction_id"] = frame["transaction_id"].astype(str)
        with store.write() as cur:
            cur.register("new_scores", frame)
            cur.execute("DELETE FROM model_scores WHERE model_id = ? AND part = 'all' AND transaction_id IN "
                        "(SELECT transaction_id FROM new_scores)", [model_id])
            cur.execute("INSERT INTO model_scores SELECT ?, 'all', transaction_id, score FROM new_scores", [model_id])
            cur.unregister("new_scores")
            store.audit(cur, "riskdesk", "score_dataset", "model", model_id,
                        {"rows": len(frame), "dataset": model["dataset_name"], "start": str(chunk[0]),
                         "end": str(chunk[-1])}, model_id=model_id)
        done += len(frame)
        if progress:
            progress(done / total, f"scored {done:,} of {total:,} transactions")


def queue(store: Store, model_id: str, start=None, end=None, bands=None, rule: str | None = None,
          outcomes=None, min_amount: float | None = None, max_amount: float | None = None,
          limit: int = 50, offset: int = 0, verify: float | None = None, block: float | None = None) -> dict:
    """A period's transactions ranked by score, with band (hybrid decision), rules fired,
    outcome at the verify threshold (TP / FP / FN / TN, when labelled) and the latest review
    decision. Filters: bands, one rule id, outcomes, amount range. Returns {"rows": DataFrame
    of one page, "total": matching rows}."""
    from . import models
    from . import rules as rules_mod
    from .models import feature_config
    from .features import build_features
    model = models.get_model(store, model_id)
    ensure_scored(store, model_id)
    fs = build_features(store, models.model_dataset(store, model)["name"], feature_config(model))
    verify = model["threshold"] if verify is None else verify
    block = model["block_threshold"] if block is None else block
    hits = rules_mod.hit_sql(rules_mod.current_rules(store, include_disabled=False), fs)
    fired, fired_params = hits["fired"]
    block_rule, block_params = hits["block"]
    block_value = "'Infinity'::DOUBLE" if block is None else "?"
    where, params = rules_mod.period_sql(start, end)
    base = f"""
        WITH scored AS (
            SELECT f.transaction_id, f.timestamp, f.customer_id, f.amount, f.label, s.score,
                   {fired} AS rules_fired,
                   CASE WHEN {block_rule} OR s.score >= {block_value} THEN 'BLOCK'
                        WHEN s.score >= ? THEN 'VERIFY' ELSE 'PASS' END AS band,
                   CASE WHEN f.label IS NULL THEN NULL
                        WHEN s.score >= ? THEN (CASE WHEN f.label = 1 THEN 'TP' ELSE 'FP' END)
                        ELSE (CASE WHEN f.label = 1 THEN 'FN' ELSE 'TN' END) END AS outcome
            FROM {fs['table']} f JOIN model_scores s
              ON s.model_id = ? AND s.part = 'all' AND s.transaction_id = CAST(f.transaction_id AS VARCHAR)
            {where}
        ), latest AS (
            SELECT transaction_id, arg_max(decision, decision_id) AS review, max(decided_at) AS reviewed_at,
                   count(*) AS decisions
            FROM decisions WHERE dataset_id = ? GROUP BY transaction_id
        )
        SELECT scored.*, latest.review, latest.reviewed_at FROM scored
        LEFT JOIN latest ON latest.transaction_id = CAST(scored.transaction_id AS VARCHAR)"""
    base_params = (fired_params + block_params + ([] if block is None else [float(block)]) + [float(verify), float(verify),
                   model_id] + params + [model["dataset_id"]])
    filters, fparams = [], []
    if bands:
        filters.append(f"band IN ({', '.join('?' * len(bands))})")
        fparams += list(bands)
    if outcomes:
        filters.append(f"outcome IN ({', '.join('?' * len(outcomes))})")
        fparams += list(outcomes)
    if rule:
        filters.append("list_contains(rules_fired, ?)")
        fparams.append(rule)
    if min_amount is not None:
        filters.append("amount >= ?")
        fparams.append(float(min_amount))
    if max_amount is not None:
        filters.append("amount <= ?")
        fparams.append(float(max_amount))
    filtered = f"SELECT * FROM ({base}) q" + (" WHERE " + " AND ".join(filters) if filters else "")
    total = store.scalar(f"SELECT count(*) FROM ({filtered})", base_params + fparams)
    rows = store.df(f"{filtered} ORDER BY score DESC, transaction_id LIMIT ? OFFSET ?",
                    base_params + fparams + [int(limit), int(offset)])
    return {"rows": rows, "total": int(total or 0), "verify": verify, "block": block}
