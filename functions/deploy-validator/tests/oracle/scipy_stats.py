"""SciPy's answers for the canary check's statistics (tests/canary_stats.rs).

Reads a JSON list of cases on stdin, writes a JSON list of answers on stdout, in order:
- {"rank": [new, old]} -> {"u": U of new, "p": p-value of new > old}, from
  scipy.stats.mannwhitneyu(new, old, alternative="greater", method="asymptotic"); p is null where
  SciPy answers NaN (every value tied).
- {"rate": [errors_new, total_new, errors_old, total_old]} -> {"p": p-value of new > old}, from
  scipy.stats.chi2_contingency(correction=False) on the 2x2 table: the square root of its chi-square
  is the pooled two-proportion z statistic, signed by which rate is higher; p is null where SciPy
  refuses the table (a zero expected frequency: no errors, or nothing but errors, on both sides).
"""
import json
import math
import sys
import warnings

from scipy import stats

warnings.simplefilter("ignore")


def rank(new, old):
    result = stats.mannwhitneyu(new, old, alternative="greater", method="asymptotic")
    p = float(result.pvalue)
    return {"u": float(result.statistic), "p": None if math.isnan(p) else p}


def rate(errors_new, total_new, errors_old, total_old):
    table = [[errors_new, total_new - errors_new], [errors_old, total_old - errors_old]]
    try:
        chi2, two_sided, _, _ = stats.chi2_contingency(table, correction=False)
    except ValueError:
        return {"p": None}
    higher = errors_new / total_new > errors_old / total_old
    z = math.sqrt(chi2) if higher else -math.sqrt(chi2)
    # One-sided from the same statistic; the two-sided p-value checks it.
    one_sided = float(stats.norm.sf(z))
    assert abs(min(one_sided, 1 - one_sided) * 2 - two_sided) < 1e-9 * max(1.0, two_sided) + 1e-12
    return {"p": one_sided}


answers = []
for case in json.load(sys.stdin):
    if "rank" in case:
        answers.append(rank(*case["rank"]))
    else:
        answers.append(rate(*case["rate"]))
json.dump(answers, sys.stdout)
