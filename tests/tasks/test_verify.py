import pytest

from tasks.verify import VerifyConfig, answer_number, is_correct, slice_labels, verdict


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("7", "7"),
        ("3 + 4 = 7.", "7"),
        ("The sum of 3 and 4 is 7. This is because...", "7"),
        ("2 + 4 equals 6", "6"),
        ("Adding them makes 12 in total", "12"),
        ("No idea.", None),
    ],
)
def test_answer_number_finds_the_stated_result(answer, number):
    assert answer_number(answer) == number


def test_methods():
    assert is_correct("contains", "The capital of France is paris.", "Paris")
    assert not is_correct("contains", "Parisian food is great", "Paris")  # whole words only
    assert is_correct("contains_case", "It is APPLE.", "APPLE")
    assert not is_correct("contains_case", "It is Apple.", "APPLE")
    assert is_correct("number", "3 + 4 = 7", "7") and not is_correct("number", "3 + 4 = 8", "7")
    labels = ["negative", "positive"]
    assert is_correct("label", "Sentiment: Positive. Not negative at all.", "positive", labels)
    assert not is_correct("label", "Negative, though some positive notes.", "positive", labels)
    assert not is_correct("label", "Hard to say.", "positive", labels)


def test_verdict_is_none_where_a_row_cannot_be_checked():
    config = VerifyConfig(by_slice={"math": "number"})
    assert verdict(config, {"slice": "math", "reference": "4"}, "2 + 2 = 4", {}) is True
    assert verdict(config, {"slice": "chat", "reference": "hi"}, "hello", {}) is None  # no verifier for the slice
    assert verdict(config, {"slice": "math", "reference": None}, "4", {}) is None  # no reference
    rows = [{"slice": "s", "reference": "b"}, {"slice": "s", "reference": "a"}, {"slice": "s", "reference": "b"}]
    assert slice_labels(rows) == {"s": ["a", "b"]}
