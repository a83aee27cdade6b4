"""Statistics for run records: means with Student-t confidence intervals, Welch's t-test, and the
effects of a two-level factorial design.

Seeds are the replicates: COCO runs of one config spread by 0.2-0.3 AP (mmdetection #2773, #6472),
so every figure is reported as a mean with its confidence interval, and an ablation's conclusion is a
factorial effect with a standard error and a p-value, not a single difference.

Factorial design (Montgomery, *Design and Analysis of Experiments*, ch. 6): each of the k factors is
coded -1 / +1; the main effect of A is ``mean(y | A=+1) - mean(y | A=-1)`` and the effect of an
interaction, e.g. A:B, is the same difference over the product contrast ``x_A * x_B``.  Standard
errors and p-values come from the ordinary least-squares fit of the full model
``y = b0 + sum_T b_T * prod_{f in T} x_f`` (all 2^k - 1 terms), with residual degrees of freedom
``n - 2^k``; in a balanced design ``effect = 2 * b_T`` exactly, and its standard error is
``2 * se(b_T)``.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd
from scipy import stats as sps


def mean_ci(values, conf: float = 0.95) -> tuple[float, float]:
    """Mean and the half width of its two-sided Student-t confidence interval.

    ``half_width = t_{(1+conf)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
    (ddof=1).

    Args:
        values: 1-D numbers (e.g. one metric over seeds).
        conf: confidence level in (0, 1).
    Returns:
        ``(mean, half_width)``; ``half_width`` is NaN for n = 1.
    Raises:
        ValueError: no values, or ``conf`` outside (0, 1).
    """
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    mean = float(x.mean())
    if x.size < 2:
        return mean, float("nan")
    hw = float(sps.t.ppf(0.5 + conf / 2.0, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, hw


def std_ci(values, conf: float = 0.95) -> tuple[float, float, float]:
    """Sample standard deviation (ddof=1) with its chi-square confidence interval (normal data).

    ``[s * sqrt((n-1) / chi2_{(1+conf)/2, n-1}), s * sqrt((n-1) / chi2_{(1-conf)/2, n-1})]``: how far a
    spread measured over a few seeds can be trusted (from 3 seeds the interval spans a factor of ~12).

    Returns:
        ``(std, low, high)``; all NaN for fewer than 2 values.
    Raises:
        ValueError: ``conf`` outside (0, 1).
    """
    if not 0.0 < conf < 1.0:
        raise ValueError(f"conf must be in (0, 1), got {conf}")
    x = np.asarray(values, dtype=np.float64).ravel()
    n = x.size
    if n < 2:
        return float("nan"), float("nan"), float("nan")
    s = float(x.std(ddof=1))
    lo = s * math.sqrt((n - 1) / sps.chi2.ppf(0.5 + conf / 2.0, n - 1))
    hi = s * math.sqrt((n - 1) / sps.chi2.ppf(0.5 - conf / 2.0, n - 1))
    return s, lo, hi


def summarize(df: pd.DataFrame, by: Sequence[str] | str, metrics: Sequence[str],
              conf: float = 0.95) -> pd.DataFrame:
    """Per-group mean, standard deviation and CI half width of each metric.

    Args:
        df: one row per run (e.g. per seed).
        by: grouping column(s), e.g. ``["method", "variant"]``.
        metrics: numeric columns to summarise; missing values (NaN) are left out of each metric.
        conf: confidence level of the CI.
    Returns:
        DataFrame with the ``by`` columns, ``n`` (rows in the group) and ``<m>_mean``, ``<m>_std``
        (ddof=1, NaN for one value), ``<m>_ci`` (half width) per metric; groups sorted by ``by``.
    Raises:
        KeyError: a missing column.
    """
    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, *metrics] if c not in df.columns]
    if missing:
        raise KeyError(f"summarize: columns {missing} not in {list(df.columns)}")
    rows = []
    for key, group in df.groupby(by, sort=True, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key))
        row["n"] = len(group)
        for m in metrics:
            vals = group[m].dropna().to_numpy(dtype=np.float64)
            mean, hw = mean_ci(vals, conf) if vals.size else (float("nan"), float("nan"))
            row[f"{m}_mean"] = mean
            row[f"{m}_std"] = float(vals.std(ddof=1)) if vals.size > 1 else float("nan")
            row[f"{m}_ci"] = hw
        rows.append(row)
    return pd.DataFrame(rows)


def _code(series: pd.Series, name: str) -> np.ndarray:
    """A two-level factor as -1 / +1 (bool: True = +1; {-1, 1} as is; otherwise sorted levels
    low = -1, high = +1)."""
    levels = pd.unique(series.dropna())
    if series.isna().any() or len(levels) != 2:
        raise ValueError(f"factor {name!r} must have exactly two levels and no missing values, "
                         f"got {sorted(map(str, levels))}")
    if set(levels.tolist()) <= {-1, 1}:
        return series.to_numpy(dtype=np.float64)
    low, high = sorted(levels.tolist())
    return np.where(series.to_numpy() == high, 1.0, -1.0)


def factorial_effects(df: pd.DataFrame, factors: Sequence[str], response: str,
                      conf: float = 0.95) -> pd.DataFrame:
    """Main effects and all interactions of a 2^k factorial design with replicates.

    Args:
        df: one row per run; ``factors`` are two-level columns (bool, 0/1, -1/+1, or two labels),
            ``response`` the measured value (e.g. AP).
        factors: the k factor columns.
        response: the response column.
        conf: confidence level of the ``ci`` half width.
    Returns:
        DataFrame, one row per term (main effects, then two-way, ..., k-way interactions, in the
        order of ``factors``; names like ``"A:B"``) with columns ``term``, ``effect``
        (mean(+) - mean(-) of the term's contrast), ``coef`` (OLS coefficient), ``se`` (standard
        error of the effect = 2 se(coef)), ``t``, ``df`` (residual), ``p`` (two-sided), ``ci``
        (half width of the effect's CI).  ``se``, ``t``, ``p``, ``ci`` are NaN without replicates
        (df = 0).
    Raises:
        ValueError: no factors, a factor without exactly two levels, a cell of the design with no
            run (named), or a missing / non-finite response.
        KeyError: a missing column.
    """
    factors = list(factors)
    if not factors:
        raise ValueError("factorial_effects needs at least one factor")
    missing = [c for c in [*factors, response] if c not in df.columns]
    if missing:
        raise KeyError(f"factorial_effects: columns {missing} not in {list(df.columns)}")
    y = df[response].to_numpy(dtype=np.float64)
    if not np.isfinite(y).all():
        raise ValueError(f"response {response!r} has missing or non-finite values")
    coded = {f: _code(df[f], f) for f in factors}
    cells = set(zip(*(coded[f] for f in factors)))
    for cell in itertools.product((-1.0, 1.0), repeat=len(factors)):
        if cell not in cells:
            desc = ", ".join(f"{f}={'+' if c > 0 else '-'}" for f, c in zip(factors, cell))
            raise ValueError(f"the 2^{len(factors)} design has no run at ({desc})")

    terms = [t for r in range(1, len(factors) + 1) for t in itertools.combinations(factors, r)]
    contrasts = [np.prod([coded[f] for f in t], axis=0) for t in terms]
    x = np.column_stack([np.ones_like(y), *contrasts])  # (n, 2^k)
    beta, *_ = np.linalg.lstsq(x, y, rcond=None)
    n, p = x.shape
    dof = n - p
    if dof > 0:
        sigma2 = float(((y - x @ beta) ** 2).sum() / dof)
        se_beta = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
        tcrit = float(sps.t.ppf(0.5 + conf / 2.0, dof))
    else:
        se_beta = np.full(p, np.nan)
        tcrit = float("nan")
    rows = []
    for j, (term, c) in enumerate(zip(terms, contrasts), start=1):
        t_stat = beta[j] / se_beta[j] if dof > 0 and se_beta[j] > 0 else float("nan")
        p_val = float(2.0 * sps.t.sf(abs(t_stat), dof)) if np.isfinite(t_stat) else float("nan")
        rows.append({
            "term": ":".join(term),
            "effect": float(y[c > 0].mean() - y[c < 0].mean()),
            "coef": float(beta[j]),
            "se": float(2.0 * se_beta[j]),
            "t": float(t_stat),
            "df": int(dof),
            "p": p_val,
            "ci": float(tcrit * 2.0 * se_beta[j]),
        })
    return pd.DataFrame(rows)


class WelchResult(NamedTuple):
    """Welch's two-sample t-test of ``mean(a) - mean(b)``."""

    diff: float
    ci_low: float
    ci_high: float
    t: float
    df: float
    p: float


def welch(a, b, conf: float = 0.95) -> WelchResult:
    """Difference of means with Welch's (unequal variance) t-test and its confidence interval.

    ``se = sqrt(s_a^2/n_a + s_b^2/n_b)``, Welch-Satterthwaite degrees of freedom; the p-value is
    ``scipy.stats.ttest_ind(a, b, equal_var=False)``'s.

    Args:
        a, b: 1-D samples with at least two values each (e.g. AP over seeds).
        conf: confidence level of the interval.
    Returns:
        ``WelchResult(diff, ci_low, ci_high, t, df, p)``.
    Raises:
        ValueError: fewer than two values in a sample.
    """
    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    if xa.size < 2 or xb.size < 2:
        raise ValueError(f"welch needs >= 2 values per sample, got {xa.size} and {xb.size}")
    va, vb = xa.var(ddof=1) / xa.size, xb.var(ddof=1) / xb.size
    diff = float(xa.mean() - xb.mean())
    se = math.sqrt(va + vb)
    if se == 0.0:
        return WelchResult(diff, diff, diff, float("nan"), float("nan"), float("nan"))
    dof = float((va + vb) ** 2 / (va**2 / (xa.size - 1) + vb**2 / (xb.size - 1)))
    res = sps.ttest_ind(xa, xb, equal_var=False)
    hw = float(sps.t.ppf(0.5 + conf / 2.0, dof) * se)
    return WelchResult(diff, diff - hw, diff + hw, float(res.statistic), dof, float(res.pvalue))


def paired(a, b, conf: float = 0.95) -> WelchResult:
    """Mean of the paired differences ``a[i] - b[i]`` with a one-sample t-test and its confidence interval.

    For two evaluations of the *same* trained weights per seed (e.g. CASNet joint vs separated semantics, with vs
    without NMS): the seed-to-seed variance of training cancels.  The p-value is
    ``scipy.stats.ttest_rel(a, b)``'s, and so is the interval; ``df`` = n - 1.

    Raises:
        ValueError: samples of different lengths or fewer than two pairs.
    """
    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    if xa.size != xb.size or xa.size < 2:
        raise ValueError(f"paired needs two samples of equal length >= 2, got {xa.size} and {xb.size}")
    d = xa - xb
    diff = float(d.mean())
    if float(d.std(ddof=1)) == 0.0:
        return WelchResult(diff, diff, diff, float("nan"), float(d.size - 1), float("nan"))
    res = sps.ttest_rel(xa, xb)
    ci = res.confidence_interval(confidence_level=conf)
    return WelchResult(diff, float(ci.low), float(ci.high), float(res.statistic), float(d.size - 1), float(res.pvalue))
