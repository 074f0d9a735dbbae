import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

import app
from genre_model.inference import GenreClassifier
from genre_model.models import DEFAULT_MODEL, GENRES, WEIGHTS_DIR
from genre_model.musicnn import MSD_TAGS
from tests.conftest import chirp, noise

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(random_model_dir):
    main = GenreClassifier.from_pretrained(random_model_dir, device="cpu")
    other = GenreClassifier.from_pretrained(random_model_dir, device="cpu")
    return app.AppModels(main, {"main": main, "other": other})


def test_analyze_handler_outputs(models, write_audio):
    path = write_audio("clip.wav", noise(8.0))
    headline, label, bars, waveform, spectrogram, timeline, tags = app.analyze(models, str(path))
    expected = models.main.predict(str(path))
    assert headline.startswith("## ") and "8.0 s analyzed" in headline and "chunk-cnn-random" in headline
    assert " ms" not in headline  # timings are for the API and the bench, not for students
    assert list(label) == [g for g, _ in expected.top(3)]
    assert list(bars.data[0].y) == models.main.genres[::-1]  # the same rows in every chart
    assert np.allclose(bars.data[0].x, [100 * expected.probabilities[g] for g in bars.data[0].y])
    assert waveform.layout.xaxis.title.text == "time (s)" and not waveform.layout.title.text
    assert spectrogram.data[0].z.shape[0] == 128 and spectrogram.data[0].colorbar.title.text == "loudness (dB)"
    assert "1 kHz" in spectrogram.layout.yaxis.ticktext  # round frequencies
    names = [trace["name"] for trace in json.loads(timeline.value["plot"])["data"]]
    assert timeline.visible and len(names) == 4 and names[-1] == "other genres"  # top 3 coloured, the rest grey
    assert tags is None  # a model trained from scratch has no pretrained tagger


def test_analyze_shows_the_pretrained_tags_of_the_default_model(write_audio):
    if not (WEIGHTS_DIR / DEFAULT_MODEL / "model.safetensors").exists():
        pytest.skip(f"weights/{DEFAULT_MODEL} is not there")
    main = GenreClassifier.from_pretrained(None, device="cpu")
    path = write_audio("clip.wav", chirp(4.0))
    *_, tags = app.analyze(app.AppModels(main, {}), str(path))
    expected = main.predict(str(path)).tags
    assert len(tags) == app.TAGS_SHOWN and set(tags) <= set(MSD_TAGS)
    assert list(tags.values()) == sorted(expected.values(), reverse=True)[: app.TAGS_SHOWN]


def test_analyze_rejects_bad_input_with_a_short_message(models, tmp_path):
    junk = tmp_path / "photo.wav"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(3000))
    with pytest.raises(app.ClipProblem, match="not an audio file") as problem:
        app.analyze(models, str(junk))
    assert "ffmpeg" not in str(problem.value)  # no advice a browser user cannot follow
    message, *outputs = app.shown(lambda a: app.analyze(models, a), 7)(None)
    assert message.startswith("⚠ No clip yet") and outputs == [None] * 7  # one message, every output cleared


def test_explain_handler_returns_overlay_table_and_audio(models, write_audio):
    path = str(write_audio("e.wav", noise(7.0)))
    note, figure, table, (rate, strongest) = app.explain_clip(models, path, "jazz", app.RUNNER_UP)
    assert len(figure.data) == 2 and figure.data[1].zmax == -figure.data[1].zmin > 0  # evidence, for and against
    assert len(figure.layout.shapes) == 3  # the strongest windows, marked
    assert "jazz" in table and "s |" in table and note.startswith("Why **jazz** and not **")
    assert rate == 22_050 and 0 < len(strongest) <= 3 * 22_050
    assert note


def test_compare_handler_runs_every_model(models, write_audio):
    outputs = app.compare(models, str(write_audio("c.wav", chirp(4.0))))
    assert len(outputs) == 4 and all(isinstance(o, dict) for o in outputs[::2])


