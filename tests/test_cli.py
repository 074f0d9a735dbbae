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
    assert set(ok) == {"file", "genre", "probabilities", "segments", "duration_s", "elapsed_ms"}
    assert list(ok["probabilities"]) == GENRES and abs(sum(ok["probabilities"].values()) - 1) < 1e-5
    assert set(lines[1]) == {"file", "error"} and "not an audio file" in lines[1]["error"]
    assert len(lines[2]["segments"]) == 2
    assert "Traceback" not in result.stdout + result.stderr


def test_all_good_files_exit_zero_with_a_readable_table(random_model_dir, files):
    good, _ = files
    result = run_cli("predict", "--model", str(random_model_dir), *map(str, good))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2 and "%" in result.stdout


def test_usage_errors_exit_two(tmp_path):
    assert run_cli().returncode == 2
    result = run_cli("predict", "--model", str(tmp_path / "no-model"), "x.wav")
    assert result.returncode == 2 and "No trained model" in result.stderr and "Traceback" not in result.stderr


def test_json_of_the_default_model_carries_the_pretrained_tags(files):
    from genre_model.loading import DEFAULT_MODEL, WEIGHTS_DIR
    from genre_model.musicnn import MSD_TAGS

    if not (WEIGHTS_DIR / DEFAULT_MODEL / "model.safetensors").exists():
        pytest.skip(f"weights/{DEFAULT_MODEL} is not there")
    result = run_cli("predict", "--json", str(files[0][0]))
    assert result.returncode == 0, result.stderr
    line = json.loads(result.stdout)
    assert list(line["tags"]) == MSD_TAGS and all(0 <= v <= 1 for v in line["tags"].values())


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
