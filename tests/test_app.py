import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import app
import live_view
import views
from app_models import Compared
from genre_model.config import GTZAN_GENRES as GENRES
from genre_model.inference import GenreClassifier
from genre_model.live import Batcher
from genre_model.loading import DEFAULT_MODEL, WEIGHTS_DIR
from genre_model.musicnn import MSD_TAGS
from tests.conftest import chirp, noise

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(random_model_dir):
    main = GenreClassifier.from_pretrained(random_model_dir, device="cpu")
    other = GenreClassifier.from_pretrained(random_model_dir, device="cpu")
    compared = [Compared(main, "this app's model", 0.5, "test clips"), Compared(other, "another", None, "")]
    return app.AppModels(main, compared)


def test_analyze_handler_outputs(models, write_audio):
    path = write_audio("clip.wav", noise(8.0))
    headline, label, bars, waveform, spectrogram, timeline, tags = views.analyze(models, str(path))
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
    *_, tags = views.analyze(app.AppModels(main, []), str(path))
    expected = main.predict(str(path)).tags
    assert len(tags) == views.TAGS_SHOWN and set(tags) <= set(MSD_TAGS)
    assert list(tags.values()) == sorted(expected.values(), reverse=True)[: views.TAGS_SHOWN]


def test_analyze_rejects_bad_input_with_a_short_message(models, tmp_path):
    junk = tmp_path / "photo.wav"
    junk.write_bytes(b"\xff\xd8\xff\xe0" + bytes(3000))
    with pytest.raises(app.ClipProblem, match="not an audio file") as problem:
        views.analyze(models, str(junk))
    assert "ffmpeg" not in str(problem.value)  # no advice a browser user cannot follow
    message, *outputs = views.shown(lambda a: views.analyze(models, a), 7)(None)
    assert message.startswith("⚠ No clip yet") and outputs == [None] * 7  # one message, every output cleared


def test_explain_handler_returns_overlay_table_and_audio(models, write_audio):
    path = str(write_audio("e.wav", noise(7.0)))
    note, figure, table, (rate, region) = views.explain_clip(models, path, "jazz", views.RUNNER_UP)
    assert len(figure.data) == 2 and figure.data[1].zmax == -figure.data[1].zmin > 0  # evidence, for and against
    assert len(figure.layout.shapes) == 3  # the costliest regions, boxed
    assert "| jazz |" in table and " band (" in table and note.startswith("## Why jazz and not ")
    assert rate == 22_050 and 0 < len(region) <= 4 * 22_050  # 7 s: segments of 3 and 4 s
    assert note


def test_compare_handler_runs_every_model(models, write_audio):
    (cards,) = views.compare(models, str(write_audio("c.wav", chirp(4.0))))
    assert cards.count('class="compare-card"') == len(models.compare) == 2
    assert cards.count('class="live-bar"') == 2 * len(models.main.genres)  # every genre, for each model
    assert cards.count("<h3>Not sure: ") == 2  # random models, no measured rule: the same words as Analyze


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
    state, panels = None, []
    for i in range(0, len(audio), rate):  # one chunk per second, as stream_every=1.0 sends
        state, panel = live_view.live_step(models.main, state, (rate, audio[i : i + rate]), source)
        panels.append(panel)
    assert "1 of 3 s" in panels[0] and "live-headline" not in panels[0]  # a fresh start: no answer left over
    assert "2 of 3 s" in panels[1]
    last = panels[-1]
    assert f"Listening to <b>{source}</b>" in last and "heard 0:05" in last and "covers the last 5 s" in last
    assert '<div id="live-headline"><h2>' in last
    bars, strip = last.split('class="live-bars"')[1].split('class="live-strip"')
    widths = [float(w) for w in re.findall(r"width:([\d.]+)%", bars)]
    assert len(widths) == len(models.main.genres) and sum(widths) == pytest.approx(100, abs=0.5)  # every genre
    cells = [float(w) for w in re.findall(r"width:([\d.]+)%", strip)]  # on a 60 s axis: a reading a second
    assert cells == pytest.approx([100 / 60] * 3, abs=0.05)
    assert re.search(r'data-top="(\w+)"', last)[1] in models.main.genres
    assert state[0] == source and len(state[1].history) == 3 and last.count("<i style") == 3  # a cell per reading
    assert state[1].heard_s == pytest.approx(5.0)


