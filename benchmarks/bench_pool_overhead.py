"""Per-job overhead of the local pool: forkserver children against one ``python -m harness.launch job`` process per
job (the pool until 2026-12-05), as a ratio measured in one run.

    python benchmarks/bench_pool_overhead.py [--study uniinst_table6] [--seeds 4] [--jobs 2] [--repeats 3]

In a temporary folder, the study's jobs at the smoke profile are first run once (trained and recorded, not timed).
Then the same jobs, now all recorded, are launched again ``--repeats`` times each way, ``--jobs`` at a time: every
job then does only what any job does around its training (start, imports, building the study and its datasets,
finding its records), which is the overhead a quick-profile study pays once per job.  Prints the median wall time
per job of each way and their ratio (< 1: the forkserver pool is cheaper).  Measure on an idle machine.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _subprocess_pool(jobs, n: int) -> None:
    """The reference: each job in its own ``python -m harness.launch job SPEC``, ``n`` at a time."""
    pending, running = list(jobs), []
    while pending or running:
        while pending and len(running) < n:
            job = pending.pop(0)
            running.append(subprocess.Popen([sys.executable, "-m", "harness.launch", "job", job.to_json()],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            env=dict(os.environ, OMP_NUM_THREADS="1")))
        time.sleep(0.05)
        for p in [p for p in running if p.poll() is not None]:
            if p.returncode != 0:
                raise RuntimeError(f"a reference job failed (exit code {p.returncode})")
            running.remove(p)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", default="uniinst_table6")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    repo = Path(__file__).resolve().parents[1]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))
    sys.path.insert(0, str(repo))
    from harness.launch import run_local_pool, study_jobs

    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["SEGBENCH_WORK_DIR"] = str(Path(tmp) / "wd")
        jobs = study_jobs(args.study, profile="smoke", seeds=args.seeds, threads=1)

        def quiet(msg: str) -> None:
            pass
        first = run_local_pool(jobs, args.jobs, log=quiet)  # trains and records: not timed
        if first.failed:
            raise SystemExit(f"jobs failed before timing: {first.failed}")
        times: dict[str, list[float]] = {"forkserver pool": [], "one process per job": []}
        for _ in range(args.repeats):  # interleaved
            t = time.perf_counter()
            run_local_pool(jobs, args.jobs, log=quiet)
            times["forkserver pool"].append((time.perf_counter() - t) / len(jobs))
            t = time.perf_counter()
            _subprocess_pool(jobs, args.jobs)
            times["one process per job"].append((time.perf_counter() - t) / len(jobs))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{len(jobs)} recorded jobs of {args.study}@smoke, {args.jobs} at a time, median of {args.repeats}:")
    for k, v in med.items():
        print(f"  {k:22s} {v:.2f} s per job (wall / jobs)")
    print(f"ratio forkserver / one process per job: {med['forkserver pool'] / med['one process per job']:.2f}")
    load = os.getloadavg()[0]
    if load > (os.cpu_count() or 1):
        print(f"warning: load average {load:.1f} exceeds the {os.cpu_count()} cores: the ratio is not reliable")


if __name__ == "__main__":
    main()
