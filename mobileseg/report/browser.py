"""``report.html`` in a real browser: headless Chromium driven by Selenium (Debian: ``apt-get install chromium
chromium-driver``; pip: ``selenium``, in the ``test`` extra). The browser test and the committed screenshots use it.

    python -m mobileseg.report.browser results/reference/report/report.html --out results/reference/report/screenshots

writes screenshots at 1280 px: the top of the page, each main plot as the page shows it (the measured Pareto plot
with a point's record shown on hover) and a table sorted by latency.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

WIDTH = 1280
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "chromium-driver")


def find_chromium() -> tuple[str | None, str | None, str]:
    """``(browser, driver, why not)``: the paths of Chromium and its driver, or a sentence saying what is missing."""
    browser = next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)
    driver = next((shutil.which(d) for d in DRIVERS if shutil.which(d)), None)
    try:
        import selenium  # noqa: F401
    except ImportError:
        return browser, driver, "selenium is not installed (pip install the 'test' extra)"
    if not browser or not driver:
        return (
            browser,
            driver,
            ("no Chromium and chromedriver on PATH (Debian: apt-get install chromium chromium-driver)"),
        )
    return browser, driver, ""


def open_chromium(width: int = WIDTH, height: int = 1000):
    """A headless Chromium window ``width`` CSS pixels wide (device scale 1), driven by Selenium."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver, why = find_chromium()
    if why:
        raise RuntimeError(why)
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        "--force-device-scale-factor=1",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=driver), options=opts)
    d.set_window_size(width, height)
    inner = d.execute_script("return window.innerWidth")
    if inner != width:  # window chrome: make the viewport itself `width` wide
        d.set_window_size(width + (width - inner), height)
    return d


def load(driver, page: Path) -> None:
    driver.get(Path(page).resolve().as_uri())
    driver.execute_script("return document.readyState")


def overflow(driver) -> dict:
    """The page's and the widest table's horizontal overflow in CSS pixels (0: everything fits the window)."""
    return driver.execute_script("""
        var w = document.documentElement.clientWidth;
        var tables = Array.from(document.querySelectorAll('table')).map(t => t.getBoundingClientRect().right - w);
        return {page: document.documentElement.scrollWidth - w, tables: Math.max(0, ...tables), width: w};""")


def broken_images(driver) -> list[str]:
    """Titles of the plots that did not load: an ``<img>`` without pixels, an inline SVG of no size."""
    return driver.execute_script("""
        var bad = [];
        document.querySelectorAll('img').forEach(i => { if (!i.complete || !i.naturalWidth) bad.push(i.alt); });
        document.querySelectorAll('figure > svg').forEach(s => {
            var r = s.getBoundingClientRect();
            if (r.width < 100 || r.height < 100) bad.push(s.closest('figure').getAttribute('aria-label'));
        });
        return bad;""")


def hover_point(driver, figure, index: int | None = None, prefer: str | None = None) -> tuple[dict, str]:
    """Hover a point of an interactive plot (``figure``: its ``<figure>`` element): the given one, else the first
    whose centre no other point covers (among those whose record has the key ``prefer``, when there are such).
    Returns ``(its record in the page's data, the tooltip's text)``."""
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", figure)
    hits = figure.find_elements("css selector", "svg .hits > *")
    records = driver.execute_script(
        "return JSON.parse(arguments[0].querySelector('script.records').textContent)", figure
    )
    if index is None:
        free = driver.execute_script(
            """
            var hits = arguments[0], free = [];
            for (var i = 0; i < hits.length; i++) {
                var r = hits[i].getBoundingClientRect();
                if (document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2) === hits[i]) free.push(i);
            }
            return free;""",
            hits,
        )
        if not free:
            raise AssertionError("no point of the plot can be hovered: each is covered by another")
        index = next((i for i in free if prefer and prefer in records[i]), free[0])
    ActionChains(driver).move_to_element(hits[index]).perform()
    tip = figure.find_element("css selector", ".tip")
    return records[index], (tip.text if tip.is_displayed() else "")


def sort_by(driver, table, header: str, times: int = 1) -> list[str]:
    """Click ``table``'s column header ``header`` ``times`` times; returns the column's cell texts, top to bottom."""
    heads = [
        th.text.replace(" \u25b2", "").replace(" \u25bc", "").strip()
        for th in table.find_elements("css selector", "th")
    ]
    col = heads.index(header)
    th = table.find_elements("css selector", "th")[col]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", th)
    for _ in range(times):
        th.click()
    return [tr.find_elements("css selector", "td")[col].text for tr in table.find_elements("css selector", "tbody tr")]


def table_with(driver, header: str, title_part: str = ""):
    """The first table with a column ``header`` whose heading (the ``<h3>`` before it) contains ``title_part``."""
    for t in driver.find_elements("css selector", "table.sortable"):
        heads = [th.text.strip() for th in t.find_elements("css selector", "th")]
        title = driver.execute_script("var h = arguments[0].previousElementSibling; return h ? h.textContent : ''", t)
        if header in heads and title_part in title:
            return t
    raise LookupError(f"no table with a {header!r} column under a title containing {title_part!r}")


def screenshots(page: Path, out: Path, width: int = WIDTH) -> list[Path]:
    """Write the page's screenshots (see the module's docstring) into ``out``; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    driver = open_chromium(width, 1000)
    written = []
    try:
        load(driver, page)
        driver.save_screenshot(str(out / f"page-{width}.png"))
        written.append(out / f"page-{width}.png")
        figures = driver.find_elements("css selector", "figure")
        titles = [driver.execute_script("return arguments[0].previousElementSibling.textContent", f) for f in figures]
        wanted = [
            ("figure1-published", lambda t: t.startswith("Figure 1")),
            ("pareto-onnxruntime-hover", lambda t: "measured latency" in t and "onnxruntime" in t),
            ("paper-vs-measured", lambda t: t.startswith("Paper vs measured")),
        ]
        for name, match in wanted:
            fig = next((f for f, t in zip(figures, titles) if match(t)), None)
            if fig is None:
                continue
            if name.endswith("hover"):
                hover_point(driver, fig, prefer="check")  # a suspect point, where there is one
            else:
                driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", fig)
            path = out / f"{name}-{width}.png"
            fig.screenshot(str(path))
            written.append(path)
        try:
            table = table_with(driver, "latency (ms)", "onnxruntime")
        except LookupError:
            table = None
        if table is not None:
            sort_by(driver, table, "latency (ms)")
            path = out / f"table-sorted-by-latency-{width}.png"
            table.screenshot(str(path))
            written.append(path)
    finally:
        driver.quit()
    return written


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mobileseg.report.browser", description=__doc__.split("\n\n")[0])
    ap.add_argument("page", type=Path, help="a report.html")
    ap.add_argument("--out", type=Path, required=True, help="folder for the screenshots")
    ap.add_argument("--width", type=int, default=WIDTH)
    args = ap.parse_args(argv)
    if not args.page.is_file():
        print(
            f"mobileseg: error: {args.page} is not a file: pass the report.html that `mobileseg report` wrote",
            file=sys.stderr,
        )
        return 2
    _, _, why = find_chromium()
    if why:
        print(f"mobileseg: error: {why}", file=sys.stderr)
        return 2
    for p in screenshots(args.page, args.out, args.width):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
