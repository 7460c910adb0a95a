"""jaxcnn.ablation.stats: quantiles and p values from scipy.stats for any df, refused input, censored steps to a
target, Holm's step-down, ratio intervals. Expected numbers come from scipy or from arithmetic in the test."""

import math

import numpy as np
import pytest
from scipy import stats as st

from jaxcnn.ablation import stats


def test_t_quantiles_come_from_scipy_for_any_df():
    # Tabulated two-sided 95% points (any statistics table): df 1, 2, 4, 10, 30.
    assert [round(stats.t975(df), 3) for df in (1, 2, 4, 10, 30)] == [12.706, 4.303, 2.776, 2.228, 2.042]
    # Beyond 30 the old table took the next tabulated df above (t_{.975,40} = 2.021 for df 31..40), smaller
    # than the true quantile, so the intervals came out too narrow; each df now has its own quantile.
    for df in (31, 35, 39, 45, 100, 500):
        assert stats.t975(df) == pytest.approx(st.t.ppf(0.975, df), rel=1e-12)
    assert stats.t975(31) > 2.021 and stats.t975(41) > 2.000
    assert abs(stats.t975(10**6) - 1.959964) < 1e-5
    with pytest.raises(ValueError, match="at least 2 paired values"):
        stats.t975(0)


def test_paired_difference_by_hand_and_against_scipy():
    # d = (1, 2, 3): mean 2, sample sd 1, half width t(0.975, 2) * 1 / sqrt(3).
    d = stats.paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    assert d["mean"] == 2.0 and d["std"] == 1.0 and d["n"] == 3
    half = st.t.ppf(0.975, 2) / math.sqrt(3)
    assert (d["low"], d["high"]) == pytest.approx((2 - half, 2 + half))
    assert half == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    # 40 seeds: the interval of scipy's own one-sample t on the differences
    rng = np.random.default_rng(0)
    a, b = rng.normal(1.0, 1.0, 40), rng.normal(0.8, 1.0, 40)
    d = stats.paired_difference(a, b)
    ref = st.ttest_rel(a, b).confidence_interval(0.95)
    assert (d["low"], d["high"]) == pytest.approx((ref.low, ref.high), rel=1e-10)


@pytest.mark.parametrize("a, b, match", [
    ([], [], "at least|>= 2"), ([1.0], [0.0], ">= 2 values"), ([1.0, 2.0, 3.0], [0.0, 0.0], "same length"),
    ([1.0, 2.0], [0.5], "same length"), ([[1.0, 2.0]], [[0.0, 0.0]], "flat lists"),
    ([1.0, float("nan"), 2.0], [0.0, 0.0, 0.0], "NaN")])
def test_empty_unequal_or_broken_pairs_are_refused(a, b, match):
    with pytest.raises(ValueError, match=match):
        stats.paired_difference(a, b)
    with pytest.raises(ValueError, match=match):
        stats.compare(a, b, ">")
    with pytest.raises(ValueError, match="non-empty"):
        stats.mean_std([])


def test_p_values_are_scipys_paired_t_and_tost():
    a = [0.91, 0.92, 0.925, 0.93, 0.915]
    b = [0.905, 0.91, 0.92, 0.921, 0.914]
    d = stats.paired_difference(a, b)
    assert stats.p_value(d, ">") == pytest.approx(st.ttest_rel(a, b).pvalue, rel=1e-9)
    assert stats.p_value(d, "<") == stats.p_value(d, ">")  # two-sided: the side is the verdict's business
    # TOST within m: the larger of the one-sided p values against -m (greater) and +m (less)
    m = 0.01
    lower = st.ttest_1samp(np.subtract(a, b), -m, alternative="greater").pvalue
    upper = st.ttest_1samp(np.subtract(a, b), m, alternative="less").pvalue
    assert stats.p_value(d, "~", m) == pytest.approx(max(lower, upper), rel=1e-9)


