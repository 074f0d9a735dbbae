"""Datasets as WebDataset-style tar shards: streamable, and decoded in DataLoader workers.

A shard is a plain tar (``<split>-NNNNNN.tar``) of samples, each two members sharing a key: ``<id>.<ext>`` (the clip's
original encoded bytes: wav, flac, ogg, mp3...) and ``<id>.json`` (``{"id", "genre"}``). That is the layout the
`webdataset` library, Hugging Face ``datasets`` (``load_dataset("webdataset", ...)``) and most large-audio pipelines
read, it needs nothing but ``tarfile`` to write or read, and a shard is read front to back, so shards stream from a
disk or a bucket without an index. Written by ``python -m train.shards pack``, with ``index.json`` beside them (clips
per genre and split: training plans its epochs without reading the shards).

Training streams the train split (`BalancedCrops`: decode, crop, shuffle in a buffer, in DataLoader workers; only the
buffer is in memory); valid, and the musicnn recipe's train split, are loaded whole (`load_split`).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from genre_model.audio import AudioError, Waveform, load_audio
from genre_model.distributed import Processes

from .data import Clip, genre_counts, random_crop, scan_dataset, split_clips

INDEX = "index.json"


def shard_files(folder: str | Path, split: str) -> list[Path]:
    return sorted(Path(folder).glob(f"{split}-*.tar"))


def is_shard_folder(folder: str | Path) -> bool:
    return Path(folder).is_dir() and any(Path(folder).glob("*-*.tar"))


def write_shards(clips: list[Clip], out: str | Path, split: str, per_shard: int = 256) -> list[Path]:
    """Pack ``clips`` (their encoded bytes, unchanged) into ``out/<split>-NNNNNN.tar``, ``per_shard`` each."""
    out, written = Path(out), []
    out.mkdir(parents=True, exist_ok=True)
    for n, start in enumerate(range(0, len(clips), per_shard)):
        path = out / f"{split}-{n:06d}.tar"
        with tarfile.open(path.with_suffix(".tmp"), "w") as tar:
            for clip in clips[start : start + per_shard]:
                tar.add(clip.path, arcname=f"{clip.id}{clip.path.suffix.lower()}")
                meta = json.dumps({"id": clip.id, "genre": clip.genre}).encode()
                info = tarfile.TarInfo(f"{clip.id}.json")
                info.size = len(meta)
                tar.addfile(info, io.BytesIO(meta))
        path.with_suffix(".tmp").replace(path)
        written.append(path)
    return written


def samples(shards: list[Path]) -> Iterator[tuple[dict, bytes, str]]:
    """(metadata, encoded audio, file name) of every sample, shard after shard, each read front to back."""
    for shard in shards:
        pending: dict[str, dict] = {}
        with tarfile.open(shard) as tar:
            for member in tar:
                key, ext = member.name.rsplit(".", 1)[0], member.name.rsplit(".", 1)[1]
                entry = pending.setdefault(key, {})
                entry[ext] = tar.extractfile(member).read()
                if "json" in entry and len(entry) == 2:
                    meta = json.loads(pending.pop(key).pop("json"))
                    ((audio_ext, data),) = entry.items()
                    yield meta, data, f"{key}.{audio_ext}"


def decoded(data: bytes, sample_rate: int) -> np.ndarray:
    """A sample's encoded audio -> mono float32 at ``sample_rate`` (raises AudioError, LibsndfileError...)."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
    return load_audio((rate, audio), sample_rate).samples


DECODE_ERRORS = (AudioError, sf.LibsndfileError, RuntimeError)


class DecodedShards(torch.utils.data.IterableDataset):
    """Decoded, resampled samples of ``shards``: each DataLoader worker takes every n-th shard and decodes it."""

    def __init__(self, shards: list[Path], sample_rate: int):
        self.shards, self.sample_rate = shards, sample_rate

    def __iter__(self) -> Iterator[tuple[dict, np.ndarray | None, str]]:
        worker = torch.utils.data.get_worker_info()
        mine = self.shards[worker.id :: worker.num_workers] if worker else self.shards
        for meta, data, name in samples(mine):
            try:
                yield meta, decoded(data, self.sample_rate), ""
            except DECODE_ERRORS as err:
                yield meta, None, f"skipping {name}: {err}"


class BalancedCrops(torch.utils.data.IterableDataset):
    """An endless stream of (crop (samples,), genre index) from ``shards``, for one process of ``procs``.

    Every DataLoader worker of every process owns one slot of the data: every (processes x workers)-th shard, or,
    with fewer shards than slots, every such sample (the others are read past, not decoded). It decodes its clips,
    cuts random crops and yields them through a shuffle buffer of ``buffer`` crops, pass after pass (pass p is
    seeded by (seed, slot, p) and reads its shards in a new order). Genre-balanced like the in-memory recipe: a
    clip of a genre with n clips gives crops_per_clip x (largest n) / n crops, stochastically rounded."""

    def __init__(
        self,
        shards: list[Path],
        sample_rate: int,
        genres: list[str],
        counts: dict[str, int],
        n_samples: int,
        crops_per_clip: int,
        seed: int,
        procs: Processes,
        first_pass: int = 0,
        buffer: int = 512,
    ):
        self.shards, self.sample_rate, self.n_samples, self.buffer = shards, sample_rate, n_samples, buffer
        self.genres = genres  # the model's: a crop's label is its genre's index here
        self.crops = {g: crops_per_clip * max(counts.values()) / n for g, n in counts.items()}
        self.seed, self.procs, self.first_pass = seed, procs, first_pass

    def __iter__(self) -> Iterator[tuple[torch.Tensor, int]]:
        worker = torch.utils.data.get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker else (1, 0)
        slots, slot = self.procs.world_size * workers, self.procs.rank * workers + worker_id
        by_shard = len(self.shards) >= slots
        for n_pass in itertools.count(self.first_pass):
            rng = np.random.default_rng([self.seed, slot, n_pass])
            mine = self.shards[slot::slots] if by_shard else self.shards
            pending: list[tuple[torch.Tensor, int]] = []
            for i, (meta, data, _) in enumerate(samples([mine[k] for k in rng.permutation(len(mine))])):
                if meta["genre"] not in self.crops or not (by_shard or i % slots == slot):
                    continue
                try:
                    audio = decoded(data, self.sample_rate)
                except DECODE_ERRORS:
                    continue  # reported once, by the pass that counted the clips; a stream goes on
                n, label = self.crops[meta["genre"]], self.genres.index(meta["genre"])
                for _ in range(int(n) + int(rng.random() < n - int(n))):
                    pending.append((torch.from_numpy(random_crop(audio, self.n_samples, rng)), label))
                while len(pending) > self.buffer:
                    yield pending.pop(int(rng.integers(len(pending))))
            for k in rng.permutation(len(pending)):
                yield pending[k]


