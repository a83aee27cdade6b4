"""Launchers (harness/launch.py): a study run by a local process pool or by submitit's local executor gives the
records and the report of a sequential run; a job killed mid-run is resumed by running the study again, with no
run trained twice and no record lost or doubled; the SLURM dry run prints one array and its jobs."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.launch import Job, SlurmOptions, describe_slurm, study_jobs

REPO = Path(__file__).resolve().parents[1]
STUDY = "uniinst_table6"
SMOKE = f"{STUDY}@smoke"  # the study at another profile than its own: records and report of their own


def _harness(cwd: Path, *args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), SEGBENCH_WORK_DIR=str(cwd / "wd"), OMP_NUM_THREADS="1")
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def _records(cwd: Path) -> list[dict]:
    return [json.loads(x) for x in (cwd / "results" / SMOKE / "runs.jsonl").read_text().splitlines() if x.strip()]


def _launches(cwd: Path) -> list[dict]:
    return [json.loads(x) for x in (cwd / "results" / SMOKE / "launches.jsonl").read_text().splitlines()]


def _by_eval(recs: list[dict]) -> dict:
    """(run_id, variant, post-processing) -> metrics; fails on a doubled record."""
    out = {}
    for r in recs:
        key = (r["run_id"], r["variant"], r["config"]["method.postprocess"])
        assert key not in out, f"doubled record {key}"
        out[key] = r["metrics"]
    return out


def _without_wall_clock(report: str) -> str:
    """A report with its wall-clock figures ("0.1 min of training", "0.0 min on cpu") blanked: they measure each
    session (a busy machine makes them differ) and are the only part of a report that is not the records' content."""
    import re
    return re.sub(r"\d+\.\d min", "<t> min", report)


