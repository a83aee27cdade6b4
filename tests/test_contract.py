"""Contract test over every registered method (architecture.md): smoke config, a padded batch of two images of
different sizes, one of them with no instances -> finite scalar losses, backward reaches parameters, and predict
returns valid Instances at the original size."""
import pytest
import torch
from method_helpers import check_instances

import methods
from harness.config import make_config
from harness.data.types import Sample, collate
from methods.base import Instances

NUM_CLASSES = 3


def _samples():
    g = torch.Generator().manual_seed(0)
    a = Sample(image=torch.randint(0, 255, (3, 64, 48), generator=g, dtype=torch.uint8),
               masks=torch.zeros(2, 64, 48, dtype=torch.bool), labels=torch.tensor([0, 2]),
               boxes=torch.tensor([[4.0, 6.0, 24.0, 30.0], [20.0, 30.0, 44.0, 60.0]]),
               iscrowd=torch.tensor([False, False]), image_id=1, orig_size=(128, 96))
    a.masks[0, 6:30, 4:24] = True
    a.masks[1, 30:60, 20:44] = True
    b = Sample(image=torch.randint(0, 255, (3, 40, 56), generator=g, dtype=torch.uint8),
               masks=torch.zeros(0, 40, 56, dtype=torch.bool), labels=torch.zeros(0, dtype=torch.int64),
               boxes=torch.zeros(0, 4), iscrowd=torch.zeros(0, dtype=torch.bool), image_id=2, orig_size=(40, 56))
    return [a, b]


TRAINABLE = [m for m in methods.available()
             if getattr(methods.METHODS[methods.PRESETS.get(m, (m,))[0]], "trainable", True)]


@pytest.mark.parametrize("name", TRAINABLE)
def test_method_contract(name):
    torch.manual_seed(0)
    cfg = make_config(name, "smoke", overrides=[f"method.num_classes={NUM_CLASSES}"])
    model = methods.build_method(cfg.method)
    batch = collate(_samples(), 32)
    model.train()
    kwargs = {"sem_segs": batch.sem_segs} if getattr(model, "uses_sem_seg", False) else {}
    losses = model(batch.images, batch.targets, **kwargs)
    assert losses and all(k.startswith("loss_") for k in losses), losses.keys()
    for k, v in losses.items():
        assert v.dim() == 0 and torch.isfinite(v), (k, v)
    # run health: the method's own assigner reports positives per GT instance, one entry per instance of the batch
    pos = model.last_positives_per_gt
    assert pos is not None and pos.dtype == torch.int64 and pos.shape == (2,), pos
    assert (pos >= 1).all(), f"{name}: a 20-30 px object got no positive: {pos.tolist()}"
    total = methods.sum_losses(losses)
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), "no gradient reached the parameters"

    model.eval()
    preds = model.predict(batch.images, batch.image_sizes, batch.orig_sizes)
    check_instances(preds, batch.orig_sizes, NUM_CLASSES)
    assert all(isinstance(i, Instances) and len(i) <= cfg.method.max_per_img for i in preds)


def test_registry_rejects_duplicates_and_unknown():
    with pytest.raises(ValueError, match="already registered"):
        methods.register("solov2")(type("X", (methods.Method,), {"Config": methods.MethodConfig}))
    with pytest.raises(KeyError, match="registered"):
        methods.method_config("no_such_method")
