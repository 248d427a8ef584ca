"""Latency statistics against values computed by hand."""

import math

import pytest

from mobileseg.results.stats import percentile, summarize


def test_summary_of_ten_samples_by_hand():
    # Sorted: 1..10 (given shuffled). Linear-interpolation percentiles: position (n-1)*q.
    s = summarize([7, 3, 10, 1, 5, 9, 2, 8, 4, 6])
    assert s["count"] == 10
    assert s["min"] == 1 and s["max"] == 10
    assert s["median"] == 5.5  # between 5 and 6
    assert s["p10"] == pytest.approx(1.9)  # position 0.9: 1 + 0.9 * (2 - 1)
    assert s["p90"] == pytest.approx(9.1)  # position 8.1: 9 + 0.1 * (10 - 9)
    assert s["mean"] == 5.5
    # sample variance: sum((k - 5.5)^2, k=1..10) = 82.5, / 9
    assert s["stdev"] == pytest.approx(math.sqrt(82.5 / 9))


def test_odd_count_median_and_outlier_kept():
    s = summarize([10.0, 10.0, 11.0, 12.0, 100.0])
    assert s["median"] == 11.0
    assert s["max"] == 100.0  # nothing is discarded
    assert s["mean"] == pytest.approx(28.6)
    assert s["p90"] == pytest.approx(12.0 + 0.6 * 88.0)  # position 3.6


def test_single_sample_and_empty():
    s = summarize([4.25])
    assert s == {
        "median": 4.25,
        "p10": 4.25,
        "p90": 4.25,
        "mean": 4.25,
        "stdev": 0.0,
        "min": 4.25,
        "max": 4.25,
        "count": 1,
    }
    with pytest.raises(ValueError):
        summarize([])


def test_percentile_bounds():
    v = [1.0, 2.0, 4.0]
    assert percentile(v, 0) == 1.0 and percentile(v, 100) == 4.0 and percentile(v, 75) == 3.0
    with pytest.raises(ValueError):
        percentile(v, 101)
