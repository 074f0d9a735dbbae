"""k-fold cross-validation (`train.crossval`): folds of whole runs of ids per genre, every clip held out once."""

import json
from pathlib import Path

import pytest

from train.crossval import folds, main
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
def test_crossval_trains_each_fold_and_scores_it_clean_and_in_rooms(tiny_dataset, tmp_path):
    out = tmp_path / "cv"
    flags = f"network --model ffnn --epochs 1 --batch-size 4 --device cpu --data {tiny_dataset} --cache-dir {tmp_path}"
    assert main(["--folds", "2", "--out", str(out), *flags.split()]) == 0
    result = json.loads((out / "crossval.json").read_text())
    assert len(result["clean"]["folds"]) == len(result["rooms"]["folds"]) == 2
    assert all(0 <= v <= 1 for v in result["clean"]["folds"] + result["rooms"]["folds"])
    counts = [json.loads((out / f"fold{i}" / "metrics.json").read_text())["clips"] for i in range(2)]
    assert [sum(c["valid"].values()) for c in counts] == [9, 12]  # 7 train + valid clips per genre: 3 and 4
    assert all(sum(c["train"].values()) + sum(c["valid"].values()) == 21 for c in counts)
