"""Newcomer-facing behaviour of issue 15: report warnings at the top, honest chart labels with values, UniInst
Table 4 on one axis, unclipped titles, study progress with an ETA, dataset generation progress, README facts."""
from __future__ import annotations

import io
import re
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from harness.report import bar_chart, ci_label, write_report

REPO = Path(__file__).resolve().parents[1]


def _fig() -> Figure:
    fig = Figure(figsize=(6.4, 4.0), dpi=60)
    FigureCanvasAgg(fig)
    return fig


def test_report_warnings_stand_at_the_top(tmp_path):
    md, _ = write_report("s", [("Results", pd.DataFrame({"a": [1.0]}))], ["a note"], None, tmp_path,
                         warnings=["Mixed schedules: these rows combine runs ..."])
    text = md.read_text()
    assert text.index("> **Warning:** Mixed schedules") < text.index("## Results") < text.index("## Notes")


def test_study_report_puts_mixed_schedules_first(monkeypatch, tmp_path):
    from harness import studies
    from harness.studies import Study, Variant
    st = Study(name="x", title="X", source="test", variants=(Variant(name="v", method="solov2"),), seeds=2)
    recs = [{"variant": "v", "seed": s, "method": "solov2", "metrics": {"AP": 1.0}, "data": {}, "timing": None,
             "config": {}, "params": None, "flops": None, "env": {}, "train": {}} for s in (0, 1)]
    monkeypatch.setattr(studies, "study_records", lambda name: recs)
    monkeypatch.setattr(studies, "mixed_schedule_note", lambda study, records: ["Mixed schedules: test"])
    monkeypatch.setattr(studies, "default_report",
                        lambda study, records: studies.ReportSpec(tables=[("Results", pd.DataFrame({"a": [1]}))],
                                                                  notes=["n"], figure=None))
    monkeypatch.setattr(studies, "training_notes", lambda r: [])
    monkeypatch.setattr(studies, "compute_notes", lambda r: [])
    monkeypatch.chdir(tmp_path)
    md, _ = studies.write_study_report(st)
    text = Path(md).read_text()
    assert text.index("Mixed schedules: test") < text.index("## Results")


def test_single_seed_bars_are_not_labelled_ci_and_bars_carry_values():
    assert ci_label([1, 1]) == "mask AP (one seed: no confidence interval)"
    assert "95% CI" in ci_label([3, 3]) and "one seed have no CI" in ci_label([3, 1])
    df = pd.DataFrame({"method": ["a", "b"], "AP": [12.34, 5.0], "n": [1, 1]})
    fig = _fig()
    bar_chart(df, "AP", title="a title " * 20)(fig)
    ax = fig.axes[0]
    assert "CI" not in ax.get_ylabel().replace("no confidence interval", "")
    texts = [t.get_text() for t in ax.texts]
    assert "12.3" in texts and "5.0" in texts
    fig.canvas.draw()  # the wrapped title fits inside the figure
    bbox = ax.title.get_window_extent()
    assert bbox.x0 >= 0 and bbox.x1 <= fig.bbox.width + 1
    assert "\n" in ax.get_title()


def test_default_study_figure_labels_one_seed_honestly():
    from harness import studies
    from harness.studies import Study, Variant
    st = Study(name="x", title="A long study title that would be clipped " * 3, source="t",
               variants=(Variant(name="v", method="solov2"),), seeds=1)
    recs = [{"variant": "v", "seed": 0, "method": "solov2", "metrics": {"AP": 7.25}, "data": {}, "timing": None,
             "config": {}, "params": None, "flops": None, "env": {}, "train": {}, "run_id": "r", "kind": "eval"}]
    spec = studies.default_report(st, recs)
    fig = _fig()
    spec.figure(fig)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "mask AP (one seed: no confidence interval)"
    assert "7.2" in [t.get_text() for t in ax.texts] or "7.3" in [t.get_text() for t in ax.texts]


def test_uniinst_table4_plots_ours_and_paper_on_one_axis():
    import experiments.uniinst_table4 as t4
    recs = []
    for k, a in enumerate(t4.ALPHAS):
        for seed in (0, 1):
            recs.append({"variant": t4.name(a), "seed": seed, "method": "uniinst", "run_id": f"r{k}{seed}",
                         "kind": "eval", "metrics": {"AP": 10.0 + k + seed, "AP50": 20.0, "AP75": 5.0}, "data": {},
                         "timing": None, "config": {}, "params": None, "flops": None, "env": {}, "train": {}})
    spec = t4.build_report(t4.STUDY, recs)
    fig = _fig()
    spec.figure(fig)
    assert len(fig.axes) == 1  # no twin axis
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert any("paper" in lab for lab in labels)


def test_study_progress_names_variant_run_k_of_n_and_eta(monkeypatch):
    import time

    from harness.studies import StudyProgress
    clock = iter([0.0, 0.0, 100.0, 100.0])
    monkeypatch.setattr(time, "perf_counter", lambda: next(clock))
    out = io.StringIO()
    p = StudyProgress("ablation_table1", 3, out=out)
    first = p.start("+CSPAM", 0)
    p.done()
    second = p.start("+AML", 0)
    assert first == "[ablation_table1] run 1 / 3: variant +CSPAM, seed 0; elapsed 0m00s, ETA unknown"
    assert re.fullmatch(r"\[ablation_table1\] run 2 / 3: variant \+AML, seed 0; elapsed 1m40s, ETA 3m20s", second)


def test_dataset_generation_shows_progress(tmp_path, capsys):
    from harness.data.synthetic import generate
    generate("shapes-coco", "train", 60, 32, 0, tmp_path)
    err = capsys.readouterr().err
    assert "generating shapes-coco/train: 60 images at 32 px" in err
    assert "generate shapes-coco/train: 30 / 60 images" in err and "generated shapes-coco/train in" in err
    generate("shapes-coco", "train", 60, 32, 0, tmp_path)  # cached: silent
    assert capsys.readouterr().err == ""


def test_readme_states_the_facts():
    text = (REPO / "README.md").read_text()
    assert "5.8 GB" in text and "CUDA" in text
    assert re.search(r"at the top[^.]*\(\"Mixed schedules\"\)|\"Mixed schedules\"[^.]*at the top", text)
