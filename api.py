"""The REST API (/api/v1), served by the same process as the UI (server.py) on the same
database handle. An interface layer like the pages: it checks who is calling and what they may
do, then calls one core function per request.

Contract (../shared/design.md, REST API): GET /health needs no key; every other path needs
`Authorization: Bearer KEY` (401 without a valid key, 403 without the role), and every error
is `{"error": "..."}` with a 4xx status, never a 5xx for a bad request, and changes nothing.
Writes are audited under the key's user. This module never imports streamlit.
"""
from __future__ import annotations

import logging
import re
from typing import Any, Literal

from fastapi import Depends, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import people
from core.errors import NotFound, RiskdeskError
from core.realtime import MAX_TRANSACTIONS
from core.store import Store, open_store

log = logging.getLogger("riskdesk.api")
MAX_UPLOAD_MB = 200


class Problem(BaseModel):
    error: str


ERRORS = {400: {"model": Problem, "description": "a body that cannot be read (not JSON, not UTF-8)"},
          401: {"model": Problem, "description": "no valid API key"},
          403: {"model": Problem, "description": "the key's role does not allow this"},
          404: {"model": Problem, "description": "no such dataset, model or transaction"},
          422: {"model": Problem, "description": "a bad request: the message names the field"}}

api = FastAPI(title="riskdesk API", version="1", description=__doc__.split("\n\n")[1],
              responses=ERRORS, docs_url="/docs", redoc_url=None)


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, exc: RequestValidationError):
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    return _problem(422, f"{where}: {first.get('msg')}" if where else str(first.get("msg")))


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException):
    """Routing and body-parsing errors (an unknown path, an unreadable body) in the same shape."""
    return _problem(exc.status_code, {404: "no such API path", 405: "method not allowed on this path"}.get(
        exc.status_code, str(exc.detail)))


@api.exception_handler(people.NotSignedIn)
async def _unauthenticated(request: Request, exc: people.NotSignedIn):
    return _problem(401, str(exc))


@api.exception_handler(people.NotAllowed)
async def _forbidden(request: Request, exc: people.NotAllowed):
    return _problem(403, str(exc))


@api.exception_handler(NotFound)
async def _missing(request: Request, exc: NotFound):
    return _problem(404, str(exc))


@api.exception_handler(RiskdeskError)
async def _refused(request: Request, exc: RiskdeskError):
    return _problem(422, str(exc))


@api.exception_handler(Exception)
async def _unexpected(request: Request, exc: Exception):
    log.exception("unexpected error on %s", request.url.path)
    return _problem(500, "internal error (logged on the server)")


# The dependencies are async: each sync one cost a hop to a worker thread and back, per request.
# They are cheap: the store is opened once, and a key is looked up in the database only on the
# first request after a write (core.people.authenticate_key caches it per workspace generation).
async def store() -> Store:
    return open_store()


async def caller(request: Request, db: Store = Depends(store)) -> dict:
    """The user behind the request's API key."""
    header = request.headers.get("authorization", "")
    match = re.fullmatch(r"Bearer\s+(\S+)", header.strip())
    return people.authenticate_key(db, match.group(1) if match else None)


def allowed(action: str):
    async def check(user: dict = Depends(caller)) -> dict:
        people.require(user, action)
        return user
    return check


# -- read --------------------------------------------------------------------------------------------

@api.get("/health", responses={}, summary="Liveness (no key needed)")
def health() -> dict:
    return {"status": "ok"}


class Dataset(BaseModel):
    name: str
    rows: int
    rows_rejected: int
    start: str | None
    end: str | None
    fraud_rate: float | None
    source_sha256: str | None
    roles: list[str]


@api.get("/datasets", summary="The workspace's datasets")
def datasets(user: dict = Depends(allowed("read")), db: Store = Depends(store)) -> dict[str, list[Dataset]]:
    from core.datasets import list_datasets
    return {"datasets": [Dataset(**{k: d.get(k) for k in Dataset.model_fields if k != "roles"},
                                 roles=sorted(d["mapping"])) for d in list_datasets(db)]}


class Model(BaseModel):
    model_id: str
    kind: str
    created_at: str
    champion: bool
    average_precision: float | None
    auc: float | None


@api.get("/datasets/{dataset}/models", summary="A dataset's models, newest first; the champion is marked")
def dataset_models(dataset: str, user: dict = Depends(allowed("read")),
                   db: Store = Depends(store)) -> dict[str, list[Model]]:
    from core import champion, models
    from core.datasets import get_dataset
    get_dataset(db, dataset)
    current = champion.champion(db, dataset)
    return {"models": [Model(model_id=m["model_id"], kind=m["kind"], created_at=str(m["created_at"]),
                             champion=bool(current and current["model_id"] == m["model_id"]),
                             average_precision=(m.get("metrics") or {}).get("test", {}).get("average_precision"),
                             auc=(m.get("metrics") or {}).get("test", {}).get("auc"))
                       for m in models.list_models(db, dataset)]}


# -- score -------------------------------------------------------------------------------------------

class Transaction(BaseModel):
    """One transaction in role names; columns beyond the roles go by the file's header name."""
    model_config = ConfigDict(extra="allow")
    transaction_id: StrictStr = Field(min_length=1, max_length=200)
    timestamp: StrictStr = Field(description="naive date and time, e.g. 2024-04-30 13:05:00")
    amount: StrictFloat | StrictInt
    customer_id: StrictStr | None = None
    balance_before: StrictFloat | StrictInt | None = None
    balance_after: StrictFloat | StrictInt | None = None
    channel: StrictStr | None = None
    transaction_type: StrictStr | None = None
    device_id: StrictStr | None = None
    counterparty_id: StrictStr | None = None


