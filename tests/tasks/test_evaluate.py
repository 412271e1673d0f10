from tasks.comparison import slice_intervals
from tasks.evaluate import Evaluated, ModelScore, score_table
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
    table = score_table(result.scores, {"a": half, "all": half})
    assert "| a | 0.00 | 0.80 | 0.40 | 0.50 [0.25, 0.75] |" in table
    assert "| student | 81.0 | 326 | 0.50 | 0.00 | 40.0 | - |" in table
    assert "| teacher | served | served | 0.50 | 0.00 | 40.0 | - |" in table  # a served teacher has no weights here
