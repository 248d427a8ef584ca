"""The bench with the real export stage and onnxruntime on a tiny model: every record carries the median's interval,
load/first-run time and peak memory; --target-ci records its rule and stops within --max-time."""

import pytest

from mobileseg.cli import main
from mobileseg.results.record import validate_record
from mobileseg.results.stats import sorted_halfwidth_rel
from mobileseg.results.store import ResultStore


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    return tmp_path_factory.mktemp("export")  # one export for every test here (the export stage caches it)


@pytest.fixture
def bench(tmp_path, export_root):
    return lambda extra: _bench(tmp_path, extra, export_root)


def _bench(tmp_path, extra, export_root):
    argv = [
        "bench",
        "--device",
        "local",
        "--models",
        "topformer-t",
        "--res",
        "64",
        "--runtimes",
        "onnxruntime",
        "--warmup",
        "1",
        "--out",
        str(tmp_path / "r"),
        "--export-dir",
        str(export_root),
        "--quiet",
        "--no-sgemm",
        "--results-file",
        str(tmp_path / "r.jsonl"),
        *extra,
    ]
    assert main(argv) == 0
    return ResultStore(tmp_path / "r.jsonl").read()[-1]


def test_records_carry_interval_load_first_run_memory_and_profile(bench):
    r = bench(["--repeats", "12", "--profile"])
    prof = r["profile"]
    assert prof["source"] == "onnxruntime-profiler" and prof["runs"] >= 1 and prof["ops"]
    assert sum(o["share"] for o in prof["ops"]) == pytest.approx(1.0, abs=1e-3)
    assert any(o["module"] and o["module"].startswith("backbone") for o in prof["ops"])
    assert prof["ops"][0]["median_ms"] >= prof["ops"][-1]["median_ms"]
    assert validate_record(r) == []
    s = r["stats_ms"]
    assert s["median_ci_low"] <= s["median"] <= s["median_ci_high"] and s["median_ci_coverage"] >= 0.95
    assert r["load_ms"] > 0 and r["first_run_ms"] > 0
    assert r["memory"]["peak_rss_growth_mb"] >= 0 and r["memory"]["definition"]
    assert r["sampling"] == {"rule": "repeats", "repeats": 12, "min_time_s": None}


def test_target_ci_samples_until_the_target_or_max_time(bench):
    r = bench(["--target-ci", "50", "--max-time", "20"])
    s, rule = r["stats_ms"], r["sampling"]
    assert rule["rule"] == "target-ci" and rule["target_ci_pct"] == 50 and rule["reached"] is True
    assert 100 * s["median_ci_halfwidth_rel"] <= 50
    # it stopped at the first check (10 samples, then every 5% more) whose interval was within the target
    checks = [10]
    while checks[-1] < s["count"]:
        checks.append(max(checks[-1] + 1, int(checks[-1] * 1.05)))
    assert checks[-1] == s["count"]
    assert all(100 * sorted_halfwidth_rel(sorted(r["samples_ms"][:k])) > 50 for k in checks[:-1])
    r = bench(["--target-ci", "0.001", "--max-time", "1.5"])  # unreachable: stops at --max-time
    assert r["sampling"]["reached"] is False and 1.4 <= r["sampling"]["elapsed_s"] <= 10
    assert r["stats_ms"]["count"] >= 10


@pytest.mark.parametrize(
    "args, says",
    [
        (["--max-time", "3"], "--target-ci"),
        (["--target-ci", "0"], "above 0"),
        (["--target-ci", "1", "--min-time", "2"], "not both"),
    ],
)
def test_bad_sampling_options_are_one_sentence(tmp_path, capsys, args, says):
    argv = [
        "bench",
        "--device",
        "local",
        "--models",
        "topformer-t",
        "--res",
        "64",
        "--runtimes",
        "onnxruntime",
        "--out",
        str(tmp_path),
        "--export-dir",
        str(tmp_path / "e"),
        "--quiet",
        *args,
    ]
    assert main(argv) == 2
    assert says in capsys.readouterr().err


def test_sustained_on_the_host_records_per_minute_figures(bench):
    r = bench(["--sustained", "2", "--sustained-minute-s", "1"])
    s = r["sustained"]
    assert s["minutes"] == 2 and s["minute_s"] == 1 and [m["minute"] for m in s["per_minute"]] == [1, 2]
    assert sum(m["count"] for m in s["per_minute"]) == r["stats_ms"]["count"] == len(r["samples_ms"])
    assert all(m["median_ms"] > 0 and m["p90_ms"] >= m["median_ms"] for m in s["per_minute"])
    assert "slowdown_minute" in s
