"""The math, json and majority-vote verifiers, on answers phrased the many ways teachers write them."""

import pytest
from pydantic import ValidationError

from tasks.verifiers import Json, Majority, Math, VerifyConfig, verdict


def _row(reference: str | None, slice_name: str = "s") -> dict:
    return {"slice": slice_name, "reference": reference}


@pytest.mark.parametrize(
    ("reference", "answer", "ok"),
    [
        ("3/4", "Adding the slices gives $\\frac{3}{4}$ of the pizza.", True),
        ("\\frac{3}{4}", "So the share is 0.75", True),
        ("0.75", "Soit 75 % du total.", True),  # French, a percentage
        ("2\\sqrt{2}", "The diagonal is \\boxed{\\sqrt{8}}", True),
        ("\\{1, 2\\}", "Die Lösungsmenge ist $\\{2, 1\\}$.", True),  # German, a set
        ("12", "El perímetro es 12 cm.", True),  # Spanish, a unit
        ("x = 2", "Solving for x gives x=2", True),
        ("42", "I first got 41, but rechecking, the answer is 42", True),  # the final expression counts
        ("42", "The answer is 41.", False),
        ("7/8", "It is 8/7.", False),
        ("Paris", "The capital is Paris", True),  # not math: the normalised reference ends the answer
        ("Paris", "Paris is not it, the capital is Lyon", False),
    ],
)
def test_math_compares_values_not_strings(reference, answer, ok):
    assert Math().verify(answer, _row(reference)).ok is ok


def test_math_says_what_was_stated():
    assert Math().verify("The answer is 41.", _row("42")).reason == "stated 41"


SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("answer", "ok", "reason"),
    [
        ('Sure! Here it is:\n```json\n{"name": "Aiko", "age": 31}\n```\nAnything else?', True, "valid JSON"),
        ('{"name": "Łukasz", "age": 40} — hope this helps', True, "valid JSON"),
        ('Voilà : {"name": "Chloé", "age": "trente"}', False, "schema: 'trente' is not of type 'integer' at age"),
        ('{"name": "Ana"}', False, "schema: 'age' is a required property at the top level"),
        ('{"name": "Ana", "age": 3, "extra": 1}', False, "schema: Additional properties are not allowed"),
        ("name: Ana, age: 3", False, "no JSON found"),
        ('{"name": "Ana", "age": 3', False, "no JSON found"),  # cut off
    ],
)
def test_json_is_found_parsed_and_validated(answer, ok, reason):
    found = Json(json_schema=SCHEMA).verify(answer, _row(None))
    assert found.ok is ok and found.reason.startswith(reason)


def test_json_keeps_the_json_alone_and_checks_a_reference_when_there_is_one():
    answer = 'Here you go: {"age": 31, "name": "Aiko"} — let me know!'
    assert Json(json_schema=SCHEMA).verify(answer, _row(None)).extracted == '{"age": 31, "name": "Aiko"}'
    assert Json().verify(answer, _row('{"name": "Aiko", "age": 31}')).ok  # the same value, keys in any order
    assert Json().verify(answer, _row('{"name": "Aiko", "age": 32}')).reason == "valid, but not the reference's value"
    assert verdict(VerifyConfig(by_slice={"s": Json()}), _row(None), answer).ok  # no reference needed


def test_a_schema_that_is_not_one_is_refused_when_the_config_is_read():
    with pytest.raises(ValidationError, match="not a valid JSON Schema"):
        VerifyConfig(by_slice={"s": {"kind": "json", "json_schema": {"type": "objekt"}}})


def test_majority_vote_marks_the_samples_that_state_the_most_common_answer():
    answers = ["17 * 3 = 51", "The product is 51.", "I get 48", "It's 51"]
    verdicts = Majority().verify_group(answers)
    assert [v.ok for v in verdicts] == [True, True, False, True]
    assert verdicts[2].reason == "against the majority 51 (3 of 4)"


def test_majority_vote_needs_a_majority_and_a_stated_answer():
    assert {v.reason for v in Majority().verify_group(["12", "13", "no idea", "14"])}.pop().startswith("no majority")
    assert [v.ok for v in Majority().verify_group(["5", "5", "6", "6"])] == [False] * 4  # a tie is no majority
    labels = Majority(votes_on="label", labels=["positive", "negative"])
    assert [v.ok for v in labels.verify_group(["Positive!", "negative", "It is positive.", "POSITIVE"])] == [
        True, False, True, True,
    ]  # fmt: skip
    assert verdict(VerifyConfig(by_slice={"s": Majority()}), _row(None), "51") is None  # one answer is no vote
