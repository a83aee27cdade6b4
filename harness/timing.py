"""The timing protocol: how inference speed is measured, recorded with every figure.

Protocol (after mmdetection's benchmark.py and detectron2's inference_on_dataset; see
``docs/timing.md``):

* batch size 1, images taken in dataset order (cycled if fewer than needed);
* ``warmup_iters`` images are run first and discarded;
* ``num_images`` images are timed; data loading (disk read, decode, resize of the dataset's eval
  transform) is **excluded**;
* three stages are timed separately with ``time.perf_counter`` and, on CUDA, a
  ``torch.cuda.synchronize()`` before and after each stage:
  ``preprocess`` (normalise, pad to the size divisor, host-to-device copy),
  ``forward`` (``method.forward_test``: backbone, neck, heads),
  ``postprocess`` (``method.postprocess``: decoding, NMS variant, mask upsampling to the original
  size, copy of the results to the host); ``total`` is their sum per image;
* fp16 autocast on CUDA when ``timing.fp16`` (on CPU fp16 is "not measured");
* reported: median, mean and p90 ms/img for each stage, FPS = 1000 / mean total ms;
* recorded with the figures: warm-up, count, stages, precision, device name, threads, torch version,
  cudnn.benchmark, and whether data loading was excluded.
"""
from __future__ import annotations

import os
import platform
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from harness.data.types import normalize, pad_images

PROTOCOL_VERSION = 1
STAGES = ("preprocess", "forward", "postprocess", "total")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    """GPU name, or the CPU model (``/proc/cpuinfo`` on Linux) with its logical core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from harness.records import cpu_model
    model = cpu_model()
    return f"{model or platform.processor() or platform.machine() or 'cpu'} ({os.cpu_count()} cores)"


def summarize_ms(values_ms: list[float]) -> dict:
    a = np.asarray(values_ms, dtype=np.float64)
    return {"median_ms": float(np.median(a)), "mean_ms": float(a.mean()), "p90_ms": float(np.percentile(a, 90)),
            "min_ms": float(a.min()), "n": int(a.size)}


@torch.no_grad()
def time_inference(method: torch.nn.Module, dataset, tcfg, device: torch.device, *, size_divisor: int = 32,
                   progress: bool = False) -> dict:
    """Time ``method`` on ``dataset`` (eval transforms) by the protocol above.

    Args:
        method: a built Method (weights loaded); put in eval mode here.
        dataset: an InstanceDataset (``__getitem__ -> Sample``).
        tcfg: TimingConfig (warmup_iters, num_images, fp16, threads).
        device: where to run.
    Returns:
        ``{"protocol": {...}, "stages": {stage: summarize_ms}, "ms_per_img": median total,
        "fps": 1000 / mean total, "precision": "fp32"|"fp16"}``; with ``fp16`` on a CPU the result has
        ``"fps": None`` and ``"not_measured": "fp16 needs CUDA"``.
    Raises:
        ValueError: empty dataset.
    """
    if len(dataset) == 0:
        raise ValueError(f"cannot time on an empty dataset ({getattr(dataset, 'name', '?')})")
    precision = "fp16" if tcfg.fp16 else "fp32"
    from harness.cpu import auto_threads, warn_if_loaded
    torch.set_num_threads(auto_threads(tcfg.threads))  # cores // processes unless set
    warn_if_loaded("timing")
    protocol = {
        "version": PROTOCOL_VERSION, "batch_size": 1, "warmup_iters": tcfg.warmup_iters,
        "num_images": tcfg.num_images, "stages": list(STAGES), "precision": precision,
        "data_loading": "excluded", "device": str(device), "device_name": device_name(device),
        "threads": torch.get_num_threads(), "torch": torch.__version__,
        "cudnn_benchmark": bool(torch.backends.cudnn.benchmark), "sync": device.type == "cuda",
        "dataset": getattr(dataset, "name", "?"),
        # machine load when timing started: CPU figures taken beside other work are not comparable
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if tcfg.fp16 and device.type != "cuda":
        return {"protocol": protocol, "stages": {}, "ms_per_img": None, "fps": None, "precision": precision,
                "not_measured": "fp16 needs CUDA"}
    method.eval().to(device)
    times = {s: [] for s in STAGES}
    n_total = tcfg.warmup_iters + tcfg.num_images
    from tqdm import tqdm
    for k in tqdm(range(n_total), disable=not progress, desc="timing", dynamic_ncols=True):
        sample = dataset[k % len(dataset)]  # data loading: excluded
        _sync(device)
        t0 = time.perf_counter()
        images = pad_images([normalize(sample.image)], size_divisor).to(device)
        _sync(device)
        t1 = time.perf_counter()
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=tcfg.fp16):
            raw = method.forward_test(images)
        _sync(device)
        t2 = time.perf_counter()
        if getattr(method, "uses_gt_semantics", False):  # oracle semantics are an input, not timed work
            method.set_ground_truth_semantics([sample.sem_seg])
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=tcfg.fp16):
            inst = method.postprocess(raw, [sample.size], [sample.orig_size])
        inst = [i.to("cpu") for i in inst]
        _sync(device)
        t3 = time.perf_counter()
        if k >= tcfg.warmup_iters:
            times["preprocess"].append((t1 - t0) * 1e3)
            times["forward"].append((t2 - t1) * 1e3)
            times["postprocess"].append((t3 - t2) * 1e3)
            times["total"].append((t3 - t0) * 1e3)
    stages = {s: summarize_ms(v) for s, v in times.items()}
    return {"protocol": protocol, "stages": stages, "ms_per_img": stages["total"]["median_ms"],
            "fps": 1000.0 / stages["total"]["mean_ms"], "precision": precision}


def count_params(model: torch.nn.Module) -> int:
    """Number of parameters (trainable or not)."""
    return int(sum(p.numel() for p in model.parameters()))


@torch.no_grad()
def count_flops(method: torch.nn.Module, height: int, width: int, device: torch.device | str = "cpu") -> int:
    """FLOPs of ``method.forward_test`` on one zero image of (height, width), by torch.utils.flop_counter.

    Counts the network only (post-processing is data dependent); a multiply-add counts as 2 FLOPs,
    as torch's FlopCounterMode does.  Returns 0 for methods without trainable parameters.
    """
    if count_params(method) == 0:
        return 0
    method.eval()
    x = torch.zeros(1, 3, height, width, device=device)
    counter = FlopCounterMode(display=False)
    with counter:
        method.forward_test(x)
    return int(counter.get_total_flops())
