"""The model card (README.md with YAML metadata) written beside every saved model and pushed to the Hub."""

from __future__ import annotations

from huggingface_hub import EvalResult, ModelCard, ModelCardData

TEMPLATE = """---
{{ card_data }}
---

# {{ name }}: music-genre classifier ({{ arch }})

{{ description }}

It maps audio to probabilities over the 10 GTZAN genres ({{ genres }}). The log-mel front end
({{ n_mels }} mel bands, n_fft {{ n_fft }}, hop {{ hop_length }} at {{ sample_rate }} Hz) is part of the model, so the
weights come with their preprocessing. Inputs are cut into {{ window_s }} s windows; a clip's prediction is the mean
of its windows' probabilities. Weights: `model.safetensors` ({{ n_params }} parameters); configuration: `config.json`.

## How to use

```python
from genre_model.inference import GenreClassifier
classifier = GenreClassifier.from_pretrained("{{ repo_id }}")
print(classifier.predict("song.mp3").top(3))
```

Command line: `python -m genre_model predict --model {{ repo_id }} song.mp3`.
Web app: `python app.py --model {{ repo_id }}`. Code, training and evaluation: the project's repository.

## Training data and split

GTZAN (Tzanetakis & Cook, 2002), restricted to the clips this project could recover: an incomplete,
unbalanced subset of the train and valid ids of the artist-filtered split of Kereliuk, Sturm & Larsen (2015).
Clips used: {{ counts }}. Trained with `python -m train --model {{ arch }}`
{%- if arch == "musicnn-genre" %}: the pretrained backbone frozen, a logistic-regression head fitted on its
features of clean clips and of a simulated-classroom copy of each, weight decay chosen on valid
{%- if unfreeze %}, then its {{ unfreeze }} layers unfrozen and fine-tuned with the head (best valid epoch
{{ best_epoch }}; epoch 0 is the head alone){% endif %}
{%- if classroom %}, then the whole network distilled through simulated classrooms: the model so far, on the clean
window, teaches a copy of itself that hears the window through a freshly simulated room, speaker, microphone and noise
(best valid epoch {{ classroom.best_epoch }} of {{ classroom.epochs }} by the mean of clean and classroom balanced
accuracy; epoch 0 is the head alone){% endif %}
{%- else %}; best checkpoint chosen on valid (epoch {{ best_epoch }} of {{ epochs_run }}){% endif %}
({{ train_minutes }} min on {{ device }}).{% if refit %} The chosen head was then refitted on train + valid for
the published weights; the valid numbers below are from the head fitted on train only, before the refit.{% endif %}
{%- if arch == "musicnn-genre" and not unfreeze %} Fine-tuning the back end or mid end after the head (`--unfreeze`)
did not beat it convincingly on valid; see the project README.{% endif %}
{%- if arch == "musicnn-genre" %} On x86 CPUs the backbone's front-end convolutions run in int8 (8-bit ranges
calibrated on the training clips and stored with the weights; the head is fitted on those int8 features), elsewhere
in float.{% endif %}

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

{% if arch == "musicnn-genre" %}## Licence of the pretrained backbone

The backbone weights are the `MSD_musicnn` model of the `musicnn` package (Jordi Pons and Xavier Serra, Music
Technology Group, Universitat Pompeu Fabra), ISC licence: see `LICENSE-musicnn.md` and `NOTICE.md` beside the weights.
Cite: J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging",
ISMIR 2019 late-breaking/demo.

{% endif %}## Citation

```bibtex
@article{tzanetakis2002gtzan,
  title={Musical genre classification of audio signals}, author={Tzanetakis, George and Cook, Perry},
  journal={IEEE Transactions on Speech and Audio Processing}, volume={10}, number={5}, pages={293--302}, year={2002}}
@article{kereliuk2015filtered,
  title={Deep learning and music adversaries}, author={Kereliuk, Corey and Sturm, Bob L. and Larsen, Jan},
  journal={IEEE Transactions on Multimedia}, volume={17}, number={11}, pages={2059--2071}, year={2015}}
```
The `seed-cnn` architecture follows the paper this project starts from: a CNN on 128-mel x 660-frame log-mel input
(conv 16@3x3, max-pool 2x4, conv 32@3x3, max-pool 2x4, dense 64, dropout, softmax; 68% test accuracy on a random
GTZAN split), and its feed-forward baseline (`ffnn`).
"""


def _pct_ci(value: float, ci: list[float]) -> str:
    return f"{value:.1%} ({ci[0]:.1%} - {ci[1]:.1%})"


def confusion_markdown(confusion: list[list[int]], genres: list[str]) -> str:
    head = "| true \\ predicted | " + " | ".join(g[:5] for g in genres) + " |"
    rule = "|---" * (len(genres) + 1) + "|"
    rows = [f"| {g} | " + " | ".join(str(v) for v in row) + " |" for g, row in zip(genres, confusion)]
    return "\n".join([head, rule, *rows])


def render_card(config: dict, n_params: int, description: str, metrics: dict | None, repo_id: str) -> ModelCard:
    """The card for a model with ``config`` (its config.json) and, when trained here, its ``metrics.json``."""
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
        )  # fmt: skip
        for metric, name, key in (
            ("accuracy", "Accuracy", "accuracy"),
            ("balanced_accuracy", "Balanced accuracy", "balanced_accuracy"),
        )  # fmt: skip
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
    results = [
        dict(split=s.replace("_classroom", " through simulated classrooms"), n=metrics[s]["n_clips"],
             acc=_pct_ci(metrics[s]["accuracy"], metrics[s]["accuracy_ci95"]),
             bal=_pct_ci(metrics[s]["balanced_accuracy"], metrics[s]["balanced_accuracy_ci95"]))
        for s in ("train", "valid", "valid_classroom") if s in metrics
    ]  # fmt: skip
    counts = metrics.get("clips", {})
    return ModelCard.from_template(
        data,
        template_str=TEMPLATE,
        name=repo_id.split("/")[-1],
        repo_id=repo_id,
        arch=config["arch"],
        description=description,
        genres=", ".join(config["genres"]),
        n_params=f"{n_params:,}",
        results=results or [dict(split="(not trained here)", n="-", acc="-", bal="-")],
        confusion=confusion_markdown(metrics["valid"]["confusion"], config["genres"]) if "valid" in metrics else "n/a",
        counts="; ".join(
            f"{s}: {sum(c.values())} ({', '.join(f'{g} {n}' for g, n in c.items())})" for s, c in counts.items()
        )
        or "unknown",  # fmt: skip
        best_epoch=metrics.get("best_epoch", "?"),
        epochs_run=metrics.get("epochs_run", "?"),
        train_minutes=f"{metrics.get('train_seconds', 0) / 60:.0f}",
        device=metrics.get("device", "?"),
        refit=any("refit_on" in row for row in metrics.get("history", [])),
        unfreeze=metrics.get("config", {}).get("unfreeze"),
        classroom=next(
            (
                {"epochs": row["classroom"]["epochs"], "best_epoch": row["best_epoch"]}
                for row in metrics.get("history", [])
                if "classroom" in row
            ),
            None,
        ),  # fmt: skip
        **{k: config[k] for k in ("n_mels", "n_fft", "hop_length", "sample_rate")},
        window_s=f"{config['window_s']:.2f}",
    )
