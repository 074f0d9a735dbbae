"""`GenreNet`: the base of every network. A log-mel front end (`to_logmel`) plus a network, so a model maps a
waveform batch to logits and its preprocessing travels with its weights (``config.json`` + ``model.safetensors``,
saved, loaded and pushed by huggingface_hub's `PyTorchModelHubMixin`, with our model card)."""

import os
from collections.abc import Callable
from dataclasses import asdict

import safetensors.torch
import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin, hf_hub_download
from torch import nn

from .card import render_card
from .config import ModelConfig
from .features import LogMel
from .registry import architecture

# weights over genres, (n_genres,) or (batch, n_genres) -> d(sum of weights * logits) / d logmel
GradientOf = Callable[[torch.Tensor], torch.Tensor]


def weighted_logits(logits: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """What explanations differentiate: a weighted sum of genre logits over the batch, e.g. weights e_A - e_B for
    "why A and not B" (a logit difference: unlike a probability, its gradient does not vanish where the model is
    already sure)."""
    return (logits * weights).sum()


def require_fit(
    missing: list[str], unexpected: list[str], what: str, hint: str = "", optional: tuple[str, ...] = ()
) -> None:
    """After a non-strict ``load_state_dict``: every tensor must have fitted but buffers named in ``optional`` (such
    as a calibration that weights saved before it existed lack)."""
    missing = [k for k in missing if k.rsplit(".", 1)[-1] not in optional]
    if missing or unexpected:
        raise ValueError(f"{what} do not fit: missing {missing}, unexpected {unexpected}.{hint}")


class GenreNet(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="genre-model",
    license="mit",
    pipeline_tag="audio-classification",
    tags=["audio-classification", "music", "gtzan", "music-genre-classification"],
):
    """Base class: log-mel front end + network. Subclasses define ``default_config()`` and
    ``classify(logmel) -> logits``, and register themselves."""

    tag_names: list[str] = []  # tags a pretrained backbone also predicts (none for models trained from scratch)
    optional_buffers: tuple[str, ...] = ()  # buffers saved weights may lack (`require_fit`)

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.to_logmel = self.make_logmel(config)

    @staticmethod
    def default_config() -> ModelConfig:
        raise NotImplementedError

    @staticmethod
    def make_logmel(config: ModelConfig) -> nn.Module:
        c = config
        return LogMel(c.sample_rate, c.n_fft, c.hop_length, c.n_mels, c.f_min, c.f_max, c.top_db)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> logits (batch, n_genres)."""
        return self.classify(self.to_logmel(waveform))

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:  # (batch, n_mels, frames) -> (batch, n_genres)
        raise NotImplementedError

    def classify_and_tag(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(batch, n_mels, frames) -> genre logits and, if ``tag_names``, tag logits (batch, n_tags) from the same
        pass."""
        return self.classify(logmel), None

    def prepare_inference(self) -> None:
        """Called once after loading for inference (in eval mode, on its device): nothing to do by default."""

    def probabilities_with_gradient(self, logmel: torch.Tensor) -> tuple[torch.Tensor, GradientOf]:
        """For explanations: softmax probabilities (batch, n_genres) and a function giving, for weights over genres,
        d `weighted_logits` / d logmel (batch, n_mels, frames). One forward pass serves the prediction and every
        gradient asked of it."""
        logmel = logmel.detach().requires_grad_(True)
        with torch.enable_grad():
            logits = self.classify(logmel)

        def gradient(weights: torch.Tensor) -> torch.Tensor:
            return torch.autograd.grad(weighted_logits(logits, weights), logmel, retain_graph=True)[0]

        return logits.softmax(dim=-1).detach(), gradient

    def generate_model_card(self, metrics: dict | None = None, repo_id: str | None = None) -> ModelCard:
        """Used by ``save_pretrained``/``push_to_hub``: our card, with the training metrics when given."""
        entry = architecture(self.config.arch)
        n_params = sum(p.numel() for p in self.parameters())
        return render_card(asdict(self.config), entry, n_params, metrics, repo_id or self.config.arch)

    @classmethod
    def _from_pretrained(cls, *, model_id: str, map_location: str = "cpu", **hub_kwargs) -> "GenreNet":
        """Called by ``from_pretrained``: safetensors only (never a pickle), every tensor required but the
        ``optional_buffers``."""
        config = hub_kwargs.pop("config")
        if os.path.isdir(model_id):
            weights = os.path.join(model_id, "model.safetensors")
        else:
            hub_kwargs.pop("strict", None)
            weights = hf_hub_download(model_id, "model.safetensors", **hub_kwargs)
        model = cls(config)
        loaded = safetensors.torch.load_model(model, weights, strict=False, device=map_location)
        hint = " Saved by another version of genre_model?"
        require_fit(*loaded, f"Weights in '{model_id}' and {cls.__name__}", hint, cls.optional_buffers)
        return model.eval()
