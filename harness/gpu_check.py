"""``python -m harness gpu-check``: the GPU code paths run once, measured, in a few minutes on one CUDA machine.

For every trainable method (``methods.available()``, random initial weights) at the paper profile's input size
(short side ``data.test_short_side`` = 800, long side ``data.max_size`` = 1333, 80 classes, the paper profile's
batch of 2):

1. fp32 and fp16 inference timing by the timing protocol (``harness.timing.time_inference``: batch 1, warm-up,
   CUDA-synchronised stages), with peak memory;
2. ``--train-iters`` (50) iterations of AMP training through the training loop itself (``harness.train.train``:
   autocast + GradScaler, checkpoint, final weights), with ms / iteration, peak memory and the first and last
   loss;
3. Matrix NMS against greedy mask NMS on the GPU (500 masks of ``benchmarks/bench_nms.py``, 64 px as the
   benchmark and 200 px, near SOLOv2's mask size at 800 px), medians of interleaved calls, and the GPU result
   checked against the CPU one;
4. when two GPUs are visible, one 2-process DDP training step over nccl (SOLOv2, AMP), checked by the ranks
   holding identical parameters afterwards.

It prints one table and writes the records (``kind`` "time" / "train" / "nms" / "ddp", one ``data.session``) to
``results/gpu_check/runs.jsonl``; UniInst Table 8's report reads its fp16 rows from there.  A step that fails is
a row with its error (exit code 1), the others still run; a time budget (``--budget-s``, default 420 s) skips
what is left past it, so the whole check stays under 8 minutes.  Without CUDA it prints one line and exits 0.

``--device cpu --dry`` runs a tiny version of every step on the CPU (64 px images, 2 iterations, 2 timed
images, 50 masks, a 2-process gloo DDP step) so that this code is exercised where there is no GPU; it writes
records only with ``--out``.

Random weights: the forward and training figures are those of the real networks; the post-processing time of
an untrained model (how many candidates pass the score threshold) is not that of a trained one.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import torch

SKIP_MESSAGE = ("gpu-check: skipped, no CUDA device (torch.cuda.is_available() is False); nothing measured, no record "
                "written (run it on a CUDA machine, or `--device cpu --dry` for a CPU self-test)")
STUDY = "gpu_check"
NUM_CLASSES = 80  # COCO, as the paper profile
DDP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class CheckConfig:
    """What one gpu-check measures (``paper()`` on CUDA, ``dry()`` for the CPU self-test)."""

    device: str = "cuda"
    dry: bool = False
    image_hw: tuple[int, int] = (800, 1333)
    batch_size: int = 2
    train_iters: int = 50
    warmup_iters: int = 5
    num_images: int = 100
    nms_masks: int = 500
    nms_sizes: tuple[int, ...] = (64, 200)
    nms_repeats: int = 30
    budget_s: float = 420.0
    methods: tuple[str, ...] = ()

    @classmethod
    def paper(cls, **kw) -> CheckConfig:
        from harness.config import make_config
        data = make_config("solov2", "paper").data
        return cls(image_hw=(data.test_short_side, data.max_size), **kw)

    @classmethod
    def dry_run(cls, **kw) -> CheckConfig:
        return cls(device="cpu", dry=True, image_hw=(64, 96), batch_size=2, train_iters=2, warmup_iters=1,
                   num_images=2, nms_masks=50, nms_sizes=(32,), nms_repeats=3, **kw)


class RandomImages:
    """A dataset of ``n`` random images of ``hw`` with ``k`` random box / ellipse instances each (deterministic by
    index), in the harness's ``Sample`` form: the input of the training loop and of the timing protocol."""

    def __init__(self, n: int, hw: tuple[int, int], num_classes: int = NUM_CLASSES, k: int = 8, seed: int = 0):
        self.n, self.hw, self.k, self.seed = n, hw, k, seed
        self._cache: dict[int, object] = {}
        self.class_names = [f"class{i}" for i in range(num_classes)]
        self.stuff_names: list[str] = []
        self.name = f"random-{hw[0]}x{hw[1]}"

    def __len__(self) -> int:
        return self.n

    def info(self) -> dict:
        return {"name": self.name, "n_images": self.n, "n_instances": self.n * self.k}

    def __getitem__(self, index: int):
        if index not in self._cache:
            self._cache[index] = self._make(index)
        return self._cache[index]

    def _make(self, index: int):
        from harness.data.types import Sample
        g = torch.Generator().manual_seed(self.seed * 1000003 + index)
        h, w = self.hw
        image = torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g)
        c = torch.rand(self.k, 2, generator=g) * torch.tensor([w, h])
        half = (0.05 + 0.2 * torch.rand(self.k, 2, generator=g)) * torch.tensor([w, h])
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        dx = (xs[None] - c[:, 0, None, None]).abs() / half[:, 0, None, None]
        dy = (ys[None] - c[:, 1, None, None]).abs() / half[:, 1, None, None]
        ellipse = torch.rand(self.k, generator=g) < 0.5
        masks = torch.where(ellipse[:, None, None], dx**2 + dy**2 <= 1, (dx <= 1) & (dy <= 1))
        masks = masks[masks.flatten(1).any(1)]
        from torchvision.ops import masks_to_boxes
        labels = torch.randint(0, len(self.class_names), (masks.shape[0],), generator=g)
        return Sample(image=image, masks=masks, labels=labels, boxes=masks_to_boxes(masks).float(),
                      iscrowd=torch.zeros(masks.shape[0], dtype=torch.bool), image_id=index, orig_size=(h, w))


