"""CLI helpers: argument checks made before any work, ``python -m harness list``, and the error boundary.

``harness.cli`` stays light (``--help`` imports neither torch nor the methods: the names come from
``harness.catalog``); everything heavy is imported inside the command that needs it.

The boundary (``guarded``): a user error ends in one ``error: ...`` line on stderr naming the file / id, never
a traceback.  Usage errors (unknown method, study, key, bad ``--set`` value, bad argument) exit 2; bad input
files, I/O and parse errors, broken checkpoints exit 1.
"""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from harness import catalog


class UsageError(ValueError):
    """A bad command-line argument, found before any work (exit code 2)."""


def split_list(text: str | None, what: str) -> list[str]:
    items = [t.strip() for t in (text or "").split(",") if t.strip()]
    if not items:
        raise UsageError(f"{what} is empty: give one or more comma-separated names")
    return items


def check_methods(text: str | None) -> list[str]:
    names = split_list(text, "--methods")
    unknown = [m for m in names if m not in catalog.METHODS]
    if unknown:
        raise UsageError(f"unknown method(s) {unknown}; registered: {', '.join(catalog.METHODS)}")
    return names


def check_postprocess(text: str | None) -> list[str] | None:
    if text is None:
        return None
    kinds = split_list(text, "--postprocess")
    unknown = [k for k in kinds if k not in catalog.POSTPROCESS]
    if unknown:
        raise UsageError(f"unknown post-processing {unknown}; valid: {', '.join(catalog.POSTPROCESS)}")
    return kinds


def check_count(value: int | None, flag: str, minimum: int = 1) -> None:
    if value is not None and value < minimum:
        raise UsageError(f"{flag} must be >= {minimum}, got {value}")


def check_study(name: str) -> None:
    if name.partition("@")[0].replace("-", "_") not in catalog.studies():  # NAME or NAME@PROFILE
        raise UsageError(f"unknown study {name!r}; known: {', '.join(catalog.studies())} "
                         "(python -m harness list shows their variants and seeds)")


def study_epilog() -> str:
    return ("studies: " + ", ".join(catalog.studies())
            + ".  `python -m harness list` shows each study's variants and seeds.")


def compare_epilog() -> str:
    return (f"methods: {', '.join(catalog.METHODS)}; post-processing: {', '.join(catalog.POSTPROCESS)}; "
            f"datasets: {', '.join(catalog.DATASET_SPECS)}; profiles: {', '.join(catalog.PROFILES)}.  "
            "`python -m harness list` shows more.")


# ---------------------------------------------------------------------------------------------
# python -m harness list
def cmd_list(args: argparse.Namespace) -> int:
    """Methods and presets, studies (variants, seeds), dataset specs and profiles."""
    import methods
    from harness.config import make_config
    from harness.studies import load_study

    print("methods:")
    for name in methods.available():
        if name in methods.PRESETS:
            base, over = methods.PRESETS[name]
            print(f"  {name:<16} preset of {base}: " + ", ".join(f"{k}={v}" for k, v in over.items()))
        else:
            print(f"  {name}")
    print("post-processing (--postprocess): " + ", ".join(catalog.POSTPROCESS))
    print("dataset specs (--dataset): " + ", ".join(catalog.DATASET_SPECS))
    print("profiles (--profile):")
    for p in catalog.PROFILES:
        cfg = make_config("solov2", p)
        sizes = (f", {cfg.data.train_images} train / {cfg.data.val_images} val images at {cfg.data.image_size} px"
                 if cfg.data.dataset.startswith("shapes-") else "")
        print(f"  {p:<6} dataset {cfg.data.dataset}{sizes}, {cfg.train.max_iter} iterations")
    print("studies (python -m harness study NAME; make targets in `make help`):")
    for name in catalog.studies():
        st = load_study(name)
        variants = ", ".join(v.name for v in st.variants)
        print(f"  {name:<20} {st.seeds} seed(s), profile {st.profile}, {len(st.variants)} variants: {variants}")
    return 0


# ---------------------------------------------------------------------------------------------
# the error boundary
def guarded(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; user errors become one ``error:`` line (exit 2 usage, 1 input / I/O), not a traceback."""
    import os

    from harness.config import ConfigError
    if os.environ.get("SEGBENCH_DEBUG"):  # developers: the full traceback
        return int(func(args) or 0)
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # "warning: ..." without source lines
        print(f"warning: {message}", file=file or sys.stderr)

    warnings.showwarning = show
    try:
        return int(func(args) or 0)
    except (UsageError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyError as e:  # unknown method / study / key
        print(f"error: {e.args[0] if e.args else e}", file=sys.stderr)
        return 2
    except json.JSONDecodeError as e:
        print(f"error: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})", file=sys.stderr)
        return 1
    except UnicodeDecodeError as e:
        print(f"error: a file is not UTF-8 text ({e})", file=sys.stderr)
        return 1
    except OSError as e:  # FileNotFoundError, PermissionError, IsADirectoryError, disk full, ...
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"error: {where}{e.strerror or e}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, ImportError, EOFError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except TypeError as e:  # a value of the wrong type in an input file; SEGBENCH_DEBUG=1 shows where
        print(f"error: {type(e).__name__}: {e} (set SEGBENCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
