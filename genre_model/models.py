"""The networks, one class per architecture on `GenreNet`; each registers itself (`genre_model.registry.register`)
with its display name, training defaults and model-card text."""

import shutil
from dataclasses import replace
from pathlib import Path

import torch
import torchaudio
from torch import nn

from .base import GenreNet, GradientOf, weighted_logits
from .config import ModelConfig
from .features import LogCompressedMel
from .int8 import CALIBRATION
from .musicnn import MSD_TAGS, MusicnnBackbone
from .registry import register

MUSICNN_DIR = Path(__file__).resolve().parent.parent / "weights" / "musicnn-msd"  # converted backbone, with licence


PAPER_CARD = """After the paper this project starts from: a CNN on 128-mel x 660-frame log-mel input (conv 16@3x3,
max-pool 2x4, conv 32@3x3, max-pool 2x4, dense 64, dropout, softmax), which reports 84% train / 68% test accuracy on
a random GTZAN split, and its feed-forward baseline (69% / 45%). A random split puts clips of one artist on both sides,
so expect lower numbers on the artist-filtered split."""


@register(
    "seed-cnn",
    "the paper's CNN",
    paper="84% / 68% (random split, test)",
    card=PAPER_CARD,
    training=dict(epochs=40, batch_size=16, lr=1e-3, crops_per_clip=1, mixup_alpha=0.0, patience=10),
)
class SeedCNN(GenreNet):
    """The paper's CNN, layer for layer: 1x128x660 log-mel -> conv 16@3x3 ReLU -> max-pool 2x4 -> conv 32@3x3
    ReLU -> max-pool 2x4 -> dropout -> dense 64 ReLU -> dropout -> dense 10.

    Where the paper is silent we chose: ``valid`` convolutions and pooling (Keras defaults), dropout 0.5,
    log-mel in dB relative to the clip peak (-80..0) scaled to [-1, 1], n_fft 2048, hop 1024 (660 frames
    = 30.6 s, so a 30 s clip is zero-padded with silence to 660 frames), one model window per 30 s.
    Shapes: 1x128x660 -> 16x126x658 -> 16x63x164 -> 32x61x162 -> 32x30x40 = 38 400 -> 64 -> 10.
    Parameters: 2 463 114 (all in the first dense layer but 5 450).
    """

    @staticmethod
    def default_config() -> ModelConfig:
        return ModelConfig("seed-cnn", hop_length=1024, window_s=659 * 1024 / 22_050, window_hop_s=15.0)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3),
            nn.ReLU(),
            nn.MaxPool2d((2, 4)),
            nn.Conv2d(16, 32, 3),
            nn.ReLU(),
            nn.MaxPool2d((2, 4)),
        )
        flat = self.features(torch.zeros(1, 1, config.n_mels, config.window_frames)).numel()
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(config.dropout),
            nn.Linear(flat, 64),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(64, len(config.genres)),
        )

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        x = (logmel / (self.config.top_db / 2) + 1).unsqueeze(1)  # (B, 1, 128, 660) in [-1, 1]
        return self.head(self.features(x))


@register(
    "ffnn",
    "the paper's feed-forward network",
    paper="69% / 45% (random split, test)",
    card=PAPER_CARD,
    training=dict(epochs=30, batch_size=32, lr=1e-3, crops_per_clip=1, mixup_alpha=0.0, patience=10),
)
class FFNN(GenreNet):
    """The paper's feed-forward baseline. The paper gives no architecture; ours: the same 128x660 log-mel as
    ``SeedCNN``, summarised per mel band by its mean and standard deviation over time (256 features,
    standardised by a batch norm), then dense 256 ReLU -> dropout -> dense 64 ReLU -> dropout -> dense 10.
    Summarising rather than flattening keeps it at 83k parameters instead of 21 M.
    """

    @staticmethod
    def default_config() -> ModelConfig:
        return replace(SeedCNN.default_config(), arch="ffnn")

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.net = nn.Sequential(
            nn.BatchNorm1d(2 * config.n_mels),
            nn.Linear(2 * config.n_mels, 256),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(256, 64),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(64, len(config.genres)),
        )

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        stats = torch.cat([logmel.mean(dim=-1), logmel.std(dim=-1)], dim=1)  # (B, 2 * n_mels)
        return self.net(stats)


def conv_block(c_in: int, c_out: int, pool: tuple[int, int]) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(pool)
    )