@pytest.mark.parametrize(
    ("source", "rate", "make_chunk"),
    [
        ("the microphone", 48_000, lambda x: (x * 32767).astype(np.int16)),  # Chrome's mic: 48 kHz mono int16
        ("this computer", 48_000, lambda x: (np.stack([x, x], axis=1) * 32767).astype(np.int16)),  # tab audio: stereo
        ("this computer", 44_100, lambda x: np.stack([x, 0.5 * x], axis=1).astype(np.float32)),
    ],
)
def test_live_handler_follows_chunks_of_either_source(models, source, rate, make_chunk):
    audio = make_chunk(noise(5.0, sr=rate))
    state, outputs = None, []
    for i in range(0, len(audio), rate):  # one chunk per second, as stream_every=1.0 sends
        state, *out = app.live_step(models, state, (rate, audio[i : i + rate]), source)
        outputs.append(out)
    waiting = outputs[0][0]
    assert "1 of 3 s" in waiting and all(isinstance(o, type(gr.skip())) for o in outputs[0][1:])  # no answer yet
    status, headline, label, bars, timeline = outputs[-1]
    assert f"Listening to **{source}**" in status and "covers the last 5 s" in status
    assert headline.startswith("## ") and len(label) == 3 and set(label) <= set(models.main.genres)
    assert sum(bars.data[0].x) == pytest.approx(100, abs=0.1)  # every genre's smoothed probability
    assert len(state.history) == 3 and len(timeline.data) == 4  # top 3 genres and the rest
    assert state.heard_s == pytest.approx(5.0)