def check_methods(cc: CheckConfig) -> list[str]:
    """The methods checked: ``cc.methods``, or every trainable registered method and preset."""
    import methods
    from harness.config import make_config
    if cc.methods:
        return list(cc.methods)
    return [m for m in methods.available()
            if getattr(methods.METHODS[make_config(m, "smoke").method.name], "trainable", True)]


def method_config(name: str, cc: CheckConfig):
    """The paper profile's config of ``name`` (the smoke profile's in the dry run: a narrow network, so that the
    CPU self-test takes seconds) with random initial weights, 80 classes and ``cc``'s schedule and image size."""
    from harness.config import make_config
    h, w = cc.image_hw
    return make_config(name, "smoke" if cc.dry else "paper", overrides=[
        "method.pretrained=", f"method.num_classes={NUM_CLASSES}", f"train.max_iter={cc.train_iters}",
        f"train.batch_size={cc.batch_size}", f"train.checkpoint_period={max(cc.train_iters, 1)}",
        f"train.device={cc.device}", f"timing.device={cc.device}", "train.amp=true", "data.num_workers=0",
        f"data.test_short_side={h}", f"data.train_short_sides=[{h}]", f"data.max_size={w}"])


def _peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def check_method(name: str, cc: CheckConfig, device: torch.device, work: Path) -> list[dict]:
    """AMP training, then fp32 and fp16 timing, of one method. Returns result rows (dicts); errors are rows."""
    import methods
    from harness.timing import time_inference
    from harness.train import train
    cfg = method_config(name, cc)
    ds = RandomImages(4 if cc.dry else 8, cc.image_hw)  # cycled by the timing protocol; made once, kept
    rows = []
    torch.manual_seed(0)
    model = None
    _reset_peak(device)
    t0 = time.perf_counter()
    try:
        res = train(cfg, work / name, progress=False, dataset=ds)
        log = [json.loads(x) for x in (work / name / "train_log.jsonl").read_text().splitlines()] \
            if (work / name / "train_log.jsonl").is_file() else []
        model = res.model
        rows.append({"method": name, "check": "train amp", "ok": True,
                     "ms_per_it": 1e3 * res.wall_s / max(res.iterations, 1), "iterations": res.iterations,
                     "img_s": log[-1]["img_s"] if log else None, "loss_last": log[-1]["loss"] if log else None,
                     "peak_mem_mb": _peak_mb(device), "wall_s": time.perf_counter() - t0,
                     "amp": bool(cfg.train.amp and device.type == "cuda")})
    except Exception as e:  # noqa: BLE001 -- one failing check is a row, the others run
        rows.append(_error_row(name, "train amp", e))
    if model is None:
        model = methods.build_method(cfg.method)
    model = model.to(device).eval()
    for fp16 in (False, True):
        check = "time fp16" if fp16 else "time fp32"
        if cc.dry and fp16:
            continue  # the protocol reports fp16 as not measured on a CPU: nothing to exercise
        _reset_peak(device)
        t1 = time.perf_counter()
        try:
            tcfg = replace(cfg.timing, warmup_iters=cc.warmup_iters, num_images=cc.num_images, fp16=fp16)
            timing = time_inference(model, ds, tcfg, device, size_divisor=cfg.data.size_divisor)
            rows.append({"method": name, "check": check, "ok": True, "ms_per_img": timing["ms_per_img"],
                         "fps": timing["fps"], "forward_ms": timing["stages"]["forward"]["median_ms"],
                         "postprocess_ms": timing["stages"]["postprocess"]["median_ms"],
                         "peak_mem_mb": _peak_mb(device), "wall_s": time.perf_counter() - t1, "timing": timing})
        except Exception as e:  # noqa: BLE001
            rows.append(_error_row(name, check, e))
    for r in rows:
        r["config"] = cfg
        r["dataset"] = ds
    del model
    return rows


