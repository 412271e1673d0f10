import math

from tasks.fallback import confidence, fallback_curve, plot
from tasks.gate import fallback_tags


def _answers(pairs: list[tuple[float | None, bool | None]]) -> list[dict]:
    rows = [{"model": "student", "confidence": c, "correct": ok} for c, ok in pairs]
    return rows + [{"model": "teacher", "confidence": None, "correct": True}]


# the student's confident answers are mostly right, its unsure ones mostly wrong
ANSWERS = _answers(
    [
        (-0.05, True),
        (-0.1, True),
        (-0.2, True),
        (-0.3, True),
        (-0.4, False),
        (-0.9, True),
        (-1.2, False),
        (-1.5, False),
        (-2.0, False),
        (-2.5, False),
        (-0.6, None),
        (None, True),
    ]  # fmt: skip
)


def test_the_threshold_is_the_lowest_that_keeps_the_student_at_the_target():
    found = fallback_curve(ANSWERS, target=0.8)
    # at -0.9: 6 kept, 5 right (0.83); at -1.2: 7 kept, 5 right (0.71)
    assert found.chosen.threshold == -0.9 and found.chosen.fallback_share == 0.4
    assert round(found.chosen.student_accuracy, 3) == round(5 / 6, 3)
    first = found.points[0]
    assert (first.threshold, first.fallback_share, first.student_accuracy) == (-2.5, 0.0, 0.5)  # nothing falls back
    assert len(found.points) == 10  # the unscored answer and the one without a confidence are left out
    assert "40% of traffic" in found.summary() and "0.83 right on the rest" in found.summary()


def test_a_target_nothing_reaches_sends_everything_to_the_teacher():
    found = fallback_curve(_answers([(-0.1, False), (-0.2, True)]), target=0.9)
    assert found.chosen is None and "all to the teacher" in found.summary()
    assert math.isinf(float(fallback_tags(found)["fallback.threshold"]))  # every confidence is below it
    assert fallback_curve([], target=0.9).summary().startswith("fallback: no scored student answer")


def test_the_serving_side_gets_the_threshold_as_version_tags():
    tags = fallback_tags(fallback_curve(ANSWERS, target=0.8))
    assert tags["fallback.threshold"] == "-0.9" and tags["fallback.share"] == "0.400"


def test_confidence_is_the_mean_token_log_probability():
    assert confidence([-0.5, -1.5]) == -1.0 and confidence([]) is None and confidence(None) is None


def test_the_fallback_plot_is_a_png():
    assert plot(fallback_curve(ANSWERS, target=0.8))[:4] == b"\x89PNG"
