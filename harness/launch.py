"""Launchers: where the jobs of a study (or a ``compare``) run: this process, a local pool, submitit (local, SLURM).

A study is a list of independent jobs, one per (variant, seed) (``study_jobs``); a job trains its run if needed,
evaluates it and appends its records (``run_job`` -> ``harness.studies.run_one`` -> ``harness.pipeline``).  Jobs
are idempotent, so every launcher resumes every study: a job whose records exist appends nothing, a finished run
is never trained again, an unfinished one resumes from ``checkpoints/last.pth``.  Launchers only decide where
jobs run (after submitit's executors, as DETR, ConvNeXt and MAE launch their grids):

* ``local`` (``--jobs 1``): the jobs in this process, in order (a failure stops the study, as before).
* ``local --jobs N``: a pool of N child processes, one per job (``PoolChild``: forked from a multiprocessing
  forkserver that has imported torch and the harness once, then ``main(["job", SPEC])`` as
  ``python -m harness.launch job SPEC`` runs it), each with ``cores // N`` torch threads unless
  ``--threads-per-job`` or ``--set train.threads=`` says otherwise.  One process per job rather than
  ``concurrent.futures``: a child killed by the OOM killer (or by hand) is one failed job with its log, where it
  would break a ``ProcessPoolExecutor`` and every job queued on it.  A failed job is
  reported with its log (``work_dirs/launch/<study>/<job>.log``) and the others go on; Ctrl-C stops every child
  (SIGTERM to its process group, SIGKILL after 10 s); the report is written once, at the end.
* ``submitit-local``: submitit's ``LocalExecutor`` (at most ``--jobs`` at a time), the code path of the SLURM
  launcher run without SLURM (tests, a workstation).  Logs under ``work_dirs/submitit/<study>/``.
* ``slurm``: one SLURM job array per study through submitit (``--partition``, ``--nodes``, ``--gpus-per-job``
  GPUs per node with one task per GPU, ``--cpus-per-job`` CPUs per node, ``--timeout-min``,
  ``--array-parallelism``), then a one-CPU report job that starts after the array (``afterany``).  A job preempted
  or timed out is requeued by submitit's checkpoint hook (``StudyJob.checkpoint``), which resubmits the same job:
  it resumes the run from its last checkpoint and skips what is recorded.  With several tasks (``--nodes`` x
  ``--gpus-per-job`` > 1) the tasks of a job train one run together through torch.distributed (env:// from
  submitit's ``JobEnvironment``: MASTER_ADDR / MASTER_PORT / RANK / WORLD_SIZE / LOCAL_RANK).  ``--dry-run``
  prints the array and its jobs without submitting.

Records from many processes and nodes: ``harness.records.append_record`` checks and appends under one file lock
(``filelock``, i.e. ``flock``), so two copies of a job never leave two records.  On a shared filesystem the lock
must work across nodes (NFSv4, or NFSv3 with lockd; Lustre mounted with ``-o flock``; GPFS / BeeGFS do) and
``results/``, ``work_dirs/`` and ``.cache/`` must be on it (README, "Studies on a cluster").
"""
from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

LAUNCHERS = ("local", "submitit-local", "slurm")
KILL_GRACE_S = 10.0
LAUNCHES_FILE = "launches.jsonl"  # results/<study>/launches.jsonl: one line per pool launch (record_launch)
# test hook: a job whose name equals this kills itself (SIGKILL) right after its first training checkpoint
TEST_KILL_ENV = "SEGBENCH_TEST_KILL_JOB"


@dataclass(frozen=True)
class Job:
    """One (variant, seed) of a study, as a plain value that crosses process and machine boundaries.

    Attributes:
        study: study name (``experiments/<study>.py``).
        variant: the variant's name in the study.
        seed: the seed.
        profile: profile name, or None for the study's own.
        overrides: extra ``section.key=value`` overrides (the command line's ``--set``).
        threads: torch intra-op threads for the job (0: leave torch's default).
        progress: progress bars.
    """

    study: str
    variant: str
    seed: int
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    threads: int = 0
    progress: bool = False
    compare: str = ""  # a ``compare`` invocation's spec (JSON) when the job is one of its methods x seeds

    @property
    def name(self) -> str:
        return f"{self.variant}@s{self.seed}"

    @property
    def slug(self) -> str:
        """``name`` as a file name."""
        return "".join(c if c.isalnum() or c in "-_.@" else "_" for c in self.name)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Job:
        d = json.loads(text)
        d["overrides"] = tuple(d.get("overrides", ()))
        return cls(**d)