def test_verdicts_follow_p_and_side():
    # d = (2, 2.1, 1.9): sd 0.1, t = 2 / (0.1 / sqrt 3) = 34.6: p far below 0.05
    d = stats.paired_difference([3.0, 3.1, 2.9], [1.0, 1.0, 1.0])
    assert stats.verdict(d, ">") == stats.REPRODUCED and stats.verdict(d, "<") == stats.NOT_REPRODUCED
    # the same difference with a family-wise p of 0.06 decides nothing
    assert stats.verdict(d, ">", p=0.06) == stats.INCONCLUSIVE and stats.verdict(d, ">", p=0.049) == stats.REPRODUCED
    d = stats.paired_difference([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])  # interval contains 0
    assert stats.verdict(d, ">") == stats.INCONCLUSIVE
    # equivalence (TOST at 0.05): d = (0.001, 0.002, 0.003), mean 0.002, se 0.001/sqrt 3
    d = stats.paired_difference([0.501, 0.502, 0.503], [0.5, 0.5, 0.5])
    assert stats.verdict(d, "~", 0.01) == stats.REPRODUCED
    # against +0.003: t = (0.002 - 0.003) / 0.000577 = -1.732, P(T_2 <= -1.732) = 0.1127 > 0.05
    assert stats.p_value(d, "~", 0.003) == pytest.approx(st.t.cdf(-1.0 / (1 / math.sqrt(3)), 2))
    assert stats.verdict(d, "~", 0.003) == stats.INCONCLUSIVE
    far = stats.paired_difference([0.6, 0.61, 0.62], [0.5, 0.5, 0.5])
    assert stats.verdict(far, "~", 0.01) == stats.NOT_REPRODUCED  # unadjusted: the interval is beyond the margin
    assert stats.verdict(far, "~", 0.01, p=stats.p_value(far, "~", 0.01)) == stats.INCONCLUSIVE  # family-wise
    # identical values: no spread, the point is the answer
    same = stats.paired_difference([0.9, 0.8, 0.7], [0.9, 0.8, 0.7])
    assert stats.p_value(same, ">") == 1.0 and stats.p_value(same, "~", 0.001) == 0.0


def test_non_inferiority_is_the_one_sided_test_against_the_margin_doubled():
    a = [0.912, 0.918, 0.921, 0.915, 0.917]
    b = [0.910, 0.916, 0.915, 0.911, 0.915]
    diff = np.subtract(a, b)
    d = stats.paired_difference(a, b)
    m = 0.005
    # H0: mean(A - B) <= -m, scipy's one-sided one-sample t on the differences, doubled
    ref = st.ttest_1samp(diff, -m, alternative="greater").pvalue
    assert stats.p_value(d, ">=", m) == pytest.approx(min(1.0, 2 * ref), rel=1e-9)
    # "A <= B within m" is "B >= A within m": H0 mean(A - B) >= +m
    ref = st.ttest_1samp(diff, m, alternative="less").pvalue
    assert stats.p_value(d, "<=", m) == pytest.approx(min(1.0, 2 * ref), rel=1e-9)
    # p < 0.05 exactly when the 95% interval lies above -m: mean 0.0032, so a margin just above -low passes
    # and one just below it does not
    for margin in (-d["low"] * 1.01, -d["low"] * 0.99):
        assert (stats.p_value(d, ">=", margin) < 0.05) == (d["low"] > -margin)
    assert stats.verdict(d, ">=", m) == stats.REPRODUCED
    # by hand: d = (0.001, 0.002, 0.003), mean 0.002, se 0.001 / sqrt 3; against -0.001:
    # t = 0.003 / 0.000577 = 5.196, p = 2 * P(T_2 >= 5.196)
    d = stats.paired_difference([0.501, 0.502, 0.503], [0.5, 0.5, 0.5])
    assert stats.p_value(d, ">=", 0.001) == pytest.approx(2 * st.t.sf(0.003 / (0.001 / math.sqrt(3)), 2))
    # worse than the margin: the interval wholly below -m is "not reproduced" unadjusted, inconclusive
    # family-wise (the p value tests non-inferiority only); a wide interval decides nothing
    worse = stats.paired_difference([0.80, 0.81, 0.82], [0.9, 0.9, 0.9])
    assert stats.verdict(worse, ">=", 0.01) == stats.NOT_REPRODUCED
    assert stats.verdict(worse, ">=", 0.01, p=stats.p_value(worse, ">=", 0.01)) == stats.INCONCLUSIVE
    assert stats.verdict(worse, "<=", 0.01) == stats.REPRODUCED  # A is below B + m: no worse, on errors
    wide = stats.paired_difference([0.9, 0.7, 0.95], [0.85, 0.85, 0.85])
    assert stats.verdict(wide, ">=", 0.01) == stats.INCONCLUSIVE
    # a censored value leaves no interval to compare with the margin
    c = stats.compare([1.0, math.inf, 3.0], [2.0, 2.0, 2.0], ">=", 0.5)
    assert c["method"] == "sign test" and c["verdict_unadjusted"] == stats.INCONCLUSIVE
    with pytest.raises(ValueError, match="one of"):
        stats.p_value(d, "=>", 0.01)


