"""Training curves: loss terms and learning rate per iteration, weight snapshots, AP at checkpoints.

* ``CurveLog``: ``work_dirs/<run>/train_curve.csv``, one row per iteration (``iter, lr, loss, loss_*``), written
  by ``harness.train`` on rank 0 (a resumed run drops the rows after its checkpoint, so the file has each
  iteration once).  A CSV, not TensorBoard event files: tensorboard is not a dependency of this project; when it
  is installed, ``to_tensorboard(run_dir)`` writes the same values through ``SummaryWriter`` so that
  ``tensorboard --logdir work_dirs`` works.
* ``save_snapshot``: the model's weights at every checkpoint (``checkpoints/model_iter<N>.pth``).
* ``ap_curve``: mask AP of every snapshot on the val set (``ap_curve.json`` in the run directory).
* ``publish_curves``: a down-sampled copy of a run's loss curve and its AP points under
  ``results/<study>/curves/``, so that reports stay a pure function of committed files.
* ``loss_curve_figure``: one panel per method (loss terms, log scale, lr on a twin axis, AP points).
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import torch

CURVE_FILE = "train_curve.csv"
AP_CURVE_FILE = "ap_curve.json"
SNAPSHOT_GLOB = "model_iter*.pth"
PUBLISH_EVERY = 10  # iterations between published rows (means over the window)


class CurveLog:
    """Append one CSV row per iteration: ``iter, lr, loss`` and each loss term (columns fixed by the first row).

    Args:
        path: the CSV path.
        start_iter: the iteration training (re)starts from; rows after it (a killed run's) are dropped.
    """

    def __init__(self, path: Path, start_iter: int = 0) -> None:
        self.path = Path(path)
        self.columns: list[str] | None = None
        if self.path.is_file():
            rows = read_curve(self.path)
            if rows:
                self.columns = list(rows[0].keys())
            kept = [r for r in rows if r["iter"] <= start_iter]
            if len(kept) != len(rows):
                self._rewrite(kept)

    def _rewrite(self, rows: list[dict]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            if self.columns:
                w.writerow(self.columns)
            for r in rows:
                w.writerow([r.get(c, "") for c in self.columns or []])
        os.replace(tmp, self.path)

    def log(self, it: int, lr: float, losses: dict) -> None:
        terms = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in losses.items()}
        row = {"iter": it, "lr": lr, "loss": sum(terms.values()), **terms}
        new = self.columns is None
        if new:
            self.columns = list(row.keys())
            self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(self.columns)
            w.writerow([f"{row[c]:.6g}" if c in row else "" for c in self.columns])

    def close(self) -> None:
        pass


def read_curve(path: Path) -> list[dict]:
    """Rows of a curve CSV as dicts of floats (``iter`` as int); [] when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        d = {k: (float(v) if v not in ("", None) else math.nan) for k, v in r.items()}
        d["iter"] = int(d["iter"])
        out.append(d)
    return out


def save_snapshot(run_dir: Path, model: torch.nn.Module, it: int) -> Path:
    """Write the model's weights at iteration ``it`` to ``checkpoints/model_iter<it>.pth`` (atomically)."""
    path = Path(run_dir) / "checkpoints" / f"model_iter{it:06d}.pth"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    ext = tuple(getattr(model, "external_state_prefixes", ()))
    torch.save({k: v for k, v in model.state_dict().items() if not (ext and k.startswith(ext))}, tmp)
    os.replace(tmp, path)
    return path


def snapshots(run_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of a run's weight snapshots, by iteration."""
    out = []
    for p in sorted((Path(run_dir) / "checkpoints").glob(SNAPSHOT_GLOB)):
        out.append((int(p.stem.replace("model_iter", "")), p))
    return out


def ap_curve(cfg, run_dir: Path, val_ds, device, *, progress: bool = False) -> list[dict]:
    """Mask AP / AP50 / AP75 of every weight snapshot of ``run_dir`` on ``val_ds`` (cached in ``ap_curve.json``).

    Returns: ``[{"iter": N, "AP": .., "AP50": .., "AP75": ..}, ...]`` by iteration.
    """
    import methods
    from harness.pipeline import evaluate_model
    path = Path(run_dir) / AP_CURVE_FILE
    cached = {int(p["iter"]): p for p in json.loads(path.read_text())} if path.is_file() else {}
    points = []
    for it, snap in snapshots(run_dir):
        if it not in cached:
            model = methods.build_method(cfg.method)
            model.load_state_dict(torch.load(snap, map_location="cpu", weights_only=True),
                                  strict=not getattr(model, "external_state_prefixes", ()))
            model = model.to(device).eval()
            metrics, _ = evaluate_model(model, cfg, val_ds, device, progress=progress)
            cached[it] = {"iter": it, **{k: metrics.get(k) for k in ("AP", "AP50", "AP75")}}
            path.write_text(json.dumps([cached[k] for k in sorted(cached)], indent=1) + "\n")
        points.append(cached[it])
    return points


def publish_curves(run_dir: Path, out_dir: Path, run_id: str) -> None:
    """Copy a run's curves (loss CSV averaged over ``PUBLISH_EVERY`` iterations, AP points) to ``out_dir``."""
    out_dir = Path(out_dir)
    rows = read_curve(Path(run_dir) / CURVE_FILE)
    if rows:
        out_dir.mkdir(parents=True, exist_ok=True)
        cols = list(rows[0].keys())
        with open(out_dir / f"{run_id}_loss.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for start in range(0, len(rows), PUBLISH_EVERY):
                win = rows[start:start + PUBLISH_EVERY]
                w.writerow([win[-1]["iter"] if c == "iter" else f"{sum(r[c] for r in win) / len(win):.5g}"
                            for c in cols])
    ap = Path(run_dir) / AP_CURVE_FILE
    if ap.is_file():
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{run_id}_ap.json").write_text(ap.read_text())


def published(out_dir: Path, run_id: str) -> tuple[list[dict], list[dict]]:
    """(loss rows, AP points) published for ``run_id`` under ``out_dir``; empty lists when absent."""
    out_dir = Path(out_dir)
    ap = out_dir / f"{run_id}_ap.json"
    return read_curve(out_dir / f"{run_id}_loss.csv"), (json.loads(ap.read_text()) if ap.is_file() else [])


def to_tensorboard(run_dir: Path) -> bool:
    """Write a run's curve CSV as TensorBoard scalars in ``run_dir`` (False when tensorboard is not installed)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return False
    rows = read_curve(Path(run_dir) / CURVE_FILE)
    with SummaryWriter(log_dir=str(run_dir)) as w:
        for r in rows:
            for k, v in r.items():
                if k != "iter":
                    w.add_scalar(f"train/{k}", v, r["iter"])
    return True


def loss_curve_figure(curves: dict[str, tuple[list[dict], list[dict]]]):
    """A ``write_report`` figure callback: one panel per method (name -> (loss rows, AP points)).

    Loss terms on a log axis, the learning rate (dashed, right axis), AP at the snapshots as points (right axis
    of a second scale in the title).  Methods without rows are left out by the caller.
    """
    names = list(curves)

    def draw(fig) -> None:
        n = max(1, len(names))
        cols = min(n, 2)
        rows_n = math.ceil(n / cols)
        for i, name in enumerate(names):
            ax = fig.add_subplot(rows_n, cols, i + 1)
            rows, ap = curves[name]
            its = [r["iter"] for r in rows]
            terms = [k for k in rows[0] if k.startswith("loss_")] if rows else []
            for k in terms:
                vals = [max(r[k], 1e-4) for r in rows]
                ax.plot(its, vals, lw=0.8, label=k.replace("loss_", ""))
            ax.set_yscale("log")
            ax.set_title(name, fontsize=8)
            ax.set_xlabel("iteration", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=5, loc="lower left", ncol=2)
            ax2 = ax.twinx()
            if rows:
                lr = [r["lr"] for r in rows]
                top = max(lr) or 1.0
                ax2.plot(its, [100 * v / top for v in lr], "k--", lw=0.6, alpha=0.5)
            if ap:
                ax2.plot([p["iter"] for p in ap], [p["AP"] for p in ap], "o-", color="#C44E52", ms=3, lw=1)
            ax2.set_ylim(0, 100)
            ax2.set_ylabel("mask AP (red) / lr % of max (dashed)", fontsize=6)
            ax2.tick_params(labelsize=6)
        fig.tight_layout()

    return draw