def _study(cwd: Path, *extra: str, seeds: int = 2, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    cwd.mkdir(parents=True, exist_ok=True)
    return _harness(cwd, "study", STUDY, "--profile", "smoke", "--seeds", str(seeds), "--no-progress", *extra,
                    env_extra=env_extra)


@pytest.mark.slow
def test_pool_and_submitit_local_match_a_sequential_run(tmp_path):
    pytest.importorskip("submitit")
    runs = {}
    for name, extra in (("sequential", ()), ("local", ("--launcher", "local", "--jobs", "2")),
                        ("submitit", ("--launcher", "submitit-local", "--jobs", "2"))):
        res = _study(tmp_path / name, *extra)
        assert res.returncode == 0, res.stdout + res.stderr
        # the pool's children (forked from its forkserver) release what they made: no resource-tracker warning
        assert "leaked semaphore" not in res.stderr, res.stderr
        runs[name] = tmp_path / name
    seq = _by_eval(_records(runs["sequential"]))
    assert len(seq) == 2 * 2  # two variants x two seeds, one evaluation each
    report = _without_wall_clock((runs["sequential"] / "reports" / f"{SMOKE}.md").read_text())
    for name in ("local", "submitit"):
        assert _by_eval(_records(runs[name])) == seq, name
        assert _without_wall_clock((runs[name] / "reports" / f"{SMOKE}.md").read_text()) == report, name
    assert list((runs["submitit"] / "wd" / "submitit" / SMOKE).glob("*/*_log.out"))
    logs = list((runs["local"] / "wd" / "launch" / SMOKE).glob("*.log"))
    assert len(logs) == 4 and all("record(s)" in p.read_text() for p in logs)  # each child's output in its log


@pytest.mark.slow
def test_a_job_killed_mid_run_is_resumed_without_training_twice_or_doubling_records(tmp_path):
    cwd = tmp_path / "killed"
    victim = "w/ aux@s1"
    res = _study(cwd, "--launcher", "local", "--jobs", "2", env_extra={"SEGBENCH_TEST_KILL_JOB": victim})
    # the killed job is reported with its log; the others went on and were recorded; the report says incomplete
    assert res.returncode == 1
    assert f"FAILED {victim} (killed by signal 9); log: " in res.stdout
    recs = _records(cwd)
    assert len(recs) == 3 and "w/ aux" not in {r["variant"] for r in recs if r["seed"] == 1}
    assert "Incomplete: 3 of the 6 evaluations" in (cwd / "reports" / f"{SMOKE}.md").read_text()  # 3 seeds asked
    (first,) = _launches(cwd)  # the launch is recorded: 4 jobs, 4 runs to train, one of them lost
    assert (first["jobs"], first["runs"], first["runs_trained"], first["done"], first["failed"]) == (4, 4, 4, 3, 1)
    assert first["processes"] == 2 and first["threads_per_job"] == 1 and first["wall_s"] > 0
    runs = {p.name: p for p in (cwd / "wd").iterdir() if p.is_dir() and p.name.startswith("uniinst-")}
    finished = {n: (p / "model_final.pth").stat().st_mtime_ns for n, p in runs.items()
                if (p / "final.json").is_file()}
    (killed,) = set(runs) - set(finished)
    assert len(finished) == 3 and (runs[killed] / "checkpoints" / "last.pth").is_file()

    res = _study(cwd, "--launcher", "local", "--jobs", "2")
    assert res.returncode == 0, res.stdout + res.stderr
    recs = _records(cwd)
    assert len(_by_eval(recs)) == len(recs) == 4  # nothing lost, nothing doubled
    # runs finished before the kill were not trained again; the killed one resumed from its checkpoint
    for n, mtime in finished.items():
        assert (runs[n] / "model_final.pth").stat().st_mtime_ns == mtime
        assert json.loads((runs[n] / "final.json").read_text())["resumed_from"] == 0
    assert json.loads((runs[killed] / "final.json").read_text())["resumed_from"] == 2
    assert "Incomplete: 4 of the 6 evaluations" in (cwd / "reports" / f"{SMOKE}.md").read_text()
    second = _launches(cwd)[1]  # only the killed run was left to train
    assert (second["jobs"], second["runs"], second["runs_trained"], second["done"], second["failed"]) == (4, 4, 1, 4, 0)
    # running the study again (in this process's launcher) trains and records nothing
    res = _study(cwd)
    assert res.returncode == 0 and len(_records(cwd)) == 4


def test_jobs_of_a_study_and_their_json_round_trip():
    jobs = study_jobs(STUDY, profile="smoke", seeds=2, overrides=["train.max_iter=2"], threads=1)
    assert [j.name for j in jobs] == ["w/o aux@s0", "w/ aux@s0", "w/o aux@s1", "w/ aux@s1"]
    assert all(Job.from_json(j.to_json()) == j for j in jobs)
    assert jobs[1].slug == "w__aux@s0"
    with pytest.raises(KeyError, match="no variant 'nope'"):
        study_jobs(STUDY, variants=["nope"])
    only = study_jobs(STUDY, profile="smoke", seeds=3, only_seeds=[1, 2], variants=["w/ aux"])
    assert [j.name for j in only] == ["w/ aux@s1", "w/ aux@s2"]


def test_study_cli_only_seeds_rejects_bad_values(tmp_path):
    res = _harness(tmp_path, "study", "uniinst_table6", "--profile", "smoke", "--only-seeds", "x,1")
    assert res.returncode == 2 and "--only-seeds expects" in res.stderr


def test_slurm_dry_run_prints_one_array_and_every_job(tmp_path):
    res = _harness(tmp_path, "study", "ablation_table1", "--profile", "paper", "--launcher", "slurm", "--dry-run",
                   "--partition", "gpu", "--nodes", "2", "--gpus-per-job", "8", "--cpus-per-job", "80",
                   "--timeout-min", "1440", "--array-parallelism", "8")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0] == "slurm array 'segbench-ablation_table1@paper': 24 job(s), at most 8 running at once"
    assert "2 node(s) x 8 GPU(s), 8 task(s) per node (16 process(es), one run trained with torch.distributed" \
        in lines[1]
    assert "10 CPU(s) per task, partition gpu, time limit 1440 min" in lines[1]
    assert sum(1 for ln in lines if ln.startswith("  [")) == 24
    assert "profile paper" in lines[-1]
    assert not (tmp_path / "wd").exists() or not list((tmp_path / "wd").rglob("*.pkl"))  # nothing submitted


def test_slurm_executor_parameters():
    p = SlurmOptions(partition="p", nodes=2, gpus_per_job=4, cpus_per_job=32, timeout_min=60,
                     array_parallelism=3).executor_parameters("s")
    assert p == {"name": "segbench-s", "nodes": 2, "tasks_per_node": 4, "gpus_per_node": 4, "cpus_per_task": 8,
                 "timeout_min": 60, "slurm_array_parallelism": 3, "slurm_signal_delay_s": 120,
                 "slurm_partition": "p"}
    lines = describe_slurm([Job("s", "v", 0)], SlurmOptions(), "s")
    assert "(1 process(es))" in lines[1] and lines[-1].startswith("  [0] v@s0")


