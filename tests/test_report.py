"""Tests of harness.report: formatting, the comparison table, byte-identical regeneration."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.report import (
    bar_chart,
    comparison_table,
    fmt_mean_ci,
    format_table,
    markdown_table,
    write_report,
)

T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # Student t quantile, 2 df (closed form)


def rec(method, variant, seed, ap, kind="eval", **extra) -> dict:
    return {"method": method, "variant": variant, "seed": seed, "kind": kind,
            "metrics": {"AP": ap} if ap is not None else {}, **extra}


RECORDS = [
    rec("solov2", "base", 0, 30.0), rec("solov2", "base", 1, 31.0), rec("solov2", "base", 2, 32.0),
    rec("solov2", "+cspam", 0, 40.0), rec("solov2", "+cspam", 0, 41.0),  # re-evaluation replaces
    rec("solov2", "base", 0, None, kind="time", timing={"fps": 10.0}),
    rec("solov2", "base", 1, None, kind="time", timing={"fps": 12.0}),
]


def test_fmt_mean_ci():
    assert fmt_mean_ci(41.23, 0.81) == "41.2 ± 0.8"
    assert fmt_mean_ci(41.25, 0.849, digits=2) == "41.25 ± 0.85"
    assert fmt_mean_ci(41.2, float("nan")) == "41.2"
    assert fmt_mean_ci(41.2) == "41.2"
    assert fmt_mean_ci(None, 1.0) == "–" and fmt_mean_ci(float("nan")) == "–"


def test_comparison_table_mean_ci_over_seeds():
    df = comparison_table(RECORDS, ["AP", "timing.fps"])
    assert list(df.columns) == ["method", "variant", "n", "AP", "AP_ci", "timing.fps", "timing.fps_ci"]
    assert df[["method", "variant"]].values.tolist() == [["solov2", "base"], ["solov2", "+cspam"]]
    base, cspam = df.iloc[0], df.iloc[1]
    assert base["n"] == 3 and base["AP"] == 31.0
    assert base["AP_ci"] == pytest.approx(T975_DF2 / math.sqrt(3))  # s = 1, n = 3
    assert base["timing.fps"] == 11.0  # from the time records
    assert cspam["n"] == 1 and cspam["AP"] == 41.0 and math.isnan(cspam["AP_ci"])
    assert math.isnan(cspam["timing.fps"])
    shown = format_table(df, ["AP"])
    assert shown["AP"].tolist() == [f"31.0 ± {T975_DF2 / math.sqrt(3):.1f}", "41.0"]
    assert "AP_ci" not in shown.columns


def test_markdown_table_formats_floats_and_missing():
    df = pd.DataFrame({"name": ["a", "b"], "AP": [41.234, float("nan")], "n": [3, 1]})
    text = markdown_table(df, floatfmt=".2f")
    assert text.splitlines()[0].startswith("| name")
    assert "41.23" in text and "–" in text and "| 3 " in text


def _report(out_dir):
    df = comparison_table(RECORDS, ["AP"])
    return write_report("study1", [("Mask AP (mean ± 95% CI over seeds)", format_table(df, ["AP"]))],
                        ["paper: 41.4 AP"], bar_chart(df, "AP"), out_dir,
                        sources=["results/study1/runs.jsonl"], command="python -m harness report study1")


def test_write_report_is_byte_identical(tmp_path):
    md1, png1 = _report(tmp_path / "a")
    md2, png2 = _report(tmp_path / "b")
    md3, png3 = _report(tmp_path / "a")  # regenerate in place
    assert md1.read_bytes() == md2.read_bytes() == md3.read_bytes()
    assert png1.read_bytes() == png2.read_bytes() == png3.read_bytes()
    data = png1.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and b"Software" not in data and len(data) > 5000
    text = md1.read_text(encoding="utf-8")
    assert "`results/study1/runs.jsonl`" in text and "`python -m harness report study1`" in text
    assert "| method" in text and "31.0 ± 2.5" in text and "![study1](study1.png)" in text
    assert "- paper: 41.4 AP" in text and str(tmp_path) not in text


def test_write_report_without_figure(tmp_path):
    md, png = write_report("nofig", [], [], None, tmp_path)
    assert png is None and md.read_text(encoding="utf-8").startswith("# nofig\n")
    md, _ = write_report("nofig", [], [], None, tmp_path, title="Table 1: no figure")
    assert md.name == "nofig.md" and md.read_text(encoding="utf-8").startswith("# Table 1: no figure\n")
    assert not (tmp_path / "nofig.png").exists()
