from tasks.comparison import (
    disagreements,
    disagreements_markdown,
    plot_slices,
    slice_intervals,
    transfer_intervals,
)


def _answer(model: str, id_: str, slice_: str, correct: bool | None, answer: str = "x") -> dict:
    return {
        "model": model,
        "id": id_,
        "slice": slice_,
        "correct": correct,
        "answer": answer,
        "prompt": f"prompt {id_} | with a pipe",
        "reference": "ref",
        "reason": None if correct is None else ("ok" if correct else "wrong_answer"),
    }


ANSWERS = [
    _answer("teacher", "1", "maths", True, "4"),
    _answer("student", "1", "maths", False, "5"),
    _answer("teacher", "2", "maths", True),
    _answer("student", "2", "maths", True),
    _answer("teacher", "3", "maths", False),
    _answer("student", "3", "maths", False),
    _answer("teacher", "4", "json", True, "{}"),
    _answer("student", "4", "json", None),  # unverifiable: not a disagreement, not scored
    _answer("teacher", "5", "json", True),
    _answer("student", "5", "json", False, "nope"),
]


def test_disagreements_are_the_teacher_right_student_wrong_prompts_only():
    rows = disagreements(ANSWERS)
    assert [(r["slice"], r["id"]) for r in rows] == [("json", "5"), ("maths", "1")]
    assert rows[1]["teacher"] == "4" and rows[1]["student"] == "5" and rows[1]["student_reason"] == "wrong_answer"
    table = disagreements_markdown(rows, per_slice=1)
    assert table.startswith("2 held-out prompts the teacher got right and the student did not (json 1, maths 1)")
    assert "prompt 1 \\| with a pipe" in table and table.count("\n| ") == 3  # header and two rows
    assert disagreements_markdown([]).startswith("No held-out prompt")


def test_scores_and_transfer_count_only_prompts_a_verifier_scored():
    student = slice_intervals(ANSWERS, "student")
    assert student["json"].value == 0.0 and round(student["maths"].value, 3) == 0.333
    assert student["all"].value == 0.25  # 1 right of the 4 scored
    transfer = transfer_intervals(ANSWERS)
    assert transfer["maths"].value == 0.5  # 1/3 over 2/3
    assert transfer["json"].value == 0.0  # on prompt 5, the one both were scored on
    assert transfer["all"].value == 1 / 3  # student 1 of 4, teacher 3 of the same 4


def test_the_slice_plot_is_a_png():
    drawn = plot_slices({m: slice_intervals(ANSWERS, m) for m in ("teacher", "student")})
    assert drawn[:8] == b"\x89PNG\r\n\x1a\n" and len(drawn) > 5000