@register(
    "chunk-cnn",
    "our CNN, from scratch",
    training=dict(epochs=30, batch_size=32, lr=1e-3, crops_per_clip=4, mixup_alpha=0.4, patience=20),
)
class ChunkCNN(GenreNet):
    """Our from-scratch model: a compact VGG-style CNN on 3 s log-mel chunks, after the short-chunk CNN of
    Won et al., "Evaluation of CNN-based automatic music tagging models" (SMC 2020), with PANNs-style input
    batch norm per mel band (Kong et al., 2020). Trained on random 3 s crops with SpecAugment (here, only in
    ``train()`` mode) and mixup; a clip's prediction averages its windows' probabilities.
    Shapes: 128x130 -> 24x64x65 -> 48x32x32 -> 96x16x16 -> 128x8x8 -> mean over mel, max+mean over time
    -> 256 -> 10.
    """

    @staticmethod
    def default_config() -> ModelConfig:
        return ModelConfig("chunk-cnn", window_s=3.0, window_hop_s=3.0, dropout=0.3)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.input_norm = nn.BatchNorm2d(config.n_mels)  # per mel band, over batch and time
        self.spec_augment = nn.Sequential(
            torchaudio.transforms.FrequencyMasking(freq_mask_param=16, iid_masks=True),
            torchaudio.transforms.TimeMasking(time_mask_param=24, iid_masks=True),
        )
        self.blocks = nn.Sequential(
            conv_block(1, 24, (2, 2)),
            conv_block(24, 48, (2, 2)),
            conv_block(48, 96, (2, 2)),
            conv_block(96, 128, (2, 2)),
        )
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(256, len(config.genres)))

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        x = logmel.unsqueeze(1)  # (B, 1, mels, T)
        x = self.input_norm(x.transpose(1, 2)).transpose(1, 2)
        if self.training:
            x = self.spec_augment(x)
        x = self.blocks(x).mean(dim=2)  # (B, 128, T/16)
        x = torch.cat([x.amax(dim=-1), x.mean(dim=-1)], dim=1)  # (B, 256)
        return self.head(x)


MUSICNN_CARD = """The backbone's authors trained it on the Million Song Dataset's 50 most common tags (Pons & Serra,
2019, cited below); those tags come out of the same pass as the genres. On x86 CPUs the backbone's front-end
convolutions run in int8 (8-bit ranges calibrated on training clips and stored with the weights), elsewhere in float.

## Licence of the pretrained backbone

The backbone weights are the `MSD_musicnn` model of the `musicnn` package (Jordi Pons and Xavier Serra, Music
Technology Group, Universitat Pompeu Fabra), ISC licence: see `LICENSE-musicnn.md` and `NOTICE.md` beside the weights.
Cite: J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging",
ISMIR 2019 late-breaking/demo."""


@register("musicnn-genre", "pretrained musicnn + genre head", recipe="pretrained", card=MUSICNN_CARD)
class MusicnnGenre(GenreNet):
    """Genre head on the pretrained musicnn backbone (Pons & Serra, ISMIR 2019 LBD; Million Song Dataset tags,
    converted by ``train.convert_musicnn``): 3 s model windows of 96-band log-compressed mel at 16 kHz -> the backbone's
    200-d penultimate features -> dropout -> dense 10. The backbone's 50 MSD tags come out of the same pass.
    Shapes: 96x187 -> 561x187 (front end) -> 753x187 (mid end) -> 1506 (max+mean over time) -> 200 -> 10.
    """

    optional_buffers = CALIBRATION  # without the int8 calibration, the model runs in float
    PRETRAINED = MUSICNN_DIR  # the converted backbone the pretrained recipe starts from

    @staticmethod
    def default_config() -> ModelConfig:
        return ModelConfig(
            "musicnn-genre",
            sample_rate=16_000,
            n_fft=512,
            hop_length=256,
            n_mels=96,
            f_max=8_000.0,
            window_s=186 * 256 / 16_000,
            window_hop_s=186 * 256 / 16_000,
            dropout=0.3,
        )

    @staticmethod
    def make_logmel(config: ModelConfig) -> nn.Module:
        return LogCompressedMel(config.sample_rate, config.n_fft, config.hop_length, config.n_mels)

    def __init__(self, config: ModelConfig):
        super().__init__(config)
        self.backbone = MusicnnBackbone(config.n_mels)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(200, len(config.genres)))

    @property
    def tag_names(self) -> list[str]:
        return MSD_TAGS if self.config.pretrained_tags else []

    def classify(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.classify_and_tag(logmel)[0]

    def classify_and_tag(self, logmel: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        tags, penultimate = self.backbone(logmel)
        return self.head(penultimate), tags if self.tag_names else None

    def classify_front_end(self, front: torch.Tensor) -> torch.Tensor:
        """Genre logits from the backbone's front-end output (B, 561, T): fine-tuning and explanations start there."""
        return self.head(self.backbone.from_front_end(front)[1])

    def probabilities_with_gradient(self, logmel: torch.Tensor) -> tuple[torch.Tensor, GradientOf]:
        """As `GenreNet`'s, with the front end run as in inference (int8 on CPUs that have it) and its backward
        pass done sparsely by `MusicnnBackbone.input_gradient`; autograd covers the rest of the network."""
        front, saved = self.backbone.front_end_for_gradient(logmel)
        front.requires_grad_(True)
        with torch.enable_grad():
            logits = self.classify_front_end(front)

        def gradient(weights: torch.Tensor) -> torch.Tensor:
            (g_front,) = torch.autograd.grad(weighted_logits(logits, weights), front, retain_graph=True)
            return self.backbone.input_gradient(g_front, saved)

        return logits.softmax(dim=-1).detach(), gradient

    def prepare_inference(self) -> None:
        """On a CPU, with weights that carry the int8 calibration: the int8 front end (`genre_model.int8`)."""
        if self.backbone.calibrated and self.backbone.input_range.is_cpu:
            self.backbone.use_int8(True)

    def _save_pretrained(self, save_directory) -> None:
        """The backbone's weights are musicnn's (ISC licence): its notice travels with every copy."""
        super()._save_pretrained(save_directory)
        for name in ("LICENSE-musicnn.md", "NOTICE.md"):
            source = self.PRETRAINED / name
            if source.exists():
                shutil.copy(source, Path(save_directory) / name)
