import pytest
from pydantic import ValidationError

from tasks.verifiers import Contains, Label, Number, VerifyConfig, verdict, with_labels
from tasks.verifiers.number import answer_number


@pytest.mark.parametrize(
    ("answer", "number"),
    [
        ("7", "7"),
        ("3 + 4 = 7.", "7"),
        ("The sum of 3 and 4 is 7. This is because...", "7"),
        ("2 + 4 equals 6", "6"),
        ("Adding them makes 12 in total", "12"),
        ("No idea.", None),
        ("Hi <PERSON_1>! 13", "13"),  # a redacted greeting's placeholder is no number
        ("Hallo <PERSON_2>, Bestellung B7: 42", "42"),
        ("答えは42です", "42"),  # a number right after a CJK letter is still one
        ("合计12个", "12"),
    ],
)
def test_answer_number_finds_the_stated_result(answer, number):
    assert answer_number(answer) == number


def _row(reference: str, slice_name: str = "s") -> dict:
    return {"slice": slice_name, "reference": reference}


def test_each_verifier_says_why():
    assert Contains().verify("The capital of France is paris.", _row("Paris")).ok
    assert Contains().verify("Parisian food is great", _row("Paris")).reason == "reference not named"  # whole words
    assert Contains(case_sensitive=True).verify("It is APPLE.", _row("APPLE")).ok
    assert not Contains(case_sensitive=True).verify("It is Apple.", _row("APPLE")).ok
    assert Number().verify("3 + 4 = 7", _row("7")).model_dump() == {
        "ok": True,
        "score": 1.0,
        "reason": "number matches",
        "extracted": None,
    }
    assert Number().verify("3 + 4 = 8", _row("7")).reason == "stated 8"
    assert Number().verify("no idea", _row("7")).reason == "no number stated"
    assert Number(tolerance=0.01).verify("pi is 3.14159", _row("3.14")).ok
    assert Number().verify("It is 7.", _row("seven")).reason == "reference is not a number"  # no crash
    labels = Label(labels=["negative", "positive"])
    assert labels.verify("Sentiment: Positive. Not negative at all.", _row("positive")).ok
    assert labels.verify("Negative, though some positive notes.", _row("positive")).reason == "named negative"
    assert labels.verify("Hard to say.", _row("positive")).reason == "no label named"


def test_config_is_a_union_by_kind_with_each_verifiers_own_parameters():
    config = VerifyConfig.model_validate(
        {"by_slice": {"a": "number", "b": {"kind": "contains", "case_sensitive": True}, "c": {"kind": "label"}}}
    )
    assert config.by_slice == {"a": Number(), "b": Contains(case_sensitive=True), "c": Label()}
    with pytest.raises(ValidationError, match="tolerance"):
        VerifyConfig.model_validate({"by_slice": {"a": {"kind": "contains", "tolerance": 1}}})  # not contains'
    with pytest.raises(ValidationError, match="does not match any of the expected tags"):
        VerifyConfig.model_validate({"by_slice": {"a": "regex"}})


def test_label_sets_are_filled_once_and_fixed_ones_kept():
    config = VerifyConfig(by_slice={"mood": Label(), "fixed": Label(labels=["yes", "no"]), "n": Number()})
    assert config.slices_needing_labels() == ["mood"]
    resolved = with_labels(config, {"mood": ["happy", "sad"], "fixed": ["ignored"]})
    assert resolved.by_slice["mood"].labels == ["happy", "sad"] and resolved.by_slice["fixed"].labels == ["yes", "no"]
    with pytest.raises(ValueError, match="resolve them first"):
        config.by_slice["mood"].verify("happy", _row("happy"))


def test_verdict_is_none_where_a_row_cannot_be_checked():
    config = VerifyConfig(by_slice={"math": Number()})
    assert verdict(config, _row("4", "math"), "2 + 2 = 4").ok is True
    assert verdict(config, _row("hi", "chat"), "hello") is None  # no verifier for the slice
    assert verdict(config, {"slice": "math", "reference": None}, "4") is None  # no reference