def test_holm_step_down_by_hand():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, 0.06, 0.06 (running max of 0.06), 0.5 (times 1)
    assert stats.holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert stats.holm([0.6, 0.6]) == [1.0, 1.0]
    assert stats.holm([]) == []
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        stats.holm([0.1, 1.5])


def test_censored_steps_are_not_averaged_in():
    inf = math.inf
    with pytest.raises(ValueError, match="censored"):
        stats.paired_difference([100.0, inf, 120.0], [90.0, 80.0, 85.0])
    # tanh never reaches the target on seeds 1 and 3; relu is later on seed 4 only: of 6 pairs, 5 have tanh
    # later, 1 relu later. Sign test: 2 * P(X >= 5 | n 6, 1/2) = 2 * 7/64 = 0.21875
    tanh = [700.0, inf, 650.0, inf, 800.0, 900.0]
    relu = [300.0, 400.0, 350.0, 500.0, 900.0, 200.0]
    r = stats.compare(tanh, relu, ">")
    assert r["method"] == "sign test" and r["censored"] == [2, 0] and r["difference"]["mean"] is None
    assert r["sign_test"]["a_larger"] == 5 and r["sign_test"]["b_larger"] == 1
    assert r["p_value"] == pytest.approx(2 * 7 / 64) and r["verdict_unadjusted"] == stats.INCONCLUSIVE
    # 10 pairs all on one side, two of them censored in both arms (ties): 8 decided, p = 2 / 2**8
    r = stats.compare([inf, inf] + [500.0] * 8, [inf, inf] + [100.0] * 8, ">")
    assert r["sign_test"]["ties"] == 2 and r["p_value"] == pytest.approx(2 / 256)
    assert r["verdict_unadjusted"] == stats.REPRODUCED
    assert stats.compare([inf] * 3, [1.0] * 3, "~", 10.0)["verdict_unadjusted"] == stats.INCONCLUSIVE
    with pytest.raises(ValueError, match="censored"):
        stats.ratio_interval([inf, 2.0, 3.0], [1.0, 1.0, 1.0])


def test_ratio_interval_is_the_exponentiated_log_interval():
    # log ratios (log 2, log 4, log 8) = log 2 * (1, 2, 3): mean 2 log 2 (ratio 4), sd log 2
    a, b = [200.0, 400.0, 800.0], [100.0, 100.0, 100.0]
    r = stats.ratio_interval(a, b)
    half = st.t.ppf(0.975, 2) * math.log(2) / math.sqrt(3)
    assert r["ratio"] == pytest.approx(4.0)
    assert (r["low"], r["high"]) == pytest.approx((4 * math.exp(-half), 4 * math.exp(half)))
    c = stats.compare(a, b, ">", ratio=6.0)  # tested against the paper's 6: log(4/6) is the estimate
    assert c["method"] == "paired t on log ratios" and c["ratio"]["ratio"] == pytest.approx(4.0)
    assert c["difference"]["mean"] == pytest.approx(math.log(4 / 6))
    assert c["p_value"] == pytest.approx(st.ttest_1samp(np.log(np.divide(a, b)), math.log(6)).pvalue)
    # within a factor 2 of 6 ([3, 12]): TOST on log ratios against log 3 and log 12
    logs = np.log(np.divide(a, b))
    tost = max(st.ttest_1samp(logs, math.log(3), alternative="greater").pvalue,
               st.ttest_1samp(logs, math.log(12), alternative="less").pvalue)
    assert stats.compare(a, b, "~", 2.0, ratio=6.0)["p_value"] == pytest.approx(tost)
    with pytest.raises(ValueError, match="positive"):
        stats.ratio_interval([0.0, 1.0], [1.0, 1.0])
