import numpy as np
import pytest

from tests.conftest import SHARED, needs_shared, tone
from train.data import WaveformCache, scan_dataset, split_clips


@pytest.fixture
def dataset(tmp_path, write_audio):
    """A GTZAN-layout folder with 6 short clips per genre for three genres, plus files to ignore."""
    root = tmp_path / "gtzan"
    for g, genre in enumerate(["blues", "jazz", "rock"]):
        (root / genre).mkdir(parents=True)
        for i in range(6):
            write_audio(f"{genre}.0000{i}.wav", tone(200 + 100 * g + 10 * i, 1.0))
            (tmp_path / f"{genre}.0000{i}.wav").rename(root / genre / f"{genre}.0000{i}.wav")
    (root / "blues" / "notes.txt").write_text("ignore me")
    (root / "blues" / "polka.00001.wav").write_bytes(b"")  # not a GTZAN genre
    return root


def test_scan_finds_one_clip_per_id(dataset):
    clips = scan_dataset(dataset)
    assert len(clips) == 18 and {c.genre for c in clips} == {"blues", "jazz", "rock"}
    with pytest.raises(FileNotFoundError):
        scan_dataset(dataset / "blues" / "nothing")


def test_random_split_is_stratified_disjoint_and_seeded(dataset):
    clips = scan_dataset(dataset)
    splits, missing = split_clips(clips, seed=1, fractions=(0.15, 0.15))
    ids = [{c.id for c in splits[s]} for s in ("train", "valid", "test")]
    assert not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert sum(map(len, ids)) == 18
    assert all(sum(c.genre == g for c in splits["valid"]) == 1 for g in ("blues", "jazz", "rock"))
    assert split_clips(clips, seed=1, fractions=(0.15, 0.15))[0] == splits
    assert split_clips(clips, seed=2, fractions=(0.15, 0.15))[0] != splits


def test_filtered_lists_are_honoured_and_absent_clips_reported(dataset, tmp_path):
    lists = tmp_path / "splits"
    lists.mkdir()
    (lists / "train_filtered.txt").write_text("blues/blues.00000.wav\njazz/jazz.00001.au\nrock/rock.00099.wav\n")
    (lists / "valid_filtered.txt").write_text("blues/blues.00002.wav\n")
    (lists / "test_filtered.txt").write_text("jazz/jazz.00005.wav\n")
    splits, missing = split_clips(scan_dataset(dataset), lists)
    assert [c.id for c in splits["train"]] == ["blues.00000", "jazz.00001"]  # matched whatever the extension
    assert [c.id for c in splits["valid"]] == ["blues.00002"]
    assert missing == {"train": 1, "valid": 0, "test": 0}


def test_cache_hit_on_second_load(dataset, tmp_path, monkeypatch):
    clip = scan_dataset(dataset)[0]
    cache = WaveformCache(tmp_path / "cache")
    first = cache.load(clip, 22_050)
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1

    def fail(*args, **kwargs):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr("train.data.load_audio", fail)
    np.testing.assert_array_equal(cache.load(clip, 22_050).samples, first.samples)


@needs_shared
def test_real_split_lists_match_the_shared_clips():
    clips = scan_dataset(SHARED / "gtzan" / "audio")
    splits, missing = split_clips(clips, SHARED / "gtzan" / "splits")
    assert len(splits["train"]) > 300 and len(splits["valid"]) > 100 and splits["test"] == []
    assert missing["test"] == 290


def test_pack_writes_shards_that_stream_decode_in_workers_and_train(tiny_dataset, tmp_path):
    import tarfile

    from train.cli import parse_args, run
    from train.shards import load_split, shard_files, split_genres
    from train.shards import main as data_main

    shards = tmp_path / "shards"
    assert data_main(["pack", "--data", str(tiny_dataset), "--out", str(shards), "--clips-per-shard", "5"]) == 0
    train_shards = shard_files(shards, "train")
    assert len(train_shards) == 4  # 18 train clips, 5 a shard
    with tarfile.open(train_shards[0]) as tar:
        names = tar.getnames()
    assert names[:2] == ["blues.00000.wav", "blues.00000.json"]  # audio and metadata side by side, the bytes as given
    assert split_genres(shards) == ["blues", "classical", "metal"]
    clips, waves = load_split(shards, "train", 16_000, workers=2)  # two DataLoader workers decode
    direct = scan_dataset(tiny_dataset)
    assert [c.id for c in clips] == sorted(c.id for c in split_clips(direct)[0]["train"])
    assert all(w.sample_rate == 16_000 and len(w.samples) == 48_000 for w in waves)
    args = "network --model ffnn --epochs 1 --batch-size 4 --device cpu".split()
    metrics = run(parse_args([*args, "--data", str(shards), "--out", str(tmp_path / "m")]))
    assert metrics["clips"]["train"] == {"blues": 6, "classical": 6, "metal": 6}
