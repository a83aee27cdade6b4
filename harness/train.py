"""The training engine: a plain loop with SGD, warm-up + step schedule, AMP, checkpoints, resume, DDP.

``train(cfg, run_dir)`` trains ``cfg.method`` on ``cfg.data.dataset`` for ``cfg.train.max_iter``
iterations.  Determinism and resume:

* the order of training images is a pure function of (seed, iteration): epoch ``e`` uses
  ``randperm(n, generator=seed*100003 + e)``, and rank ``r`` of ``W`` takes every W-th batch slot;
* augmentation draws from the global torch / numpy / python RNGs, whose states are saved in every
  checkpoint and restored on resume, so with ``num_workers=0`` and ``train.deterministic=true`` a run
  killed at any point and resumed ends with the same weights as an uninterrupted run;
* checkpoints are written atomically (tmp file + ``os.replace``) every ``checkpoint_period``
  iterations and at the end, so a kill never leaves a truncated checkpoint;
* a non-finite loss stops the run with ``TrainingDiverged`` naming the iteration and loss terms, and
  the last good checkpoint is kept untouched.
"""
from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import methods
from harness import distributed as dist_utils
from harness.config import ExperimentConfig, train_hash
from harness.curves import CURVE_FILE, CurveLog, save_snapshot
from harness.data.types import collate
from harness.runs import atomic_write_text, is_finished, read_final, save_config
from methods.base import sum_losses


class TrainingDiverged(RuntimeError):
    """Raised when a loss becomes NaN or infinite."""


@dataclass
class TrainResult:
    run_dir: Path
    iterations: int
    wall_s: float
    resumed_from: int
    final: dict
    model: torch.nn.Module | None = None


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def set_deterministic(flag: bool) -> None:
    torch.use_deterministic_algorithms(flag, warn_only=True)
    torch.backends.cudnn.deterministic = flag
    torch.backends.cudnn.benchmark = not flag


def lr_factor(it: int, cfg) -> float:
    """LR multiplier at iteration ``it`` (0-based): linear warm-up then step decay."""
    factor = cfg.gamma ** sum(1 for s in cfg.steps if it >= s)
    if it < cfg.warmup_iters:
        alpha = it / max(1, cfg.warmup_iters)
        factor *= cfg.warmup_factor * (1 - alpha) + alpha
    return factor


class _EpochPerm:
    """Training image order as a pure function of (seed, iteration, rank): resume needs no sampler state.

    Epoch ``e`` is ``randperm(n, generator=seed*100003 + e)``; the batch slots of iteration ``it``
    are ``it*B*W + r*B ... + B`` in the concatenation of the epochs (B = batch size, W = world size,
    r = rank), so the ranks of a DDP run see disjoint images.
    """

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.seed, self.epoch, self.perm = n, seed, -1, None

    def indices(self, it: int, batch_size: int, rank: int, world: int) -> list[int]:
        start = it * batch_size * world + rank * batch_size
        out = []
        for k in range(start, start + batch_size):
            epoch, pos = divmod(k, self.n)
            if epoch != self.epoch:
                g = torch.Generator().manual_seed(self.seed * 100003 + epoch)
                self.perm, self.epoch = torch.randperm(self.n, generator=g), epoch
            out.append(int(self.perm[pos]))
        return out


def resolve_num_classes(cfg: ExperimentConfig, dataset) -> ExperimentConfig:
    """Fill ``method.num_classes`` from the dataset when it is 0; check it otherwise."""
    n = len(dataset.class_names)
    stuff = len(getattr(dataset, "stuff_names", []) or [])
    if getattr(cfg.method, "num_stuff", None) == 0 and stuff and getattr(cfg.method, "mode", "") == "panoptic":
        cfg = replace(cfg, method=replace(cfg.method, num_stuff=stuff))
    if cfg.method.num_classes == 0:
        return replace(cfg, method=replace(cfg.method, num_classes=n))
    if cfg.method.num_classes != n:
        raise ValueError(f"method.num_classes={cfg.method.num_classes} but dataset {dataset.name!r} has {n} classes")
    return cfg


def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save_checkpoint(path: Path, model, optimizer, scheduler, scaler, iteration: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
                "iteration": iteration, "rng": _rng_state()}, tmp)
    os.replace(tmp, path)


