"""torch.distributed on this CPU: gloo, 2 processes, generated data (`train.network`, `genre_model.distributed`)."""

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from bench.serve import free_port
from genre_model.audio import load_audio
from genre_model.distributed import Processes, processes
from tests.conftest import GENRES3, chirp, noise, tone
from tests.test_registry import ToyMean
from tests.train.test_fit import musicnn_args, needs_musicnn
from train.cli import parse_args
from train.fit import CHECKPOINT
from train.network import NetworkConfig, fit_network
from train.pretrained import schedule

pytestmark = pytest.mark.slow
TORCHRUN = Path(sys.executable).parent / "torchrun"


def torchrun_two() -> list[str]:
    """torchrun starting two processes on this machine, on a free port."""
    return [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(free_port())]


def _data(root: Path, sr: int = 22_050) -> tuple[tuple[list, list[int]], tuple[list, list[int]]]:
    waves = [load_audio(p, sr) for genre in GENRES3 for p in sorted((root / genre).glob("*.wav"))]
    labels = [g for g in range(3) for _ in range(8)]
    return (waves[::2], labels[::2]), (waves[1::2], labels[1::2])


def _as_rank(rank: int, world: int, port: int) -> None:
    """The environment torchrun gives each process (`genre_model.distributed.start` reads it)."""
    os.environ.update(
        RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )


def _fit(rank: int, world: int, port: int, root: Path, out: Path, batch: int, epochs: int, resume: bool = False):
    """One rank (or a lone process): a seeded ToyMean fitted by `fit_network`; saves its final weights."""
    _as_rank(rank, world, port)
    torch.set_num_threads(1)
    with processes() as procs:  # its barrier: no rank tears gloo down while another still saves
        _fit_rank(procs, rank, root, out, batch, epochs, resume)


def _fit_rank(procs: Processes, rank: int, root: Path, out: Path, batch: int, epochs: int, resume: bool) -> None:
    torch.manual_seed(0)
    model = ToyMean(replace(ToyMean.default_config(), genres=GENRES3))
    cfg = NetworkConfig(
        model="toy-mean",
        data=str(root),
        out=str(out),
        epochs=epochs,
        batch_size=batch,
        lr=1e-2,
        weight_decay=0.0,
        crops_per_clip=2,
        mixup_alpha=0.2,
        patience=10,
        resume=resume,
    )
    fit_network(model, cfg, *_data(root), torch.device("cpu"), procs)
    torch.save(model.state_dict(), out / f"rank{rank}.pt")


def _leave(rank: int, world: int, port: int, out: Path) -> None:
    _as_rank(rank, world, port)
    with processes() as procs:
        if procs.is_main:
            time.sleep(1.0)  # rank 0 still scoring and saving
            (out / "saved").write_text(repr(time.time()))
    (out / f"left{rank}").write_text(repr(time.time()))


def test_no_rank_tears_down_before_rank_0_is_done(tmp_path):
    mp.spawn(_leave, args=(2, free_port(), tmp_path), nprocs=2)
    assert float((tmp_path / "left1").read_text()) >= float((tmp_path / "saved").read_text())


def _last_epoch_weights(out: Path) -> dict:
    return torch.load(out / CHECKPOINT, weights_only=True)["model"]


def test_two_processes_match_one_with_twice_the_batch_and_end_identical(tiny_dataset, tmp_path):
    mp.spawn(_fit, args=(2, free_port(), tiny_dataset, tmp_path / "two", 2, 3), nprocs=2)
    _fit(0, 1, free_port(), tiny_dataset, (tmp_path / "one"), 4, 3)
    two, one = _last_epoch_weights(tmp_path / "two"), _last_epoch_weights(tmp_path / "one")
    rank1 = torch.load(tmp_path / "two" / "rank1.pt", weights_only=True)  # rank 1 never reloads a best epoch
    for name in two:
        torch.testing.assert_close(rank1[name], two[name], rtol=0, atol=0)  # both ranks: the same weights
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6)  # 2 x b == 1 x 2b
    assert not torch.equal(two["head.weight"], ToyMean(ToyMean.default_config()).head.weight)  # it did train


