"""Every report type in a real headless Chromium: no console errors, every figure drawn with
data, every table populated, usable at laptop width. Screenshots go to tests/output/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import page_of

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).parent / "output" / "screenshots"
LAPTOP = {"width": 1366, "height": 768}

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI must install Chromium at {CHROMIUM} (apt-get install -y chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}; install it with apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        yield browser
        browser.close()


def load(browser, path: Path, screenshot: str) -> dict:
    page = browser.new_page(viewport=LAPTOP)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    figures = page.locator(".plotly-graph-div")
    for i in range(figures.count()):
        figures.nth(i).locator("svg.main-svg").first.wait_for(timeout=20_000)
    stats = page.evaluate("""() => {
        const figs = [...document.querySelectorAll('.plotly-graph-div')].map(div => ({
            title: div.querySelector('.gtitle')?.textContent || '',
            svgs: div.querySelectorAll('svg.main-svg').length,
            points: div.querySelectorAll(
                '.scatterlayer .trace path, .scatterlayer .trace .point, .barlayer .point path'
            ).length,
            xtitle: div.querySelector('.xtitle')?.textContent || '',
            ytitle: div.querySelector('.ytitle')?.textContent || '',
        }));
        const tables = [...document.querySelectorAll('table.data')].map(
            t => t.querySelectorAll('tbody tr').length);
        return {figs, tables, scrollWidth: document.documentElement.scrollWidth,
                innerWidth: window.innerWidth};
    }""")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / screenshot), full_page=True)
    assert (SCREENSHOTS / screenshot).stat().st_size > 10_000
    page.close()
    stats["errors"] = errors
    return stats


def assert_rendered(stats: dict, min_figures: int) -> None:
    assert stats["errors"] == []
    assert len(stats["figs"]) >= min_figures
    for fig in stats["figs"]:
        assert fig["svgs"] >= 1, fig
        assert fig["points"] > 0, fig
        assert fig["title"], fig
        assert fig["xtitle"] and fig["ytitle"], fig
    assert stats["tables"] and all(rows > 0 for rows in stats["tables"])
    assert stats["scrollWidth"] <= stats["innerWidth"] + 1  # no sideways scroll at 1366 px


def test_compare_report_in_chromium(browser, tiny_compare):
    result, out = tiny_compare
    stats = load(browser, page_of(result, out), "compare.png")
    assert_rendered(stats, min_figures=14)


def test_degradation_report_in_chromium(browser, tiny_degradation):
    stats = load(browser, tiny_degradation / "degradation.html", "degradation.png")
    assert_rendered(stats, min_figures=3)


def test_zoo_report_in_chromium(browser, zoo_report):
    stats = load(browser, zoo_report / "zoo.html", "zoo.png")
    assert_rendered(stats, min_figures=3)


def test_index_page_in_chromium(browser, zoo_report):
    stats = load(browser, zoo_report / "index.html", "index.png")
    assert stats["errors"] == [] and stats["figs"] == []


def test_tables_readable_without_javascript(browser, tiny_compare):
    result, out = tiny_compare
    context = browser.new_context(java_script_enabled=False, viewport=LAPTOP)
    page = context.new_page()
    page.goto(page_of(result, out).as_uri())
    rows = page.locator("table.data tbody tr").count()
    assert rows > 50
    assert "resnet8" in page.locator("table.data").first.inner_text()
    context.close()