def test_submitit_checkpoint_hook_requeues_the_same_job():
    submitit = pytest.importorskip("submitit")
    from harness.launch import StudyJob
    job = Job(STUDY, "w/ aux", 1, "smoke")
    delayed = StudyJob(job).checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert delayed.function.job == job


@pytest.mark.slow
def test_submitit_job_with_two_tasks_trains_one_run_with_torch_distributed(tmp_path):
    """The multi-GPU / multi-node path of the SLURM launcher, run by submitit's local executor on the CPU: two
    tasks of one job get RANK / WORLD_SIZE / MASTER_ADDR from submitit's JobEnvironment and train one run together
    (gloo); rank 0 alone records."""
    pytest.importorskip("submitit")
    cwd = tmp_path / "ddp"
    res = _study(cwd, "--variants", "w/ aux", "--launcher", "submitit-local", "--gpus-per-job", "2", seeds=1)
    assert res.returncode == 0, res.stdout + res.stderr
    (rec,) = _records(cwd)
    final = json.loads(Path(rec["train"]["run_dir"], "final.json").read_text())
    assert final["world_size"] == 2 and rec["variant"] == "w/ aux"


def test_slurm_launcher_submits_one_array_then_a_report_job_after_it(tmp_path, monkeypatch):
    """The submission path with submitit's executor replaced by a recorder (no SLURM here)."""
    submitit = pytest.importorskip("submitit")
    import harness.launch as launch
    made = []

    class FakeJob:
        def __init__(self, job_id):
            self.job_id = job_id

    class FakeExecutor:
        def __init__(self, folder, cluster, **kw):
            self.folder, self.cluster, self.kw, self.params, self.subs, self.in_batch = folder, cluster, kw, {}, [], 0
            made.append(self)

        def update_parameters(self, **kw):
            self.params.update(kw)

        def batch(self):
            import contextlib

            @contextlib.contextmanager
            def ctx():
                self.in_batch += 1
                yield
            return ctx()

        def submit(self, fn, *args):
            self.subs.append((fn, args))
            return FakeJob(f"777_{len(self.subs) - 1}" if self.in_batch else "778")

    monkeypatch.setattr(submitit, "AutoExecutor", FakeExecutor)
    monkeypatch.setenv("SEGBENCH_WORK_DIR", str(tmp_path / "wd"))
    jobs = study_jobs(STUDY, profile="paper", seeds=2)
    out = launch.run_submitit(jobs, cluster="slurm", study=jobs[0].study, opts=SlurmOptions(partition="gpu", nodes=2,
                                                                                   gpus_per_job=4), log=lambda _: None)
    array, report = made
    assert array.cluster == "slurm" and array.in_batch == 1 and len(array.subs) == 4
    assert array.params["nodes"] == 2 and array.params["tasks_per_node"] == 4 and array.params["gpus_per_node"] == 4
    assert [fn.job for fn, _ in array.subs] == jobs and all(isinstance(fn, launch.StudyJob) for fn, _ in array.subs)
    assert report.params["slurm_additional_parameters"] == {"dependency": "afterany:777"}
    assert jobs[0].study == f"{STUDY}@paper" and report.subs == [(launch._write_report, (jobs[0].study,))]
    assert out.done == ["777_0", "777_1", "777_2", "777_3", "778"]
    assert str(tmp_path / "wd" / "submitit" / f"{STUDY}@paper") in array.folder


