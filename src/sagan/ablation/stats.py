"""Welch's two-sided t-test (Welch 1947; degrees of freedom by Welch-Satterthwaite) with its exact p-value, for
comparing an ablation configuration's seeds with the reference's. The p-value comes from Student's t
distribution through the regularised incomplete beta function, P(|T| > t) = I_{df / (df + t^2)}(df / 2, 1 / 2),
evaluated by its continued fraction (Numerical Recipes, 3rd ed., section 6.4), so the package needs no SciPy;
the tests check it against scipy.stats.ttest_ind(equal_var=False)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass


@dataclass(frozen=True)
class WelchTest:
    """t statistic (mean of a minus mean of b, over the standard error), degrees of freedom, two-sided p."""

    t: float
    df: float
    p: float


def welch_test(a: list[float], b: list[float]) -> WelchTest | None:
    """Welch's t-test of equal means of `a` and `b`; None when either side has fewer than 2 values.

    Two samples without spread give p = 0 when their means differ and p = 1 when they agree."""
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    diff = statistics.fmean(a) - statistics.fmean(b)
    if va + vb == 0:
        return WelchTest(math.copysign(math.inf, diff) if diff else 0.0, math.inf, 0.0 if diff else 1.0)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return WelchTest(t, df, student_t_two_sided_p(t, df))


def welch_significant(a: list[float], b: list[float], level: float = 0.05) -> bool | None:
    """Whether the means of `a` and `b` differ at `level` (Welch's two-sided test); None with < 2 values a side."""
    test = welch_test(a, b)
    return None if test is None else test.p < level


def student_t_two_sided_p(t: float, df: float) -> float:
    """P(|T| >= |t|) for T ~ Student's t with `df` > 0 degrees of freedom."""
    if df <= 0 or math.isnan(t):
        raise ValueError(f"need df > 0 and a number t, got t={t}, df={df}")
    if math.isinf(t):
        return 0.0
    return regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) for a, b > 0 and x in [0, 1]: the beta distribution's CDF."""
    if not 0 <= x <= 1:
        raise ValueError(f"x must be in [0, 1], got {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1) / (a + b + 2):  # the continued fraction converges fast here; else use the symmetry
        return math.exp(log_front) * _beta_fraction(a, b, x) / a
    return 1 - math.exp(log_front) * _beta_fraction(b, a, 1 - x) / b


def _beta_fraction(a: float, b: float, x: float, tol: float = 1e-15, max_terms: int = 10_000) -> float:
    """The continued fraction of the incomplete beta function, by the modified Lentz method."""
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_terms + 1):
        even = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        odd = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        for num in (even, odd):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < tol:
            return h
    raise ArithmeticError(f"incomplete beta fraction did not converge (a={a}, b={b}, x={x})")
