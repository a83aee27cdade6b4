"""Hand-computed tests of harness.stats."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from harness.stats import factorial_effects, mean_ci, std_ci, summarize, welch

# t quantile with 2 degrees of freedom has a closed form: t_p = (2p - 1) / sqrt(2 p (1 - p))
T975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)  # 4.3027


def test_mean_ci_hand_computed():
    mean, hw = mean_ci([1.0, 2.0, 3.0])  # s = 1, n = 3
    assert mean == 2.0
    assert hw == pytest.approx(T975_DF2 / math.sqrt(3), rel=1e-12)
    assert mean_ci([5.0, 5.0]) == (5.0, 0.0)
    m1, h1 = mean_ci([41.2])
    assert m1 == 41.2 and math.isnan(h1)
    with pytest.raises(ValueError, match="at least one value"):
        mean_ci([])
    with pytest.raises(ValueError, match="conf"):
        mean_ci([1, 2], conf=1.5)


def test_summarize_groups():
    df = pd.DataFrame({"method": ["b", "a", "a", "a", "b"], "AP": [10.0, 1.0, 2.0, 3.0, np.nan],
                       "fps": [1.0, 2.0, 2.0, 2.0, 3.0]})
    out = summarize(df, "method", ["AP", "fps"])
    assert list(out["method"]) == ["a", "b"] and list(out["n"]) == [3, 2]
    a, b = out.iloc[0], out.iloc[1]
    assert a["AP_mean"] == 2.0 and a["AP_std"] == 1.0 and a["AP_ci"] == pytest.approx(T975_DF2 / math.sqrt(3))
    assert b["AP_mean"] == 10.0 and math.isnan(b["AP_std"]) and math.isnan(b["AP_ci"])  # NaN left out
    assert b["fps_mean"] == 2.0 and b["fps_std"] == pytest.approx(math.sqrt(2))
    with pytest.raises(KeyError, match="missing"):
        summarize(df, "method", ["missing"])


def _design_2x2() -> pd.DataFrame:
    # cell means: (A-,B-) = 11, (A+,B-) = 15, (A-,B+) = 12, (A+,B+) = 20; replicates +-1 around them
    rows = [(False, "off", 10), (False, "off", 12), (True, "off", 14), (True, "off", 16),
            (False, "on", 11), (False, "on", 13), (True, "on", 19), (True, "on", 21)]
    return pd.DataFrame(rows, columns=["use_a", "b", "AP"])


def test_factorial_effects_hand_computed():
    out = factorial_effects(_design_2x2(), ["use_a", "b"], "AP").set_index("term")
    assert list(out.index) == ["use_a", "b", "use_a:b"]
    # effect A = (15 + 20)/2 - (11 + 12)/2 = 6; B = (12 + 20)/2 - (11 + 15)/2 = 3;
    # AB = (11 + 20)/2 - (15 + 12)/2 = 2; coef = effect / 2
    assert out["effect"].tolist() == pytest.approx([6.0, 3.0, 2.0], abs=1e-12)
    assert out["coef"].tolist() == pytest.approx([3.0, 1.5, 1.0], abs=1e-12)
    # SSE = 8 * 1^2, df = 8 - 4 = 4, sigma^2 = 2, se(coef) = sqrt(sigma^2 / 8) = 0.5, se(effect) = 1
    assert (out["df"] == 4).all()
    assert out["se"].tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert out["t"].tolist() == pytest.approx([6.0, 3.0, 2.0], abs=1e-12)

    # two-sided p of Student t with 4 df: p = 1 - (3/2 x - 1/2 x^3), x = t / sqrt(4 + t^2)
    def p4(t):
        x = t / math.sqrt(4 + t * t)
        return 1 - (1.5 * x - 0.5 * x**3)

    assert out["p"].tolist() == pytest.approx([p4(6.0), p4(3.0), p4(2.0)], rel=1e-9)
    assert out.loc["use_a", "p"] < 0.01 < out.loc["use_a:b", "p"]
    assert out.loc["use_a", "ci"] == pytest.approx(sps.t.ppf(0.975, 4) * 1.0)


def test_factorial_effects_coding_and_errors():
    df = _design_2x2()
    coded = df.assign(use_a=df["use_a"].map({False: -1, True: 1}), b=df["b"].map({"off": 0, "on": 1}))
    same = factorial_effects(coded, ["use_a", "b"], "AP")
    assert same["effect"].tolist() == pytest.approx([6.0, 3.0, 2.0])
    single = factorial_effects(df.drop_duplicates(["use_a", "b"]), ["use_a", "b"], "AP")
    assert single["df"].eq(0).all() and single["se"].isna().all() and single["p"].isna().all()
    with pytest.raises(ValueError, match=r"no run at \(use_a=\+, b=\+\)"):
        factorial_effects(df[~(df["use_a"] & (df["b"] == "on"))], ["use_a", "b"], "AP")
    with pytest.raises(ValueError, match="exactly two levels"):
        factorial_effects(df.assign(b=["x", "y", "z", "x", "y", "z", "x", "y"]), ["use_a", "b"], "AP")
    with pytest.raises(ValueError, match="non-finite"):
        factorial_effects(df.assign(AP=[np.nan] + [1.0] * 7), ["use_a", "b"], "AP")
    with pytest.raises(KeyError):
        factorial_effects(df, ["use_c"], "AP")


def test_welch_hand_computed():
    a, b = [1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]
    res = welch(a, b)
    # var a = 1 -> 1/3; var b = 5/3 -> 5/12; se = sqrt(3/4); df = (3/4)^2 / ((1/3)^2/2 + (5/12)^2/3)
    se = math.sqrt(0.75)
    dof = 0.75**2 / ((1 / 3) ** 2 / 2 + (5 / 12) ** 2 / 3)
    assert res.diff == -3.5
    assert res.t == pytest.approx(-3.5 / se, rel=1e-12)
    assert res.df == pytest.approx(dof, rel=1e-12)
    assert res.p == pytest.approx(2 * sps.t.sf(3.5 / se, dof), rel=1e-9)
    hw = sps.t.ppf(0.975, dof) * se
    assert (res.ci_low, res.ci_high) == pytest.approx((-3.5 - hw, -3.5 + hw), rel=1e-12)
    with pytest.raises(ValueError, match=">= 2 values"):
        welch([1.0], b)


def test_paired_by_hand():
    import math

    from harness.stats import paired
    # differences 2, 3, 3: mean 8/3, sd sqrt(1/3), se 1/3, t = 8 on 2 df
    r = paired([3.0, 5.0, 7.0], [1.0, 2.0, 4.0])
    assert r.diff == pytest.approx(8 / 3)
    assert r.t == pytest.approx(8.0)
    assert r.df == 2
    # t on 2 df has the closed-form CDF 1/2 + t / (2 sqrt(2 + t^2)): two-sided p = 1 - t / sqrt(2 + t^2)
    assert r.p == pytest.approx(1 - 8 / math.sqrt(66))
    assert (r.ci_high - r.ci_low) / 2 == pytest.approx(4.302653 / 3, rel=1e-6)  # t_0.975,2 x se
    with pytest.raises(ValueError, match="equal length"):
        paired([1.0, 2.0], [1.0, 2.0, 3.0])


def test_std_ci_by_hand():
    # values 1, 2, 3: s = 1, n - 1 = 2.  With 2 degrees of freedom the chi-square cdf is 1 - exp(-x/2), so its
    # quantile is -2 ln(1 - q): 7.3778 at 0.975 and 0.050636 at 0.025.
    s, lo, hi = std_ci([1.0, 2.0, 3.0])
    assert s == pytest.approx(1.0)
    assert lo == pytest.approx(math.sqrt(2.0 / (-2.0 * math.log(0.025))), rel=1e-9)  # 0.5207
    assert hi == pytest.approx(math.sqrt(2.0 / (-2.0 * math.log(0.975))), rel=1e-9)  # 6.2847
    assert all(math.isnan(v) for v in std_ci([4.0]))
    with pytest.raises(ValueError):
        std_ci([1.0, 2.0], conf=1.0)
