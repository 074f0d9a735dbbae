import pytest

from train.metrics import format_report, summarize, wilson_interval


def test_hand_made_confusion_case():
    genres = ["a", "b", "c"]
    # truth: 4 a, 2 b, 2 c; predictions: a a a b | b b | a c
    y_true = [0, 0, 0, 0, 1, 1, 2, 2]
    y_pred = [0, 0, 0, 1, 1, 1, 0, 2]
    s = summarize(y_true, y_pred, genres)
    assert s["accuracy"] == pytest.approx(6 / 8)
    assert s["balanced_accuracy"] == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)
    assert s["confusion"] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert s["per_genre"]["a"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    assert s["per_genre"]["b"]["precision"] == pytest.approx(2 / 3)
    lo, hi = s["accuracy_ci95"]
    assert lo < 0.75 < hi
    blo, bhi = s["balanced_accuracy_ci95"]
    assert 0 <= blo <= s["balanced_accuracy"] <= bhi <= 1
    report = format_report(s, genres)
    assert "75.0%" in report and "confusion" in report


def test_wilson_interval_known_value():
    lo, hi = wilson_interval(68, 100)
    assert lo == pytest.approx(0.584, abs=0.002) and hi == pytest.approx(0.763, abs=0.002)
    assert wilson_interval(0, 0) == (0.0, 0.0)
