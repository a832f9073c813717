"""Background jobs for long work (ingest, features, training, SHAP, batch export).

A job runs in a thread so that the page that started it stays responsive and other users are
not blocked; pages poll `get(job_id)`. Starting a job under a key that already has a running
job returns the running one, so a second click never starts a second run.
"""
from __future__ import annotations

import os
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import RiskdeskError


@dataclass
class Job:
    id: str
    key: str
    label: str
    status: str = "running"          # running | done | failed
    progress: float = 0.0
    message: str = ""
    result: Any = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    finished: float | None = None

    @property
    def running(self) -> bool:
        return self.status == "running"

    def report(self, fraction: float, message: str = "") -> None:
        self.progress = max(0.0, min(1.0, float(fraction)))
        if message:
            self.message = message


_jobs: dict[str, Job] = {}
_by_key: dict[str, str] = {}
_lock = threading.Lock()


def start(key: str, label: str, fn: Callable[[Callable[[float, str], None]], Any], reuse: bool = False) -> Job:
    """Run fn(progress) in a thread under `key`; returns the running job if there is one, and
    with `reuse` also the last one done under that key (for results the key fully determines)."""
    with _lock:
        existing = _jobs.get(_by_key.get(key, ""))
        if existing is not None and (existing.running or (reuse and existing.status == "done")):
            return existing
        job = Job(id=uuid.uuid4().hex[:12], key=key, label=label)
        _jobs[job.id] = job
        _by_key[key] = job.id

    def run():
        _yield_to_requests()
        try:
            job.result = fn(job.report)
            job.progress = 1.0
            job.status = "done"
        except RiskdeskError as exc:
            job.error = str(exc)
            job.status = "failed"
        except Exception as exc:  # keep the message one line for the user; log the rest
            job.error = f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"
            job.status = "failed"
            traceback.print_exc()
        finally:
            job.finished = time.time()

    threading.Thread(target=run, name=f"job-{key}", daemon=True).start()
    return job


JOB_NICENESS = 10


def _yield_to_requests() -> None:
    """Lower this job thread's CPU priority (Linux schedules threads one by one), so that pages
    and API requests of the same process go first when the cores are busy; the job still gets
    every idle cycle. Single-threaded LightGBM training runs in this thread."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + JOB_NICENESS))
    except (AttributeError, OSError):            # not Linux, or not allowed: run at normal priority
        pass


def get(job_id: str | None) -> Job | None:
    return _jobs.get(job_id or "")


def running(key: str) -> Job | None:
    job = _jobs.get(_by_key.get(key, ""))
    return job if job is not None and job.running else None


def wait(job: Job, timeout: float = 600) -> Job:
    """Block until the job ends (for the command line and tests)."""
    end = time.time() + timeout
    while job.running and time.time() < end:
        time.sleep(0.05)
    return job
