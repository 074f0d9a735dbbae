import numpy as np
import pytest

from genre_model.confidence import CLEAR, NAMED, PAIR, PROBABLE, ConfidenceRule, answer, calibrate, verdict

GENRES = ["blues", "classical", "country", "disco"]


def probs(*top: float) -> dict[str, float]:
    rest = (1 - sum(top)) / (len(GENRES) - len(top))
    return dict(zip(GENRES, [*top] + [rest] * (len(GENRES) - len(top))))


def predictions(n: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A model right with probability p1 (its top probability): calibrated by construction; when wrong, the truth is
    its runner-up half the time."""
    rng = np.random.default_rng(seed)
    p1 = rng.uniform(0.26, 0.98, n)
    p2 = (1 - p1) * rng.uniform(0.34, 0.9, n)
    rows = np.stack([p1, p2, (1 - p1 - p2) / 2, (1 - p1 - p2) / 2], axis=1)
    roll = rng.uniform(size=n)
    labels = np.where(roll < p1, 0, np.where(roll < p1 + (1 - p1) / 2, 1, 2 + (roll > 0.5 + p1 / 2)))
    shuffle = np.argsort(rng.uniform(size=(n, 4)), axis=1)  # genres in any order
    return np.take_along_axis(shuffle, labels[:, None], 1)[:, 0], np.take_along_axis(rows, np.argsort(shuffle), 1)


def test_calibrated_thresholds_hold_their_promises_and_are_the_lowest_that_do():
    labels, p = predictions()
    rule = calibrate(labels, p, "test clips")
    top = p.max(axis=1)
    right = p.argmax(axis=1) == labels
    assert 0.26 < rule.probable_at < rule.clear_at < 0.98
    assert right[top >= rule.clear_at].mean() >= CLEAR and right[top >= rule.probable_at].mean() >= NAMED
    assert right[(top >= rule.probable_at) & (top < rule.clear_at)].mean() >= PROBABLE  # "probably" alone
    below = top[top < rule.clear_at].max()  # one clip more and "clearly" would no longer hold
    assert right[top >= below].mean() < CLEAR
    assert rule.right["clear"] == [int(right[top >= rule.clear_at].sum()), int((top >= rule.clear_at).sum())]
    hit, clips = rule.right["pair"]
    assert clips > 0 and hit / clips >= PAIR
    assert sum(n for _, n in rule.right.values()) <= len(labels)  # "can't tell" holds the rest


def test_a_model_that_is_never_reliable_never_names_a_genre():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), 500)
    rule = calibrate(rng.integers(0, 4, 500), p, "coin flips")  # labels unrelated to the probabilities
    assert {answer(*sorted(row)[::-1][:2], rule) for row in p} <= {"pair", "unknown"}
    assert rule.clear_at > 1 and rule.probable_at > 1


def test_verdict_words_and_reasons():
    rule = ConfidenceRule(0.8, 0.6, 0.7, {"clear": [45, 50], "probable": [30, 40], "pair": [20, 25]}, "test clips")
    clear = verdict(probs(0.85, 0.05), rule)
    assert (clear.answer, clear.headline, clear.genres, clear.sure) == ("clear", "Clearly blues", ("blues",), True)
    assert "45 times in 50 (test clips)" in clear.reason and "blues 85%" in clear.reason
    assert verdict(probs(0.65, 0.2), rule).headline == "Probably blues"
    pair = verdict(probs(0.45, 0.3), rule)
    assert (pair.headline, pair.sure, pair.genres) == ("Not sure: blues or classical?", False, ("blues", "classical"))
    assert pair.sentence.startswith("Not sure: blues or classical? blues 45%")
    assert verdict(probs(0.4, 0.25), rule).headline == "Can't tell"
    early = verdict(probs(0.85, 0.05), rule, can_be_clear=False)  # too little heard: at most "probably"
    assert early.headline == "Probably blues" and "30 times in 40" in early.reason
    assert verdict(probs(0.99), ConfidenceRule()).answer == "pair"  # no measured rule: never names a genre


@pytest.mark.parametrize("rule", [ConfidenceRule(), calibrate(*predictions(300), "x")])
def test_the_rule_survives_config_json(rule):
    import json

    assert ConfidenceRule.from_dict(json.loads(json.dumps(rule.to_dict()))) == rule
