"""The audit pages in a real headless browser: the distribution's Chromium, driven through its
chromedriver (``make browser`` installs both; CI requires them, elsewhere the tests say why they were
skipped)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: set by CI: a missing browser fails the tests instead of skipping them
REQUIRE_ENV = "CHURN_PIPELINE_REQUIRE_BROWSER"
#: what a page reports of itself once loaded
PAGE_FACTS = """
const text = document.body.innerText;
return {
  title: document.title,
  images: Array.from(document.images).map(i => ({loaded: i.complete && i.naturalWidth > 0, width: i.naturalWidth})),
  tables: document.querySelectorAll("table").length,
  errors: document.querySelectorAll('[data-mime-type="application/vnd.jupyter.stderr"]').length,
  nan: /\\bNaN\\b/.test(text),
  traceback: /Traceback \\(most recent call last\\)/.test(text),
  fetched: performance.getEntriesByType("resource").map(r => r.name).filter(n => !/^(data|file|blob):/.test(n)),
};
"""


def chromium(optional: bool = False):
    """A headless Chromium session, or a skip (a failure where CI requires it) naming what is missing;
    ``optional``: None instead of a skip, for a test whose other checks go on without a browser."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (browser and driver):
        reason = "no Chromium or chromedriver on PATH (make browser installs the distribution's packages)"
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(reason)
        if optional:
            return None
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1400,1000")
    return webdriver.Chrome(service=Service(driver), options=options)  # a driver given: nothing downloaded


def page_facts(session, page: Path) -> dict:
    session.get(page.resolve().as_uri())
    return session.execute_script(PAGE_FACTS)