def test_a_local_job_stopped_by_submitits_restart_cap_is_resubmitted_only_when_it_asked_to_be_requeued(tmp_path):
    """harness/launch.py reads the job's log: the last submitit line "Requeued job ... (K remaining timeouts)" with
    no result pickle means the local controller's cap stopped it (resubmit, K left); anything else is a failure."""
    from types import SimpleNamespace

    from harness.launch import _local_requeues_left

    def job(log, result=False):
        out, pkl = tmp_path / f"{len(list(tmp_path.iterdir()))}_log.out", tmp_path / f"r{len(log)}_{result}.pkl"
        out.write_text(log)
        if result:
            pkl.write_bytes(b"x")
        return SimpleNamespace(paths=SimpleNamespace(stdout=out, result_pickle=pkl))

    requeued = ("submitit INFO (2026-12-02) - Starting with JobEnvironment(job_id=2046)\ntrain it 27\n"
                "submitit INFO (2026-12-02) - Job has timed out. Ran 0 minutes.\n"
                "submitit INFO (2026-12-02) - Requeued job 2046 (14 remaining timeouts)\n")
    assert _local_requeues_left(job(requeued)) == 14
    assert _local_requeues_left(job(requeued, result=True)) == 0  # it finished after all
    failed = "submitit ERROR (2026-12-02) - Submitted job triggered an exception\n"
    assert _local_requeues_left(job(requeued + failed)) == 0
    assert _local_requeues_left(job("Traceback ...\nRuntimeError: CUDA out of memory\n")) == 0
    assert _local_requeues_left(job(requeued.replace("(14 remaining", "(0 remaining"))) == 0  # none left: failed


@pytest.mark.slow
def test_submitit_job_past_its_time_limit_is_requeued_and_resumes_from_its_checkpoint(tmp_path):
    """submitit's time-out path: USR2 before the limit -> StudyJob.checkpoint -> the same job again, which resumes
    the run from its last checkpoint; one record in the end.

    The test sends the USR2 itself, to the job's task, once the run has written its first checkpoint: a limit short
    enough for submitit's local controller to signal by itself would leave no iteration to a slow or loaded CPU
    (startup alone took 12 s of an 18-s attempt on an AMD EPYC beside two trainings, so no attempt ever reached a
    checkpoint). With a limit under 50 min submitit counts any USR2 as a time-out (``SignalHandler.has_timed_out``:
    guaranteed wall time ``min(0.8 limit, limit - 10 min)`` < 0), so this is the time-out path, countdown included."""
    pytest.importorskip("submitit")
    import signal
    import time
    cwd = tmp_path / "requeue"
    cwd.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), SEGBENCH_WORK_DIR=str(cwd / "wd"), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "harness", "study", STUDY, "--profile", "smoke", "--seeds", "1", "--no-progress",
           "--variants", "w/ aux", "--launcher", "submitit-local", "--timeout-min", "5",
           "--set", "train.max_iter=60", "--set", "train.checkpoint_period=5"]
    parent = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        task = None
        while task is None and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.2)
            ckpts = list((cwd / "wd").glob("uniinst-*-s0/checkpoints/last.pth"))
            controllers = [int(d.name) for d in (cwd / "wd" / "submitit" / SMOKE).glob("[0-9]*")]
            if ckpts and controllers:  # the job's task: the child of submitit's local controller (job id = its pid)
                kids = Path(f"/proc/{controllers[0]}/task/{controllers[0]}/children")
                pids = kids.read_text().split() if kids.exists() else []
                task = int(pids[0]) if pids else None
        assert task is not None, "no checkpoint written, or no submitit task found, within 240 s"
        os.kill(task, signal.SIGUSR2)
        out = parent.communicate(timeout=300)[0]
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == 0, out
    (rec,) = _records(cwd)
    final = json.loads(Path(rec["train"]["run_dir"], "final.json").read_text())
    logs = "".join(p.read_text() for p in (cwd / "wd" / "submitit" / SMOKE).glob("*/*_log.out"))
    assert "Job has timed out" in logs and "Requeued job" in logs and "(19 remaining timeouts)" in logs
    assert final["iterations"] == 60 and final["resumed_from"] >= 5


