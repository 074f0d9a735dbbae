import json
import subprocess
import sys

import pytest

from genre_model.config import GTZAN_GENRES as GENRES
from tests.conftest import chirp, noise


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genre_model", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def files(write_audio, tmp_path):
    good = [write_audio("one.wav", chirp(3.0)), write_audio("two words é.flac", noise(6.0))]
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    return good, bad


def test_json_lines_contract_and_exit_status(random_model_dir, files):
    good, bad = files
    result = run_cli("predict", "--model", str(random_model_dir), "--json", str(good[0]), str(bad), str(good[1]))
    assert result.returncode == 1, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["file"] for line in lines] == [str(good[0]), str(bad), str(good[1])]  # every file, in order
    ok = lines[0]
    keys = {"file", "genre", "probabilities", "segments", "duration_s", "elapsed_ms", "model_name", "headline"}
    assert set(ok) == keys | {"reason", "sure", "answer"}
    # the random model has no measured confidence rule: it never names one genre
    assert not ok["sure"] and ok["answer"] == "pair" and ok["headline"].startswith("Not sure: ")
    assert list(ok["probabilities"]) == GENRES and abs(sum(ok["probabilities"].values()) - 1) < 1e-5
    assert set(lines[1]) == {"file", "error"} and "not an audio file" in lines[1]["error"]
    assert len(lines[2]["segments"]) == 2
    assert "Traceback" not in result.stdout + result.stderr


def test_all_good_files_exit_zero_with_a_readable_table(random_model_dir, files):
    good, _ = files
    result = run_cli("predict", "--model", str(random_model_dir), *map(str, good))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 and "%" in result.stdout and "Not sure: " in result.stdout


def test_usage_errors_exit_two(tmp_path):
    assert run_cli().returncode == 2
    result = run_cli("predict", "--model", str(tmp_path / "no-model"), "x.wav")
    assert result.returncode == 2 and "No trained model" in result.stderr and "Traceback" not in result.stderr


def needs_the_committed_pair() -> None:
    from genre_model.loading import WEIGHTS_DIR
    from genre_model.routing import CLEAN_MODEL, DETECTOR_FILE, ROOM_MODEL

    for needed in (WEIGHTS_DIR / CLEAN_MODEL / DETECTOR_FILE, WEIGHTS_DIR / ROOM_MODEL / "model.safetensors"):
        if not needed.exists():
            pytest.skip(f"{needed} is not there")


def test_json_of_the_default_models_carries_the_pretrained_tags_and_the_route(files):
    from genre_model.musicnn import MSD_TAGS

    needs_the_committed_pair()
    result = run_cli("predict", "--json", str(files[0][0]))
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert list(line["tags"]) == MSD_TAGS and all(0 <= v <= 1 for v in line["tags"].values())
    assert line["model_name"] in ("musicnn-genre", "musicnn-room") and "room detector" in line["route"]  # auto


@pytest.mark.parametrize(
    ("source", "model", "why"),
    [("file", "musicnn-genre", "the clean model"), ("microphone", "musicnn-room", "the room")],
)
def test_source_picks_the_model_and_the_line_says_so(files, source, model, why):
    needs_the_committed_pair()
    as_json = run_cli("predict", "--json", "--source", source, str(files[0][0]))
    assert as_json.returncode == 0, as_json.stderr
    line = json.loads(as_json.stdout)
    assert line["model_name"] == model and line["route"].startswith(why)
    table = run_cli("predict", "--source", source, str(files[0][0]))
    assert table.returncode == 0 and line["route"] in table.stdout


def test_source_with_a_chosen_model_is_a_usage_error(random_model_dir, files):
    result = run_cli("predict", "--model", str(random_model_dir), "--source", "file", str(files[0][0]))
    assert result.returncode == 2 and "with --model, that model answers" in result.stderr


def test_a_folder_without_audio_is_an_error(tmp_path, random_model_dir, write_audio):
    empty, no_audio = tmp_path / "empty", tmp_path / "notes"
    empty.mkdir()
    no_audio.mkdir()
    (no_audio / "readme.txt").write_text("no music here")
    for folder in (empty, no_audio):
        result = run_cli("predict", "--model", str(random_model_dir), str(folder))
        assert result.returncode == 1 and result.stdout == ""
        assert result.stderr.startswith(f"error: no audio file in '{folder}'") and "Traceback" not in result.stderr
    clip = write_audio("one.wav", chirp(3.0))  # the other paths are still classified
    result = run_cli("predict", "--model", str(random_model_dir), str(empty), str(clip))
    assert result.returncode == 1 and result.stdout.startswith(str(clip)) and "no audio file" in result.stderr
