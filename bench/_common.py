"""Shared helpers for the benchmark scripts: demo data of a given size, timing, a busy core."""
from __future__ import annotations

import multiprocessing
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
sys.path.insert(0, str(ROOT))


def demo_file(rows: int, suffix: str = ".csv") -> Path:
    """The demo generator's output with `rows` rows, cached in bench/out/. Above a million rows,
    a multiple of it: the 1M file that many times over, with disjoint customers, devices and
    transaction ids (made by DuckDB: the generator would need the whole frame in memory)."""
    from core.sample import write_sample
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"demo_{rows}{suffix}"
    if path.exists():
        return path
    if rows > 1_000_000 and rows % 1_000_000 == 0 and suffix == ".csv":
        import duckdb
        base = demo_file(1_000_000)
        copies = rows // 1_000_000
        con = duckdb.connect()
        con.execute(f"COPY (SELECT trans_id || '_' || k AS trans_id, user_id || '_' || k AS user_id, "
                    f"* EXCLUDE (trans_id, user_id, device_id), device_id || '_' || k AS device_id "
                    f"FROM read_csv('{base}', header = true, all_varchar = true), range({copies}) r(k)) "
                    f"TO '{path}' (FORMAT csv, HEADER true)")
        con.close()
        return path
    write_sample(path, rows=rows, seed=42)
    return path


def timed(fn, repeat: int = 3) -> tuple[float, list[float]]:
    """Median wall time of fn() over `repeat` runs."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


def timed_pairs(first, second, repeat: int = 3) -> tuple[float, float, list[float]]:
    """Median wall times of first() and second() run alternately, and the median of the
    per-pair ratios second/first: on a noisy machine both sides of a pair see the same load."""
    a, b = [], []
    for _ in range(repeat):
        for fn, times in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return statistics.median(a), statistics.median(b), [y / x for x, y in zip(a, b)]


def _spin(stop):
    while not stop.is_set():
        sum(i * i for i in range(10_000))


@contextmanager
def busy_core(enabled: bool = True):
    """Keep one core busy in another process (design.md, Threads)."""
    if not enabled:
        yield
        return
    stop = multiprocessing.Event()
    proc = multiprocessing.Process(target=_spin, args=(stop,), daemon=True)
    proc.start()
    try:
        yield
    finally:
        stop.set()
        proc.join(5)


def peak_rss_mb() -> float:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_child(script: str, args: list[str], env: dict | None = None) -> dict:
    """Run `script` in a fresh Python process (a whole-process measurement) and return the
    JSON object its last line prints; exits with its error if it fails."""
    import json
    import subprocess
    proc = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(args)} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])
