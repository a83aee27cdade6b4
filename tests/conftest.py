"""Shared test helpers: the real data under ../shared/data (never copied into the repo)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``$SEGBENCH_SHARED_DATA`` or ``../shared/data`` beside the repo root; None when absent."""
    env = os.environ.get("SEGBENCH_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path if path.is_dir() else None


@pytest.fixture
def shared_data() -> Path:
    """The shared real-data folder (tiny_coco/, ochuman_sample/); skips the test when absent."""
    path = shared_data_dir()
    if path is None:
        pytest.skip("real test data not found: set SEGBENCH_SHARED_DATA or provide ../shared/data "
                    "beside the repo (tiny_coco/, ochuman_sample/)")
    return path
