from tasks.comparison import slice_intervals
from tasks.evaluate import Evaluated, ModelScore, score_table, scores_rows
from tasks.refs import DatasetRef
from tasks.stage import StageReport
from tasks.stats import Interval


def test_accuracy_by_slice_leaves_unverifiable_answers_out():
    answers = [
        {"id": "1", "model": "m", "slice": "a", "correct": True},
        {"id": "2", "model": "m", "slice": "a", "correct": False},
        {"id": "3", "model": "m", "slice": "b", "correct": True},
        {"id": "4", "model": "m", "slice": "c", "correct": None},
    ]
    assert {name: found.value for name, found in slice_intervals(answers, "m").items()} == {
        "a": 0.5,
        "all": 2 / 3,
        "b": 1.0,
    }


def _score(accuracy: dict[str, float]) -> ModelScore:
    return ModelScore(accuracy=accuracy, latency_s=0.5, tokens_per_s=40.0, params=81_000_000, size_mb=326.0)


def test_transfer_ratio_and_table():
    result = Evaluated(
        answers=DatasetRef(uri="x", rows=0, digest="d"),
        scores={
            "base": _score({"a": 0.0, "all": 0.0}),
            "teacher": _score({"a": 0.8, "all": 0.8}).model_copy(update={"params": None, "size_mb": None}),
            "student": _score({"a": 0.4, "all": 0.4}),
        },
        report=StageReport(stage="evaluate", rows_in=0, rows_out=0),
    )
    assert result.transfer_ratio() == 0.5
    half = Interval(value=0.5, low=0.25, high=0.75)
    table = score_table(result.scores, {"student": {"a": half, "all": half}})
    assert "| a | 0.00 | 0.80 | 0.40 | 0.50 [0.25, 0.75] |" in table
    assert "| student | 81.0 | 326 | 0.50 | 0.00 | 40.0 | - |" in table
    assert "| teacher | served | served | 0.50 | 0.00 | 40.0 | - |" in table  # a served teacher has no weights here


def test_students_side_by_side_each_with_its_transfer_ratio():
    scores = {
        "base": _score({"a": 0.0, "all": 0.0}),
        "teacher": _score({"a": 0.8, "all": 0.8}),
        "student": _score({"a": 0.4, "all": 0.4}),
        "student_small": _score({"a": 0.2, "all": 0.2}).model_copy(update={"params": 54_000_000}),
    }
    result = Evaluated(
        answers=DatasetRef(uri="x", rows=0, digest="d"),
        scores=scores,
        report=StageReport(stage="evaluate", rows_in=0, rows_out=0),
    )
    assert result.students == ["student", "student_small"]
    assert result.transfer_ratio(student="student_small") == 0.25
    ratio = lambda value: Interval(value=value, low=value - 0.1, high=value + 0.1)  # noqa: E731
    transfer = {"student": {"a": ratio(0.5)}, "student_small": {"a": ratio(0.25)}}
    table = score_table(scores, transfer)
    assert "| slice | base | teacher | student | student_small | transfer student | transfer student_small |" in table
    assert "| a | 0.00 | 0.80 | 0.40 | 0.20 | 0.50 [0.40, 0.60] | 0.25 [0.15, 0.35] |" in table
    assert "| student_small | 54.0 | 326 |" in table
    rows = scores_rows(scores, transfer)
    assert rows == [{"slice": "a", "base": 0.0, "teacher": 0.8, "student": 0.4, "student_small": 0.2,
                     "transfer": 0.5, "transfer_low": 0.4, "transfer_high": 0.6, "student_small.transfer": 0.25,
                     "student_small.transfer_low": 0.15, "student_small.transfer_high": 0.35}]  # fmt: skip