def crop_loader(
    folder: str | Path,
    sample_rate: int,
    genres: list[str],
    n_samples: int,
    crops_per_clip: int,
    batch_size: int,
    seed: int,
    procs: Processes,
    first_pass: int = 0,
) -> torch.utils.data.DataLoader:
    """Batches (x (batch, samples), genre indices (batch,)) of `BalancedCrops` of the train split, decoded by this
    process's share of the CPU cores in DataLoader workers."""
    workers = max(1, min(8, (os.cpu_count() or 2) // procs.world_size))
    crops = BalancedCrops(
        shard_files(folder, "train"),
        sample_rate,
        genres,
        split_counts(folder, "train"),
        n_samples,
        crops_per_clip,
        seed,
        procs,
        first_pass,
    )
    return torch.utils.data.DataLoader(crops, batch_size=batch_size, num_workers=workers)


def decoded_clips(
    folder: str | Path, split: str, sample_rate: int, workers: int = 2
) -> Iterator[tuple[Clip, Waveform]]:
    """Every readable clip of ``split`` in the shards of ``folder``, decoded by ``workers`` DataLoader workers, in
    the order they come (workers interleave shards); unreadable ones are reported and skipped."""
    shards = shard_files(folder, split)
    loader = torch.utils.data.DataLoader(
        DecodedShards(shards, sample_rate), batch_size=None, num_workers=min(workers, len(shards))
    )
    for meta, audio, problem in tqdm(loader, desc=f"decoding {split} shards", unit="clip", leave=False):
        if audio is None:
            tqdm.write(problem)
            continue
        seconds, audio = len(audio) / sample_rate, np.asarray(audio)  # the loader hands arrays over as tensors
        yield Clip(meta["id"], meta["genre"], Path(folder) / meta["id"]), Waveform(audio, sample_rate, seconds, seconds)


def load_split(folder: str | Path, split: str, sample_rate: int, workers: int = 2) -> tuple[list[Clip], list[Waveform]]:
    """`decoded_clips` held in memory, sorted by id."""
    pairs = sorted(decoded_clips(folder, split, sample_rate, workers), key=lambda pair: pair[0].id)
    return [clip for clip, _ in pairs], [wave for _, wave in pairs]


def write_index(out: str | Path, counts: dict[str, dict[str, int]]) -> None:
    """``index.json``: clips per genre of each split (``counts``), beside the shards."""
    (Path(out) / INDEX).write_text(json.dumps(counts, indent=2, sort_keys=True))


def split_counts(folder: str | Path, split: str) -> dict[str, int]:
    """Clips per genre in ``split``: from ``index.json``, else from the shards' metadata (audio read past)."""
    index = Path(folder) / INDEX
    if index.is_file():
        return json.loads(index.read_text()).get(split, {})
    counts: dict[str, int] = {}
    for meta, _, _ in samples(shard_files(folder, split)):
        counts[meta["genre"]] = counts.get(meta["genre"], 0) + 1
    return counts


def split_genres(folder: str | Path, splits: tuple[str, ...] = ("train", "valid")) -> list[str]:
    """The genres of ``splits`` in the shards."""
    return sorted({genre for split in splits for genre in split_counts(folder, split)})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m train.shards", description="Dataset tools.")
    commands = parser.add_subparsers(dest="command", required=True)
    pack = commands.add_parser("pack", help="write a GTZAN-layout folder's splits as tar shards")
    pack.add_argument("--data", required=True, help="folder with <genre>/<genre>.NNNNN.<ext> clips")
    pack.add_argument("--split-dir", help="folder with {train,valid,test}_filtered.txt (else a random split)")
    pack.add_argument("--out", required=True, help="where the shards go: <split>-NNNNNN.tar")
    pack.add_argument("--clips-per-shard", type=int, default=256)
    pack.add_argument("--seed", type=int, default=0, help="of the random split")
    args = parser.parse_args(argv)

    splits, missing = split_clips(scan_dataset(args.data), args.split_dir, args.seed)
    for name, clips in splits.items():
        if clips:
            written = write_shards(clips, args.out, name, args.clips_per_shard)
            print(f"{name}: {len(clips)} clips in {len(written)} shard(s); listed but absent: {missing[name]}")
    write_index(args.out, {name: genre_counts(clips) for name, clips in splits.items() if clips})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