def study_jobs(name: str, *, profile: str | None = None, seeds: int | None = None,
               overrides: list[str] | tuple[str, ...] = (), variants: list[str] | None = None,
               threads: int = 0, progress: bool = False, only_seeds: list[int] | None = None) -> list[Job]:
    """The jobs of study ``name`` in run order (seed-major, as ``Study.configs``); ``only_seeds``: just these.

    Raises:
        KeyError: unknown study, or a variant not in the study (the message lists its variants).
    """
    from harness.studies import at_profile, join_variant_names, load_study
    study = at_profile(load_study(name), profile)  # another profile than the study's: "<name>@<profile>"
    names = [v.name for v in study.variants]
    variants = join_variant_names(variants, names)
    unknown = [v for v in (variants or []) if v not in names]
    if unknown:
        raise KeyError(f"study {name!r} has no variant {unknown[0]!r}; its variants: {', '.join(names)}")
    n_seeds = seeds if seeds is not None else study.seeds
    return [Job(study.name, v, s, profile, tuple(overrides), threads, progress)
            for s in range(n_seeds) for v in names
            if (not variants or v in variants) and (only_seeds is None or s in only_seeds)]


def run_job(job: Job, reuse: bool | None = None) -> int:
    """Run one job in this process: the variant at its seed, trained if needed, evaluated, recorded.

    ``reuse``: copy identical evaluations from other studies (None: the study's ``reuse_records``).
    Returns the number of records of the job (new and already present).
    """
    import torch

    from harness.cpu import THREADS_ENV
    from harness.studies import load_study, run_one
    saved = os.environ.get(THREADS_ENV)
    if job.threads:  # training and timing set their threads again through harness.cpu.auto_threads: tell it
        os.environ[THREADS_ENV] = str(job.threads)
        torch.set_num_threads(job.threads)
    try:
        if os.environ.get(TEST_KILL_ENV) == job.name:
            _kill_after_first_checkpoint()
        if job.compare:  # a comparison: its own study built from the spec; never copies (as run_compare)
            from harness.studies import _compare_study
            study, reuse = _compare_study(job.study, json.loads(job.compare)), False
        else:
            study = load_study(job.study)
        for v, seed, cfg in study.configs(job.profile, job.seed + 1, job.overrides):
            if v.name == job.variant and seed == job.seed:
                return len(run_one(study, v, cfg, job.profile, job.overrides, job.progress, reuse=reuse) or [])
    finally:  # a job run in this process (the sequential path, submitit) leaves the environment as it was
        if job.threads:
            if saved is None:
                os.environ.pop(THREADS_ENV, None)
            else:
                os.environ[THREADS_ENV] = saved
    raise KeyError(f"study {job.study!r} has no variant {job.variant!r}")


