"""A real browser for end-to-end tests: Playwright driving Debian's chromium, started once
per test session (each test gets its own fresh context: cookies and storage).

Skipped only where /usr/bin/chromium is missing outside CI; CI installs it.

Screenshots go to var/screenshots/ (ignored by git), so running the tests leaves the work
tree clean; `make screenshots` points SCREENSHOTS_DIR at docs/screenshots/ to refresh the
README's images on purpose."""

import os
from pathlib import Path

import pytest
from django.db import connections

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("SCREENSHOTS_DIR") or ROOT / "var" / "screenshots")
AXE = Path(__file__).resolve().parent / "node_modules" / "axe-core" / "axe.min.js"

needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not os.environ.get("CI"),
    reason="needs Debian's chromium at /usr/bin/chromium (CI installs it)")


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread; the tests' own ORM calls
    # are ordinary synchronous ones.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run", "--disable-sync"])
        yield browser
        browser.close()
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_context(browser):
    # bypass_csp lets the tests inject axe-core into a page whose policy (rightly) refuses
    # inline scripts; the pages' own scripts are unaffected.
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield context
    context.close()
    # ORM calls made while Playwright's loop ran opened their own connection; close it so
    # the test database can be dropped at the end of the run.
    connections.close_all()


@pytest.fixture
def browser_page(browser_context):
    return browser_context.new_page()


def shot(page, name: str) -> None:
    path = SCREENSHOTS / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it is now (WCAG 2.1 A and AA rules and best
    practices), each as {id, impact, help, targets}."""
    if not AXE.exists():
        raise RuntimeError(f"axe-core is missing: run `npm ci --prefix tests/e2e` ({AXE})")
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    assert page.evaluate("typeof axe.run") == "function", "axe-core did not load"
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {resultTypes: ['violations']});
        return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                       targets: v.nodes.map(n => n.target.join(' '))}));
    }""")
    return result


def overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0 when nothing scrolls
    sideways)."""
    return page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - window.innerWidth")
