"""Launched by torchrun from tests/test_distributed.py: train at smoke scale under DDP, then save each
rank's parameters and run a distributed oracle evaluation."""
import json
import sys
from pathlib import Path

import torch

from harness import distributed as dist_utils
from harness.config import make_config
from harness.evaluate import shard_indices
from harness.pipeline import build_split, evaluate_model
from harness.train import train

out = Path(sys.argv[1])
cfg = make_config("solov2", "smoke", overrides=["train.max_iter=3", "train.device=cpu", "train.threads=1"])
res = train(cfg, out / "run", progress=False)
r = dist_utils.rank()
torch.save({k: v.detach().clone() for k, v in res.model.named_parameters()}, out / f"rank{r}.pth")

ocfg = make_config("oracle", "smoke", overrides=["train.device=cpu"])
val = build_split(ocfg, "val")
import methods  # noqa: E402

oracle = methods.build_method(ocfg.method)
metrics, results = evaluate_model(oracle, ocfg, val, torch.device("cpu"), progress=False)
mine = shard_indices(len(val), r, dist_utils.world_size())
gathered = dist_utils.all_gather_objects(mine)
if r == 0:
    (out / "eval.json").write_text(json.dumps({"AP": metrics["AP"], "n_results": len(results),
                                               "shards": gathered, "n_val": len(val)}))
dist_utils.barrier()