def test_live_handler_says_silence_and_too_quiet(models):
    state = None
    for _ in range(4):
        state, status, *_ = app.live_step(models, state, (48_000, np.zeros(48_000, np.int16)))
    assert "silence" in status
    state = None
    for _ in range(4):  # -66 dBFS: there, but too quiet to tell anything
        state, status, headline, *_ = app.live_step(models, state, (48_000, (noise(1.0, sr=48_000) * 0.002)))
    assert "Too quiet" in headline


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_app(model: str | Path):
    """``python app.py --model MODEL`` on a free port; yields its URL, always stopped."""
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    proc = subprocess.Popen(
        [sys.executable, "app.py", "--model", str(model)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail("app exited at start-up:\n" + proc.stdout.read())
                time.sleep(0.5)
        else:
            pytest.fail("app did not start within 90 s")
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        try:
            output = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired:
            proc.kill()
            output = proc.communicate()[0]
    # Gradio logs a client closing a stream (ClientDisconnect) with a traceback; none may come from our code
    assert "app.py" not in output and "genre_model" not in output, output[-3000:]


@pytest.fixture(scope="module")
def server(random_model_dir):
    with running_app(random_model_dir) as url:
        yield url


def test_server_classify_endpoint_and_recovery(server, write_audio, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    params = client.view_api(return_format="dict")["named_endpoints"]["/classify"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["audio"]
    endpoints = client.view_api(return_format="dict")["named_endpoints"]
    assert [p["parameter_name"] for p in endpoints["/explain"]["parameters"]] == ["audio", "genre", "versus"]
    assert [p["parameter_name"] for p in endpoints["/compare"]["parameters"]] == ["audio"]
    result = client.predict(audio=handle_file(str(write_audio("clip.wav", chirp(5.0)))), api_name="/classify")
    assert set(result["probabilities"]) == set(GENRES) and sum(result["probabilities"].values()) == pytest.approx(1)
    assert result["genre"] == max(result["probabilities"], key=result["probabilities"].get)
    assert result["analyzed_s"] == pytest.approx(5.0) and isinstance(result["sure"], bool) and result["reason"]
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(os.urandom(4000))
    with pytest.raises(Exception, match="not an audio file"):
        client.predict(audio=handle_file(str(junk)), api_name="/classify")
    # still serving after the bad upload
    result = client.predict(audio=handle_file(str(write_audio("again.wav", noise(2.0)))), api_name="/classify")
    assert result["analyzed_s"] == pytest.approx(2.0)


def test_oversized_upload_is_refused(server, tmp_path):
    from gradio_client import Client, handle_file

    big = tmp_path / "big.wav"
    with open(big, "wb") as f:
        f.truncate(51 * 1024 * 1024)  # over max_file_size (50 MB), sparse on disk
    with pytest.raises(Exception, match="(?i)file size|too large|exceed"):
        Client(server, verbose=False).predict(audio=handle_file(str(big)), api_name="/classify")


CHROMIUM = "/usr/bin/chromium"


def headline_text(page) -> str:
    return page.locator("#headline").inner_text()


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 390])  # a laptop and a phone
def test_browser_whole_flow_one_clip_for_every_view(server, write_audio, tmp_path, width):
    """Example click -> that example's results; upload -> Analyze, Explain and Compare on the same clip without
    uploading again, nothing stale; a bad file -> one lasting message, outputs cleared, no error badges."""
    from playwright.sync_api import sync_playwright

    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    clip = write_audio("browser clip.wav", chirp(6.0))
    junk = tmp_path / "not music.wav"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(30_000))
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": width, "height": 1800})
        page.goto(server)
        page.get_by_text("Disco_con_Tutti-Kevin_MacLeod.ogg").click()  # an example analyzes itself
        page.wait_for_function("() => document.querySelector('#headline')?.innerText.includes('20.0 s analyzed')",
                               timeout=60_000)  # fmt: skip
        page.wait_for_selector(".js-plotly-plot .heatmaplayer, .js-plotly-plot image", timeout=30_000)
        page.screenshot(path=str(shots / f"example-{width}.png"), full_page=True)

        page.get_by_role("tab", name="Explain").click()
        page.get_by_role("button", name="Explain", exact=True).click()
        page.wait_for_selector("text=Windows that sounded most like", timeout=60_000)
        assert page.locator("text=17.0-20.0 s").count() + page.locator("text=-20.0 s").count() > 0  # the 20 s clip

        page.locator("#clip button[aria-label='Clear']").click()
        page.locator("input[type=file]").first.set_input_files(str(clip))  # a new clip: every view follows it
        page.wait_for_function("() => document.querySelector('#headline')?.innerText.includes('6.0 s analyzed')",
                               timeout=60_000)  # fmt: skip
        assert page.locator("text=Windows that sounded most like").count() == 0  # the old explanation is gone
        page.get_by_role("button", name="Explain", exact=True).click()
        page.wait_for_selector("text=Windows that sounded most like", timeout=60_000)
        assert page.locator("text=-20.0 s").count() == 0
        page.screenshot(path=str(shots / f"explain-{width}.png"), full_page=True)
        page.get_by_role("tab", name="Compare").click()
        page.get_by_role("button", name="Compare", exact=True).click()
        page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot .barlayer').length >= 2",
                               timeout=60_000)  # fmt: skip
        page.screenshot(path=str(shots / f"compare-{width}.png"), full_page=True)

        page.locator("#clip button[aria-label='Clear']").click()
        page.locator("input[type=file]").first.set_input_files(str(junk))
        page.wait_for_selector("#clip-message >> text=not an audio file", timeout=60_000)
        page.screenshot(path=str(shots / f"bad-file-{width}.png"), full_page=True)
        assert page.locator("text=Error").count() == 0  # no error badges
        assert page.locator("#headline").inner_text().strip() == ""  # no result of the previous clip
        browser.close()


