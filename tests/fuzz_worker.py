"""Fork server for tests/test_fuzz_inputs.py: imports the harness once, then runs each request in a forked child
under a memory limit (RLIMIT_AS) and a time limit, and reports how it ended.

Protocol: one JSON request per stdin line ``{"kind": "gt" | "results" | "image", "dir": DIR}``; one JSON reply
per stdout line ``{"outcome": ..., "detail": ...}`` where outcome is

* ``ok``          the command succeeded (``skips`` counts the warnings it gave: counted skips / repairs);
* ``error``       a clear error: the CLI returned 1 or 2 with an ``error:`` / ``evaluate:`` line on stderr;
* ``traceback``   an exception escaped the CLI boundary (``detail``: its type and message);
* ``wrong``       the call succeeded but decoded values differ from the expected ones (a silent change);
* ``hang``        killed after the time limit;
* ``memory``      MemoryError, or the child died of a signal under the memory limit.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import select
import signal
import sys
import traceback
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import numpy as np  # noqa: E402

import harness.cli  # noqa: E402, F401  (import everything before forking)
import harness.cli_data  # noqa: E402, F401
import harness.data.coco  # noqa: E402, F401
import harness.evaluate  # noqa: E402, F401

TIME_LIMIT_S = float(os.environ.get("FUZZ_TIME_LIMIT_S", "20"))
MEMORY_MARGIN = int(os.environ.get("FUZZ_MEMORY_MARGIN_MB", "1536")) * 1024 * 1024


def _vm_size() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def _cli(argv: list[str]) -> dict:
    err, out = io.StringIO(), io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err), \
            contextlib.redirect_stdout(out):
        warnings.simplefilter("always")
        rc = harness.cli.main(argv)
    text = err.getvalue()
    if rc == 0:
        return {"outcome": "ok", "skips": len(caught), "detail": ""}
    first = text.strip().splitlines()[-1] if text.strip() else ""
    clear = rc in (1, 2) and (first.startswith("error:") or first.startswith("evaluate:")) and len(first) > 10
    return {"outcome": "error" if clear else "traceback", "detail": f"rc={rc} {first[:300]}"}


def _image(d: str) -> dict:
    """Load the dataset's single image; compare with the expected decoding when the request gives one."""
    from harness.data.coco import DatasetError, InstanceDataset
    spec = json.load(open(os.path.join(d, "request.json")))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = InstanceDataset(os.path.join(d, "ann.json"), d)
            s = ds[0]
    except DatasetError as e:
        return {"outcome": "error", "detail": str(e)[:300]}
    img = s.image.numpy()
    if img.dtype != np.uint8 or img.shape[0] != 3:
        return {"outcome": "wrong", "detail": f"decoded {img.dtype} {img.shape}"}
    if spec.get("expected"):
        exp = np.load(os.path.join(d, "expected.npy"))
        diff = np.abs(img.transpose(1, 2, 0).astype(int) - exp.astype(int)).max()
        if diff > spec.get("tolerance", 1):
            return {"outcome": "wrong", "detail": f"mode {spec.get('mode')}: max abs difference {diff}"}
    return {"outcome": "ok", "skips": 0, "detail": ""}


def _child(req: dict) -> dict:
    d = req["dir"]
    if req["kind"] == "image":
        return _image(d)
    gt, preds = os.path.join(d, "ann.json"), os.path.join(d, "preds.json")
    res = _cli(["evaluate", "--gt", gt, "--predictions", preds])
    if req["kind"] == "gt" and res["outcome"] == "ok":  # the training view of the same file
        res = _cli(["data", "stats", f"coco:{gt}:{d}"])
    return res


def run(req: dict) -> dict:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        try:
            limit = _vm_size() + MEMORY_MARGIN
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            try:
                out = _child(req)
            except MemoryError:
                out = {"outcome": "memory", "detail": "MemoryError"}
            except BaseException as e:  # noqa: BLE001 - anything escaping is a finding
                tb = traceback.format_exc().strip().splitlines()
                out = {"outcome": "traceback", "detail": f"{type(e).__name__}: {str(e)[:200]} @ {tb[-3][:200]}"}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    ready, _, _ = select.select([r], [], [], TIME_LIMIT_S)
    if not ready:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
        return {"outcome": "hang", "detail": f"over {TIME_LIMIT_S} s"}
    data = b""
    while chunk := os.read(r, 65536):
        data += chunk
    os.close(r)
    _, status = os.waitpid(pid, 0)
    if not data:
        sig = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        return {"outcome": "memory", "detail": f"child died (signal {sig}, status {status})"}
    return json.loads(data)


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