def test_live_handler_starts_afresh_for_another_source(models):
    """Nothing heard from one source carries over to the next: its buffer, history and answer are cleared."""
    state = None
    for _ in range(4):
        state, _ = live_view.live_step(models.main, state, (48_000, (noise(1.0, sr=48_000) * 20_000).astype(np.int16)))
    assert state[1].history
    state, panel = live_view.live_step(models.main, state, (48_000, np.zeros(48_000, np.int16)), "this computer")
    assert state[0] == "this computer" and state[1].heard_s == pytest.approx(1.0) and not state[1].history
    assert "1 of 3 s" in panel and "live-headline" not in panel


def test_live_handler_says_silence_and_too_quiet(models):
    state = None
    for _ in range(4):
        state, panel = live_view.live_step(models.main, state, (48_000, np.zeros(48_000, np.int16)))
    assert "silence" in panel
    state = None
    for _ in range(4):  # -66 dBFS: there, but too quiet to tell anything
        state, panel = live_view.live_step(models.main, state, (48_000, (noise(1.0, sr=48_000) * 0.002)))
    assert "Too quiet" in panel


def test_live_handler_says_when_the_server_is_busy(models):
    batcher = Batcher(models.main)
    batcher.pace = 2  # as a busy server sets it
    state, panels = None, []
    for _ in range(7):
        state, panel = live_view.live_step(models.main, state, (48_000, (noise(1.0, sr=48_000) * 0.3)), "x", batcher)
        panels.append(panel)
    answered = [i for i, p in enumerate(panels) if isinstance(p, str) and "live-headline" in p]
    assert answered == [2, 4, 6]  # every other second
    assert all("busy: a new answer every 2 s" in panels[i] for i in answered)


def test_server_classify_endpoint_and_recovery(server, write_audio, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    params = client.view_api(return_format="dict")["named_endpoints"]["/classify"]["parameters"]
    assert [p["parameter_name"] for p in params] == ["audio", "source"]
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


def test_the_default_app_routes_classify_by_the_source_it_is_given(write_audio):
    from gradio_client import Client, handle_file

    from tests.conftest import served
    from tests.test_cli import needs_the_committed_pair

    needs_the_committed_pair()
    path = handle_file(str(write_audio("clip.wav", noise(4.0))))
    with served(None) as url:
        client = Client(url, verbose=False)
        room = client.predict(audio=path, source="microphone", api_name="/classify")
        clean = client.predict(audio=path, source="file", api_name="/classify")
        auto = client.predict(audio=path, api_name="/classify")
        with pytest.raises(Exception, match="source must be one of"):
            client.predict(audio=path, source="radio", api_name="/classify")
    assert (room["model_name"], clean["model_name"]) == ("musicnn-room", "musicnn-genre")
    assert room["route"].startswith("the room model") and clean["route"].startswith("the clean model")
    assert "the room detector heard" in auto["route"]


def test_example_labels_name_the_publishers_genre_first(tmp_path):
    files = app.example_files()
    labels = dict(zip(map(lambda f: Path(f).name, files), app.example_labels(files)))
    assert labels["Matts_Blues-Kevin_MacLeod.ogg"] == "blues · Matt's Blues · Kevin MacLeod"
    assert labels["Chaos_God-Muldjord.ogg"] == "metal · Chaos God · Muldjord"
    (tmp_path / "my_song.wav").write_bytes(b"")  # the user's --examples folder, without credits
    assert app.example_labels([str(tmp_path / "my_song.wav")]) == ["my song"]
