import json
import os
import subprocess
import sys

import pytest
import yaml

from genre_model.inference import GenreClassifier
from tests.conftest import chirp
from tests.hub_server import FakeHub
from train.push import build_upload_folder


@pytest.fixture
def hub():
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture
def trained_dir(random_model_dir, tmp_path):
    """The random model plus a metrics.json like training writes."""
    import shutil

    d = tmp_path / "trained"
    shutil.copytree(random_model_dir, d)
    confusion = [[1 if i == j else 0 for j in range(10)] for i in range(10)]
    valid = {
        "n_clips": 3,
        "accuracy": 2 / 3,
        "accuracy_ci95": [0.2, 0.94],
        "balanced_accuracy": 0.5,
        "balanced_accuracy_ci95": [0.1, 0.9],
        "confusion": confusion,
    }
    (d / "metrics.json").write_text(json.dumps({"valid": valid, "clips": {"valid": {"blues": 3}}, "best_epoch": 4}))
    return d


def cli(module: str, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", module, *args], capture_output=True, text=True, timeout=300, env={**os.environ, **env}
    )


def test_dry_run_folder_and_card(trained_dir, tmp_path):
    files = build_upload_folder(trained_dir, tmp_path / "out", "someone/genre-cnn")
    assert files == ["README.md", "config.json", "metrics.json", "model.safetensors"]
    card = (tmp_path / "out" / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["library_name"] and meta["license"] == "mit" and "gtzan" in meta["tags"]
    assert meta["datasets"] == ["marsyas/gtzan"] and "accuracy" in meta["metrics"]
    results = meta["model-index"][0]["results"][0]
    assert {m["type"]: m["value"] for m in results["metrics"]} == {"accuracy": 0.6667, "balanced_accuracy": 0.5}
    for section in ("## How to use", "## Training data and split", "## Results", "## Limitations", "## Citation"):
        assert section in card
    assert "66.7% (20.0% - 94.0%)" in card and "| blues | 1 | 0 |" in card and "someone/genre-cnn" in card


def test_the_room_detector_travels_with_its_model(trained_dir, tmp_path):
    import shutil

    from genre_model.routing import DETECTOR_FILE, RoomDetector

    model = shutil.copytree(trained_dir, tmp_path / "clean")
    RoomDetector("chunk-cnn", [0.0], [1.0], [1.0], 0.0).save(model)
    assert DETECTOR_FILE in build_upload_folder(model, tmp_path / "out", "someone/genre-cnn")
    assert RoomDetector.load(tmp_path / "out") == RoomDetector.load(model)


def test_push_then_download_predicts_like_the_local_weights(trained_dir, hub, tmp_path, write_audio):
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_write", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    pushed = cli("train.push", "--model", str(trained_dir), "--repo-id", "teacher/genre-cnn", env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert "hf_write" not in pushed.stdout + pushed.stderr  # the token is never printed
    uploaded = sorted(hub.repos["teacher/genre-cnn"]["main"])
    assert uploaded == ["README.md", "config.json", "metrics.json", "model.safetensors"]

    clip = write_audio("clip.wav", chirp(7.0))
    local = GenreClassifier.from_pretrained(trained_dir, device="cpu").predict(clip).probabilities
    predict = ["predict", "--model", "teacher/genre-cnn", "--json", "--device", "cpu", str(clip)]
    online = cli("genre_model", *predict, env=env)
    assert online.returncode == 0, online.stderr
    assert json.loads(online.stdout)["probabilities"] == pytest.approx(local, abs=1e-6)

    hub.close()  # the Hub is gone: the cached copy must still work offline
    offline = cli("genre_model", *predict, env={**env, "HF_HUB_OFFLINE": "1"})
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["probabilities"] == pytest.approx(local, abs=1e-6)


def test_push_to_a_branch(trained_dir, hub, tmp_path):
    env = {"HF_ENDPOINT": hub.url, "HF_TOKEN": "hf_write", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_XET": "1"}
    result = cli("train.push", "--model", str(trained_dir), "--repo-id", "t/m", "--revision", "v1", env=env)
    assert result.returncode == 0, result.stderr
    assert "model.safetensors" in hub.repos["t/m"]["v1"]


@pytest.mark.parametrize(
    "token, endpoint, message",
    [
        ("", None, "no Hugging Face token"),
        ("hf_read", None, "no permission"),
        ("hf_write", "http://127.0.0.1:9", "cannot reach the Hugging Face Hub"),
    ],
)
def test_push_errors_are_one_line(trained_dir, hub, tmp_path, token, endpoint, message):
    env = {
        "HF_ENDPOINT": endpoint or hub.url,
        "HF_TOKEN": token,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_ETAG_TIMEOUT": "2",
    }
    result = cli("train.push", "--model", str(trained_dir), "--repo-id", "t/m", env=env)
    assert result.returncode == 1
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and (not token or token not in result.stderr)


def test_missing_repo_on_download_is_a_clear_error(hub, tmp_path, write_audio):
    env = {"HF_ENDPOINT": hub.url, "HF_HOME": str(tmp_path / "hf")}
    result = cli("genre_model", "predict", "--model", "nobody/nothing", str(write_audio("a.wav", chirp(2.0))), env=env)
    assert result.returncode == 2 and "cannot load model" in result.stderr and "Traceback" not in result.stderr