def load_weights(model: torch.nn.Module, run_dir: Path) -> None:
    """Load the final (or, failing that, the last) weights of a run into ``model``.

    Submodules whose weights come from elsewhere (listed by the model as ``external_state_prefixes``, e.g.
    CASNet's separately trained semantic model) may be absent from the run's weights; any other missing or
    unexpected key is an error.
    """
    run_dir = Path(run_dir)
    final = run_dir / "model_final.pth"
    last = run_dir / "checkpoints" / "last.pth"
    from harness.validate import load_checkpoint
    if final.is_file():
        src, state = final, load_checkpoint(final, weights_only=True)
    elif last.is_file():
        src, state = last, load_checkpoint(last, weights_only=False, key="model")
    else:
        raise FileNotFoundError(f"run {run_dir} has no weights (model_final.pth or checkpoints/last.pth)")
    prefixes = tuple(getattr(model, "external_state_prefixes", ()))
    if not prefixes:
        try:
            model.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:
            raise RuntimeError(f"{src}: weights do not fit the model ({str(e)[:300]})") from None
        return
    missing, unexpected = model.load_state_dict(state, strict=False)
    # older runs saved the external submodule with their own weights; it is loaded from its own source
    bad = [k for k in missing if not k.startswith(prefixes)] + [k for k in unexpected if not k.startswith(prefixes)]
    if bad:
        raise RuntimeError(f"run {run_dir}: weights do not fit the model (first keys: {bad[:5]})")


def build_train_dataset(cfg: ExperimentConfig):
    from harness.data import build_dataset
    return build_dataset(cfg.data.dataset, "train", cfg.data, train=True)