class ScoreRequest(BaseModel):
    dataset: StrictStr
    model_id: StrictStr | None = None
    transactions: list[Transaction] = Field(min_length=1, max_length=MAX_TRANSACTIONS)
    lang: Literal["en", "zh"] = "en"


class RuleFired(BaseModel):
    rule_id: str
    name: str
    action: str
    score: float


class Scored(BaseModel):
    transaction_id: str
    score: float
    decision: Literal["PASS", "VERIFY", "BLOCK"]
    reasons: list[str]
    rules_fired: list[RuleFired]


class ScoreResponse(BaseModel):
    model_id: str
    dataset: str
    results: list[Scored]


@api.post("/score", summary="Score transactions point in time against the stored history (not stored)")
async def score(body: ScoreRequest, user: dict = Depends(allowed("read")),
                db: Store = Depends(store)) -> ScoreResponse:
    # A sync endpoint costs two hops to a worker thread and back (the call, then the response's
    # validation), each waiting for the GIL behind page runs and training. A small request with
    # the dataset's rows in memory is a few ms of Python and is scored here, on the event loop.
    from core.realtime import score_in_memory, score_transactions
    rows = [t.model_dump(exclude_none=True) for t in body.transactions]
    result = score_in_memory(db, body.dataset, rows, body.model_id, body.lang)
    if result is None:
        result = await run_in_threadpool(score_transactions, db, body.dataset, rows, body.model_id, body.lang)
    return ScoreResponse(**result)


# -- cases -------------------------------------------------------------------------------------------

def _case_model(db: Store, dataset: str, model_id: str | None) -> str:
    from core.datasets import get_dataset
    from core.realtime import default_model
    get_dataset(db, dataset)
    return model_id or default_model(db, dataset)["model_id"]


@api.get("/cases/{dataset}/{transaction_id}", summary="The case JSON that `explain --format json` writes")
def case(dataset: str, transaction_id: str, model_id: str | None = Query(None, max_length=200),
         lang: Literal["en", "zh"] = "en", user: dict = Depends(allowed("read")),
         db: Store = Depends(store)) -> dict[str, Any]:
    from core.report import case_record
    return case_record(db, _case_model(db, dataset, model_id), transaction_id, dataset, lang)


@api.get("/cases/{dataset}/{transaction_id}/export", summary="The case as a PDF or offline HTML file",
         response_class=Response, responses={200: {"content": {"application/pdf": {}, "text/html": {}}}})
def case_export(dataset: str, transaction_id: str, format: Literal["pdf", "html"] = "pdf",
                model_id: str | None = Query(None, max_length=200), lang: Literal["en", "zh"] = "en",
                user: dict = Depends(allowed("export")), db: Store = Depends(store)) -> Response:
    from core.report import case_record, render
    record = case_record(db, _case_model(db, dataset, model_id), transaction_id, dataset, lang)
    with db.write() as cur:
        db.audit(cur, user["name"], "case_export", "transaction", transaction_id,
                 {"dataset": dataset, "format": format, "via": "api"}, model_id=record["model_id"])
    media = "application/pdf" if format == "pdf" else "text/html; charset=utf-8"
    safe = re.sub(r"[^\w.-]", "_", transaction_id)[:80]
    return Response(render(record, format), media_type=media,
                    headers={"Content-Disposition": f'attachment; filename="case_{safe}.{format}"'})


class DecisionRequest(BaseModel):
    dataset: StrictStr
    transaction_id: StrictStr = Field(min_length=1, max_length=200)
    decision: Literal["confirmed_fraud", "legitimate", "escalate"]
    note: StrictStr = Field("", max_length=2000)
    model_id: StrictStr | None = None


class DecisionRecorded(BaseModel):
    decision_id: int
    decided_at: str
    reviewer: str


@api.post("/decisions", summary="Record a review decision under the key's user", status_code=201)
def decide(body: DecisionRequest, user: dict = Depends(allowed("review")),
           db: Store = Depends(store)) -> DecisionRecorded:
    from core import cases
    from core.datasets import get_dataset
    ds = get_dataset(db, body.dataset)
    done = cases.record(db, ds["id"], body.transaction_id, body.decision, user["name"], body.note, body.model_id)
    return DecisionRecorded(**done, reviewer=user["name"])


# -- batches -----------------------------------------------------------------------------------------

class BatchLoaded(BaseModel):
    dataset: str
    batch: int
    rows_loaded: int
    rows_rejected: int
    rows_total: int


@api.post("/datasets/{dataset}/batches", summary="Append a batch (same columns as the dataset's first file)",
          status_code=201)
def append_batch(dataset: str, file: UploadFile = File(...), user: dict = Depends(allowed("ingest")),
                 db: Store = Depends(store)) -> BatchLoaded:
    from core.datasets import get_dataset
    from core.ingest import ingest, save_upload
    get_dataset(db, dataset)
    name = (file.filename or "batch.csv").replace("/", "_").replace("\\", "_")[:200]
    size = file.size or 0
    if size > MAX_UPLOAD_MB * 1024 * 1024:
        raise RiskdeskError(f"{name}: larger than {MAX_UPLOAD_MB} MB")
    path = save_upload(db, name, file.file)
    result = ingest(db, path, dataset, source_name=name, actor=user["name"], append=True)
    return BatchLoaded(**{k: result[k] for k in BatchLoaded.model_fields})
