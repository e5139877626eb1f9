"""The studio page driven in a real headless Chromium (Debian's chromium + chromedriver).

One ``cdp-connector studio`` process and one browser for the module; the steps
run in order on the same page, as a user would: see the events, break a
record path and see the marked line, fix it, save a test case and run
``cdp-connector test`` on it, save the mapping. With ``UPDATE_SCREENSHOTS=1`` the page
at work is written to docs/studio.png and docs/studio-problem.png (README.md and
docs/mapping.md show them); nothing compares pixels.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common import selenium_manager
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from connector import cli
from tests.unit.commands.studio_files import GOOD_LINE, ROOT, TYPO_LINE, line_of, workspace

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,1000",
)
WAIT = 20.0  # seconds: a cold, loaded machine; each wait returns as soon as the page is there


class Studio:
    """The running studio: its URL (with the token) and its files."""

    def __init__(self, folder: Path) -> None:
        self.config, self.mapping, self.records = workspace(folder)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "connector",
                "studio",
                "--config",
                str(self.config),
                "--input",
                str(self.records),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline()
        assert first.startswith("cdp-connector studio: http://127.0.0.1:"), first
        self.url = first.split()[-1]
        self.base = self.url.split("?")[0]


@pytest.fixture(scope="module")
def studio() -> Iterator[Studio]:
    with tempfile.TemporaryDirectory(prefix="studio-") as folder:
        running = Studio(Path(folder))
        try:
            yield running
        finally:
            running.process.terminate()
            running.process.wait(timeout=10)
            assert running.process.stdout is not None
            running.process.stdout.close()


@pytest.fixture(scope="module")
def browser(studio: Studio) -> Iterator[WebDriver]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("needs Debian's chromium and chromium-driver: run scripts/setup")

    def no_download(*_: object, **__: object) -> dict[str, str]:
        raise AssertionError("Selenium Manager must not run (it would download a driver)")

    options = Options()
    options.binary_location = str(CHROMIUM)
    with (
        pytest.MonkeyPatch.context() as patch,
        tempfile.TemporaryDirectory(prefix="studio-chromium-") as profile,
    ):
        patch.setattr(selenium_manager.SeleniumManager, "binary_paths", no_download)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        try:
            driver.get(studio.url)
            yield driver
        finally:
            driver.quit()


def _wait(driver: WebDriver, what: str, condition: Callable[[WebDriver], Any]) -> Any:
    return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(condition, what)


def _bodies(driver: WebDriver) -> list[str]:
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".event-body")]


def _set_mapping(driver: WebDriver, text: str) -> None:
    """Replace the editor's text as typing would: the input event the page listens to."""
    editor = driver.find_element(By.ID, "editor")
    driver.execute_script(
        "arguments[0].value = arguments[1];"
        "arguments[0].dispatchEvent(new Event('input', {bubbles: true}));",
        editor,
        text,
    )


def test_the_page_shows_each_records_events(browser: WebDriver) -> None:
    _wait(browser, "events shown", lambda d: len(_bodies(d)) >= 2)
    bodies = _bodies(browser)
    assert '"type": "VIEW"' in bodies[0]
    assert '"session_id": "s-91a2"' in bodies[0]
    assert '"type": "ADD"' in bodies[1]
    rules = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".outcome .rule")]
    assert rules[0] == "rule 'page-view' → 1 event"
    reference = browser.find_element(By.ID, "fields").text
    assert "VIEW" in reference and "ADD" in reference


def test_a_path_typo_marks_its_line_with_the_suggestion_and_the_fix_brings_events_back(
    browser: WebDriver, studio: Studio
) -> None:
    good = studio.mapping.read_text(encoding="utf-8")
    typo = good.replace(GOOD_LINE, TYPO_LINE)
    _set_mapping(browser, typo)
    marked = _wait(
        browser,
        "the typo's line marked",
        lambda d: d.find_elements(By.CSS_SELECTOR, "#gutter .ln.bad"),
    )
    assert [m.get_attribute("data-line") for m in marked] == [str(line_of(typo, TYPO_LINE))]
    assert "did you mean 'session_id'?" in (marked[0].get_attribute("title") or "")
    problems = browser.find_element(By.ID, "problems").text
    assert f"line {line_of(typo, TYPO_LINE)}:" in problems
    assert "did you mean 'session_id'?" in problems
    assert _bodies(browser) == []
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # docs/mapping.md shows a marked line
        browser.save_screenshot(str(ROOT / "docs" / "studio-problem.png"))

    _set_mapping(browser, good)
    _wait(browser, "events back after the fix", lambda d: len(_bodies(d)) >= 2)
    assert browser.find_elements(By.CSS_SELECTOR, "#gutter .ln.bad") == []
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":  # README.md shows the page at work
        browser.find_element(By.CSS_SELECTOR, "#fields summary").click()  # VIEW's fields
        browser.save_screenshot(str(ROOT / "docs" / "studio.png"))


def test_a_saved_test_case_passes_cdp_connector_test(browser: WebDriver, studio: Studio) -> None:
    card = browser.find_elements(By.CSS_SELECTOR, ".record")[0]
    name = card.find_element(By.CSS_SELECTOR, ".case-name")
    name.clear()
    name.send_keys("a product page")
    card.find_element(By.CSS_SELECTOR, ".save-test").click()
    saved = card.find_element(By.CSS_SELECTOR, ".saved")
    _wait(browser, "test case saved", lambda _: saved.text.startswith("saved to "))
    test_file = studio.mapping.with_name("mappings.test.yaml")
    assert saved.text == f"saved to {test_file}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):  # the command's own entry point, in this process
        status = cli.main(["test", str(studio.mapping)])
    assert status == 0, out.getvalue()
    assert "ok    a product page" in out.getvalue()
    assert out.getvalue().strip().endswith("1 test, 0 failed")


def test_save_mapping_writes_the_file_and_refuses_one_changed_on_disk(
    browser: WebDriver, studio: Studio
) -> None:
    text = studio.mapping.read_text(encoding="utf-8") + "# saved from the studio\n"
    _set_mapping(browser, text)
    browser.find_element(By.ID, "save-mapping").click()
    status = browser.find_element(By.ID, "save-status")
    _wait(browser, "saved", lambda _: status.text.startswith("saved "))
    assert studio.mapping.read_text(encoding="utf-8") == text
    studio.mapping.write_text(text + "# changed in another editor\n", encoding="utf-8")
    _set_mapping(browser, text + "# mine\n")
    browser.find_element(By.ID, "save-mapping").click()
    _wait(browser, "refused", lambda _: status.text.startswith("not saved: "))
    assert "changed on disk since it was loaded" in status.text
    assert studio.mapping.read_text(encoding="utf-8").endswith("# changed in another editor\n")


def test_a_request_without_the_token_is_refused(studio: Studio) -> None:
    for url in (studio.base, studio.base + "api/state", studio.base + "?token=wrong"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)  # noqa: S310 - our own loopback server
        assert refused.value.code == 403, url
        refused.value.close()
    with urllib.request.urlopen(studio.url, timeout=10) as page:  # noqa: S310
        assert page.status == 200
