import json
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch

from genre_model.inference import GenreClassifier
from genre_model.models import MUSICNN_DIR
from tests.conftest import GENRES3, SHARED, needs_shared, tone
from train.cli import parse_args, run

pytestmark = pytest.mark.slow  # every test here trains a model


def test_training_end_to_end_then_evaluate(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    where = f"--data {tiny_dataset} --out {out} --cache-dir {tmp_path / 'cache'}"  # pytest's paths: no spaces
    args = f"network --model chunk-cnn --epochs 3 --batch-size 8 --crops-per-clip 2 --device cpu {where}".split()
    metrics = run(parse_args(args))
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["epochs_run"] == 3 and len(saved["history"]) == 3
    assert saved["clips"]["train"] == {g: 6 for g in GENRES3} and saved["clips"]["valid"] == {g: 1 for g in GENRES3}
    assert set(saved["valid"]) >= {"accuracy", "accuracy_ci95", "balanced_accuracy", "per_genre", "confusion"}
    assert metrics["best_epoch"] in (1, 2, 3) and parse_args(saved["command"].split()[3:]) == parse_args(args)
    assert "from scratch" in saved["summary"] and saved["summary"] in (out / "README.md").read_text()
    classifier = GenreClassifier.from_pretrained(out, device="cpu")  # the saved model loads and predicts
    assert classifier.genres == GENRES3  # the data's genres, not a constant
    assert classifier.predict(tiny_dataset / "metal" / "metal.00000.wav").genre in GENRES3

    result = subprocess.run(
        [sys.executable, "-m", "train.evaluate", "--model", str(out), "--data", str(tiny_dataset), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    assert scores["n_clips"] == 24 and sum(map(sum, scores["confusion"])) == 24
    assert (out / "confusion-all.html").stat().st_size > 10_000


def test_same_seed_same_run(tiny_dataset, tmp_path):
    def losses(name):
        where = f"--data {tiny_dataset} --out {tmp_path / name} --cache-dir {tmp_path / 'cache'}"
        args = f"network --model ffnn --epochs 2 --batch-size 8 --device cpu {where}".split()
        return [(h["train_loss"], h["valid_loss"]) for h in run(parse_args(args))["history"]]

    assert losses("a") == losses("b")


@needs_shared
def test_training_on_a_handful_of_real_clips(tmp_path):
    data = tmp_path / "real"
    for genre in ("blues", "classical", "metal"):
        (data / genre).mkdir(parents=True)
        for path in sorted((SHARED / "gtzan" / "audio" / genre).iterdir())[:3]:
            shutil.copy(path, data / genre / path.name)
    where = f"--data {data} --out {tmp_path / 'm'} --cache-dir {tmp_path / 'cache'}"
    args = f"network --model chunk-cnn --epochs 1 --batch-size 4 --crops-per-clip 1 {where}".split()
    metrics = run(parse_args(args))
    one_each = {g: 1 for g in ("blues", "classical", "metal")}  # 3 clips per genre: 1 train, 1 valid, 1 test
    assert metrics["clips"]["train"] == one_each and metrics["clips"]["valid"] == one_each


needs_musicnn = pytest.mark.skipif(
    not (MUSICNN_DIR / "model.safetensors").exists(),
    reason="weights/musicnn-msd not converted (python -m train.convert_musicnn)",
)


def musicnn_args(tiny_dataset, tmp_path, *stage: str) -> list[str]:
    """``python -m train pretrained`` arguments on the tiny dataset, into tmp_path/musicnn: one room copy, no
    distillation, no refit (quick), then ``stage``."""
    where = f"--data {tiny_dataset} --out {tmp_path / 'musicnn'} --cache-dir {tmp_path / 'cache' / 'waveforms'}"
    quick = "--room-copies 1 --distill-epochs 0 --no-refit-on-valid --device cpu"
    return ["pretrained", *where.split(), *quick.split(), *stage]


@needs_musicnn
def test_musicnn_distillation_trains_the_whole_network_and_the_refit_keeps_valid_honest(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from genre_model.loading import load_model

    out = tmp_path / "musicnn"
    args = musicnn_args(tiny_dataset, tmp_path, "--distill-epochs", "1")
    metrics = run(parse_args(args))
    epochs = [h for h in metrics["history"] if "valid_rooms_balanced_accuracy" in h]
    assert [h["epoch"] for h in epochs] == [0, 1] and metrics["history"][-1]["distill"]["epochs"] == 1
    assert set(metrics["valid_rooms"]) >= {"accuracy", "balanced_accuracy", "confusion"}
    model = load_model(out)
    pretrained, tuned = load_file(MUSICNN_DIR / "model.safetensors"), model.backbone.state_dict()
    assert torch.equal(tuned["dense_bn.running_mean"], pretrained["dense_bn.running_mean"])  # statistics kept
    assert torch.equal(tuned["tags.weight"], pretrained["tags.weight"])  # the MSD tag layer stays
    kept_probe = metrics["history"][-1]["best_epoch"] == 0  # else the whole network moved
    assert torch.equal(tuned["frontend.0.conv.weight"], pretrained["frontend.0.conv.weight"]) == kept_probe
    assert torch.equal(tuned["midend.0.conv.weight"], pretrained["midend.0.conv.weight"]) == kept_probe
    assert model.backbone.input_range.any()  # int8 ranges calibrated (again, for a moved front end)

    # the refit: the same choices, then the whole schedule again on train + valid; valid scores from before
    refit_out = tmp_path / "refit"
    refit = run(parse_args([*args, "--refit-on-valid", "--out", str(refit_out)]))
    assert refit["valid"] == metrics["valid"] and refit["valid_rooms"] == metrics["valid_rooms"]
    row = refit["history"][-1]
    chosen = next(h["chosen_weight_decay"] for h in metrics["history"] if "chosen_weight_decay" in h)
    assert row["refit_on"] == "train+valid" and row["weight_decay"] == chosen
    assert row["distill_epochs"] == metrics["best_epoch"] == refit["best_epoch"]
    assert row["train_and_valid"]["n_clips"] == 21  # 18 train + 3 valid clips
    n = row["distill_epochs"]  # epoch rows 0..n when valid kept a distillation epoch, none when it kept the probe
    assert [h["epoch"] for h in row["epochs"]] == (list(range(n + 1)) if n else [])
    assert not any("valid_balanced_accuracy" in h for h in row["epochs"])  # nothing chosen on clips it has seen
    assert not torch.equal(load_model(refit_out).head[1].weight, model.head[1].weight)
    assert "start on train + valid with those choices" in (refit_out / "README.md").read_text()


@needs_musicnn
def test_distillation_without_valid_runs_every_epoch_and_keeps_the_last():
    """The refit on train + valid distils for as many epochs as valid kept, choosing nothing."""
    from genre_model.audio import Waveform
    from genre_model.registry import build_model
    from train.distill import DistillConfig, distill
    from train.probe import calibrate_int8_on_clips, load_backbone

    torch.manual_seed(0)
    model = build_model("musicnn-genre").eval()
    load_backbone(model)
    waves = [Waveform(tone(200.0 * (i + 1), 3.5, sr=16_000), 16_000, 3.5, 3.5) for i in range(2)]
    calibrate_int8_on_clips(model, waves)
    dense, tags = model.backbone.dense.weight.clone(), model.backbone.tags.weight.clone()
    cfg = DistillConfig(epochs=2, windows_per_clip=2, batch_windows=2)
    history, scores = distill(model, (waves, [0, 1]), None, 0, cfg)
    assert [h["epoch"] for h in history[:-1]] == [0, 1, 2] and history[-1]["best_epoch"] == 2
    assert not torch.equal(model.backbone.dense.weight, dense)  # the last epoch's weights, not the probe's
    assert torch.equal(model.backbone.tags.weight, tags) and model.backbone.tags.weight.requires_grad
    assert set(scores) == {"train"} and scores["train"]["n_clips"] == 2


@needs_musicnn
def test_distillation_learns_the_same_whether_its_rooms_are_simulated_by_workers_or_not():
    """The room simulator may run in DataLoader workers beside training: every step's batch has its own seed."""
    from genre_model.audio import Waveform
    from genre_model.registry import build_model
    from train.distill import DistillConfig, distill
    from train.probe import load_backbone

    waves = [Waveform(tone(200.0 * (i + 1), 3.5, sr=16_000), 16_000, 3.5, 3.5) for i in range(2)]

    def distilled(workers: int) -> dict:
        torch.manual_seed(0)
        model = build_model("musicnn-genre").eval()
        load_backbone(model)
        distill(
            model,
            (waves, [0, 1]),
            None,
            0,
            DistillConfig(epochs=2, windows_per_clip=2, batch_windows=2, workers=workers),
        )
        return model.state_dict()

    alone, beside = distilled(0), distilled(2)
    assert all(torch.equal(alone[name], beside[name]) for name in alone)


@needs_musicnn
def test_musicnn_head_refitted_on_a_trained_model_with_more_copies(tiny_dataset, tmp_path):
    """``--init`` starts from a trained folder (its backbone, not the pretrained one); ``--room-copies`` and
    ``--same-kind`` set the probe's room copies."""
    from safetensors.torch import load_file, save_file

    from genre_model.loading import load_model

    first = tmp_path / "first"
    run(parse_args([*musicnn_args(tiny_dataset, tmp_path), "--out", str(first)]))
    weights = load_file(first / "model.safetensors")
    weights["backbone.dense.weight"] = weights["backbone.dense.weight"] * 1.01  # as if distilled: not pretrained
    save_file(weights, first / "model.safetensors")
    args = musicnn_args(tiny_dataset, tmp_path, "--init", str(first), "--room-copies", "2", "--same-kind", "0.5")
    metrics = run(parse_args(args))
    assert metrics["config"]["room_copies"] == 2 and metrics["config"]["init"] == str(first)
    assert f"the trained model in `{first}`" in metrics["summary"] and "2 room copies" in metrics["summary"]
    refit = load_model(tmp_path / "musicnn").state_dict()
    assert torch.equal(refit["backbone.dense.weight"], weights["backbone.dense.weight"])
    assert not torch.equal(refit["head.1.weight"], weights["head.1.weight"])  # the head: fitted again
    other = tmp_path / "other" / "rock"  # a dataset of another genre
    other.mkdir(parents=True)
    for i in range(10):
        sf.write(other / f"rock.{i:05d}.wav", tone(200 + 10 * i, 3.0), 22_050)
    wrong = [*musicnn_args(tiny_dataset, tmp_path), "--init", str(tmp_path / "musicnn"), "--data", str(other.parent)]
    with pytest.raises(SystemExit, match="is a musicnn-genre for blues, classical, metal; this run trains"):
        run(parse_args(wrong))
