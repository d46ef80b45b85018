"""The README's screenshot: a compare report's first screen, 1280x800, in Debian's Chromium.

Run it on the report of the main job after a fresh run, and commit the picture with the results
files of that run:

    python docs/screenshot.py reports/compare-resnet34-vs-plain34.html

It writes docs/images/report-first-screen.png (``--out`` to change). Playwright drives the
system Chromium at /usr/bin/chromium (``apt-get install -y chromium``); it never downloads a
browser of its own.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
VIEWPORT = {"width": 1280, "height": 800}
DEFAULT_OUT = Path(__file__).resolve().parent / "images" / "report-first-screen.png"
FIGURE_TIMEOUT_MS = 30_000


def screenshot(report: Path, out: Path) -> Path:
    """The first screen of ``report`` as a PNG at ``out``, once every figure in it has drawn."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.goto(report.resolve().as_uri())
            page.wait_for_load_state("load")
            figures = page.locator(".plotly-graph-div")
            for index in range(figures.count()):
                figures.nth(index).locator("svg.main-svg").first.wait_for(
                    timeout=FIGURE_TIMEOUT_MS)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out))  # the viewport only: what a reader sees first
        finally:
            browser.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="a compare report's HTML file")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where the PNG goes (default: docs/images/report-first-screen.png)")
    args = parser.parse_args(argv)
    if not args.report.is_file():
        print(f"error: no report at {args.report}; run `resnet-probe compare resnet34 plain34` "
              f"first (it prints the report's path)", file=sys.stderr)
        return 2
    if not Path(CHROMIUM).exists():
        print(f"error: no Chromium at {CHROMIUM}; install it with `apt-get install -y chromium`",
              file=sys.stderr)
        return 2
    print(f"wrote {screenshot(args.report, args.out)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
