"""k-fold cross-validation (`train.crossval`): folds of whole runs of ids per genre, every clip held out once."""

import json
from pathlib import Path

import pytest

from train.crossval import CONDITIONS, KEY, folds, main
from train.data import Clip


def test_folds_are_contiguous_runs_of_each_genre_and_hold_every_clip_out_once():
    clips = [
        Clip(f"{g}.{i:05d}", g, Path(f"{g}.{i:05d}.wav")) for g, n in (("blues", 10), ("jazz", 7)) for i in range(n)
    ]
    parts = folds(clips[::-1], 3)  # any order in
    assert sorted(c.id for part in parts for c in part) == sorted(c.id for c in clips)  # each clip once
    for part in parts:
        for genre in ("blues", "jazz"):
            numbers = [int(c.id[-5:]) for c in part if c.genre == genre]
            assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))  # one contiguous run
    assert [sum(c.genre == "jazz" for c in part) for part in parts] == [2, 2, 3]  # balanced within a clip


@pytest.mark.slow
def test_crossval_trains_each_fold_scores_it_in_each_condition_and_resumes(tiny_dataset, tmp_path, monkeypatch):
    out = tmp_path / "cv"
    flags = f"network --model ffnn --epochs 1 --batch-size 4 --device cpu --data {tiny_dataset} --cache-dir {tmp_path}"
    assert main(["--folds", "2", "--out", str(out), *flags.split()]) == 0
    result = json.loads((out / "crossval.json").read_text())
    assert [len(result[c]["folds"]) for c in CONDITIONS] == [2, 2, 2]
    assert all(0 <= v <= 1 for c in CONDITIONS for v in result[c]["folds"])
    counts = [json.loads((out / f"fold{i}" / "metrics.json").read_text())["clips"] for i in range(2)]
    assert [sum(c["valid"].values()) for c in counts] == [9, 12]  # 7 train + valid clips per genre: 3 and 4
    assert all(sum(c["train"].values()) + sum(c["valid"].values()) == 21 for c in counts)
    # every clip's held-out prediction, clean and in a room, from which the confidence rule is measured
    saved = json.loads((out / "predictions.json").read_text())
    assert set(saved["sets"]) == {"k-fold, clean", "k-fold, rooms", "k-fold, RT60 0.8 s, 3 m, 10 dB, phone"}
    for s in saved["sets"].values():
        assert len(s["labels"]) == len(s["probabilities"]) == 21 and sorted(set(s["labels"])) == [0, 1, 2]
        assert all(abs(sum(row) - 1) < 1e-3 for row in s["probabilities"])
    # run again: the finished folds are read back, not trained again, and give the same result; a condition a fold
    # lacks (an older run's) is scored from its saved model
    (out / "crossval.json").unlink()
    fold1 = json.loads((out / "fold1" / "held_out.json").read_text())
    del fold1[KEY], fold1["predictions"][KEY]
    (out / "fold1" / "held_out.json").write_text(json.dumps(fold1))
    monkeypatch.setattr("train.crossval.run", lambda cfg: pytest.fail(f"trained {cfg.out} again"))
    assert main(["--folds", "2", "--out", str(out), *flags.split()]) == 0
    assert json.loads((out / "crossval.json").read_text()) == result
    with pytest.raises(SystemExit, match="another command"):
        main(["--folds", "2", "--out", str(out), *flags.split(), "--epochs", "2"])


def test_calibrate_stores_the_rule_and_prints_its_table(random_model_dir, tmp_path, capsys):
    import shutil

    import numpy as np

    from genre_model.inference import GenreClassifier
    from train.calibrate import main as calibrate_main
    from train.calibrate import save_predictions

    model = tmp_path / "model"
    shutil.copytree(random_model_dir, model)
    classifier = GenreClassifier.from_pretrained(model)
    rng = np.random.default_rng(0)
    right = {"labels": [0] * 40, "probabilities": [[0.91] + [0.01] * 9] * 40}  # sure and right
    mixed = {"labels": rng.integers(0, 10, 40).tolist(), "probabilities": rng.dirichlet(np.ones(10), 40).tolist()}
    save_predictions(tmp_path / "p.json", classifier, {"clean": right, "rooms": mixed})
    assert calibrate_main(["--model", str(model), str(tmp_path / "p.json"), "--fit-on", "clean"]) == 0
    rule = GenreClassifier.from_pretrained(model).model.config.confidence
    assert rule["clear_at"] == pytest.approx(0.91) and rule["right"]["clear"] == [40, 40]
    table = capsys.readouterr().out
    assert "| clean (40) | 100% of clips, right 100% |" in table and "| rooms (40) | 0% of clips |" in table
    with pytest.raises(SystemExit):
        calibrate_main(["--model", str(model), str(tmp_path / "p.json"), "--fit-on", "valid"])


def test_the_report_shows_each_models_kfold_result(tmp_path):
    from train.report import kfold_table

    (tmp_path / "room").mkdir()
    (tmp_path / "clean").mkdir()  # no k-fold yet: no row
    scores = {"folds": [0.5, 0.6], "mean": 0.55, "spread": 0.05}
    cv = {"command": ["pretrained"], "folds": 2, "clean": scores, "rooms": {**scores, "mean": 0.4, "spread": 0.1}}
    (tmp_path / "room" / "crossval.json").write_text(json.dumps(cv))
    assert kfold_table(tmp_path).splitlines()[2:] == ["| `room` | 2 | 55.0% ± 5.0% | 40.0% ± 10.0% | - |"]