@pytest.mark.slow
def test_ctrl_c_stops_every_child_of_the_local_pool(tmp_path):
    import re
    import signal
    import time
    cwd = tmp_path / "ctrl_c"
    cwd.mkdir()
    env = dict(os.environ, PYTHONPATH=str(REPO), SEGBENCH_WORK_DIR=str(cwd / "wd"), OMP_NUM_THREADS="1")
    # A test run from a background shell (`cmd &`, nohup) inherits SIGINT ignored, and Python then installs no
    # KeyboardInterrupt handler: the parent gets Ctrl-C's default back, as an interactive terminal gives it.
    parent = subprocess.Popen([sys.executable, "-m", "harness", "study", STUDY, "--profile", "smoke", "--seeds", "2",
                               "--no-progress", "--launcher", "local", "--jobs", "2", "--set", "train.max_iter=100000"],
                              cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    pids, lines = [], []
    try:
        deadline = time.monotonic() + 120
        while len(pids) < 2 and time.monotonic() < deadline:
            line = parent.stdout.readline()
            lines.append(line)
            pids += [int(m) for m in re.findall(r"started .* \(pid (\d+),", line)]
        assert len(pids) == 2, "".join(lines)
        time.sleep(3)  # the children are training
        parent.send_signal(signal.SIGINT)
        out = parent.communicate(timeout=60)[0]
        assert parent.returncode == 130 and "interrupted: every job stopped" in out
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:  # a failure must not leave the parent or its 100000-iteration children running
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if parent.poll() is None:
            parent.kill()
            parent.wait()


@pytest.mark.slow
def test_compare_through_the_pool_matches_a_sequential_compare(tmp_path):
    args = ("compare", "--methods", "solov2,uniinst", "--dataset", "shapes-coco", "--profile", "smoke",
            "--study", "cmp", "--no-time", "--no-progress")
    for name, extra in (("sequential", ()), ("local", ("--launcher", "local", "--jobs", "2"))):
        (tmp_path / name).mkdir()
        res = _harness(tmp_path / name, *args, *extra)
        assert res.returncode == 0, res.stdout + res.stderr
    recs = {n: [json.loads(x) for x in (tmp_path / n / "results" / "cmp" / "runs.jsonl").read_text().splitlines()]
            for n in ("sequential", "local")}
    assert len(recs["local"]) == 2 and _by_eval(recs["local"]) == _by_eval(recs["sequential"])
    assert (tmp_path / "local" / "results" / "cmp" / "compare.json").read_text() == \
        (tmp_path / "sequential" / "results" / "cmp" / "compare.json").read_text()
    assert _without_wall_clock((tmp_path / "local" / "reports" / "cmp.md").read_text()) == \
        _without_wall_clock((tmp_path / "sequential" / "reports" / "cmp.md").read_text())


def test_gpus_are_handed_out_one_per_job_and_shared_only_when_all_are_busy(monkeypatch):
    from harness.launch import _free_gpus, visible_gpus
    assert _free_gpus(["0", "1", "2"], {"0"}, 1) == ["1"]
    assert _free_gpus(["0", "1"], {"0", "1"}, 1) == ["0"]
    assert _free_gpus(["0", "1", "2", "3"], {"1"}, 2) == ["0", "2"]
    assert _free_gpus([], set(), 0) == []
    import torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpus() == ["3", "5"]


def test_a_report_shows_the_wall_time_of_the_latest_launch_that_trained_the_whole_study(tmp_path):
    from harness.launch import record_launch
    from harness.studies import at_profile, launch_notes, load_study
    study = at_profile(load_study(STUDY), "smoke")
    jobs = len(study.variants) * study.seeds
    assert launch_notes(study, tmp_path) == []  # no launch recorded: nothing to say
    base = {"study": study.name, "launcher": "local", "jobs": jobs, "done": jobs, "failed": 0, "runs": jobs,
            "runs_trained": jobs, "processes": 2, "threads_per_job": 1, "load_avg_1m_at_start": 0.1}
    record_launch(study.name, {**base, "started_utc": "2026-12-01T10:00:00Z", "wall_s": 600.0}, root=tmp_path)
    # later launches that measure less than the whole study: one reused finished runs, one lost a job, one ran
    # part of the study; none of them replaces the first
    record_launch(study.name, {**base, "started_utc": "2026-12-02T10:00:00Z", "wall_s": 60.0, "runs_trained": 1},
                  root=tmp_path)
    record_launch(study.name, {**base, "started_utc": "2026-12-03T10:00:00Z", "wall_s": 500.0, "failed": 1,
                               "done": jobs - 1}, root=tmp_path)
    record_launch(study.name, {**base, "started_utc": "2026-12-04T10:00:00Z", "wall_s": 90.0, "jobs": 1,
                               "runs": 1, "runs_trained": 1}, root=tmp_path)
    (note,) = launch_notes(study, tmp_path)
    assert f"10.0 min for {jobs} jobs ({jobs} runs trained) on 2 processes x 1 thread(s)" in note
    assert "2026-12-01T10:00:00Z" in note
    record_launch(study.name, {**base, "started_utc": "2026-12-05T10:00:00Z", "wall_s": 720.0}, root=tmp_path)
    (note,) = launch_notes(study, tmp_path)  # a later whole-study launch is the one shown
    assert "12.0 min" in note and "2026-12-05T10:00:00Z" in note
