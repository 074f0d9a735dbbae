"""Every ``python -m train`` flag works for the models it applies to, or is refused in one line (exit status 2)."""

import pytest

from train.fit import parse_args

BASE = ["--data", "d", "--out", "o"]


@pytest.mark.parametrize(
    ("model", "flags", "message"),
    [
        ("chunk-cnn", ["--unfreeze", "backend"], "--unfreeze applies to models on a pretrained backbone"),
        ("seed-cnn", ["--classroom-epochs", "2"], "--classroom-epochs applies to models on a pretrained backbone"),
        ("ffnn", ["--no-augment"], "--augment applies to models on a pretrained backbone"),
        ("musicnn-genre", ["--epochs", "3"], "--epochs applies to musicnn-genre only with --unfreeze"),
        ("musicnn-genre", ["--lr", "1e-4"], "--lr applies to musicnn-genre only with --unfreeze"),
        ("musicnn-genre", ["--unfreeze", "midend", "--mixup-alpha", "0.2"], "--mixup-alpha does not apply"),
        ("musicnn-genre", ["--crops-per-clip", "2"], "--crops-per-clip does not apply"),
        ("musicnn-genre", ["--classroom-layers", "midend"], "--classroom-layers needs --classroom-epochs"),
        ("musicnn-genre", ["--classroom-features", "1"], "--classroom-features needs --classroom-epochs"),
        ("chunk-cnn", ["--classroom-features", "1"], "--classroom-features applies to models on a pretrained"),
        ("musicnn-genre", ["--classroom-mixes", "0.5"], "--classroom-mixes needs --classroom-epochs"),
        ("musicnn-genre", ["--classroom-epochs", "2", "--classroom-mixes", "50"], "--classroom-mixes is a share from"),
        ("musicnn-genre", ["--same-kind", "-0.1"], "--same-kind is a share from 0 to 1, not -0.1"),
        ("musicnn-genre", ["--refit-on-valid", "--unfreeze", "backend"], "--refit-on-valid refits the probe and"),
        ("chunk-cnn", ["--copies", "2"], "--copies applies to models on a pretrained backbone"),
        ("ffnn", ["--same-kind", "0.5"], "--same-kind applies to models on a pretrained backbone"),
    ],
)
def test_flags_that_do_not_apply_are_refused(model, flags, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(["--model", model, *BASE, *flags])
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_flags_that_apply_reach_the_stage_that_reads_them():
    given = ["--epochs", "3", "--lr", "0.01", "--weight-decay", "0.1", "--batch-size", "4", "--patience", "2"]
    network = parse_args(["--model", "chunk-cnn", *BASE, *given, "--mixup-alpha", "0", "--crops-per-clip", "1"])
    assert (network.epochs, network.lr, network.weight_decay, network.batch_size) == (3, 0.01, 0.1, 4)
    assert (network.patience, network.mixup_alpha, network.crops_per_clip) == (2, 0.0, 1)
    assert parse_args(["--model", "seed-cnn", *BASE]).batch_size == 16  # the registered default
    probe = parse_args(["--model", "musicnn-genre", *BASE, "--unfreeze", "midend", *given, "--device", "cpu"])
    assert probe.finetune == {"epochs": 3, "lr": 0.01, "batch_clips": 4, "patience": 2, "weight_decay": 0.1}
    assert probe.epochs is None and probe.device == "cpu"  # the probe reads neither epochs nor crops
    distilled = parse_args(["--model", "musicnn-genre", *BASE, "--classroom-epochs", "2", "--classroom-features", "3",
                            "--classroom-mixes", "0.5"])  # fmt: skip
    assert (distilled.classroom_epochs, distilled.classroom_features, distilled.classroom_mixes) == (2, 3.0, 0.5)


@pytest.mark.slow
def test_fine_tuning_flags_change_the_fine_tuning(tiny_dataset, tmp_path):
    from tests.train.test_fit import musicnn_args, needs_musicnn
    from train.fit import train

    if needs_musicnn.args[0]:
        pytest.skip(needs_musicnn.kwargs["reason"])
    args = musicnn_args(tiny_dataset, tmp_path, "--unfreeze", "backend", "--epochs", "2", "--patience", "5")
    history = train(parse_args(args))["history"]
    assert history[-1]["finetune"]["epochs"] == 2 and max(row.get("epoch", 0) for row in history) == 2
