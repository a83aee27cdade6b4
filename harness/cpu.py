"""CPU threads and load: how many torch threads a process takes, and a warning when the machine is busy.

Under contention, more torch threads than free cores is much slower, not faster: on a 2-core machine at load 9,
2 threads per process ran 5x slower than 1 (0.71 vs 3.37 it/s).  So ``auto_threads`` gives each process
``cores // processes`` threads (at least 1), where the processes are the DDP world size (``WORLD_SIZE``) or the
processes sharing a study (``SEGBENCH_PROCS``, which ``make ... JOBS=N`` sets), unless ``SEGBENCH_THREADS``
names the threads outright (the launchers set it to a job's threads: ``--threads-per-job``, or cores //
``--jobs``); ``warn_if_loaded`` warns at the start of a timed run when the 1-minute load average already exceeds
the cores.
"""
from __future__ import annotations

import os
import sys


def cpu_count() -> int:
    """Cores this process may run on (the affinity mask where the platform has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def processes() -> int:
    for name in ("WORLD_SIZE", "SEGBENCH_PROCS"):
        try:
            n = int(os.environ.get(name, "0"))
        except ValueError:
            continue
        if n > 0:
            return n
    return 1


THREADS_ENV = "SEGBENCH_THREADS"


def auto_threads(requested: int = 0) -> int:
    """``requested`` when > 0, else ``SEGBENCH_THREADS`` when set to a positive integer (a launcher's job threads),
    else ``cpu_count() // processes()`` (at least 1)."""
    if requested > 0:
        return requested
    try:
        env = int(os.environ.get(THREADS_ENV, "0"))
    except ValueError:
        env = 0
    return env if env > 0 else max(1, cpu_count() // processes())


def load_average() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def warn_if_loaded(what: str) -> str | None:
    """Print (stderr) and return a warning when the 1-minute load average exceeds the cores; else None."""
    load, cores = load_average(), cpu_count()
    if load is None or load <= cores:
        return None
    msg = (f"warning: {what}: load average {load:.1f} exceeds the {cores} cores; figures measured now are slower "
           "than on an idle machine and not comparable (let other jobs finish, or use fewer processes)")
    print(msg, file=sys.stderr)
    return msg
