"""report.html in a real browser (headless Chromium through Selenium) at 1280 px: nothing wider than the window,
every plot loads, hovering a Pareto point shows its record, clicking "latency (ms)" sorts the table by latency.
Skips with the reason where Chromium, chromedriver or selenium is missing."""

import pytest

from mobileseg.report import browser
from mobileseg.resources import project_path

_, _, WHY = browser.find_chromium()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(bool(WHY), reason=WHY or "")]
REFERENCE = project_path("results", "reference")


@pytest.fixture(scope="module")
def driver():
    d = browser.open_chromium(browser.WIDTH)
    yield d
    d.quit()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The report drawn now, by this code, from the committed reference records (two devices, memory figures)."""
    from mobileseg.report import build_report

    rep = build_report(
        results=[REFERENCE / "host-amd-epyc-t1.jsonl", REFERENCE / "host-paper-onnxruntime-target-ci1-t1.jsonl"],
        out=tmp_path_factory.mktemp("report"),
    )
    return rep.html


def _check(driver, page):
    browser.load(driver, page)
    assert driver.execute_script("return window.innerWidth") == browser.WIDTH
    assert browser.overflow(driver) == {"page": 0, "tables": 0, "width": browser.WIDTH}
    assert browser.broken_images(driver) == []
    figures = driver.find_elements("css selector", "figure.points")
    assert len(figures) >= 2
    for fig in figures:
        record, tip = browser.hover_point(driver, fig)
        assert tip, "no tooltip on hovering a point"
        for key in ("model", "latency", "mIoU"):
            assert f"{key} {record[key]}" in tip
    measured = [f for f in figures if "measured latency" in f.get_attribute("aria-label")]
    record, tip = browser.hover_point(driver, measured[0])
    for key in ("model", "runtime", "precision", "latency", "mIoU", "parity"):
        assert f"{key} {record[key]}" in tip
    assert "95% interval" in record["latency"] or "n=" in record["latency"]
    table = browser.table_with(driver, "latency (ms)", "onnxruntime")
    up = [float(v) for v in browser.sort_by(driver, table, "latency (ms)")]
    assert up == sorted(up) and len(up) > 3
    down = [float(v) for v in browser.sort_by(driver, table, "latency (ms)")]
    assert down == sorted(up, reverse=True)
    models = browser.sort_by(driver, table, "model")
    assert models == sorted(models)


def test_the_page_the_code_draws_now(driver, built):
    _check(driver, built)


def test_the_committed_reference_page(driver):
    _check(driver, REFERENCE / "report" / "report.html")
