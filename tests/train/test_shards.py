"""The train split streamed from tar shards (`train.shards.BalancedCrops`), on the tiny dataset's 18 train clips."""

import hashlib
import itertools

import numpy as np
import pytest

from genre_model.distributed import Processes
from tests.conftest import GENRES3
from train.shards import BalancedCrops, shard_files, split_counts
from train.shards import main as data_main

SR = 22_050
CLIP = 3 * SR  # the tiny dataset's clips: a crop this long is the whole clip


def _stream(tiny_dataset, tmp_path, per_shard: int, procs: Processes, counts: dict | None = None, **kw):
    out = tmp_path / f"shards{per_shard}"
    if not out.exists():
        args = ["pack", "--data", str(tiny_dataset), "--out", str(out), "--clips-per-shard", str(per_shard)]
        assert data_main(args) == 0
    counts = counts or split_counts(out, "train")
    return iter(BalancedCrops(shard_files(out, "train"), SR, GENRES3, counts, CLIP, 1, 0, procs, **kw))


def _digests(stream, n: int) -> list[str]:
    return [hashlib.sha1(x.numpy().tobytes()).hexdigest() for x, _ in itertools.islice(stream, n)]


@pytest.mark.parametrize(
    ("per_shard", "owned"),
    [(5, (10, 8)), (256, (9, 9))],  # 4 shards (5, 5, 5, 3): every other shard; 1 shard: every other clip
    ids=["by-shard", "by-clip"],
)
def test_two_processes_share_a_pass_each_clip_once(tiny_dataset, tmp_path, per_shard, owned):
    passes = [
        _digests(_stream(tiny_dataset, tmp_path, per_shard, Processes(r, 2), buffer=3), n)
        for r, n in zip((0, 1), owned)
    ]
    assert len(set(passes[0] + passes[1])) == 18  # balanced genres: one crop (the whole clip) per clip
    assert not set(passes[0]) & set(passes[1])


def test_a_stream_is_seeded_shuffled_and_balanced(tiny_dataset, tmp_path):
    one = Processes()
    first, again = (_digests(_stream(tiny_dataset, tmp_path, 5, one), 36) for _ in range(2))
    assert first == again  # the same seed, the same crops
    assert sorted(first[:18]) == sorted(first[18:]) and first[:18] != first[18:]  # pass 2: the same clips, reordered
    fewer_metal = {"blues": 6, "classical": 6, "metal": 3}  # as if metal had half the clips: 2 crops per metal clip
    labels = [y for _, y in itertools.islice(_stream(tiny_dataset, tmp_path, 5, one, fewer_metal), 24)]
    assert np.bincount(labels).tolist() == [6, 6, 12]
