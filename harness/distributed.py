"""torch.distributed helpers (torchrun: RANK / WORLD_SIZE / LOCAL_RANK from the environment).

Backends: nccl on CUDA, gloo on CPU.  A single process (no WORLD_SIZE, or 1) needs no process group.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def init_from_env(device_type: str) -> bool:
    """Initialise the default process group when launched by torchrun. Returns True if distributed."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if dist.is_initialized():
        return True
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend)
    return True


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def all_gather_objects(obj) -> list:
    """Every rank's ``obj`` in rank order (a one-element list when not distributed)."""
    if world_size() == 1:
        return [obj]
    out: list = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def resolve_device(name: str) -> torch.device:
    """"auto" -> cuda:LOCAL_RANK when CUDA is present, else cpu.

    Raises:
        RuntimeError: "cuda" asked for on a machine without CUDA.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but torch.cuda.is_available() is False; "
                               "use --set train.device=cpu (or timing.device=cpu)")
        return torch.device("cuda", local_rank())
    return torch.device("cpu")
