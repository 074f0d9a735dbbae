import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_model.inference import GenreClassifier
from genre_model.models import MUSICNN_DIR
from tests.conftest import GENRES3, SHARED, chirp, needs_shared, noise, tone
from train.fit import parse_args, train

pytestmark = pytest.mark.slow  # every test here trains a model


def test_training_end_to_end_then_evaluate(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    args = ["--model", "chunk-cnn", "--data", str(tiny_dataset), "--out", str(out), "--epochs", "3", "--batch-size",
            "8", "--crops-per-clip", "2", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]  # fmt: skip
    metrics = train(parse_args(args))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["epochs_run"] == 3 and len(saved["history"]) == 3
    assert saved["clips"]["train"] == {g: 6 for g in GENRES3} and saved["clips"]["valid"] == {g: 1 for g in GENRES3}
    assert set(saved["valid"]) >= {"accuracy", "accuracy_ci95", "balanced_accuracy", "per_genre", "confusion"}
    assert metrics["best_epoch"] in (1, 2, 3)
    classifier = GenreClassifier.from_pretrained(out, device="cpu")  # the saved model loads and predicts
    assert classifier.genres == GENRES3  # the data's genres, not a constant
    assert classifier.predict(tiny_dataset / "metal" / "metal.00000.wav").genre in GENRES3

    result = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--model", str(out), "--data", str(tiny_dataset), "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["n_clips"] == 24 and sum(map(sum, scores["confusion"])) == 24
    assert (out / "confusion-all.html").stat().st_size > 10_000


def test_same_seed_same_run(tiny_dataset, tmp_path):
    def run(name):
        args = ["--model", "ffnn", "--data", str(tiny_dataset), "--out", str(tmp_path / name), "--epochs", "2",
                "--batch-size", "8", "--cache-dir", str(tmp_path / "cache"), "--device", "cpu"]  # fmt: skip
        return [(h["train_loss"], h["valid_loss"]) for h in train(parse_args(args))["history"]]

    assert run("a") == run("b")


@needs_shared
def test_training_on_a_handful_of_real_clips(tmp_path):
    data = tmp_path / "real"
    for genre in ("blues", "classical", "metal"):
        (data / genre).mkdir(parents=True)
        for path in sorted((SHARED / "gtzan" / "audio" / genre).iterdir())[:3]:
            shutil.copy(path, data / genre / path.name)
    args = ["--model", "chunk-cnn", "--data", str(data), "--out", str(tmp_path / "m"), "--epochs", "1",
            "--batch-size", "4", "--crops-per-clip", "1", "--cache-dir", str(tmp_path / "cache")]  # fmt: skip
    metrics = train(parse_args(args))
    one_each = {g: 1 for g in ("blues", "classical", "metal")}  # 3 clips per genre: 1 train, 1 valid, 1 test
    assert metrics["clips"]["train"] == one_each and metrics["clips"]["valid"] == one_each


needs_musicnn = pytest.mark.skipif(
    not (MUSICNN_DIR / "model.safetensors").exists(),
    reason="weights/musicnn-msd not converted (python -m train.convert_musicnn)",
)


def musicnn_args(tiny_dataset, tmp_path, *stage: str) -> list[str]:
    """``python -m train`` arguments for musicnn-genre on the tiny dataset, into tmp_path/musicnn, plus ``stage``."""
    return ["--model", "musicnn-genre", "--data", str(tiny_dataset), "--out", str(tmp_path / "musicnn"), *stage,
            "--cache-dir", str(tmp_path / "cache" / "waveforms"), "--device", "cpu"]  # fmt: skip


@needs_musicnn
def test_musicnn_probe_then_fine_tune_the_back_end(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from genre_model.loading import load_model
    from genre_model.musicnn import MSD_TAGS

    out = tmp_path / "musicnn"
    args = musicnn_args(tiny_dataset, tmp_path, "--unfreeze", "backend")
    metrics = train(parse_args(args))
    assert metrics["history"][-1]["finetune"]["unfreeze"] == "backend"
    assert (tmp_path / "cache" / "front").is_dir() and (tmp_path / "cache" / "features").is_dir()
    pretrained, tuned = load_file(MUSICNN_DIR / "model.safetensors"), load_model(out).backbone.state_dict()
    assert torch.equal(tuned["frontend.0.conv.weight"], pretrained["frontend.0.conv.weight"])  # frozen
    assert torch.equal(tuned["dense_bn.running_mean"], pretrained["dense_bn.running_mean"])  # statistics kept
    kept_probe = metrics["history"][-1]["best_epoch"] == 0  # epoch 0: the probe alone was best on valid
    assert torch.equal(tuned["dense.weight"], pretrained["dense.weight"]) == kept_probe
    assert (load_model(out).tag_names == MSD_TAGS) == kept_probe  # fine-tuned features: no pretrained tags


@needs_musicnn
def test_musicnn_classroom_distillation_trains_the_whole_network(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from genre_model.loading import load_model

    out = tmp_path / "musicnn"
    args = musicnn_args(tiny_dataset, tmp_path, "--classroom-epochs", "1")
    metrics = train(parse_args(args))
    epochs = [h for h in metrics["history"] if "valid_classroom_balanced_accuracy" in h]
    assert [h["epoch"] for h in epochs] == [0, 1] and metrics["history"][-1]["classroom"]["epochs"] == 1
    assert set(metrics["valid_classroom"]) >= {"accuracy", "balanced_accuracy", "confusion"}
    model = load_model(out)
    pretrained, tuned = load_file(MUSICNN_DIR / "model.safetensors"), model.backbone.state_dict()
    assert torch.equal(tuned["dense_bn.running_mean"], pretrained["dense_bn.running_mean"])  # statistics kept
    kept_probe = metrics["history"][-1]["best_epoch"] == 0  # else the whole network moved (the default)
    assert torch.equal(tuned["frontend.0.conv.weight"], pretrained["frontend.0.conv.weight"]) == kept_probe
    assert torch.equal(tuned["midend.0.conv.weight"], pretrained["midend.0.conv.weight"]) == kept_probe
    assert model.backbone.input_range.any()  # int8 ranges calibrated (again, for a moved front end)

    # --refit-on-valid: the same choices, then the whole schedule again on train + valid; valid scores from before
    refit_out = tmp_path / "refit"
    refit = train(parse_args([*args, "--refit-on-valid", "--out", str(refit_out)]))
    assert refit["valid"] == metrics["valid"] and refit["valid_classroom"] == metrics["valid_classroom"]
    row = refit["history"][-1]
    chosen = next(h["chosen_weight_decay"] for h in metrics["history"] if "chosen_weight_decay" in h)
    assert row["refit_on"] == "train+valid" and row["weight_decay"] == chosen
    assert row["classroom_epochs"] == metrics["best_epoch"] == refit["best_epoch"]
    assert row["train_and_valid"]["n_clips"] == 21  # 18 train + 3 valid clips
    n = row["classroom_epochs"]  # epoch rows 0..n when valid kept a distillation epoch, none when it kept the probe
    assert [h["epoch"] for h in row["epochs"]] == (list(range(n + 1)) if n else [])
    assert not any("valid_balanced_accuracy" in h for h in row["epochs"])  # nothing chosen on clips it has seen
    assert not torch.equal(load_model(refit_out).head[1].weight, model.head[1].weight)
    assert "start on train + valid with those choices" in (refit_out / "README.md").read_text()


def _three_clips() -> list:
    """Noise, a tone and a chirp of 3.5 s at musicnn's 16 kHz, as decoded clips."""
    from genre_model.audio import Waveform

    return [Waveform(make(3.5), 16_000, 3.5, 3.5) for make in (lambda s: noise(s, sr=16_000), lambda s: tone(
        300.0, s, sr=16_000), lambda s: chirp(s, sr=16_000))]  # fmt: skip


def test_mixed_windows_hold_a_second_clip_at_15_to_45_percent_of_the_amplitude():
    """``mix_share`` (``--classroom-mixes``): a window of another clip, scaled to the first's level, joins at 15-45%."""
    from genre_model.audio import Waveform
    from train.classroom import ClassroomConfig, _classroom_windows

    low, high = tone(300.0, 6.0, sr=16_000, amp=0.5), tone(1000.0, 6.0, sr=16_000, amp=0.05)  # 20 dB quieter
    waves = [Waveform(x, 16_000, 6.0, 6.0) for x in (low, high)]
    win = 186 * 256
    cfg = ClassroomConfig(mix_share=1.0, clean_share=1.0)  # every window mixed and heard clean: no classroom
    clean, heard = _classroom_windows(waves, np.zeros(16, int), cfg, win, np.random.default_rng(0))
    t = np.arange(win) / 16_000

    def amplitude(x: np.ndarray, freq: float) -> float:
        return 2 * abs(np.dot(x, np.exp(-2j * np.pi * freq * t))) / win

    ratios = [amplitude(x, 1000.0) / amplitude(x, 300.0) for x in clean if amplitude(x, 1000.0) > 0.01]
    assert np.array_equal(clean, heard) and 4 <= len(ratios) < 16  # the other clip is drawn from both
    assert all(0.15 / 0.85 - 0.01 < r < 0.45 / 0.55 + 0.01 for r in ratios)
    assert min(ratios) < 0.35 < max(ratios)  # the share varies


@needs_musicnn
def test_classroom_distillation_of_the_mid_and_back_end_keeps_the_front_end_and_its_int8_ranges():
    import numpy as np

    from genre_model.registry import build_model
    from train.classroom import ClassroomConfig, classroom_finetune
    from train.probe import calibrate_int8, load_backbone

    torch.manual_seed(0)
    model = build_model("musicnn-genre").eval()
    load_backbone(model)
    waves = _three_clips()
    calibrate_int8(model, waves)
    before = model.backbone.frontend[0].conv.weight.clone(), model.backbone.frontend[0].peak_range.clone()
    dense = model.backbone.dense.weight.clone()
    cfg = ClassroomConfig(epochs=1, trained="midend", windows_per_clip=4, batch_windows=4)
    history, scores = classroom_finetune(model, (waves, [0, 1, 2]), (waves, [0, 1, 2]), 0, cfg)
    assert torch.equal(model.backbone.frontend[0].conv.weight, before[0])
    assert torch.equal(model.backbone.frontend[0].peak_range, before[1])  # its int8 ranges still hold
    assert torch.equal(model.backbone.dense.weight, dense) == (history[-1]["best_epoch"] == 0)
    assert np.isfinite(scores["valid_probs"]).all() and scores["valid_classroom"]["n_clips"] == 3


@needs_musicnn
def test_classroom_distillation_without_valid_runs_every_epoch_and_keeps_the_last():
    """The refit on train + valid (``--refit-on-valid``) distils for as many epochs as valid kept, choosing nothing."""
    from genre_model.audio import Waveform
    from genre_model.registry import build_model
    from train.classroom import ClassroomConfig, classroom_finetune
    from train.probe import calibrate_int8, load_backbone

    torch.manual_seed(0)
    model = build_model("musicnn-genre").eval()
    load_backbone(model)
    waves = [Waveform(tone(200.0 * (i + 1), 3.5, sr=16_000), 16_000, 3.5, 3.5) for i in range(2)]
    calibrate_int8(model, waves)
    dense = model.backbone.dense.weight.clone()
    cfg = ClassroomConfig(epochs=2, trained="backend", windows_per_clip=2, batch_windows=2)
    history, scores = classroom_finetune(model, (waves, [0, 1]), None, 0, cfg)
    assert [h["epoch"] for h in history[:-1]] == [0, 1, 2] and history[-1]["best_epoch"] == 2
    assert not torch.equal(model.backbone.dense.weight, dense)  # the last epoch's weights, not the probe's
    assert set(scores) == {"train"} and scores["train"]["n_clips"] == 2


@needs_musicnn
def test_matching_the_teachers_features_brings_the_classroom_features_closer_to_the_clean_ones():
    """``feature_weight`` (``--classroom-features``): the student's pooled features of windows heard in a classroom
    end nearer the teacher's of the clean windows than the same distillation without it leaves them."""
    import copy

    from genre_model.registry import build_model
    from train.classroom import ClassroomConfig, classroom_finetune
    from train.degrade import degrade
    from train.probe import load_backbone

    waves = _three_clips()
    clean = torch.from_numpy(np.stack([w.samples[: 186 * 256] for w in waves]))
    heard = torch.from_numpy(np.stack([degrade(w.samples, 16_000, seed=7)[: 186 * 256] for w in waves]))
    torch.manual_seed(0)
    teacher = build_model("musicnn-genre").eval()
    load_backbone(teacher)

    def pooled(model, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.backbone.pooled(model.backbone.front_end(model.to_logmel(x)))

    def distance_after(feature_weight: float) -> float:
        student = copy.deepcopy(teacher)
        cfg = ClassroomConfig(epochs=2, trained="midend", windows_per_clip=8, batch_windows=4, clean_share=0.0,
                              lr=1e-4, feature_weight=feature_weight)  # fmt: skip
        classroom_finetune(student, (waves, [0, 1, 2]), None, 0, cfg)
        return torch.mean((pooled(student, heard) - pooled(teacher, clean)) ** 2).item()

    assert distance_after(20.0) < 0.8 * distance_after(0.0)


@needs_musicnn
def test_musicnn_head_refitted_on_a_trained_model_with_more_copies(tiny_dataset, tmp_path):
    """``--init`` starts from a trained folder (its backbone, not the pretrained one); ``--copies`` and
    ``--same-kind`` set the probe's classroom copies."""
    from safetensors.torch import load_file, save_file

    from genre_model.loading import load_model

    first = tmp_path / "first"
    train(parse_args([*musicnn_args(tiny_dataset, tmp_path), "--out", str(first)]))
    weights = load_file(first / "model.safetensors")
    weights["backbone.dense.weight"] = weights["backbone.dense.weight"] * 1.01  # as if distilled: not pretrained
    save_file(weights, first / "model.safetensors")
    args = musicnn_args(tiny_dataset, tmp_path, "--init", str(first), "--copies", "2", "--same-kind", "0.5")
    metrics = train(parse_args(args))
    assert metrics["config"]["copies"] == 2 and metrics["config"]["init"] == str(first)
    refit = load_model(tmp_path / "musicnn").state_dict()
    assert torch.equal(refit["backbone.dense.weight"], weights["backbone.dense.weight"])
    assert not torch.equal(refit["head.1.weight"], weights["head.1.weight"])  # the head: fitted again
    other = tmp_path / "other" / "rock"  # a dataset of another genre
    other.mkdir(parents=True)
    for i in range(10):
        sf.write(other / f"rock.{i:05d}.wav", tone(200 + 10 * i, 3.0), 22_050)
    wrong = [*musicnn_args(tiny_dataset, tmp_path), "--init", str(tmp_path / "musicnn"), "--data", str(other.parent)]
    with pytest.raises(SystemExit, match="is a musicnn-genre for blues, classical, metal; this run trains"):
        train(parse_args(wrong))