def _error_row(name: str, check: str, e: BaseException) -> dict:
    msg = f"{type(e).__name__}: {e}".strip().splitlines()[0][:300]
    traceback.print_exc(file=sys.stderr)
    return {"method": name, "check": check, "ok": False, "error": msg}


def check_nms(cc: CheckConfig, device: torch.device) -> list[dict]:
    """Matrix NMS vs greedy mask NMS on ``device``: medians of interleaved calls; the result against the CPU's."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from benchmarks.bench_nms import make_masks
    from methods.postprocess import mask_nms, matrix_nms
    rows = []
    for size in cc.nms_sizes:
        try:
            masks, labels, scores = make_masks(cc.nms_masks, size)
            cpu_scores = matrix_nms(masks, labels, scores)
            cpu_keep = mask_nms(masks, labels, scores, 0.5)
            m, lab, s = masks.to(device), labels.to(device), scores.to(device)

            def timed(fn):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                t = time.perf_counter()
                out = fn()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                return time.perf_counter() - t, out
            run_m = lambda m=m, lab=lab, s=s: matrix_nms(m, lab, s)  # noqa: E731
            run_g = lambda m=m, lab=lab, s=s: mask_nms(m, lab, s, 0.5)  # noqa: E731
            for _ in range(3):
                run_m(), run_g()
            tm, tg = [], []
            for _ in range(cc.nms_repeats):
                tm.append(timed(run_m)[0])
                tg.append(timed(run_g)[0])
            gpu_scores, gpu_keep = run_m().cpu(), run_g().cpu()
            mm, mg = statistics.median(tm) * 1e3, statistics.median(tg) * 1e3
            rows.append({"method": f"nms {cc.nms_masks}x{size}x{size}", "check": "matrix vs greedy", "ok": True,
                         "matrix_ms": mm, "greedy_ms": mg, "ratio": mm / mg,
                         "matrix_max_abs_diff_vs_cpu": float((gpu_scores - cpu_scores).abs().max()),
                         "greedy_same_keep_as_cpu": bool(torch.equal(gpu_keep, cpu_keep))})
        except Exception as e:  # noqa: BLE001
            rows.append(_error_row(f"nms {cc.nms_masks}x{size}x{size}", "matrix vs greedy", e))
    return rows


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, backend: str, cc: CheckConfig, out: str) -> None:
    """One rank of the DDP check: one AMP training step of SOLOv2 through DistributedDataParallel."""
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    import methods
    from harness.data.types import collate
    from methods.base import sum_losses
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    from harness import distributed as dist_utils
    dev_type = "cuda" if backend == "nccl" else "cpu"
    dist_utils.init_from_env(dev_type)
    device = torch.device("cuda", rank) if dev_type == "cuda" else torch.device("cpu")
    try:
        cfg = method_config("solov2", cc)
        torch.manual_seed(0)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
        model = methods.build_method(cfg.method).to(device)
        net = DistributedDataParallel(model, device_ids=[rank] if dev_type == "cuda" else None,
                                      find_unused_parameters=True)
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        scaler = torch.amp.GradScaler("cuda") if dev_type == "cuda" else None
        ds = RandomImages(cc.batch_size * world, cc.image_hw, seed=1)
        batch = collate([ds[rank * cc.batch_size + i] for i in range(cc.batch_size)]).to(device)
        times = []
        for _ in range(2):  # the first step includes DDP's bucket set-up; the second is timed
            if dev_type == "cuda":
                torch.cuda.synchronize(device)
            t0 = time.perf_counter()
            with torch.autocast(device_type=dev_type, dtype=torch.float16, enabled=scaler is not None):
                loss = sum_losses(net(batch.images, batch.targets))
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            if dev_type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - t0)
        checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
        sums = [torch.zeros_like(checksum) for _ in range(world)]
        dist.all_gather(sums, checksum.to(device))
        if rank == 0:
            vals = [float(x) for x in sums]
            Path(out).write_text(json.dumps({"ok": len(set(vals)) == 1, "step_ms": times[-1] * 1e3,
                                             "first_step_ms": times[0] * 1e3, "loss": float(loss.detach()),
                                             "param_checksums": vals, "backend": backend, "world": world}))
    finally:
        dist.destroy_process_group()


def check_ddp(cc: CheckConfig, device: torch.device) -> list[dict]:
    """A 2-process DDP step (nccl on 2 GPUs; gloo on the CPU in the dry run); [] with fewer than 2 GPUs."""
    if device.type == "cuda" and torch.cuda.device_count() < 2:
        return []
    backend = "nccl" if device.type == "cuda" else "gloo"
    name = f"ddp 2 x {backend}"
    with tempfile.TemporaryDirectory() as d:
        out = str(Path(d) / "ddp.json")
        try:
            ctx = torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), backend, cc, out), nprocs=2,
                                              join=False)
            deadline = time.monotonic() + DDP_TIMEOUT_S
            while not ctx.join(timeout=5):  # a hung collective must not hold the whole check
                if time.monotonic() > deadline:
                    for proc in ctx.processes:
                        proc.kill()
                    raise TimeoutError(f"the 2-process DDP step did not finish within {DDP_TIMEOUT_S:.0f} s")
            res = json.loads(Path(out).read_text())
            ok = res.pop("ok")
            return [{"method": name, "check": "DDP step (AMP)" if backend == "nccl" else "DDP step", "ok": ok,
                     **res, **({} if ok else {"error": "ranks hold different parameters after the step"})}]
        except Exception as e:  # noqa: BLE001
            return [_error_row(name, "DDP step", e)]


def run_check(cc: CheckConfig, log=print) -> list[dict]:
    """Every check of ``cc`` (module docstring), within its time budget. Returns the result rows."""
    device = torch.device(cc.device, 0) if cc.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    t0 = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        for name in check_methods(cc):
            if time.perf_counter() - t0 > cc.budget_s:
                rows.append({"method": name, "check": "all", "ok": False, "error": "skipped: time budget spent"})
                continue
            log(f"gpu-check: {name} ...")
            rows.extend(check_method(name, cc, device, Path(work)))
            if device.type == "cuda":
                torch.cuda.empty_cache()
    log("gpu-check: NMS ...")
    rows.extend(check_nms(cc, device))
    if time.perf_counter() - t0 < cc.budget_s + 30:
        rows.extend(check_ddp(cc, device))
    for r in rows:
        r.setdefault("total_s", time.perf_counter() - t0)
    return rows


def format_table(rows: list[dict], device_name: str) -> str:
    from tabulate import tabulate

    def f(x, d=1):
        return "" if x is None else f"{x:.{d}f}" if isinstance(x, float) else str(x)
    table = []
    for r in rows:
        if not r["ok"]:
            table.append([r["method"], r["check"], "FAILED", r.get("error", "")])
            continue
        if r["check"].startswith("time"):
            what = (f"{f(r['ms_per_img'])} ms/img ({f(r['fps'])} FPS), forward {f(r['forward_ms'])} ms, "
                    f"post-process {f(r['postprocess_ms'])} ms")
        elif r["check"] == "train amp":
            what = (f"{f(r['ms_per_it'])} ms/it over {r['iterations']} it (AMP {r['amp']}), "
                    f"last loss {f(r['loss_last'], 3)}")
        elif r["check"] == "matrix vs greedy":
            what = (f"matrix {f(r['matrix_ms'], 2)} ms, greedy {f(r['greedy_ms'], 2)} ms, ratio {f(r['ratio'], 3)}; "
                    f"vs CPU: max |diff| {r['matrix_max_abs_diff_vs_cpu']:.1e}, greedy same keep "
                    f"{r['greedy_same_keep_as_cpu']}")
        else:
            what = f"{f(r['step_ms'])} ms/step ({r['world']} x {r['backend']}), same parameters on all ranks"
        table.append([r["method"], r["check"], "ok", what, f(r.get("peak_mem_mb"), 0)])
    return (f"gpu-check on {device_name}\n"
            + tabulate(table, headers=["method", "check", "status", "result", "peak MiB"], tablefmt="github"))


def write_records(rows: list[dict], out_root: str | Path, device: torch.device) -> Path:
    """One record per row (``kind`` time / train / nms / ddp) in ``<out_root>/gpu_check/runs.jsonl``."""
    from harness.config import to_flat
    from harness.records import append_record, env_info, make_record, records_path, utc_now
    session = f"{utc_now()}-{uuid.uuid4().hex[:6]}"
    path = records_path(STUDY, out_root)
    env = env_info(device)
    for r in rows:
        cfg = r.get("config")
        ds = r.get("dataset")
        kind = ("time" if r["check"].startswith("time") else "train" if r["check"].startswith("train")
                else "nms" if r["check"].startswith("matrix") else "ddp" if r["check"].startswith("DDP") else "check")
        variant = r["method"] + (" fp16" if r["check"] == "time fp16" else " amp" if kind == "train" else "")
        metrics = {k: v for k, v in r.items() if k not in ("config", "dataset", "timing", "method", "check")}
        append_record(path, make_record(
            study=STUDY, variant=variant, method=r["method"].split(" ")[0], seed=0, kind=kind,
            run_id=f"gpu_check-{session}-{variant.replace(' ', '_')}",
            config=to_flat(cfg) if cfg is not None else {}, metrics=metrics, timing=r.get("timing"),
            data={"dataset": ds.name if ds is not None else "", "split": "", "n_images": len(ds) if ds else 0,
                  "stats": None, "session": session},
            env=env))
    return path


def main(args) -> int:
    """The ``gpu-check`` subcommand. Exit code 0 (all ok, or skipped without CUDA), 1 (a check failed)."""
    if args.dry:
        cc = CheckConfig.dry_run(methods=tuple(args.methods.split(",")) if args.methods else ())
    else:
        if args.device == "cuda" and not torch.cuda.is_available():
            print(SKIP_MESSAGE)
            return 0
        if args.device != "cuda":
            print("gpu-check: --device cpu only with --dry (the CPU self-test)", file=sys.stderr)
            return 2
        cc = CheckConfig.paper(num_images=args.num_images, train_iters=args.train_iters, budget_s=args.budget_s,
                               methods=tuple(args.methods.split(",")) if args.methods else ())
    rows = run_check(cc)
    device = torch.device(cc.device)
    from harness.timing import device_name
    print(format_table(rows, device_name(torch.device(cc.device, 0) if cc.device == "cuda" else device)))
    out = args.out if args.out else (None if cc.dry else "results")
    if out:
        print(f"records: {write_records(rows, out, device)}")
    return 0 if all(r["ok"] for r in rows) else 1


def register(sub) -> argparse.ArgumentParser:
    """The ``gpu-check`` subcommand (``harness.cli_gpu.register``: without importing this module, i.e. torch)."""
    from harness.cli_gpu import register as _register
    return _register(sub)
