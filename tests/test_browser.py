"""The app in a real browser: Debian's Chromium driven by Playwright, a WAV file as microphone and as shared tab."""

import os
import re
import time
from pathlib import Path

import pytest

import app
from bench.screenshots import CHROMIUM, launch
from genre_model.config import GTZAN_GENRES as GENRES
from tests.conftest import chirp, served
from tests.test_cli import needs_the_committed_pair

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)"),
]


def headline_text(page) -> str:
    return page.locator("#headline").inner_text()


def in_view(page, selector: str) -> bool:
    """Whether the element's top and bottom are inside the viewport, without scrolling."""
    box = page.locator(selector).first.bounding_box()
    return box is not None and 0 <= box["y"] and box["y"] + box["height"] <= page.viewport_size["height"]


def region_ends(page) -> list[int]:
    """Where each region in the Explain table ends, in seconds ("... at 9-12 s")."""
    return [int(end) for end in re.findall(r"-(\d+) s", page.locator("#explain-table").inner_text())]


@pytest.mark.parametrize("size", [(1280, 720), (390, 844)])  # a classroom projector and a phone
def test_browser_whole_flow_one_clip_for_every_view(server, write_audio, tmp_path, size):
    """Example click -> that example's results, each view's answer on screen without scrolling on the projector;
    Explain and Compare run when opened; upload -> the open view follows the new clip; a bad file -> one lasting
    message, outputs cleared, no error badges."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    width, height = size
    projector = width > 1000
    clip = write_audio("browser clip.wav", chirp(6.0))
    junk = tmp_path / "not music.wav"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(30_000))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(server)
        page.get_by_text("disco · Disco con Tutti · Kevin MacLeod").click()  # labelled with the publisher's genre
        page.wait_for_function(
            "() => document.querySelector('#headline')?.innerText.includes('20.0 s analyzed')", timeout=60_000
        )
        page.wait_for_selector(".js-plotly-plot .heatmaplayer, .js-plotly-plot image", timeout=30_000)
        page.screenshot(path=str(shots / f"example-{width}.png"))
        assert in_view(page, "#headline h2") or not projector
        tops = page.evaluate(
            "() => [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.offsetParent)"
            ".map(p => p._fullLayout._size.t)"
        )
        assert len(tops) >= 3 and max(tops) <= 50, tops  # no blank band over a chart: its box's label names it

        page.get_by_role("tab", name="Explain").click()  # runs for the clip on its own
        page.wait_for_selector("text=Muted one at a time", timeout=60_000)
        assert 6 < max(region_ends(page)) <= 20  # the 20 s clip's regions
        assert page.locator("#explain-table").bounding_box()["width"] >= 300  # on a phone too: the player goes under
        assert in_view(page, "#explain-summary") or not projector

        page.locator("#clip button[aria-label='Clear']").click()
        page.locator("input[type=file]").first.set_input_files(str(clip))  # a new clip: the open view follows it
        page.wait_for_function(
            "() => document.querySelector('#headline')?.innerText.includes('6.0 s analyzed')", timeout=60_000
        )
        page.wait_for_selector("text=Muted one at a time", timeout=60_000)
        page.wait_for_function(
            "() => (t => /-\\d s/.test(t) && !/-([7-9]|\\d\\d) s/.test(t))"
            "(document.querySelector('#explain-table').innerText)",
            timeout=60_000,
        )  # the 6 s clip's regions
        assert max(region_ends(page)) <= 6
        page.screenshot(path=str(shots / f"explain-{width}.png"))
        page.get_by_role("tab", name="Compare").click()
        page.wait_for_function(
            "() => document.querySelectorAll('#compare-outputs .compare-card h3').length >= 2", timeout=60_000
        )
        page.screenshot(path=str(shots / f"compare-{width}.png"))
        assert in_view(page, "#compare-outputs .compare-card h3") or not projector

        page.locator("#clip button[aria-label='Clear']").click()
        page.locator("input[type=file]").first.set_input_files(str(junk))
        page.wait_for_selector("#clip-message >> text=not an audio file", timeout=60_000)
        page.wait_for_selector("#clip button[aria-label='Clear']", state="detached", timeout=10_000)  # no broken player
        page.wait_for_timeout(1000)
        assert "not an audio file" in page.locator("#clip-message").inner_text()  # the message stays
        page.screenshot(path=str(shots / f"bad-file-{width}.png"), full_page=True)
        assert page.locator("text=Error").count() == 0  # no error badges
        assert page.locator("#headline").inner_text().strip() == ""  # no result of the previous clip
        assert page.locator("#compare-outputs .compare-card").count() == 0
        browser.close()


def fake_capture_page(pw, wav: Path):
    """A page in headless Chromium whose microphone, and whose shared tab's sound, play ``wav``."""
    browser = launch(pw, wav)
    context = browser.new_context(permissions=["microphone"], viewport={"width": 1400, "height": 1600})
    page = context.new_page()
    # printed, so pytest shows them when a test fails: a rare live-tab failure (no answer within 60 s) left no trace
    start = time.perf_counter()

    def log(text: str) -> None:
        print(f"{time.perf_counter() - start:6.1f} s {text}")

    page.on("console", lambda m: log(f"console {m.type}: {m.text}"))
    page.on("pageerror", lambda e: log(f"page error: {e}"))
    page.on("requestfailed", lambda r: log(f"failed: {r.url} {r.failure}"))
    return page


