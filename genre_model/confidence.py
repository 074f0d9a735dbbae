"""The confidence rule: what a model may say about its probabilities, in words that hold.

Four answers, decided by the top probability (and, below, the top two together), with thresholds measured on clips
the model never trained on (`calibrate`; ``python -m train.calibrate`` stores them in the model's config.json):

- "Clearly X": the top probability is at least ``clear_at``, above which the model was right `CLEAR` of the time;
- "Probably X": at least ``probable_at``: these answers alone were right `PROBABLE` of the time, and every answer
  naming one genre (clearly or probably) `NAMED`;
- "Not sure: A or B?": the top two together reach ``pair_at``, above which the truth was one of the two `PAIR` of the
  time (among the clips not named);
- "Can't tell": nothing above holds. A model without a measured rule never says more than "Not sure: A or B?".

Every verdict's reason says how often such an answer was right where it was measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

CLEAR, PROBABLE, NAMED, PAIR = 0.9, 0.7, 0.8, 0.8  # how often each answer must have been right
MIN_CLIPS = 10  # fewer measured clips above a threshold than this: the threshold is not trusted
NEVER = 1.01  # a threshold no probability reaches


@dataclass(frozen=True)
class ConfidenceRule:
    """Thresholds and what they were measured on: ``right`` is, per answer, [right, clips] on the calibration
    clips (for "pair": the truth among the two)."""

    clear_at: float = NEVER
    probable_at: float = NEVER
    pair_at: float = 0.0
    right: dict[str, list[int]] | None = None
    measured_on: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> ConfidenceRule:
        return cls(**values) if values else cls()


@dataclass(frozen=True)
class Verdict:
    answer: str  # "clear", "probable", "pair" or "unknown"
    headline: str  # what the page shows big
    reason: str  # one plain sentence: the numbers, and how often such an answer was right
    genres: tuple[str, ...]  # the genres named: one, two, or none

    @property
    def sure(self) -> bool:
        """Whether it names one genre."""
        return self.answer in ("clear", "probable")

    @property
    def sentence(self) -> str:
        """Headline and reason as one line of text."""
        return f"{self.headline}{'' if self.headline.endswith('?') else '.'} {self.reason}"

    def to_dict(self) -> dict:
        """The verdict as the CLI's JSON and the API give it."""
        return {"headline": self.headline, "reason": self.reason, "answer": self.answer, "sure": self.sure}


def answer(p1: float, p2: float, rule: ConfidenceRule) -> str:
    """The answer for a top probability ``p1`` and a runner-up ``p2``."""
    if p1 >= rule.clear_at:
        return "clear"
    if p1 >= rule.probable_at:
        return "probable"
    return "pair" if p1 + p2 >= rule.pair_at else "unknown"


def _how_often(rule: ConfidenceRule, kind: str) -> str:
    right, clips = (rule.right or {}).get(kind, (0, 0))
    if not clips:
        return "how often this is right was not measured for this model."
    return f"answers like this were right {right} times in {clips} ({rule.measured_on})."


def verdict(probabilities: dict[str, float], rule: ConfidenceRule, can_be_clear: bool = True) -> Verdict:
    """What to tell a class about ``probabilities`` by ``rule``; ``can_be_clear=False`` (too little heard yet): at
    most "probably"."""
    (g1, p1), (g2, p2) = sorted(probabilities.items(), key=lambda kv: -kv[1])[:2]
    kind = answer(p1, p2, rule)
    if kind == "clear" and not can_be_clear:
        kind = "probable"
    numbers = f"{g1} {p1:.0%}, {g2} {p2:.0%}"
    if kind == "unknown":
        return Verdict(kind, "Can't tell", f"No genre stands out ({numbers}).", ())
    headline = {"clear": f"Clearly {g1}", "probable": f"Probably {g1}", "pair": f"Not sure: {g1} or {g2}?"}[kind]
    return Verdict(kind, headline, f"{numbers}: {_how_often(rule, kind)}", (g1, g2) if kind == "pair" else (g1,))


def _lowest_threshold(scores: np.ndarray, right: np.ndarray, target: float) -> float:
    """The lowest score t such that the clips scoring at least t were right at least ``target`` of the time (and
    there are `MIN_CLIPS` of them), else `NEVER`."""
    order = np.argsort(-scores)
    hits = np.cumsum(right[order])
    counts = np.arange(1, len(order) + 1)
    ok = (hits >= target * counts) & (counts >= MIN_CLIPS)
    ok[:-1] &= scores[order][:-1] != scores[order][1:]  # a threshold takes every clip tied at it
    return float(scores[order][np.flatnonzero(ok)[-1]]) if ok.any() else NEVER


def _top_two_hits(labels: np.ndarray, probabilities: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per clip: the top probability, the runner-up's, whether the top genre is right, whether either is."""
    labels, probabilities = np.asarray(labels), np.asarray(probabilities, dtype=np.float64)
    order = np.argsort(-probabilities, axis=1)
    p1 = np.take_along_axis(probabilities, order[:, :1], 1)[:, 0]
    p2 = np.take_along_axis(probabilities, order[:, 1:2], 1)[:, 0]
    right = order[:, 0] == labels
    return p1, p2, right, right | (order[:, 1] == labels)


def tally(rule: ConfidenceRule, labels: np.ndarray, probabilities: np.ndarray) -> dict[str, list[int]]:
    """Per answer, [right, clips] of these predictions by ``rule`` ("pair": the truth one of the two; "unknown":
    never right, for it names nothing)."""
    p1, p2, right, in_two = _top_two_hits(labels, probabilities)
    kinds = np.array([answer(a, b, rule) for a, b in zip(p1, p2)])
    hits = {"clear": right, "probable": right, "pair": in_two, "unknown": np.zeros_like(right)}
    return {k: [int(hit[kinds == k].sum()), int((kinds == k).sum())] for k, hit in hits.items()}


def calibrate(labels: np.ndarray, probabilities: np.ndarray, measured_on: str) -> ConfidenceRule:
    """The rule for a model from its predictions on clips it never trained on: ``labels`` (clips,) genre indices,
    ``probabilities`` (clips, genres)."""
    p1, p2, right, in_two = _top_two_hits(labels, probabilities)
    clear_at = _lowest_threshold(p1, right, CLEAR)
    below = p1 < clear_at
    alone = _lowest_threshold(p1[below], right[below], PROBABLE) if below.any() else NEVER
    probable_at = min(max(_lowest_threshold(p1, right, NAMED), alone), clear_at)
    rest = p1 < probable_at
    pair_at = _lowest_threshold((p1 + p2)[rest], in_two[rest], PAIR) if rest.any() else NEVER
    rule = ConfidenceRule(clear_at, probable_at, pair_at, measured_on=measured_on)
    counts = tally(rule, labels, probabilities)
    return replace(rule, right={k: counts[k] for k in ("clear", "probable", "pair")})
