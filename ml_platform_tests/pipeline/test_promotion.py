"""The champion gate: when a challenger replaces the champion, and the reason it gives."""

import pytest

from ml_platform.pipeline.promotion import decide_promotion, gate


@pytest.mark.parametrize(
    ("challenger", "champion", "margin", "promote", "words"),
    [
        (0.70, None, 0.01, True, ["no champion yet"]),
        (None, None, 0.01, True, ["no champion yet"]),
        (0.70, float("nan"), 0.01, True, ["no champion yet"]),
        (0.72, 0.70, 0.01, True, ["0.7200", "0.7000", "0.0100"]),
        (0.71, 0.70, 0.01, True, ["0.7100", "0.7000", "0.0100"]),  # exactly the margin
        (0.705, 0.70, 0.01, False, ["0.7050", "0.7000", "0.0100"]),
        (0.65, 0.70, 0.0, False, ["0.6500", "0.7000", "0.0000"]),
        (None, 0.70, 0.01, False, ["no score", "0.7000", "0.0100"]),
        (float("nan"), 0.70, 0.01, False, ["no score"]),
    ],
)
def test_decide_promotion(challenger, champion, margin, promote, words):
    decision, reason = decide_promotion(challenger, champion, margin)
    assert decision is promote
    for word in words:
        assert word in reason


def test_decide_promotion_rejects_a_bad_margin():
    with pytest.raises(ValueError):
        decide_promotion(0.7, 0.6, float("nan"))


@pytest.mark.parametrize(
    ("kwargs", "promote", "reason"),
    [
        ({"training_set_passed": False}, False, "training set did not pass its checks"),
        ({"champion_version": 3}, False, "version 3 is already champion"),
        ({"champion_version": None, "champion_score": 0.9}, True, "no champion yet"),
        ({"champion_version": 2, "champion_score": 0.70, "challenger_score": 0.71}, True, "0.7100 >= champion 0.7000"),
        ({"champion_version": 2, "champion_score": 0.70, "challenger_score": 0.702}, False, "0.7020 < champion 0.7000"),
    ],
)
def test_the_gate_checks_the_training_set_then_the_versions_then_the_scores(kwargs, promote, reason):
    args = {
        "challenger_version": 3,
        "champion_version": 2,
        "challenger_score": 0.8,
        "champion_score": 0.7,
        "training_set_passed": True,
        **kwargs,
    }
    decision = gate(**args)
    assert decision.promote is promote
    assert reason in decision.reason