def _kill_after_first_checkpoint() -> None:
    """Test hook (``TEST_KILL_ENV``): SIGKILL this process once its training has written a checkpoint, i.e. a
    job killed mid-run, between a checkpoint and the end of training."""
    import harness.train as train_mod
    save = train_mod._save_checkpoint

    def save_then_die(*args, **kwargs):
        save(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    train_mod._save_checkpoint = save_then_die


# ---------------------------------------------------------------------------------------------
# local process pool
@dataclass
class Outcome:
    """What happened to the jobs of one launch: names of the jobs done and (name, log path, reason) failed."""

    done: list[str] = field(default_factory=list)
    failed: list[tuple[str, str, str]] = field(default_factory=list)


def _say(msg: str) -> None:
    print(msg, flush=True)


def default_threads(n_jobs: int) -> int:
    """Torch threads per job when ``n_jobs`` share this machine: ``cores // n_jobs``, at least 1."""
    return max(1, (os.cpu_count() or 1) // max(1, n_jobs))


def _log_root(kind: str, study: str) -> Path:
    from harness.runs import work_root
    return work_root() / kind / study


def run_local_pool(jobs: list[Job], n: int, *, log=_say) -> Outcome:
    """Run ``jobs`` in at most ``n`` child processes at a time (module docstring).

    Raises:
        KeyboardInterrupt: after stopping every child.
    """
    out = Outcome()
    pending = list(jobs)
    running: dict[PoolChild, tuple[Job, Path, list[str]]] = {}
    gpus = visible_gpus()

    def on_term(signum, frame):  # SIGTERM (a scheduler, `timeout`) stops the children as Ctrl-C does
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        while pending or running:
            while pending and len(running) < n:
                job = pending.pop(0)
                log_path = _log_root("launch", job.study) / f"{job.slug}.log"
                log_path.parent.mkdir(parents=True, exist_ok=True)
                env = dict(os.environ)
                if job.threads:
                    env.update(OMP_NUM_THREADS=str(job.threads), MKL_NUM_THREADS=str(job.threads),
                               SEGBENCH_THREADS=str(job.threads))
                gpu = _free_gpus(gpus, {g for _, _, gs in running.values() for g in gs}, 1 if gpus else 0)
                if gpu:
                    env["CUDA_VISIBLE_DEVICES"] = ",".join(gpu)
                with open(log_path, "ab") as f:
                    f.write(f"# {time.strftime('%Y-%m-%dT%H:%M:%S')} job {job.to_json()}\n".encode())
                p = start_child(job, log_path, env)
                running[p] = (job, log_path, gpu)
                log(f"[{job.study}] started {job.name} (pid {p.pid}, {job.threads or 'default'} threads"
                    + (f", GPU {gpu[0]}" if gpu else "") + f", log {log_path})")
            time.sleep(0.1)
            for p in [p for p in running if p.poll() is not None]:
                job, log_path, _ = running.pop(p)
                if p.returncode == 0:
                    out.done.append(job.name)
                    log(f"[{job.study}] done {job.name}")
                else:
                    why = (f"killed by signal {-p.returncode}" if p.returncode < 0
                           else f"exit code {p.returncode}")
                    out.failed.append((job.name, str(log_path), why))
                    log(f"[{job.study}] FAILED {job.name} ({why}); log: {log_path}")
    except KeyboardInterrupt:
        log(f"interrupted: stopping {len(running)} running job(s)")
        stop_children(list(running))
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
    return out


class PoolChild:
    """One job of the local pool in a process forked from the pool's forkserver (``start_child``): the part of
    ``subprocess.Popen`` that ``run_local_pool`` and ``stop_children`` use (``pid``, ``poll``, ``returncode``,
    ``wait``); a negative return code is the signal that killed it."""

    def __init__(self, proc) -> None:
        self.proc = proc
        self.pid = proc.pid

    def poll(self) -> int | None:
        return self.proc.exitcode

    @property
    def returncode(self) -> int | None:
        return self.proc.exitcode

    def wait(self) -> int | None:
        self.proc.join()
        return self.proc.exitcode


_PRELOAD = ["harness.launch", "harness.studies", "harness.pipeline"]


def _forkserver_context():
    """multiprocessing's forkserver, which imports torch and the harness once (``_PRELOAD``): a job forked from it
    skips the ~3 s of imports of ``python -m harness.launch job`` (``benchmarks/bench_pool_overhead.py``: 8 recorded
    smoke jobs, 2 at a time, 0.07 s of wall per job against 1.70 s, 2026-12-05).  The server runs no torch
    operation (no OpenMP pool, no CUDA context), so each child sets its own threads and GPUs."""
    import multiprocessing as mp
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _pool_child(spec: str, log_path: str, env: dict[str, str]) -> None:
    """A pool child's entry (in the forked process): its own session (Ctrl-C and ``stop_children`` reach it as a
    process group), the job's environment, stdout and stderr appended to the job's log, then ``main``."""
    os.setsid()
    os.environ.clear()
    os.environ.update(env)
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    # multiprocessing ends the child with os._exit after its own clean-up (the semaphores a child's tqdm made are
    # released there; os._exit here would leave one per job to the resource tracker's "leaked semaphore" warning)
    sys.exit(main(["job", spec]))


def start_child(job: Job, log_path: Path, env: dict[str, str]) -> PoolChild:
    """Start ``job`` as a pool child (``PoolChild``) writing to ``log_path`` with environment ``env``."""
    proc = _forkserver_context().Process(target=_pool_child, args=(job.to_json(), str(log_path), env),
                                         name=f"job {job.name}")
    proc.start()
    return PoolChild(proc)


def visible_gpus() -> list[str]:
    """The GPUs this process may hand to its jobs (``CUDA_VISIBLE_DEVICES`` entries, else 0..count-1)."""
    import torch
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = [x.strip() for x in env.split(",") if x.strip()] if env else [str(i) for i in range(n)]
    return ids[:n]


def _free_gpus(gpus: list[str], busy: set[str], k: int) -> list[str]:
    """``k`` GPUs of ``gpus`` not in ``busy`` (all of them when every GPU is busy: jobs then share, as before)."""
    free = [g for g in gpus if g not in busy] or gpus
    return free[:k]


def stop_children(procs: list, grace_s: float = KILL_GRACE_S) -> None:
    """SIGTERM every child's process group, then SIGKILL what is still alive after ``grace_s``.

    ``procs``: ``subprocess.Popen`` or ``PoolChild`` objects, each the leader of its own process group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, sig)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace_s
        while sig == signal.SIGTERM and any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.1)
    for p in procs:
        p.wait()


# ---------------------------------------------------------------------------------------------
# submitit
class StudyJob:
    """The callable submitit pickles and runs: one ``Job``, on every task of a (possibly multi-node) job.

    ``checkpoint`` is submitit's preemption / time-out hook: it returns the same job for requeueing; the job then
    resumes (``harness.train`` restarts from ``checkpoints/last.pth``; recorded evaluations are skipped).
    """

    def __init__(self, job: Job) -> None:
        self.job = job

    def __call__(self) -> int:
        export_torch_distributed_env()
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            # every rank of the job joins the process group before the pipeline, so that is_main() holds on rank 0
            # only, even when the run is already trained and train() (which would initialise it) is skipped; no
            # copying from other studies (rank 0 alone would copy and stop while the others went on to train)
            import torch

            from harness import distributed as dist_utils
            dist_utils.init_from_env("cuda" if torch.cuda.is_available() else "cpu")
            return run_job(self.job, reuse=False)
        return run_job(self.job)

    def checkpoint(self, *args, **kwargs):
        import submitit
        return submitit.helpers.DelayedSubmission(StudyJob(self.job))


def export_torch_distributed_env() -> None:
    """Inside a submitit job with several tasks: export MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK
    (``submitit.helpers.TorchDistributedEnvironment``) for ``harness.distributed``'s env:// initialisation.  Every
    GPU of the node stays visible (``harness.distributed`` picks ``cuda:LOCAL_RANK``)."""
    try:
        import submitit
        env = submitit.JobEnvironment()
    except (ImportError, RuntimeError):  # not inside a submitit job
        return
    if env.num_tasks > 1:
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


@dataclass(frozen=True)
class SlurmOptions:
    """``--partition``, ``--nodes``, ``--gpus-per-job`` (per node, one task each), ``--cpus-per-job`` (per node),
    ``--timeout-min``, ``--array-parallelism``."""

    partition: str | None = None
    nodes: int = 1
    gpus_per_job: int = 1
    cpus_per_job: int = 10
    timeout_min: float = 4320
    array_parallelism: int = 64

    @property
    def tasks_per_node(self) -> int:
        return max(1, self.gpus_per_job)

    def executor_parameters(self, study: str) -> dict:
        """Parameters for ``submitit.AutoExecutor.update_parameters`` (cluster "slurm")."""
        p = {"name": f"segbench-{study}", "nodes": self.nodes, "tasks_per_node": self.tasks_per_node,
             "gpus_per_node": self.gpus_per_job, "cpus_per_task": max(1, self.cpus_per_job // self.tasks_per_node),
             "timeout_min": max(1, int(self.timeout_min)), "slurm_array_parallelism": self.array_parallelism,
             "slurm_signal_delay_s": 120}
        if self.partition:
            p["slurm_partition"] = self.partition
        return p


def describe_slurm(jobs: list[Job], opts: SlurmOptions, study: str) -> list[str]:
    """The lines ``--dry-run`` prints: the array, its per-job resources, and one line per job."""
    folder = _log_root("submitit", study)
    world = opts.nodes * opts.tasks_per_node
    params = opts.executor_parameters(study)
    lines = [
        f"slurm array {params['name']!r}: {len(jobs)} job(s), at most {opts.array_parallelism} running at once",
        f"  each job: {opts.nodes} node(s) x {opts.gpus_per_job} GPU(s), {opts.tasks_per_node} task(s) per node "
        f"({world} process(es)" + (", one run trained with torch.distributed (nccl), env:// from submitit's "
                                    "JobEnvironment)" if world > 1 else ")")
        + f", {params['cpus_per_task']} CPU(s) per task, partition {opts.partition or '(cluster default)'}, "
          f"time limit {params['timeout_min']} min",
        "  preempted or timed out: requeued by submitit's checkpoint hook, resumes from the run's last checkpoint "
        "(recorded evaluations are skipped)",
        f"  logs: {folder}/<array id>_<index>/*_log.out / .err; then one report job (afterany on the array)",
        "  executor parameters: " + json.dumps(params, sort_keys=True),
    ]
    for i, job in enumerate(jobs):
        extra = "".join(f" --set {o}" for o in job.overrides)
        lines.append(f"  [{i}] {job.name}: variant {job.variant!r}, seed {job.seed}, profile "
                     f"{job.profile or '(study default)'}{extra}")
    return lines


LOCAL_MAX_TIMEOUTS = 20  # time-outs (requeues) a job may have, as slurm_max_num_timeout on SLURM
# submitit's local controller (submitit/local/local.py, ``Controller.run(max_retry=6)``) restarts a requeued job at
# most 6 times in all and then stops without a result, whatever the job's time-out countdown says
LOCAL_CONTROLLER_ATTEMPTS = 6
_REQUEUED = re.compile(r"Requeued job \S+ \((\d+) remaining timeouts\)")


def _local_requeues_left(sj) -> int:
    """For a submitit local job that ended without a result: the time-outs it had left when its last attempt asked
    to be requeued (its log's last "Requeued job ... (K remaining timeouts)" line, when that is the log's last
    submitit action), else 0 -- a job that failed for any other reason is not resubmitted."""
    try:
        if sj.paths.result_pickle.exists():
            return 0
        lines = [x for x in Path(sj.paths.stdout).read_text(errors="replace").splitlines() if "submitit " in x]
    except OSError:
        return 0
    m = _REQUEUED.search(lines[-1]) if lines else None
    return int(m.group(1)) if m else 0


def run_submitit(jobs: list[Job], *, cluster: str, study: str, n: int = 1, opts: SlurmOptions | None = None,
                 log=_say, timeout_min: float = 24 * 60) -> Outcome:
    """Run ``jobs`` through submitit: ``cluster="local"`` (``LocalExecutor``, at most ``n`` at a time, waits) or
    ``"slurm"`` (one array + a report job; returns once submitted, with ``Outcome.done`` = the job ids)."""
    import submitit
    folder = _log_root("submitit", study)
    folder.mkdir(parents=True, exist_ok=True)
    if cluster == "slurm":
        opts = opts or SlurmOptions()
        ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm", slurm_max_num_timeout=20)
        ex.update_parameters(**opts.executor_parameters(study))
        subs = []
        if jobs:
            with ex.batch():  # one array: SLURM schedules it as one entry, --array-parallelism at a time
                subs = [ex.submit(StudyJob(j)) for j in jobs]
        array = subs[0].job_id.split("_")[0] if subs else None
        rep = submitit.AutoExecutor(folder=str(folder / "%j"), cluster="slurm")
        rep.update_parameters(name=f"segbench-{study}-report", nodes=1, tasks_per_node=1, cpus_per_task=1,
                              timeout_min=60, **({"slurm_partition": opts.partition} if opts.partition else {}),
                              slurm_additional_parameters={"dependency": f"afterany:{array}"} if array else {})
        rjob = rep.submit(_write_report, study)
        log(f"[{study}] submitted array {array} ({len(subs)} jobs) and report job {rjob.job_id}; logs: {folder}")
        return Outcome(done=[s.job_id for s in subs] + [rjob.job_id])
    # a job past its time limit gets USR2, checkpoints (StudyJob.checkpoint) and is restarted in place by submitit's
    # local controller, resuming from the run's last checkpoint, up to max_num_timeout times
    ex = submitit.LocalExecutor(folder=str(folder / "%j"), max_num_timeout=LOCAL_MAX_TIMEOUTS)
    tasks = opts.tasks_per_node if opts else 1  # --gpus-per-job N: N processes train each run together (DDP)
    # the preemption / time-out signal (USR2) comes signal_delay_s before the time limit, as on SLURM
    ex.update_parameters(timeout_min=timeout_min, signal_delay_s=int(max(1, min(120, timeout_min * 30))),
                         tasks_per_node=tasks)
    gpus = [int(g) for g in visible_gpus() if g.isdigit()]
    out = Outcome()
    pending, running = list(jobs), {}
    try:
        while pending or running:
            while pending and len(running) < n:
                job = pending.pop(0)
                if gpus:  # each job its own GPUs (submitit sets CUDA_VISIBLE_DEVICES to them)
                    mine = [int(g) for g in _free_gpus([str(g) for g in gpus], {str(g) for _, _, gs in
                                                                             running.values() for g in gs}, tasks)]
                    ex.update_parameters(gpus_per_node=len(mine), visible_gpus=mine)
                else:  # no GPU: the tasks still get ranks (gloo); submitit only sets CUDA_VISIBLE_DEVICES
                    mine = []
                    ex.update_parameters(gpus_per_node=tasks if tasks > 1 else 0)
                sj = ex.submit(StudyJob(job))
                running[sj.job_id] = (job, sj, mine)
                log(f"[{study}] started {job.name} (submitit job {sj.job_id}, log {sj.paths.stdout})")
            time.sleep(0.2)
            for jid in [k for k, (_, sj, _) in running.items() if sj.done()]:
                job, sj, mine = running.pop(jid)
                try:
                    sj.results()  # every task's (one per process of a multi-process job)
                    out.done.append(job.name)
                    log(f"[{study}] done {job.name}")
                except Exception as e:  # noqa: BLE001 -- any failure of a job is reported, the others go on
                    left = _local_requeues_left(sj)
                    if left:  # the local controller's own cap, not a failure: the same job again, resuming
                        ex.max_num_timeout = left - 1
                        sj2 = ex.submit(StudyJob(job))
                        ex.max_num_timeout = LOCAL_MAX_TIMEOUTS
                        running[sj2.job_id] = (job, sj2, mine)
                        log(f"[{study}] {job.name}: submitit's local controller stopped after "
                            f"{LOCAL_CONTROLLER_ATTEMPTS} attempts with {left} time-out(s) left; resubmitted as job "
                            f"{sj2.job_id}, resuming from its last checkpoint (log {sj2.paths.stdout})")
                        continue
                    why = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
                    out.failed.append((job.name, str(sj.paths.stderr), why))
                    log(f"[{study}] FAILED {job.name} ({why}); log: {sj.paths.stderr}")
    except KeyboardInterrupt:
        log(f"interrupted: stopping {len(running)} running job(s)")
        procs = [sj._process for _, sj, _ in running.values() if getattr(sj, "_process", None) is not None]
        for _, sj, _ in running.values():
            sj.cancel()
        stop_children(procs)
        raise
    return out


def _write_report(study: str) -> str:
    """The report job of a SLURM launch: a study's report, or a saved comparison's."""
    from harness.studies import regenerate_reports
    return " ".join(str(p) for p in regenerate_reports([study]))


# ---------------------------------------------------------------------------------------------
# the command line
def add_launcher_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("launcher (harness/launch.py)")
    g.add_argument("--launcher", default="local", choices=LAUNCHERS,
                   help="where the jobs run: local (this process, or a pool with --jobs N), submitit-local, slurm")
    g.add_argument("--jobs", type=int, default=1, help="jobs at a time (local, submitit-local); default 1")
    g.add_argument("--threads-per-job", type=int, default=0,
                   help="torch threads per job (default: cores // jobs when --jobs > 1)")
    g.add_argument("--partition", default=None, help="slurm: partition")
    g.add_argument("--nodes", type=int, default=1, help="slurm: nodes per job (one run trained across them)")
    g.add_argument("--gpus-per-job", type=int, default=1, help="slurm: GPUs per node of each job, one task each")
    g.add_argument("--cpus-per-job", type=int, default=10, help="slurm: CPUs per node of each job")
    g.add_argument("--timeout-min", type=float, default=4320,
                   help="slurm, submitit-local: time limit per job in minutes (requeued past it, resuming)")
    g.add_argument("--array-parallelism", type=int, default=64, help="slurm: array tasks running at once")
    g.add_argument("--dry-run", action="store_true", help="print the jobs (and the SLURM array) without running")


def job_threads(args) -> int:
    """Torch threads per job: ``--threads-per-job``, else the CPUs of a task (slurm), else cores // jobs (a pool),
    else 0 (torch's default, one job at a time)."""
    if args.threads_per_job:
        return args.threads_per_job
    if args.launcher == "slurm":
        return max(1, args.cpus_per_job // max(1, args.gpus_per_job))
    return default_threads(args.jobs) if args.jobs > 1 else 0


def runs_to_train(jobs: list[Job]) -> tuple[int, int]:
    """(runs of ``jobs`` with no finished training yet, distinct trainable runs of ``jobs``): what a launch will
    train, counted before it starts (two variants that share a run count it once).  Each distinct dataset is
    built once to fill ``num_classes`` (``harness.pipeline.build_split``), not once per job."""
    from harness.pipeline import build_split, is_trainable
    from harness.runs import is_finished, run_dir_for
    from harness.studies import load_study
    from harness.train import resolve_num_classes
    datasets: dict[tuple, object] = {}
    runs: dict[Path, bool] = {}
    for j in jobs:
        if j.compare:  # a comparison's jobs are built from their spec, not from a study file
            continue
        for v, seed, cfg in load_study(j.study).configs(j.profile, j.seed + 1, j.overrides):
            if (v.name, seed) != (j.variant, j.seed) or not is_trainable(cfg):
                continue
            if cfg.data not in datasets:
                datasets[cfg.data] = build_split(cfg, "train")
            d = run_dir_for(resolve_num_classes(cfg, datasets[cfg.data]))
            runs[d] = runs.get(d, False) or not is_finished(d)
    return sum(runs.values()), len(runs)


def record_launch(study: str, fields: dict, root: str | os.PathLike = "results") -> Path:
    """Append one launch's line to ``<root>/<study>/launches.jsonl`` (under a file lock, as run records).

    ``fields``: study, launcher, jobs / done / failed (counts), runs (distinct trainable runs of the jobs),
    runs_trained (those with no finished training when the launch began), processes, threads_per_job (0: torch's
    default), started_utc, wall_s (seconds from the first job's start to the last one's end, as the launcher's
    clock measured them), load_avg_1m_at_start.  The git commit and the machine (``harness.records.git_info``,
    ``env_info``: cpu_count, cpu_model) are added.  Reports show the latest launch that trained every run of the
    study (``harness.studies.launch_notes``): the study's wall time, which records of single runs cannot give.
    """
    from filelock import FileLock

    from harness.records import env_info, git_info
    env = env_info("cpu")
    rec = {**fields, **git_info(), "cpu_count": env.get("cpu_count"), "cpu_model": env.get("cpu_model"),
           "torch": env.get("torch")}
    path = Path(root) / study / LAUNCHES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"), open(path, "a") as f:
        f.write(json.dumps(rec, sort_keys=True) + "\n")
    return path


def launch_study(args, log=_say) -> int:
    """``python -m harness study NAME --launcher ...`` (everything but the in-process ``--jobs 1`` path).

    Returns the exit code: 0 when every job succeeded (the report is written), 1 when some failed (the report of
    what is recorded is written too, marked incomplete), 2 for bad usage.
    """
    from harness.studies import at_profile, load_study, write_study_report
    if args.jobs < 1 or args.nodes < 1 or args.gpus_per_job < 0:
        log("error: --jobs and --nodes must be >= 1")
        return 2
    variants = [v.strip() for v in args.variants.split(",") if v.strip()] if args.variants else None
    n = args.jobs
    threads = job_threads(args)
    jobs = study_jobs(args.name, profile=args.profile, seeds=args.seeds, overrides=args.overrides,
                      variants=variants, threads=threads, progress=False,
                      only_seeds=getattr(args, "only_seeds_list", None))
    study = at_profile(load_study(args.name), args.profile)
    opts = SlurmOptions(partition=args.partition, nodes=args.nodes, gpus_per_job=args.gpus_per_job,
                        cpus_per_job=args.cpus_per_job, timeout_min=args.timeout_min,
                        array_parallelism=args.array_parallelism)
    if args.dry_run:
        if args.launcher == "slurm":
            lines = describe_slurm(jobs, opts, study.name)
        else:
            lines = [f"{args.launcher}: {len(jobs)} job(s), {n} at a time, {threads or 'default'} torch threads each"]
            lines += [f"  [{i}] {j.name}" for i, j in enumerate(jobs)]
        for line in lines:
            print(line)
        return 0
    from harness.records import utc_now
    try:  # for the launch record; a job whose config cannot be built fails below with its own log, as before
        to_train, total = runs_to_train(jobs)
    except (KeyError, ValueError, OSError) as e:
        log(f"[{study.name}] note: runs to train not counted ({type(e).__name__}: {e}); the launch record says so")
        to_train = total = None
    started, load0 = utc_now(), os.getloadavg()[0]
    t0 = time.perf_counter()
    try:
        if args.launcher == "local":
            out = run_local_pool(jobs, n, log=log)
        elif args.launcher == "submitit-local":
            out = run_submitit(jobs, cluster="local", study=study.name, n=n, opts=opts, log=log,
                               timeout_min=args.timeout_min)
        else:
            run_submitit(jobs, cluster="slurm", study=study.name, opts=opts, log=log)
            return 0
    except KeyboardInterrupt:
        log(f"[{study.name}] interrupted: every job stopped; the same command resumes the study")
        return 130
    wall = time.perf_counter() - t0
    log(f"[{study.name}] {len(out.done)} job(s) done, {len(out.failed)} failed, {wall:.0f} s")
    if jobs:
        record_launch(study.name, {
            "study": study.name, "launcher": args.launcher, "jobs": len(jobs), "done": len(out.done),
            "failed": len(out.failed), "runs": total, "runs_trained": to_train, "processes": n,
            "threads_per_job": threads, "started_utc": started, "wall_s": round(wall, 1),
            "load_avg_1m_at_start": round(load0, 2)})
    try:
        md, _ = write_study_report(study)
        log(f"[{study.name}] report: {md}")
    except FileNotFoundError as e:
        log(f"[{study.name}] no report: {e}")
    for name, path, why in out.failed:
        log(f"[{study.name}] failed: {name} ({why}); log: {path}; run the same command again to resume")
    return 1 if out.failed else 0


def launch_compare(args, names: list[str], postprocess: list[str] | None, log=_say) -> int:
    """``python -m harness compare ... --launcher local --jobs N`` (or submitit-local / slurm): the comparison's
    methods x seeds as jobs; the report is written once they are done (slurm: by ``harness report`` later)."""
    from harness.studies import run_compare
    n = args.jobs
    threads = job_threads(args)
    opts = SlurmOptions(partition=args.partition, nodes=args.nodes, gpus_per_job=args.gpus_per_job,
                        cpus_per_job=args.cpus_per_job, timeout_min=args.timeout_min,
                        array_parallelism=args.array_parallelism)
    state: dict = {}

    def runner(study, spec) -> None:
        text = json.dumps(spec, sort_keys=True)
        jobs = [Job(study.name, v.name, seed, None, (), threads, False, text)
                for seed in range(study.seeds) for v in study.variants]
        if args.dry_run:
            lines = (describe_slurm(jobs, opts, study.name) if args.launcher == "slurm" else
                     [f"{args.launcher}: {len(jobs)} job(s), {n} at a time"] + [f"  [{i}] {j.name}"
                                                                              for i, j in enumerate(jobs)])
            print("\n".join(lines))
            raise _DryRun
        if args.launcher == "local":
            state["out"] = run_local_pool(jobs, n, log=log)
        elif args.launcher == "submitit-local":
            state["out"] = run_submitit(jobs, cluster="local", study=study.name, n=n,
                                        opts=opts, log=log, timeout_min=args.timeout_min)
        else:
            from harness.studies import write_compare_spec
            write_compare_spec(study.name, dict(spec))  # the report job regenerates the report from it
            run_submitit(jobs, cluster="slurm", study=study.name, opts=opts, log=log)
            raise _Submitted
    try:
        md = run_compare(names, study=args.study, profile=args.profile, dataset=args.dataset,
                         val_dataset=args.val_dataset, seeds=args.seeds, overrides=args.overrides,
                         postprocess=postprocess, do_time=not args.no_time, progress=False, protocol=args.protocol,
                         runner=runner)
    except (_DryRun, _Submitted):
        return 0
    except KeyboardInterrupt:
        log(f"[{args.study}] interrupted: every job stopped; the same command resumes the comparison")
        return 130
    except FileNotFoundError as e:  # no record at all: every job failed
        log(f"[{args.study}] no report: {e}")
    out = state.get("out") or Outcome()
    for name, path, why in out.failed:
        log(f"[{args.study}] failed: {name} ({why}); log: {path}; run the same command again to resume")
    if not out.failed and md:
        print(md)
    return 1 if out.failed else 0


class _DryRun(Exception):
    pass


class _Submitted(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    """``python -m harness.launch job SPEC``: run one job (the local pool's child process)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "job":
        print("usage: python -m harness.launch job '<Job as JSON>'", file=sys.stderr)
        return 2
    job = Job.from_json(argv[1])
    try:
        n = run_job(job)
    except Exception:  # noqa: BLE001 -- the parent reports the job as failed with this log
        traceback.print_exc()
        return 1
    print(f"job {job.name}: {n} record(s)")
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # every record, checkpoint and log line is written and closed by now: skip the interpreter's teardown (about 1 s
    # of freeing torch's modules per job, 2026-12-05), which holds the next job of a pool slot back for nothing
    os._exit(code)
