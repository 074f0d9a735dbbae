"""The model card (README.md with YAML metadata) written beside every saved model and pushed to the Hub."""

from __future__ import annotations

from typing import TYPE_CHECKING

from huggingface_hub import EvalResult, ModelCard, ModelCardData

if TYPE_CHECKING:
    from .registry import Architecture

TEMPLATE = """---
{{ card_data }}
---

# {{ name }}: music-genre classifier ({{ arch }})

{{ description }}

It maps audio to probabilities over {{ n_genres }} genres ({{ genres }}). The log-mel front end
({{ n_mels }} mel bands, n_fft {{ n_fft }}, hop {{ hop_length }} at {{ sample_rate }} Hz) is part of the model, so the
weights come with their preprocessing. Inputs are cut into model windows of {{ window_s }} s; a clip's prediction is
the mean of its windows' probabilities. Weights: `model.safetensors` ({{ n_params }} parameters); configuration:
`config.json`.

{{ architecture }}

## How to use

Install the `genre_model` package from the project's repository (`pip install .` in a checkout), then:

```python
from genre_model.inference import GenreClassifier
classifier = GenreClassifier.from_pretrained("{{ repo_id }}")
print(classifier.predict("song.mp3").top(3))
```

Command line: `genre-model predict --model {{ repo_id }} song.mp3`.
Web app: `python app.py --model {{ repo_id }}`. Code, training and evaluation: the project's repository.

## Training data and split

GTZAN (Tzanetakis & Cook, 2002), restricted to the clips this project could recover: an incomplete,
unbalanced subset of the train and valid ids of the artist-filtered split of Kereliuk, Sturm & Larsen (2015).
Clips used: {{ counts }}.

## Training

{{ summary }}
{% if command %}
Trained in {{ train_minutes }} min on {{ device }} by:

```
{{ command }}
```
{% endif %}
## Results

Clip-level, windows averaged. Accuracy with a 95% Wilson interval, balanced accuracy (mean per-genre recall)
with a 95% bootstrap interval. The valid split also chose the checkpoint, so it flatters the model a little;
a held-out test set judges it elsewhere.

| split | clips | accuracy (95% CI) | balanced accuracy (95% CI) |
|---|---|---|---|
{% for row in results %}| {{ row.split }} | {{ row.n }} | {{ row.acc }} | {{ row.bal }} |
{% endfor %}
Confusion matrix on valid (rows: true genre, columns: predicted):

{{ confusion }}

## Limitations

- GTZAN has known faults (Sturm, 2013): repeated excerpts, mislabelings, distortions, and many clips of the same
  artists; random splits therefore overestimate accuracy, which is why we use the artist-filtered split.
- Ten Western popular-music genres of around 2000; music outside them is forced into one of the ten.
- Trained on 30 s excerpts of line-level recordings; microphone recordings in a room, very short clips and
  mixtures of styles are harder.
- Our training subset is small and unbalanced (some genres have 5 valid clips), so per-genre numbers are noisy.
- GTZAN is for research use; these weights inherit that.

## Citation

```bibtex
@article{tzanetakis2002gtzan,
  title={Musical genre classification of audio signals}, author={Tzanetakis, George and Cook, Perry},
  journal={IEEE Transactions on Speech and Audio Processing}, volume={10}, number={5}, pages={293--302}, year={2002}}
@article{kereliuk2015filtered,
  title={Deep learning and music adversaries}, author={Kereliuk, Corey and Sturm, Bob L. and Larsen, Jan},
  journal={IEEE Transactions on Multimedia}, volume={17}, number={11}, pages={2059--2071}, year={2015}}
```
"""


def _pct_ci(value: float, ci: list[float]) -> str:
    return f"{value:.1%} ({ci[0]:.1%} - {ci[1]:.1%})"


def confusion_markdown(confusion: list[list[int]], genres: list[str]) -> str:
    head = "| true \\ predicted | " + " | ".join(g[:5] for g in genres) + " |"
    rule = "|---" * (len(genres) + 1) + "|"
    rows = [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(genres, confusion)]
    return "\n".join([head, rule, *rows])


def refit_on_valid(metrics: dict) -> bool:
    """Whether the run in ``metrics`` (``metrics.json``) fitted its model on train + valid at the end: its valid
    scores are then those of the run that chose its settings, before valid joined training."""
    return any("refit_on" in row for row in metrics.get("history", []))


def _results(metrics: dict) -> list[dict]:
    """A row per evaluated split in ``metrics``, in its order, labelled by its key ("valid_rooms" -> "valid rooms")."""
    return [
        dict(
            split=name.replace("_", " "),
            n=m["n_clips"],
            acc=_pct_ci(m["accuracy"], m["accuracy_ci95"]),
            bal=_pct_ci(m["balanced_accuracy"], m["balanced_accuracy_ci95"]),
        )
        for name, m in metrics.items()
        if isinstance(m, dict) and "balanced_accuracy_ci95" in m
    ]


def render_card(config: dict, entry: Architecture, n_params: int, metrics: dict | None, repo_id: str) -> ModelCard:
    """The card for a model with ``config`` (its config.json) of the registered architecture ``entry`` and, when
    trained here, its ``metrics.json``, whose ``summary`` (markdown) and ``command`` say how it was trained."""
    metrics = metrics or {}
    evals = [
        EvalResult(
            task_type="audio-classification",
            dataset_type="marsyas/gtzan",
            dataset_name="GTZAN (artist-filtered split, recovered subset)",
            dataset_split="valid",
            metric_type=metric,
            metric_name=name,
            metric_value=round(metrics["valid"][key], 4),
        )
        for metric, name, key in (
            ("accuracy", "Accuracy", "accuracy"),
            ("balanced_accuracy", "Balanced accuracy", "balanced_accuracy"),
        )
        if "valid" in metrics
    ]
    data = ModelCardData(
        library_name="pytorch",
        license="mit",
        pipeline_tag="audio-classification",
        tags=["audio-classification", "music", "gtzan", "music-genre-classification", "pytorch_model_hub_mixin"],
        datasets=["marsyas/gtzan"],
        metrics=["accuracy", "balanced_accuracy"],
        model_name=repo_id,
        eval_results=evals or None,
    )
    counts = metrics.get("clips", {})
    clips = "; ".join(
        f"{s}: {sum(c.values())} ({', '.join(f'{g} {n}' for g, n in c.items())})" for s, c in counts.items()
    )
    return ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        name=repo_id.split("/")[-1],
        repo_id=repo_id,
        arch=config["arch"],
        description=" ".join(entry.cls.__doc__.split("\n\n")[0].split()),
        architecture=entry.card,
        genres=", ".join(config["genres"]),
        n_genres=len(config["genres"]),
        n_params=f"{n_params:,}",
        results=_results(metrics) or [dict(split="(not trained here)", n="-", acc="-", bal="-")],
        confusion=confusion_markdown(metrics["valid"]["confusion"], config["genres"]) if "valid" in metrics else "n/a",
        counts=clips or "unknown",
        summary=metrics.get("summary") or "Not trained by this package's `train`.",
        command=metrics.get("command"),
        train_minutes=f"{metrics.get('train_seconds', 0) / 60:.0f}",
        device=metrics.get("device", "?"),
        **{k: config[k] for k in ("n_mels", "n_fft", "hop_length", "sample_rate")},
        window_s=f"{config['window_s']:.2f}",
    )
