"""Names the CLI shows before it imports anything heavy (``--help`` answers without importing torch).

Each tuple here mirrors a registry of the code (``tests/test_cli_help.py`` checks that they agree), so the
help text stays right when a method, preset, profile or dataset is added: add it here too.
"""
from __future__ import annotations

import pkgutil
from pathlib import Path

METHODS = ("casnet", "condinst", "maskrcnn", "oracle", "oracle_ceiling", "oracle_jitter", "solov2", "solov2_improved",
           "uniinst")
"""``methods.available()``: registered methods and presets."""
PROFILES = ("smoke", "quick", "paper", "real")
"""``harness.config.PROFILES``."""
POSTPROCESS = ("matrix", "matrix_linear", "mask", "box", "fast", "none", "default")
"""``methods.config.PostProcess``."""
DATASET_SPECS = ("shapes-coco", "shapes-ochuman", "shapes-street", "coco:ANN.json:IMGDIR", "ochuman:ANN.json:IMGDIR",
                 "pennfudan:ROOT", "masks:IMGDIR:MASKDIR[:CLASSNAME]")
"""``harness.data.VALID_SPECS``."""
SYNTHETIC_PRESETS = ("shapes-coco", "shapes-ochuman", "shapes-street")
"""``harness.data.synthetic.PRESETS``."""
CITYSCAPES_CLASS_SETS = ("thing8", "street5")
"""``harness.data.cityscapes.CLASS_SETS``."""


def studies() -> list[str]:
    """The study modules of ``experiments/`` (found on disk, not imported)."""
    root = Path(__file__).resolve().parents[1] / "experiments"
    return sorted(m.name for m in pkgutil.iter_modules([str(root)]) if not m.name.startswith("_"))