@pytest.fixture
def fake_mic_browser(tmp_path):
    """Headless Chromium whose microphone plays a generated music clip."""
    import soundfile as sf
    from playwright.sync_api import sync_playwright

    from genre_model.synth import four_on_the_floor

    wav = tmp_path / "mic.wav"
    sf.write(wav, four_on_the_floor(30.0), 22_050, subtype="PCM_16")
    with sync_playwright() as pw:
        yield fake_capture_page(pw, wav)


def live_track_settings(page) -> dict:
    return page.evaluate("() => window.genreCapture.stream.getAudioTracks()[0].getSettings()")


def test_browser_recording_runs_the_analysis_with_the_room_model(fake_mic_browser):
    """The box's own Record is the microphone: the room model answers it, in Analyze and Explain; the next example is
    a file again (the detector decides)."""
    needs_the_committed_pair()
    page = fake_mic_browser
    with served(None) as url:  # the default app: the source picks the model
        page.goto(url)
        page.get_by_role("button", name="Record audio").first.click()
        page.get_by_role("button", name="Record", exact=True).first.click()
        time.sleep(3)
        settings = live_track_settings(page)  # music as it is: none of the browser's speech processing
        assert not settings["echoCancellation"] and not settings["noiseSuppression"] and not settings["autoGainControl"]
        page.get_by_role("button", name="Stop", exact=True).first.click()
        page.wait_for_selector("text=s analyzed", timeout=60_000)
        assert "the room model, for a microphone" in headline_text(page)
        page.get_by_role("tab", name="Explain").click()
        page.wait_for_selector("#explain-summary >> text=musicnn-room", timeout=60_000)
        page.get_by_role("tab", name="Analyze").click()
        page.get_by_text("blues · Matt's Blues").click()
        page.wait_for_function("() => document.querySelector('#headline')?.innerText.includes('20.0 s analyzed')")
        assert "room detector" in headline_text(page)


@pytest.mark.parametrize("size", [(1280, 720), (390, 844)])  # a classroom projector and a phone
def test_browser_live_tab_follows_the_microphone(server, fake_mic_browser, tmp_path, size):
    page = fake_mic_browser
    width, height = size
    page.set_viewport_size({"width": width, "height": height})
    page.goto(server)
    page.get_by_role("tab", name="Live").click()
    page.get_by_role("button", name="Microphone", exact=True).click()
    try:
        page.wait_for_selector("text=Listening to the microphone", timeout=60_000)
        page.wait_for_selector("text=covers the last", timeout=60_000)
    finally:
        shot = Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / f"live-{width}.png"
        page.screenshot(path=str(shot))
    settings = live_track_settings(page)
    assert not settings["echoCancellation"] and not settings["noiseSuppression"] and not settings["autoGainControl"]
    first = page.locator("text=covers the last").first.inner_text()
    page.wait_for_function(
        "t => !document.body.innerText.includes(t)", arg=first, timeout=60_000
    )  # a later update replaced the first one
    assert page.locator("#live-panel .live-bars").get_attribute("data-top") in GENRES  # the top genre
    assert in_view(page, "#live-headline h2")  # the answer without scrolling, on the projector and the phone
    page.locator("#live-stop").click()
    page.wait_for_selector("text=Paused", timeout=30_000)
    assert in_view(page, "#live-headline h2") and in_view(page, ".live-paused")
    if width < 1000:
        return
    # one input list, Gradio's own in the recording box: the recorder that streams records the input chosen there
    picker = page.locator("#live-audio select.mic-select")
    chosen = picker.locator("option").nth(1).get_attribute("value")
    picker.select_option(chosen)
    page.get_by_role("button", name="Microphone", exact=True).click()
    page.wait_for_selector("#live-panel:not(.paused) .live-status", timeout=60_000)
    assert live_track_settings(page)["deviceId"] == chosen


