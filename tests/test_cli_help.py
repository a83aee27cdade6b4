"""The CLI for a newcomer (issue 15): `make help`, `python -m harness list`, fast `--help`, arguments checked
before any work, one error line (no traceback) for user errors, commands saying what they wrote."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import typing
from pathlib import Path

import pytest

from harness import catalog
from harness.cli import main

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


def _run(*args: str, cwd: Path = REPO, env: dict | None = None, timeout: int = 120):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, cwd=cwd,
                          env=env or ENV, timeout=timeout)


def test_catalog_matches_the_registries():
    import methods
    from harness.config import PROFILES
    from harness.data import VALID_SPECS
    from harness.data.cityscapes import CLASS_SETS
    from harness.data.synthetic import PRESETS
    from harness.studies import known_studies
    from methods.config import PostProcess
    assert catalog.METHODS == tuple(methods.available())
    assert catalog.PROFILES == tuple(PROFILES)
    assert catalog.POSTPROCESS == typing.get_args(PostProcess)
    assert catalog.DATASET_SPECS == tuple(VALID_SPECS)
    assert catalog.SYNTHETIC_PRESETS == tuple(PRESETS)
    assert catalog.CITYSCAPES_CLASS_SETS == tuple(CLASS_SETS)
    assert catalog.studies() == known_studies()


def test_help_does_not_import_torch_and_is_fast():
    code = ("import sys, time; t = time.perf_counter(); from harness import cli; p = cli.build_parser()\n"
            "for c in ('train', 'compare', 'study', 'evaluate', 'data', 'list'):\n"
            "    p.parse_known_args([c, '--help']) if False else None\n"
            "print('torch' in sys.modules, 'methods' in sys.modules, time.perf_counter() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=60)
    torch_loaded, methods_loaded, _ = out.stdout.split()
    assert (torch_loaded, methods_loaded) == ("False", "False"), out.stderr
    t0 = time.perf_counter()
    res = _run("--help")
    elapsed = time.perf_counter() - t0
    assert res.returncode == 0 and "list" in res.stdout
    assert elapsed < 3.0, f"--help took {elapsed:.2f} s"  # ~0.25 s idle; 3 s leaves room for a loaded CI machine


def test_study_and_compare_help_name_the_choices():
    study = _run("study", "--help").stdout
    assert "uniinst_table4" in study and "ablation_table1" in study and "harness list" in study
    compare = " ".join(_run("compare", "--help").stdout.split())
    for name in ("solov2_improved", "matrix_linear", "shapes-street", "paper"):
        assert name in compare


def test_list_shows_methods_presets_studies_variants_seeds_specs_profiles(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"solov2_improved\s+preset of solov2: use_cspam=True", out)
    assert re.search(r"uniinst_table4\s+3 seed\(s\), profile quick, 7 variants: alpha=0.0", out)
    assert "coco:ANN.json:IMGDIR" in out and re.search(r"smoke\s+dataset shapes-coco", out)


@pytest.mark.parametrize("args, message", [
    (["compare", "--methods", "", "--profile", "smoke"], "error: --methods is empty"),
    (["compare", "--methods", " , ", "--profile", "smoke"], "error: --methods is empty"),
    (["compare", "--methods", "solov2", "--profile", "smoke", "--seeds", "0"], "error: --seeds must be >= 1, got 0"),
    (["compare", "--methods", "solov2", "--profile", "smoke", "--postprocess", "matrx"],
     "error: unknown post-processing ['matrx']; valid: matrix, matrix_linear"),
    (["study", "ablation_table1", "--seeds", "0"], "error: --seeds must be >= 1"),
    (["study", "no_such_study"], "error: unknown study 'no_such_study'"),
    (["study", "ablation_table1", "--variants", ","], "error: --variants is empty"),
])
def test_bad_arguments_are_rejected_before_any_work(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    import harness.pipeline as pipeline
    monkeypatch.setattr(pipeline, "run_variant", lambda *a, **k: pytest.fail("started work"))
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # no comparison file, no records, no report left behind


def test_io_and_parse_errors_end_in_one_error_line(tmp_path):
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "preds.json").write_text("[]")
    res = _run("evaluate", "--gt", str(tmp_path / "dir.json"), "--predictions", str(tmp_path / "preds.json"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "dir.json" in res.stderr
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe not utf-8")
    res = _run("evaluate", "--gt", str(tmp_path / "bad.json"), "--predictions", str(tmp_path / "preds.json"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "bad.json" in res.stderr
    wd = tmp_path / "wd"
    wd.write_text("a file")
    res = _run("train", "--method", "solov2", "--profile", "smoke", "--no-time", "--no-progress", "--study", "x",
               cwd=tmp_path, env={**ENV, "SEGBENCH_WORK_DIR": str(wd)}, timeout=300)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert f"error: work directory ($SEGBENCH_WORK_DIR or work_dirs) {wd}" in res.stderr


def test_guarded_turns_oserror_into_a_line_with_the_file(capsys):
    from harness.cli_extra import guarded

    def boom(_):
        open("/nonexistent/dir/file.json")

    assert guarded(boom, None) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: /nonexistent/dir/file.json: No such file or directory")


def test_make_help_is_the_default_and_names_every_target():
    out = subprocess.run(["make", "-s", "-C", str(REPO)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("make help")
    listed = {line.split()[1] for line in out.stdout.splitlines() if line.startswith("make ")}
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z0-9-]*):(?!=)", makefile, flags=re.M))
    assert targets - listed == set()
    assert "pip install" not in out.stdout.splitlines()[0]  # bare `make` no longer reinstalls


def test_threads_from_cores_and_processes(monkeypatch):
    from harness import cpu
    monkeypatch.setattr(cpu, "cpu_count", lambda: 8)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv(cpu.THREADS_ENV, raising=False)
    monkeypatch.setenv("SEGBENCH_PROCS", "2")
    assert cpu.auto_threads() == 4 and cpu.auto_threads(3) == 3
    monkeypatch.setenv("WORLD_SIZE", "16")
    assert cpu.auto_threads() == 1


def test_a_launcher_job_keeps_its_threads_through_training(monkeypatch):
    """`--launcher local --jobs 2` without make's SEGBENCH_PROCS: train() asks auto_threads again, which must give
    the job's threads (1 of 2 cores), not all the cores (2 processes x 2 threads ran ~3.5x slower here)."""
    from harness import cpu
    monkeypatch.setattr(cpu, "cpu_count", lambda: 2)
    for name in ("WORLD_SIZE", "SEGBENCH_PROCS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(cpu.THREADS_ENV, raising=False)
    assert cpu.auto_threads() == 2
    monkeypatch.setenv(cpu.THREADS_ENV, "1")
    assert cpu.auto_threads() == 1 and cpu.auto_threads(2) == 2
    monkeypatch.setenv(cpu.THREADS_ENV, "junk")
    assert cpu.auto_threads() == 2


def test_timed_run_warns_when_load_exceeds_cores(monkeypatch, capsys):
    from harness import cpu
    monkeypatch.setattr(cpu, "cpu_count", lambda: 2)
    monkeypatch.setattr(cpu, "load_average", lambda: 9.0)
    assert cpu.warn_if_loaded("timing") is not None
    assert "warning: timing: load average 9.0 exceeds the 2 cores" in capsys.readouterr().err
    monkeypatch.setattr(cpu, "load_average", lambda: 1.0)
    assert cpu.warn_if_loaded("timing") is None
