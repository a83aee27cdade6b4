"""Reports: markdown + PNG generated from run records (and the papers' numbers) only.

A report is a pure function of its inputs: no timestamps, no absolute paths, fixed float formatting,
rows in the order of the records, and a PNG written by matplotlib's Agg backend at a fixed dpi with
the ``Software`` metadata removed, so regenerating it from the same records gives byte-identical
files (tested).  Figures are drawn on a ``matplotlib.figure.Figure`` with an Agg canvas built here
(no pyplot, no global backend switch) and the bundled DejaVu Sans font.  Every markdown report
names the records it was generated from and the command that regenerates it; reports are never
edited by hand.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from tabulate import tabulate

from harness.stats import mean_ci

DPI = 100
FIGSIZE = (8.0, 4.5)
MISSING = "–"
_RC = {"font.family": "DejaVu Sans", "font.size": 9, "axes.grid": True, "grid.alpha": 0.3}


def fmt_mean_ci(mean: float | None, hw: float | None = None, digits: int = 1) -> str:
    """``"41.2 ± 0.8"``; ``"41.2"`` without a half width (n = 1); ``"–"`` without a mean."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if hw is None or (isinstance(hw, float) and math.isnan(hw)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {hw:.{digits}f}"


def _lookup(rec: dict, metric: str) -> Any:
    """``rec["metrics"][metric]``, or a dotted path into the record (``"timing.fps"``, ``"params"``)."""
    if metric in rec.get("metrics", {}):
        return rec["metrics"][metric]
    node: Any = rec
    for part in metric.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def comparison_table(records: Iterable[dict], metrics: Sequence[str], *,
                     by: Sequence[str] = ("method", "variant"), conf: float = 0.95) -> pd.DataFrame:
    """One row per ``by`` group (method / variant): each metric's mean and CI over seeds.

    Each metric is looked up in ``record["metrics"]`` or as a dotted path in the record
    (``"timing.fps"``), so eval and timing records of the same runs combine.  Per group and seed the
    last record holding the metric wins (a re-evaluation replaces the earlier one).

    Args:
        records: run records (``harness.records.read_records``).
        metrics: metric names.
        by: record fields that identify a row.
        conf: confidence level.
    Returns:
        DataFrame with the ``by`` columns, ``n`` (seeds with any of the metrics) and per metric
        ``<m>`` (mean) and ``<m>_ci`` (half width, NaN for one seed); rows in order of first
        appearance in ``records``.
    """
    by = list(by)
    groups: dict[tuple, dict[str, dict[int, float]]] = {}
    for rec in records:
        key = tuple(rec.get(b) for b in by)
        per_metric = groups.setdefault(key, {m: {} for m in metrics})
        for m in metrics:
            value = _lookup(rec, m)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                per_metric[m][rec.get("seed")] = float(value)
    rows = []
    for key, per_metric in groups.items():
        seeds = set().union(*(set(v) for v in per_metric.values()))
        if not seeds:
            continue
        row: dict[str, Any] = dict(zip(by, key))
        row["n"] = len(seeds)
        for m in metrics:
            vals = list(per_metric[m].values())
            mean, hw = mean_ci(vals, conf) if vals else (float("nan"), float("nan"))
            row[m], row[f"{m}_ci"] = mean, hw
        rows.append(row)
    return pd.DataFrame(rows, columns=[*by, "n", *[c for m in metrics for c in (m, f"{m}_ci")]])


def format_table(df: pd.DataFrame, metrics: Sequence[str], digits: int = 1) -> pd.DataFrame:
    """Replace each ``<m>`` / ``<m>_ci`` column pair of ``df`` with one ``"mean ± hw"`` string column."""
    out = df.copy()
    for m in metrics:
        ci = out[f"{m}_ci"] if f"{m}_ci" in out.columns else [None] * len(out)
        out[m] = [fmt_mean_ci(v, h, digits) for v, h in zip(out[m], ci)]
        if f"{m}_ci" in out.columns:
            out = out.drop(columns=f"{m}_ci")
    return out


def ci_label(n_per_bar: Sequence[int], what: str = "mask AP") -> str:
    """Axis label that states what the error bars are: no "95 % CI" on bars that rest on one seed."""
    ns = [int(n) for n in n_per_bar]
    if ns and max(ns) <= 1:
        return f"{what} (one seed: no confidence interval)"
    if ns and min(ns) <= 1:
        return f"{what} (mean ± 95% CI over seeds; bars of one seed have no CI)"
    return f"{what} (mean ± 95% CI over seeds)"


def label_bars(ax, bars, digits: int = 1) -> None:
    """Write each bar's value at its end (``Axes.bar_label``); NaN bars stay unlabelled."""
    values = [float(v) for v in bars.datavalues]  # heights, or widths of horizontal bars
    labels = ["" if v != v else f"{v:.{digits}f}" for v in values]
    ax.bar_label(bars, labels=labels, padding=2, fontsize=7)


