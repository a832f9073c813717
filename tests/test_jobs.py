"""Background jobs: one run per key at a time; with reuse, a result done under the same key
is handed to the next caller instead of computing it again; failures are never reused."""
from core import jobs


def test_a_done_job_is_reused_only_when_asked_and_a_failed_one_never():
    runs = []

    def work(progress):
        runs.append(1)
        return len(runs)

    first = jobs.wait(jobs.start("test-reuse", "reuse", work))
    assert first.status == "done" and first.result == 1
    again = jobs.start("test-reuse", "reuse", work, reuse=True)
    assert again is first and len(runs) == 1
    fresh = jobs.wait(jobs.start("test-reuse", "reuse", work))
    assert fresh is not first and fresh.result == 2

    def fail(progress):
        runs.append(1)
        raise ValueError("no")

    failed = jobs.wait(jobs.start("test-reuse-fail", "fail", fail))
    assert failed.status == "failed"
    retried = jobs.wait(jobs.start("test-reuse-fail", "fail", fail, reuse=True))
    assert retried is not failed and len(runs) == 4
