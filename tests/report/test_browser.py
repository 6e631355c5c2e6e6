"""The workflow's reports in a real browser: headless Chromium from file://, offline.

Needs Debian's chromium and chromium-driver (``.ci/run`` installs them where it can) and
selenium; skips with the reason otherwise. Leaves a screenshot in results/browser/.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import REPO

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = REPO / "results" / "browser"
LOCAL = ("file://", "data:")
NETWORK = {"http", "https", "ws", "wss", "ftp"}
SECTIONS = (
    "recording",
    "preprocessing",
    "detection",
    "sorting",
    "dictionaries",
    "clusters",
    "provenance",
)

if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(
        "needs /usr/bin/chromium and /usr/bin/chromedriver "
        "(apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (the dev extra)")


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """Headless Chromium with a fresh profile, background networking off, logs collected.

    The system chromedriver, and Selenium Manager kept offline and without usage statistics:
    nothing here reaches for the network.
    """
    os.environ["SE_OFFLINE"] = "true"
    os.environ["SE_AVOID_STATS"] = "true"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-extensions",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--window-size=1280,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(
        options=options, service=webdriver.ChromeService(executable_path=str(CHROMEDRIVER))
    )
    yield driver
    driver.quit()


def _open(driver, page: Path) -> list[tuple[str, str]]:
    """Load `page`; return (document, url) of every request the browser logged meanwhile.

    Chromium's own pages (chrome://) may be logged too; they never leave the machine.
    """
    driver.get_log("performance")  # drop what earlier pages logged
    driver.get(page.as_uri())
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            params = message["params"]
            requests.append((params.get("documentURL", ""), params["request"]["url"]))
    return requests


def _assert_offline(requests: list[tuple[str, str]], page: Path) -> None:
    """The page was loaded, it asked only for file:// or data: URLs, nothing used the network."""
    assert any(url == page.as_uri() for _, url in requests), requests
    assert all(url.startswith(LOCAL) for doc, url in requests if doc == page.as_uri()), requests
    assert not [url for _, url in requests if url.split(":", 1)[0] in NETWORK], requests


def _column(driver, table_id: str, col: int) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows)"
        ".map(r => r.cells[arguments[1]].textContent)",
        table_id,
        col,
    )


def test_session_report_in_browser(browser, workflow_results):
    page = workflow_results / "tiny" / "report.html"
    _assert_offline(_open(browser, page), page)
    resources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert all(u.startswith(LOCAL) for u in resources), resources
    ids = browser.execute_script(
        "return Array.from(document.querySelectorAll('section')).map(s => s.id)"
    )
    assert list(ids) == list(SECTIONS)
    images = browser.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
    )
    assert len(images) >= 8 and all(done and width > 0 for done, width in images), images
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert not errors, errors
    # the benchmark table sorts on a click: wall time ascending, then descending
    header = browser.find_element("css selector", "#benchmarks-table th:nth-child(2)")
    header.click()
    wall_s = [float(v) for v in _column(browser, "benchmarks-table", 1)]
    assert wall_s == sorted(wall_s) and len(wall_s) >= 5
    header.click()
    assert [float(v) for v in _column(browser, "benchmarks-table", 1)] == sorted(
        wall_s, reverse=True
    )
    # so does the sorting's metrics table: spike counts (column 3) ascending
    browser.find_element("css selector", "#metrics-table th:nth-child(4)").click()
    counts = [int(v) for v in _column(browser, "metrics-table", 3)]
    assert counts == sorted(counts) and len(counts) >= 2
    browser.execute_script(
        "document.getElementById('benchmarks-table').scrollIntoView({block: 'center'})"
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(SCREENSHOTS / "report.png"))


def test_summary_report_links_session_report(browser, workflow_results):
    page = workflow_results / "summary" / "report.html"
    _assert_offline(_open(browser, page), page)
    assert browser.execute_script(
        "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
    )
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    browser.save_screenshot(str(SCREENSHOTS / "summary.png"))
    browser.find_element("link text", "tiny").click()
    assert browser.current_url == (workflow_results / "tiny" / "report.html").as_uri()
    assert browser.execute_script("return document.getElementById('provenance') !== null")