def fake_capture_page(pw, wav: Path):
    """A page in headless Chromium whose microphone, and whose shared tab's sound, play ``wav``."""
    browser = pw.chromium.launch(
        executable_path=CHROMIUM,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
              "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
              f"--use-file-for-fake-audio-capture={wav}"],
    )  # fmt: skip
    context = browser.new_context(permissions=["microphone"], viewport={"width": 1400, "height": 1600})
    return context.new_page()


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


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_browser_recording_runs_the_analysis(server, fake_mic_browser):
    page = fake_mic_browser
    page.goto(server)
    page.get_by_role("button", name="Record audio").first.click()
    page.get_by_role("button", name="Record", exact=True).first.click()
    time.sleep(3)
    settings = live_track_settings(page)  # music as it is: none of the browser's speech processing
    assert not settings["echoCancellation"] and not settings["noiseSuppression"] and not settings["autoGainControl"]
    page.get_by_role("button", name="Stop", exact=True).first.click()
    page.wait_for_selector("text=s analyzed", timeout=60_000)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 390])  # a laptop and a phone
def test_browser_live_tab_follows_the_microphone(server, fake_mic_browser, tmp_path, width):
    page = fake_mic_browser
    page.set_viewport_size({"width": width, "height": 1600})
    page.goto(server)
    page.get_by_role("tab", name="Live").click()
    page.get_by_role("button", name="Microphone", exact=True).click()
    try:
        page.wait_for_selector("text=Listening to the microphone", timeout=60_000)
        page.wait_for_selector("text=covers the last", timeout=60_000)
    finally:
        shot = Path(os.environ.get("SCREENSHOT_DIR", tmp_path)) / f"live-{width}.png"
        page.screenshot(path=str(shot), full_page=True)
    settings = live_track_settings(page)
    assert not settings["echoCancellation"] and not settings["noiseSuppression"] and not settings["autoGainControl"]
    first = page.locator("text=covers the last").first.inner_text()
    page.wait_for_function(
        "t => !document.body.innerText.includes(t)", arg=first, timeout=60_000
    )  # a later update replaced the first one
    assert page.locator("#live-label dt.text").first.inner_text().strip() in GENRES  # the top genre
    page.locator("#live-audio button.stop-button").click()
    page.wait_for_selector("text=Paused", timeout=30_000)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian chromium not installed (apt-get install chromium)")
def test_browser_live_tab_classifies_this_computers_sound(tmp_path):
    """The "This computer's sound" button: the shared tab plays the metal example (headless Chromium's fake display
    capture plays the file as the tab's audio); the default model names it, the timeline fills, Stop pauses."""
    import soundfile as sf
    from playwright.sync_api import sync_playwright

    if not (WEIGHTS_DIR / DEFAULT_MODEL / "model.safetensors").exists():
        pytest.skip(f"weights/{DEFAULT_MODEL} is not there")
    samples, rate = sf.read(app.EXAMPLES_DIR / "Chaos_God-Muldjord.ogg")
    wav = tmp_path / "tab.wav"
    sf.write(wav, samples, rate, subtype="PCM_16")
    shots = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    with running_app(WEIGHTS_DIR / DEFAULT_MODEL) as url, sync_playwright() as pw:
        page = fake_capture_page(pw, wav)
        page.goto(url)
        page.get_by_role("tab", name="Live").click()
        start = time.perf_counter()
        page.get_by_role("button", name="This computer's sound").click()
        page.wait_for_selector("text=Listening to this computer", timeout=60_000)
        assert page.evaluate("() => window.genreCapture.stream.getVideoTracks().length") == 0  # video dropped
        top_is = "g => document.querySelector('#live-label dt.text')?.innerText.trim() === g"  # the top genre
        page.wait_for_function(top_is, arg="metal", timeout=60_000)
        settled = time.perf_counter() - start
        page.wait_for_selector("#live-timeline .js-plotly-plot .scatterlayer", timeout=30_000)
        page.screenshot(path=str(shots / "live-this-computer.png"), full_page=True)
        assert page.locator("#live-label dt.text").first.inner_text().strip() == "metal"
        page.locator("#live-audio button.stop-button").click()
        page.wait_for_selector("text=Paused", timeout=30_000)
        page.screenshot(path=str(shots / "live-paused.png"), full_page=True)
    print(f"this computer's sound: metal on the Live label {settled:.1f} s after the click")
