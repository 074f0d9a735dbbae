"""`ModelConfig`: everything needed to rebuild a model (``config.json`` beside its weights)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The package's version (``genre_model.__version__``), recorded in every config.json.
VERSION = "0.1.0"

# GTZAN's ten genres: the labels of a model built without data (tests, benchmarks). Training takes the genres
# from the dataset's folders instead (train.data.scan_dataset), and a saved model from its config.json.
GTZAN_GENRES = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]


@dataclass
class ModelConfig:
    """Architecture, log-mel front end, model window and labels."""

    arch: str
    sample_rate: int = 22_050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    f_min: float = 0.0
    f_max: float = 11_025.0
    top_db: float = 80.0
    window_s: float = 3.0  # the model window: one network input; longer audio is cut into model windows
    window_hop_s: float = 3.0  # step between model windows at inference
    dropout: float = 0.5
    genres: list[str] = field(default_factory=lambda: list(GTZAN_GENRES))
    # the confidence rule's thresholds, measured on clips the model never trained on (genre_model.confidence)
    confidence: dict | None = None
    # musicnn-genre: False once fine-tuning has changed the layers the pretrained tag head reads (its tags then lie)
    pretrained_tags: bool = True
    package_version: str = VERSION

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.sample_rate)

    @property
    def window_frames(self) -> int:
        return self.window_samples // self.hop_length + 1
