"""Headless Chromium for the console tests: Debian's `chromium` driven through its matching
`chromedriver` by Selenium, with explicit paths so nothing is ever downloaded.

Why Selenium and Debian's driver rather than Playwright: `chromium` and `chromedriver` come from
the same Debian source package, so their versions always match, and Selenium is a pure-Python
wheel; Playwright drives the browser revision it was built against and fetches it at install,
which this machine cannot do. A missing browser fails the tests with how to install it.
"""
from __future__ import annotations

import os
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

INSTALL = ("the web console's browser tests need Chromium and its driver; on Debian or Ubuntu: "
           "apt-get install -y chromium chromium-driver (or set QSTORE_CHROMIUM and QSTORE_CHROMEDRIVER "
           "to their paths), and the test extras: pip install -e \".[test]\"")
WIDTH, HEIGHT = 1280, 1000


def chromium_paths() -> tuple[str, str]:
    """The browser and driver executables, or a test failure that says how to install them."""
    browser = os.environ.get("QSTORE_CHROMIUM") or next(
        (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = os.environ.get("QSTORE_CHROMEDRIVER") or shutil.which("chromedriver")
    missing = [name for name, path in (("chromium", browser), ("chromedriver", driver)) if not path]
    if missing:
        pytest.fail(f"{' and '.join(missing)} not found: {INSTALL}", pytrace=False)
    return str(browser), str(driver)


def launch() -> Any:
    """A headless Chromium session with its console log kept (checked for script errors)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: {INSTALL}", pytrace=False)
    browser, driver = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={WIDTH},{HEIGHT}", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def wait(driver: Any, condition: Callable[[Any], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `condition(driver)` until it is truthy; its value, or a failure naming `what`."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition, message=f"waiting for {what}")


def table(driver: Any, selector: str) -> list[list[str]]:
    """The text of each body row's cells of a table."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0] + ' tbody tr')]"
        ".map(tr => [...tr.cells].map(c => c.textContent.trim()))", selector)


def screenshot(driver: Any, path: Path) -> Path:
    """Save the view as a PNG and check it is one, of the window's size."""
    driver.save_screenshot(str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == tuple(driver.execute_script("return [innerWidth, innerHeight]")), (width, height)
    assert len(data) > 10_000, f"{path} is only {len(data)} bytes: a blank page?"
    return path


def script_errors(driver: Any) -> list[str]:
    """Script errors in the browser's console (failed requests the test provoked are not errors)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"]
