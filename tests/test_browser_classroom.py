"""The classroom switches in a real browser (Debian's Chromium): Guess first and Presenter."""

from tests.test_browser import CHROMIUM, pytestmark  # noqa: F401 - the same marks: slow, needs Chromium


def font_px(page, selector: str) -> float:
    return float(page.evaluate(f"() => getComputedStyle(document.querySelector({selector!r})).fontSize")[:-2])


# every chart on screen as wide as its box (a chart drawn while hidden has a made-up width until it is sized again)
CHARTS_FIT = """() => [...document.querySelectorAll('.js-plotly-plot')].filter((p) => p.offsetParent).every((p) =>
  Math.abs(p.closest('.block').getBoundingClientRect().width - p._fullLayout.width) < 8)"""


def test_browser_guess_first_then_reveal_and_presenter_sizes(server):
    """Guess first hides every answer until Reveal (a new clip hides it again); Presenter makes chart ticks and text at
    least 18 px and the answer huge."""
    from playwright.sync_api import sync_playwright

    hidden = "() => getComputedStyle(document.querySelector('#headline')).display === 'none'"
    analyzed = "t => document.querySelector('#headline')?.textContent.includes(t)"  # textContent: also when hidden
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.goto(server)
        page.get_by_label("Guess first").check()
        assert page.get_by_text("disco · Disco con Tutti").count() == 0  # the buttons do not give the genre away
        page.get_by_text("? · Disco con Tutti · Kevin MacLeod").click()
        page.wait_for_function(analyzed, arg="20.0 s analyzed", timeout=60_000)
        assert page.evaluate(hidden) and page.get_by_text("what genre is it? Vote").is_visible()
        page.get_by_role("tab", name="Compare").click()
        page.wait_for_selector("#compare-outputs .compare-card h3", state="attached", timeout=60_000)
        assert not page.locator("#compare-outputs").is_visible()  # Compare would give it away too
        page.get_by_role("button", name="Reveal the answer").click()
        page.wait_for_selector("#compare-outputs .compare-card h3", state="visible", timeout=10_000)
        assert not page.evaluate(hidden)
        assert not page.get_by_role("button", name="Reveal the answer").is_visible()
        page.get_by_role("tab", name="Analyze").click()
        page.get_by_text("? · Matt's Blues · Kevin MacLeod").click()  # the next clip: hidden again until Reveal
        page.wait_for_function(analyzed, arg="20.0 s analyzed by", timeout=60_000)
        page.wait_for_function(hidden, timeout=10_000)
        page.get_by_role("button", name="Reveal the answer").click()  # a chart drawn while hidden is sized again
        page.wait_for_function(CHARTS_FIT, timeout=10_000)

        page.get_by_label("Guess first").uncheck()
        assert page.get_by_text("blues · Matt's Blues · Kevin MacLeod").is_visible()  # labelled again
        page.get_by_label("Presenter: large text").check()
        page.wait_for_selector(".js-plotly-plot .xtick text", timeout=30_000)
        assert font_px(page, ".js-plotly-plot .xtick text") >= 18 and font_px(page, "#headline p") >= 18
        assert font_px(page, "#headline h2") >= 64 and font_px(page, "#clip-column button") >= 18
        page.get_by_label("Guess first").check()  # Presenter and Guess first together: charts drawn hidden, then shown
        before = page.evaluate("() => document.querySelector('#headline').textContent")
        page.get_by_text("? · Deuces · Kevin MacLeod").click()
        page.wait_for_function("t => document.querySelector('#headline').textContent !== t", arg=before, timeout=60_000)
        page.wait_for_function(hidden, timeout=10_000)
        page.wait_for_timeout(1000)  # the charts drawn while hidden
        page.get_by_role("button", name="Reveal the answer").click()
        page.wait_for_function(CHARTS_FIT, timeout=10_000)
        assert font_px(page, ".js-plotly-plot .xtick text") >= 18
        browser.close()
