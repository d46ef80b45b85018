"""Every report type in a real headless Chromium: no console errors, every figure drawn with
data, every table populated, usable at laptop width. Screenshots go to tests/output/."""

from __future__ import annotations

import os
import re
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


# --- the compare report at 1280x800: three answers first, labels, escaping, widths ------------

SCREEN = {"width": 1280, "height": 800}
SCRIPT_NAME = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def hand_pages(tmp_path_factory):
    """The report of parts built by hand, and of the same parts with a model named like a
    script, in one folder with their index."""
    import report_parts

    from resnet_probe import report

    out = tmp_path_factory.mktemp("hand-reports")
    plain = report_parts.compare_result()
    scripted = report_parts.compare_result(models=(SCRIPT_NAME, "plain8"))
    return {"plain": (plain, report.write(plain, out)),
            "scripted": (scripted, report.write(scripted, out)), "index": out / "index.html"}


def open_page(browser, path: Path, dialogs: list | None = None):
    page = browser.new_page(viewport=SCREEN)
    if dialogs is not None:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    figures = page.locator(".plotly-graph-div")
    for i in range(figures.count()):
        figures.nth(i).locator("svg.main-svg").first.wait_for(timeout=20_000)
    return page


def box(page, selector: str) -> dict:
    return page.evaluate("s => { const r = document.querySelector(s).getBoundingClientRect();"
                         " return {top: r.top + scrollY, bottom: r.bottom + scrollY}; }",
                         selector)


def test_first_screen_shows_the_verdict_and_the_training_figure(browser, tiny_compare):
    result, out = tiny_compare
    page = open_page(browser, page_of(result, out))
    verdict, figure = box(page, "#degrade p.lead"), box(page, "#degrade .plotly-graph-div")
    assert verdict["bottom"] <= SCREEN["height"] and figure["bottom"] <= SCREEN["height"]
    assert verdict["top"] < figure["top"]
    # Why and Cost each lie within the one screen after the first.
    for answer in ("#why-answer", "#cost"):
        place = box(page, answer)
        assert place["bottom"] <= 2 * SCREEN["height"], (answer, place)
        assert place["bottom"] - place["top"] <= SCREEN["height"], (answer, place)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare-first-screen.png"))
    page.evaluate(f"window.scrollTo(0, {SCREEN['height']})")
    page.screenshot(path=str(SCREENSHOTS / "compare-second-screen.png"))
    page.close()


def test_no_table_header_is_a_raw_column_name(browser, tiny_compare, hand_pages):
    result, out = tiny_compare
    for path in (page_of(result, out), hand_pages["plain"][1]):
        page = open_page(browser, path)
        headers = page.evaluate("() => [...document.querySelectorAll('th')]"
                                ".map(th => th.textContent)")
        page.close()
        assert headers
        raw = [h for h in headers if re.search(r"\b[a-z0-9]+_[a-z0-9_]+\b", h)]
        assert raw == [], (path.name, raw)


def test_each_paragraph_shows_its_source_text(browser, tiny_compare, hand_pages):
    """What the reader sees of every paragraph is the string the code made: nothing dropped
    by the browser (as ``Σ_{k<t}`` once was), nothing doubled."""
    from report_parts import SIGMA_PARAGRAPH

    from resnet_probe.report import compare_facts, compare_sections, environment_table

    tiny, out = tiny_compare
    for result, path in ((tiny, page_of(tiny, out)), hand_pages["plain"]):
        environment = environment_table(result.environment or {}, compare_facts(result))
        expected = [text for section in compare_sections(result, environment)
                    for text in section.paragraphs]
        page = open_page(browser, path)
        shown = page.evaluate("() => [...document.querySelectorAll('main p')]"
                              ".map(p => p.textContent)")
        page.close()
        assert [" ".join(text.split()) for text in shown] == expected
        assert any(SIGMA_PARAGRAPH in text for text in shown) or path != hand_pages["plain"][1]


def test_a_model_named_like_a_script_is_text_in_every_page(browser, hand_pages):
    for path in (hand_pages["scripted"][1], hand_pages["index"]):
        dialogs: list[str] = []
        page = open_page(browser, path, dialogs)
        text = page.evaluate("() => document.body.innerText")
        heading = page.evaluate("() => document.querySelector('header h1').textContent")
        page.close()
        assert dialogs == []
        assert SCRIPT_NAME in text, path.name
        assert SCRIPT_NAME in heading or path == hand_pages["index"]


WIDTHS = """() => {
    for (const d of document.querySelectorAll('details')) d.open = true;
    const width = document.documentElement.clientWidth;
    const wide = [];
    for (const el of document.querySelectorAll('body *')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0 || r.right <= width + 1) continue;
        const wrap = el.closest('.table-wrap');
        const ok = wrap && wrap !== el && ['auto', 'scroll'].includes(
            getComputedStyle(wrap).overflowX) && wrap.getBoundingClientRect().right <= width + 1
            && getComputedStyle(wrap.querySelector('tr > :first-child')).position === 'sticky';
        if (!ok) wide.push(el.tagName + '.' + el.className + ' ' + Math.round(r.right));
    }
    return {wide, scrollWidth: document.documentElement.scrollWidth, width};
}"""


def test_nothing_is_wider_than_the_page_outside_a_scroll_box_with_a_frozen_column(
        browser, tiny_compare, hand_pages, zoo_report):
    result, out = tiny_compare
    for path in (page_of(result, out), hand_pages["plain"][1], zoo_report / "zoo.html"):
        page = open_page(browser, path)
        found = page.evaluate(WIDTHS)
        nav = page.evaluate("() => [...document.querySelectorAll('nav a')].map(a => "
                            "a.getBoundingClientRect().right)")
        page.close()
        assert found["wide"] == [], (path.name, found["wide"][:5])
        assert found["scrollWidth"] <= found["width"] + 1
        assert max(nav) <= found["width"]  # every section reachable from the bar