def train(cfg: ExperimentConfig, run_dir: Path, *, progress: bool = True, dataset=None,
          stop_after: int | None = None, val_dataset=None, defer_final_health: bool = False) -> TrainResult:
    """Train (or resume, or reuse) the run in ``run_dir``.

    Args:
        cfg: the experiment config (``method.num_classes`` resolved from the dataset when 0).
        run_dir: run directory (see ``harness.runs``); a finished run is returned as is.
        progress: tqdm bar on rank 0.
        dataset: a training dataset to use instead of building ``cfg.data.dataset``.
        stop_after: stop (after checkpointing) once this iteration is reached; for tests.
        val_dataset: the val split for the run-health AP points, when the caller has built it.
        defer_final_health: leave the health point at the end of the schedule to the evaluation that follows
            (``harness.health.complete_final_point``); ``final.json`` lacks it until then.
    Returns:
        TrainResult.
    Raises:
        TrainingDiverged: non-finite loss (the last good checkpoint is kept).
    """
    run_dir = Path(run_dir)
    if is_finished(run_dir):
        fin = read_final(run_dir)
        return TrainResult(run_dir, fin["iterations"], fin["wall_s"], fin["iterations"], fin)
    tc = cfg.train
    device = dist_utils.resolve_device(tc.device)
    distributed = dist_utils.init_from_env(device.type)
    rank, world = dist_utils.rank(), dist_utils.world_size()
    from harness.cpu import auto_threads
    torch.set_num_threads(auto_threads(tc.threads))  # cores // processes (DDP world, make JOBS) unless set
    set_deterministic(tc.deterministic)
    seed_everything(cfg.seed + rank)

    dataset = dataset if dataset is not None else build_train_dataset(cfg)
    if len(dataset) == 0:
        raise ValueError(f"training dataset {cfg.data.dataset!r} is empty")
    cfg = resolve_num_classes(cfg, dataset)
    if rank == 0:
        save_config(run_dir, cfg)
    model = methods.build_method(cfg.method).to(device)
    if not getattr(model, "trainable", True):
        raise ValueError(f"method {cfg.method.name!r} has no trainable parameters; nothing to train")
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=tc.base_lr,
                                momentum=tc.momentum, weight_decay=tc.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda it: lr_factor(it, tc))
    use_amp = tc.amp and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda") if use_amp else None

    ckpt_path = run_dir / "checkpoints" / "last.pth"
    start_iter = 0
    if ckpt_path.is_file():
        from harness.validate import load_checkpoint
        state = load_checkpoint(ckpt_path, weights_only=False)
        lacking = [k for k in ("model", "optimizer", "scheduler", "iteration") if k not in state]
        if lacking:
            raise RuntimeError(f"{ckpt_path}: not a training checkpoint (lacks {lacking}); delete it to train again")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_iter = int(state["iteration"])
        _set_rng_state(state["rng"])
    net = model
    if distributed:
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                      find_unused_parameters=True)
    uses_sem = getattr(model, "uses_sem_seg", False)
    from harness.health import HealthTracker, health_iterations, subset_ap
    tracker = HealthTracker(run_dir) if rank == 0 else None
    health_at = health_iterations(tc.max_iter, tc.health_points) if tc.health_eval_images > 0 else {}
    if defer_final_health:
        health_at.pop(tc.max_iter, None)
    health_val = val_dataset
    perm = _EpochPerm(len(dataset), cfg.seed)
    model.train()
    log_path = run_dir / "train_log.jsonl"
    curve = CurveLog(run_dir / CURVE_FILE, start_iter) if rank == 0 else None
    t0 = time.perf_counter()
    elapsed_before = 0.0
    if start_iter and (run_dir / "elapsed.json").is_file():
        elapsed_before = json.loads((run_dir / "elapsed.json").read_text())["wall_s"]
    bar = tqdm(total=tc.max_iter, initial=start_iter, disable=not (progress and rank == 0),
               desc=f"train {cfg.method.name}", dynamic_ncols=True)
    it = start_iter
    n_images = 0
    t_last = time.perf_counter()
    while it < tc.max_iter:
        idx = perm.indices(it, tc.batch_size, rank, world)
        batch = collate([dataset[i] for i in idx], cfg.data.size_divisor).to(device)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            if uses_sem:
                losses = net(batch.images, batch.targets, sem_segs=batch.sem_segs)
            else:
                losses = net(batch.images, batch.targets)
            loss = sum_losses(losses)
        if tracker is not None:
            tracker.add_positives(getattr(model, "last_positives_per_gt", None))
        if not torch.isfinite(loss):
            terms = {k: float(v) for k, v in losses.items()}
            raise TrainingDiverged(
                f"run {run_dir.name}: non-finite loss at iteration {it}: {terms}; the last good checkpoint "
                f"({ckpt_path if ckpt_path.is_file() else 'none yet'}) is kept. Lower train.base_lr or "
                "raise train.warmup_iters.")
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        lr_used = optimizer.param_groups[0]["lr"]
        scheduler.step()
        it += 1
        n_images += len(idx) * world
        bar.update(1)
        if rank == 0:  # every iteration: loss terms + lr (harness/curves.py reads it)
            curve.log(it, lr_used, losses)
        if rank == 0 and (it % 20 == 0 or it == tc.max_iter):
            now = time.perf_counter()
            ips = n_images / max(now - t_last, 1e-9)
            n_images, t_last = 0, now
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", img_s=f"{ips:.1f}")
            rec = {"iter": it, "lr": optimizer.param_groups[0]["lr"], "loss": float(loss.detach()), "img_s": ips,
                   **{k: float(v.detach()) for k, v in losses.items()}}
            with open(log_path, "a") as f:
                f.write(json.dumps(rec) + "\n")
        if tracker is not None and it in health_at and health_at[it] not in tracker.ap_points:
            if health_val is None:  # run health: AP on a fixed val subset at 50 / 75 / 100 % of the schedule
                from harness.pipeline import build_split
                health_val = build_split(cfg, "val")
            tracker.ap_points[health_at[it]] = subset_ap(model, health_val, tc.health_eval_images, cfg, device)
            model.train()
        if it % tc.checkpoint_period == 0 or it == tc.max_iter or (stop_after is not None and it >= stop_after):
            if rank == 0:
                _save_checkpoint(ckpt_path, model, optimizer, scheduler, scaler, it)
                tracker.save()
                save_snapshot(run_dir, model, it)  # weights at this iteration (AP-vs-iteration curve)
                atomic_write_text(run_dir / "elapsed.json",
                                  json.dumps({"wall_s": elapsed_before + time.perf_counter() - t0}))
            dist_utils.barrier()
        if stop_after is not None and it >= stop_after and it < tc.max_iter:
            bar.close()
            return TrainResult(run_dir, it, elapsed_before + time.perf_counter() - t0, start_iter, {}, model)
    bar.close()
    if curve is not None:
        curve.close()
    wall = elapsed_before + time.perf_counter() - t0
    final = {"iterations": it, "wall_s": wall, "train_hash": train_hash(cfg), "resumed_from": start_iter,
             "world_size": world, "device": str(device), "threads": torch.get_num_threads()}
    if tracker is not None:
        final["diagnostics"] = tracker.summary(run_dir, tc.max_iter)
    if rank == 0:
        tmp = run_dir / "model_final.pth.tmp"
        ext = tuple(getattr(model, "external_state_prefixes", ()))
        # a submodule loaded from elsewhere (CASNet's separate semantic model) is not part of this run's weights:
        # the run is the same whichever mode (joint / separated) trained it
        torch.save({k: v for k, v in model.state_dict().items() if not (ext and k.startswith(ext))}, tmp)
        os.replace(tmp, run_dir / "model_final.pth")
        atomic_write_text(run_dir / "final.json", json.dumps(final, indent=2) + "\n")
    dist_utils.barrier()
    return TrainResult(run_dir, it, wall, start_iter, final, model)
