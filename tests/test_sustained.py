"""--sustained: per-minute statistics and the minute the median first exceeds minute 1's by 10%; the emulated
device's thermal model heats with load and lowers the frequency past its trip."""

import pytest

from mobileseg.bench.sustained import run_sustained, slowdown_minute
from mobileseg.bench.targets import CellRun, Target
from mobileseg.errors import MobilesegError


def test_slowdown_minute():
    assert slowdown_minute([10.0, 10.5, 10.9, 11.2, 12.0]) == 4  # 11.2 > 1.1 x 10
    assert slowdown_minute([10.0, 11.0, 10.0]) is None  # exactly 10% is not more than 10%
    assert slowdown_minute([]) is None


class HeatingTarget(Target):
    """Each minute-chunk is 4% slower than the one before, and 2 C hotter, at a 5% lower frequency."""

    kind = "fake"

    def __init__(self):
        self.minute = 0
        self.calls = []

    def describe(self):
        return {"pinned_cpu": 7}

    def run_cell(self, cell, export_dir, manifest, warmup, repeats, min_time):
        self.calls.append((warmup, repeats, min_time))
        self.minute += 1
        base = 10.0 * 1.04 ** (self.minute - 1)
        return CellRun(samples_ms=[base * (1 + 0.001 * i) for i in range(20)], output=None)

    def state(self):
        return {
            "temps_c": {"thermal_zone3:cpu-1-0-usr": 40.0 + 2 * self.minute},
            "freqs_khz": {"7": int(2841600 * 0.95**self.minute)},
        }


def test_run_sustained_per_minute_figures(monkeypatch):
    monkeypatch.setenv("MOBILESEG_SUSTAINED_MINUTE_S", "0.5")
    t = HeatingTarget()
    cr, info = run_sustained(t, None, None, {}, warmup=3, minutes=5)
    assert [c[0] for c in t.calls] == [3, 1, 1, 1, 1] and all(c[2] == 0.5 for c in t.calls)
    assert info["minute_s"] == 0.5 and len(info["per_minute"]) == 5 and len(cr.samples_ms) == 100
    m = info["per_minute"]
    assert [x["temp_c"] for x in m] == [42.0, 44.0, 46.0, 48.0, 50.0]
    assert m[0]["freq_khz"] > m[-1]["freq_khz"] and m[0]["p90_ms"] >= m[0]["median_ms"]
    assert info["slowdown_minute"] == 4  # 1.04^3 = 1.125 is the first > 1.10
    with pytest.raises(MobilesegError):
        run_sustained(t, None, None, {}, 1, minutes=0)


def test_thermal_model_heats_with_load_throttles_and_cools(tmp_path):
    from mobileseg.emulator import device_files
    from mobileseg.emulator.thermal import ThermalSim, parse_spec

    device_files.install(tmp_path, "android", ncpu=2)
    sim = ThermalSim(tmp_path, "rise=1,tau=100,trip=45,drop=0.1,floor=0.3")
    try:
        prime = [p for p in sim.policies if p[0].name == "policy7"][0]
        fmax = prime[1]
        zone = sim.zones[0][0]
        t_idle = int(zone.read_text())
        for _ in range(40):  # 4 s at full load: +~4 C, below the 45 C trip from 42.1 C idle ... then above
            sim.step(1.0, 0.1)
        warm = int(zone.read_text())
        assert warm > t_idle
        for _ in range(100):
            sim.step(1.0, 0.1)
        assert sim.temp > 45 and sim.ratio < 1
        hot_freq = int((prime[0] / "scaling_cur_freq").read_text())
        assert hot_freq < fmax
        if sim.cgroup is not None:  # the speed falls with the clock: the commands' CPU quota is that share
            quota = sim.cgroup / "cpu.cfs_quota_us"
            text = quota.read_text() if quota.exists() else (sim.cgroup / "cpu.max").read_text().split()[0]
            assert int(text) == max(1000, int(sim.ratio * 10000))
        for _ in range(400):  # idle: back to the idle temperature and the full clock
            sim.step(0.0, 2.0)
        assert sim.ratio == 1.0 and int((prime[0] / "scaling_cur_freq").read_text()) == fmax
        assert abs(int(zone.read_text()) - t_idle) < 500
        # the rootfs' own files are untouched: other devices on the same rootfs see no heat
        assert int((tmp_path / "sys/devices/system/cpu/cpufreq/policy7/scaling_cur_freq").read_text()) == fmax
    finally:
        sim.close()
    with pytest.raises(MobilesegError):
        parse_spec("heat=3")
