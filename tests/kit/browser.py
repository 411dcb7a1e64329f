"""Headless Chromium for the kit's browser tests, driven by selenium.

Debian's chromium and chromium-driver (.ci/run installs them, as it does bubblewrap). Without them the
tests that need a browser skip, saying so.
"""
import shutil
import time

import pytest

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver "
                                    "(Debian: apt-get install chromium chromium-driver; .ci/run installs them)")


def start_chromium(profile, network_log: bool = False):
    """A headless Chromium with a profile of its own, that asks nothing of the network by itself."""
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    if network_log:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    return driver


def wait_until(condition, seconds: float, what: str, every: float = 0.25):
    """condition()'s first true value, asked until it has one; an AssertionError naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:g} s")
        time.sleep(every)