# Chromium's fake microphone and fake shared tab both play the same file: an init script replaces one of them with
# a silent WebAudio stream (before static/capture.js wraps it), so an answer shows which source was recorded.
SILENCE = """kind => {
  const silent = async () => {
    const context = new AudioContext();
    const gain = context.createGain();
    gain.gain.value = 0;
    const sink = context.createMediaStreamDestination();
    const tone = context.createOscillator();
    tone.connect(gain).connect(sink);
    tone.start();
    return sink.stream;
  };
  navigator.mediaDevices[kind === "computer" ? "getDisplayMedia" : "getUserMedia"] = silent;
}"""
BUTTON = {"computer": "This computer's sound", "microphone": "Microphone"}
LISTENING = {"computer": "Listening to this computer", "microphone": "Listening to the microphone"}
ANSWERING = {"computer": "musicnn-genre", "microphone": "musicnn-room"}  # the clean model, the room model


@pytest.mark.parametrize("played", ["computer", "microphone"])
def test_browser_live_tab_records_the_chosen_source(tmp_path, played):
    """One source plays the metal example and the other is silent: the played source's button gets metal on top of the
    Live bars from its model (the room model for the microphone), Stop pauses and ends the share, and the silent
    source's button then hears silence. (Before the fix, "This computer's sound" recorded the microphone while the
    page said "this computer".)"""
    import soundfile as sf
    from playwright.sync_api import sync_playwright

    needs_the_committed_pair()
    silenced = "microphone" if played == "computer" else "computer"
    samples, rate = sf.read(app.EXAMPLES_DIR / "Chaos_God-Muldjord.ogg")
    wav = tmp_path / "played.wav"
    sf.write(wav, samples, rate, subtype="PCM_16")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    with served(None) as url, sync_playwright() as pw:  # the default app: the source picks the model
        page = fake_capture_page(pw, wav)
        page.add_init_script(f"({SILENCE})({silenced!r})")
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        start = time.perf_counter()
        page.get_by_role("button", name=BUTTON[played], exact=True).click()
        page.wait_for_selector(f"text={LISTENING[played]}", timeout=60_000)
        assert page.evaluate("() => window.genreCapture.stream.getVideoTracks().length") == 0  # video dropped
        top_is = "g => document.querySelector('#live-panel .live-bars')?.dataset.top === g"  # the top genre
        page.wait_for_function(top_is, arg="metal", timeout=60_000)
        settled = time.perf_counter() - start
        page.wait_for_selector("#live-panel .live-strip i", timeout=30_000)
        page.screenshot(path=str(shots / f"live-{played}.png"), full_page=True)
        assert f"{LISTENING[played]} with {ANSWERING[played]}" in page.locator("body").inner_text()
        page.get_by_role("button", name=BUTTON[silenced], exact=True).click()  # switched while listening
        page.wait_for_selector(f"text={LISTENING[silenced]}", timeout=60_000)
        page.wait_for_function(  # a new source starts afresh: the last one's answer is gone
            "() => !document.querySelector('#live-headline')?.innerText.includes('metal')", timeout=30_000
        )
        page.wait_for_selector("text=nothing to hear yet (silence)", timeout=60_000)
        page.screenshot(path=str(shots / f"live-{silenced}-silent.png"), full_page=True)
        page.locator("#live-audio button.stop-button").click()
        page.wait_for_selector("text=Paused", timeout=30_000)
        assert page.evaluate("() => window.genreCapture.share === null && window.genreCapture.copies === 0")
        if played == "computer":  # the box's own Record button, after Stop, records the microphone: labelled so
            page.locator("#live-audio button.record-button").click()
            page.wait_for_selector(f"text={LISTENING['microphone']}", timeout=60_000)
            page.wait_for_selector("text=nothing to hear yet (silence)", timeout=60_000)
    print(f"{played}: metal on top of the Live bars {settled:.1f} s after the click")
