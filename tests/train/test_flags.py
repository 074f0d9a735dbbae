"""``python -m train``: one sub-command per recipe, each taking only the flags it reads."""

import subprocess
import sys

import pytest

from train.cli import parse_args
from train.fit import command

BASE = ["--data", "d", "--out", "o"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["network", "--model", "chunk-cnn", *BASE, "--distill-epochs", "2"], "unrecognized arguments: --distill"),
        (["network", "--model", "ffnn", *BASE, "--room-copies", "2"], "unrecognized arguments: --room-copies"),
        (["network", "--model", "musicnn-genre", *BASE], "--model musicnn-genre is not trained by the network recipe"),
        (["network", "--model", "nope", *BASE], "choose one of seed-cnn, ffnn, chunk-cnn"),
        (["pretrained", *BASE, "--epochs", "3"], "unrecognized arguments: --epochs 3"),
        (["pretrained", *BASE, "--mixup-alpha", "0.2"], "unrecognized arguments: --mixup-alpha"),
        (["pretrained", *BASE, "--unfreeze", "backend"], "unrecognized arguments: --unfreeze"),
        (["pretrained", "--out", "o"], "the following arguments are required: --data"),
        (
            ["pretrained", *BASE, "--model", "chunk-cnn"],
            "not trained by the pretrained recipe: choose one of musicnn-genre",
        ),
        ([*BASE], "invalid choice"),
    ],
)
def test_flags_a_recipe_does_not_read_are_refused(flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(flags)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_a_share_outside_0_to_1_is_refused():
    with pytest.raises(SystemExit, match="--same-kind is a share from 0 to 1, not 50"):
        parse_args(["pretrained", *BASE, "--same-kind", "50"])


def test_flags_reach_the_config_over_the_registered_and_the_recipe_defaults():
    given = ["--epochs", "3", "--lr", "0.01", "--weight-decay", "0.1", "--batch-size", "4", "--patience", "2"]
    cfg = parse_args(["network", "--model", "chunk-cnn", *BASE, *given, "--mixup-alpha", "0", "--crops-per-clip", "1"])
    assert (cfg.epochs, cfg.lr, cfg.weight_decay, cfg.batch_size) == (3, 0.01, 0.1, 4)
    assert (cfg.patience, cfg.mixup_alpha, cfg.crops_per_clip, cfg.resume) == (2, 0.0, 1, False)
    seed_cnn = parse_args(["network", "--model", "seed-cnn", *BASE])
    assert (seed_cnn.batch_size, seed_cnn.weight_decay) == (16, 1e-2)  # registered, then the recipe's default
    committed = parse_args(["pretrained", *BASE])  # the defaults are the committed model's recipe
    assert (committed.room_copies, committed.same_kind, committed.distill_epochs, committed.refit_on_valid) == (
        4,
        0.4,
        4,
        True,
    )
    cfg = parse_args(["pretrained", *BASE, "--room-copies", "0", "--distill-epochs", "1", "--no-refit-on-valid"])
    assert (cfg.room_copies, cfg.distill_epochs, cfg.refit_on_valid, cfg.device) == (0, 1, False, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["network", "--model", "seed-cnn", *BASE, "--epochs", "3", "--resume", "--split-dir", "s"],
        ["pretrained", *BASE, "--same-kind", "0.5", "--no-refit-on-valid", "--init", "weights/x"],
    ],
)
def test_the_command_saved_with_a_model_makes_the_same_config(argv):
    cfg = parse_args(argv)
    words = command(argv[0], cfg).split()
    assert words[:4] == ["python", "-m", "train", argv[0]] and parse_args(words[3:]) == cfg


def test_help_lists_the_recipes():
    result = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "network" in result.stdout and "pretrained" in result.stdout
