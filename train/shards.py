"""Datasets as WebDataset-style tar shards: streamable, and decoded in DataLoader workers.

A shard is a plain tar (``<split>-NNNNNN.tar``) of samples, each two members sharing a key: ``<id>.<ext>`` (the clip's
original encoded bytes: wav, flac, ogg, mp3...) and ``<id>.json`` (``{"id", "genre"}``). That is the layout the
`webdataset` library, Hugging Face ``datasets`` (``load_dataset("webdataset", ...)``) and most large-audio pipelines
read, it needs nothing but ``tarfile`` to write or read, and a shard is read front to back, so shards stream from a
disk or a bucket without an index. Written by ``python -m train.data pack``.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm import tqdm

from genre_model.audio import AudioError, Waveform, load_audio

from .data import Clip


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


class DecodedShards(torch.utils.data.IterableDataset):
    """Decoded, resampled samples of ``shards``: each DataLoader worker takes every n-th shard and decodes it."""

    def __init__(self, shards: list[Path], sample_rate: int):
        self.shards, self.sample_rate = shards, sample_rate

    def __iter__(self) -> Iterator[tuple[dict, np.ndarray | None, str]]:
        worker = torch.utils.data.get_worker_info()
        mine = self.shards[worker.id :: worker.num_workers] if worker else self.shards
        for meta, data, name in samples(mine):
            try:
                audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
                yield meta, load_audio((rate, audio), self.sample_rate).samples, ""
            except (AudioError, sf.LibsndfileError, RuntimeError) as err:
                yield meta, None, f"skipping {name}: {err}"


def load_split(folder: str | Path, split: str, sample_rate: int, workers: int = 2) -> tuple[list[Clip], list[Waveform]]:
    """Every readable clip of ``split`` in the shards of ``folder``, decoded by ``workers`` DataLoader workers."""
    shards = shard_files(folder, split)
    loader = torch.utils.data.DataLoader(DecodedShards(shards, sample_rate), batch_size=None,
                                         num_workers=min(workers, len(shards)))  # fmt: skip
    clips, waves = [], []
    for meta, audio, problem in tqdm(loader, desc=f"decoding {split} shards", unit="clip", leave=False):
        if audio is None:
            tqdm.write(problem)
            continue
        seconds = len(audio) / sample_rate
        clips.append(Clip(meta["id"], meta["genre"], Path(folder) / meta["id"]))
        waves.append(Waveform(np.asarray(audio), sample_rate, seconds, seconds))
    order = np.argsort([c.id for c in clips], kind="stable")  # workers interleave shards: a fixed order again
    return [clips[i] for i in order], [waves[i] for i in order]


def split_genres(folder: str | Path, splits: tuple[str, ...] = ("train", "valid")) -> list[str]:
    """The genres in the shards' metadata (members are read, audio is not decoded)."""
    return sorted({meta["genre"] for split in splits for meta, _, _ in samples(shard_files(folder, split))})