def fit_title(ax, title: str, width: int = 70) -> None:
    """Set a title wrapped to ``width`` characters, so that a long study title is not clipped."""
    import textwrap
    ax.set_title(textwrap.fill(title, width), fontsize=10)


def bar_chart(df: pd.DataFrame, metric: str, *, label_cols: Sequence[str] = ("method", "variant"),
              title: str | None = None) -> Callable[[Figure], None]:
    """A figure callback for ``write_report``: bars of ``df[metric]`` with ``df[metric + "_ci"]``
    error bars (when present), one bar per row labelled by ``label_cols``."""
    labels = [" / ".join(str(row[c]) for c in label_cols if c in df.columns and row[c] not in (None, ""))
              for _, row in df.iterrows()]
    values = [float(v) for v in df[metric]]
    errors = [0.0 if (e is None or math.isnan(e)) else float(e) for e in df[f"{metric}_ci"]] \
        if f"{metric}_ci" in df.columns else None

    ns = [int(v) for v in df["n"]] if "n" in df.columns else ([2] * len(values) if errors else [1] * len(values))

    def draw(fig: Figure) -> None:
        ax = fig.add_subplot(1, 1, 1)
        xs = list(range(len(values)))
        bars = ax.bar(xs, values, yerr=errors, capsize=3, color="#4C72B0")
        label_bars(ax, bars)
        ax.set_xticks(xs, labels, rotation=30, ha="right")
        ax.set_ylabel(ci_label(ns, metric))
        fit_title(ax, title or metric)
        fig.tight_layout()

    return draw


def _cell(value: Any, floatfmt: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return MISSING if math.isnan(value) else format(value, floatfmt)
    return str(value)


def markdown_table(df: pd.DataFrame, floatfmt: str = ".1f") -> str:
    """A pipe table; floats with ``floatfmt``, NaN / None as ``"–"``, everything else ``str``."""
    rows = [[_cell(v, floatfmt) for v in row] for row in df.itertuples(index=False, name=None)]
    return tabulate(rows, headers=[str(c) for c in df.columns], tablefmt="pipe", disable_numparse=True)


def write_report(name: str, tables: Sequence[tuple[str, pd.DataFrame]], notes: Sequence[str],
                 figure: Callable[[Figure], None] | None, out_dir: str | os.PathLike = "reports", *,
                 sources: Sequence[str | os.PathLike] = (), command: str | None = None,
                 title: str | None = None, floatfmt: str = ".1f",
                 warnings: Sequence[str] = (),
                 figures: Sequence[tuple[str, str, Callable[[Figure], None], tuple[float, float]]] = ()
                 ) -> tuple[Path, Path | None]:
    """Write ``<out_dir>/<name>.md`` (and ``<name>.png`` when ``figure`` is given).

    ``warnings`` (e.g. "Incomplete", "Mixed schedules") stand at the top of the report, under the heading, as
    ``> **Warning:**`` lines, before any table.

    Args:
        name: report name (file stem and title).
        tables: ``(title, DataFrame)`` pairs, rendered as pipe tables in order.
        notes: bullet points after the tables (protocol, caveats, the paper's numbers).
        figure: ``callable(fig)`` drawing onto a fresh ``matplotlib.figure.Figure`` (``FIGSIZE``
            inches, ``DPI``), or None for no figure.
        out_dir: output directory (created).
        sources: records files the report was generated from (written as given: keep them relative).
        command: the command that regenerates the report.
        title: the markdown heading (default ``name``).
        floatfmt: format of float cells.
        figures: further figures ``(suffix, caption, callable(fig), figsize)``, written as
            ``<name>_<suffix>.png`` after the main one, each with its caption (``harness.figures``).
    Returns:
        ``(markdown path, png path or None)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md_path, png_path = out / f"{name}.md", (out / f"{name}.png" if figure is not None else None)
    lines = [f"# {title or name}", "",
             "<!-- generated from run records; do not edit by hand -->", ""]
    if sources:
        lines.append("Records: " + ", ".join(f"`{Path(s).as_posix()}`" for s in sources))
    if command:
        lines.append(f"Regenerate with: `{command}`")
    if sources or command:
        lines.append("")
    for w in warnings:
        lines += [f"> **Warning:** {w}", ""]
    for title, df in tables:
        lines += [f"## {title}", "", markdown_table(df, floatfmt), ""]
    if png_path is not None:
        lines += [f"![{name}]({png_path.name})", ""]
    for suffix, caption, _, _ in figures:
        lines += [f"![{name} {suffix}]({name}_{suffix}.png)", "", caption, ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    md_path.write_text("\n".join(lines), encoding="utf-8", newline="\n")
    if png_path is not None:
        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=FIGSIZE, dpi=DPI)
            FigureCanvasAgg(fig)
            figure(fig)
            fig.savefig(png_path, format="png", dpi=DPI, metadata={"Software": None})
    for suffix, _, draw, figsize in figures:
        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=figsize, dpi=DPI)
            FigureCanvasAgg(fig)
            draw(fig)
            fig.savefig(out / f"{name}_{suffix}.png", format="png", dpi=DPI, metadata={"Software": None})
    return md_path, png_path