def test_resume_continues_where_an_interrupted_run_stopped(tiny_dataset, tmp_path, monkeypatch):
    import train.network

    _fit(0, 1, free_port(), tiny_dataset, tmp_path / "straight", 4, 3)
    evaluate = train.network._evaluate_epoch

    def interrupted(model, cfg, valid, device, run, epoch, *rest):
        if epoch == 3:
            raise KeyboardInterrupt  # as if stopped during epoch 3: the checkpoint holds epoch 2
        return evaluate(model, cfg, valid, device, run, epoch, *rest)

    monkeypatch.setattr(train.network, "_evaluate_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _fit(0, 1, free_port(), tiny_dataset, tmp_path / "resumed", 4, 3)
    assert torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["epoch"] == 2
    monkeypatch.setattr(train.network, "_evaluate_epoch", evaluate)
    _fit(0, 1, free_port(), tiny_dataset, tmp_path / "resumed", 4, 3, resume=True)
    resumed, straight = _last_epoch_weights(tmp_path / "resumed"), _last_epoch_weights(tmp_path / "straight")
    for name in straight:
        torch.testing.assert_close(resumed[name], straight[name], rtol=0, atol=0)
    assert [h["epoch"] for h in torch.load(tmp_path / "resumed" / CHECKPOINT, weights_only=True)["history"]] == [
        1,
        2,
        3,
    ]


@pytest.mark.parametrize("layout", ["folder", "shards"])
def test_torchrun_trains_chunk_cnn_into_the_usual_folder(tiny_dataset, tmp_path, layout):
    from genre_model.inference import GenreClassifier
    from train.shards import main as data_main

    data, out = tiny_dataset, tmp_path / "ddp"
    if layout == "shards":  # the train split streams: 4 shards of the 18 train clips, 2 per process
        data = tmp_path / "shards"
        assert data_main(["pack", "--data", str(tiny_dataset), "--out", str(data), "--clips-per-shard", "5"]) == 0
    recipe = f"network --model chunk-cnn --epochs 1 --batch-size 4 --data {data} --out {out} --cache-dir {tmp_path}"
    command = [*torchrun_two(), "-m", "train", *recipe.split()]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, env=env, cwd=Path(__file__).parents[2]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("(train streamed from shards)" in result.stdout) == (layout == "shards")
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["epochs_run"] == 1
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "metrics.json", "README.md"}
    assert not (out / CHECKPOINT).exists()  # finished: only the model remains
    assert GenreClassifier.from_pretrained(out, device="cpu").genres == GENRES3


def test_distributed_predict_writes_every_line_once_in_input_order(random_model_dir, tmp_path, write_audio):
    files = [
        str(write_audio(f"clip{i}.wav", make))
        for i, make in enumerate([tone(300, 2.0), noise(3.0), chirp(2.5), tone(500, 1.5), noise(2.0, seed=2)])
    ]
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not audio")
    args = ["-m", "genre_model", "predict", "--json", "--model", str(random_model_dir), files[0], str(junk), *files[1:]]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    root = Path(__file__).parents[2]
    alone = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, env=env, cwd=root)
    both = subprocess.run(
        [*torchrun_two(), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=root,
    )
    assert alone.returncode == both.returncode == 1  # one file failed, in both

    def lines(stdout: str) -> list[dict]:
        return [{k: v for k, v in json.loads(line).items() if k != "elapsed_ms"} for line in stdout.splitlines()]

    assert [line["file"] for line in lines(both.stdout)] == [files[0], str(junk), *files[1:]]
    for a, b in zip(lines(alone.stdout), lines(both.stdout)):
        assert a.keys() == b.keys() and a.get("genre") == b.get("genre")
        if "probabilities" in a:
            np.testing.assert_allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-5)


def _run(command: list[str], cwd: Path = Path(__file__).parents[2]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=cwd)


@needs_musicnn
def test_torchrun_musicnn_probe_shares_the_features_and_fits_the_head_one_process_fits(tiny_dataset, tmp_path):
    from safetensors.torch import load_file

    from genre_model.inference import GenreClassifier

    alone = _run([sys.executable, "-m", "train", *musicnn_args(tiny_dataset, tmp_path / "one")])
    both = _run([*torchrun_two(), "-m", "train", *musicnn_args(tiny_dataset, tmp_path / "two")])
    assert alone.returncode == 0 and both.returncode == 0, both.stderr[-3000:]
    assert both.stdout.count("saved ") == 1  # rank 0 alone reports and writes
    one, two = tmp_path / "one" / "musicnn", tmp_path / "two" / "musicnn"
    assert json.loads((two / "metrics.json").read_text())["world_size"] == 2
    head = [load_file(d / "model.safetensors")["head.1.weight"] for d in (one, two)]
    torch.testing.assert_close(head[0], head[1], rtol=1e-5, atol=1e-6)  # shares gathered in order: the same fit
    assert GenreClassifier.from_pretrained(two, device="cpu").genres == GENRES3


def _fit_musicnn(rank: int, world: int, port: int, root: Path, out: Path) -> None:
    """One rank: the probe and one epoch of distillation."""
    from genre_model.registry import build_model

    _as_rank(rank, world, port)
    torch.set_num_threads(1)
    cfg = parse_args([*musicnn_args(root, out), "--distill-epochs", "1"])
    with processes() as procs:
        torch.manual_seed(0)
        model = build_model("musicnn-genre", genres=GENRES3)
        history, _ = schedule(model, cfg, *_data(root, model.config.sample_rate), torch.device("cpu"), procs)
        torch.save(model.state_dict(), out / f"rank{rank}.pt")
        (out / f"rank{rank}.json").write_text(json.dumps(history))


@needs_musicnn
def test_musicnn_distillation_under_ddp_ends_identical_on_both_ranks(tiny_dataset, tmp_path):
    mp.spawn(_fit_musicnn, args=(2, free_port(), tiny_dataset, tmp_path), nprocs=2)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys()
    for name in ranks[0]:  # weights and int8 ranges (calibrated in shares, extremes combined)
        torch.testing.assert_close(ranks[0][name], ranks[1][name], rtol=0, atol=0)
    history = json.loads((tmp_path / "rank0.json").read_text())
    assert history == json.loads((tmp_path / "rank1.json").read_text())  # the same scores, the same kept epochs
    trained = [row for row in history if row.get("epoch") == 1 and "train_loss" in row]
    assert len(trained) == 1 and np.isfinite(trained[0]["train_loss"])
