"""Selection under a budget: exactly the budget, each slice its share, the best and most diverse rows first."""

from tasks.schemas import TRAINING_ROWS, VERDICTS
from tasks.selection import SelectionConfig, diverse_best, scores, select
from tasks.stage import read_dataset, write_dataset


def _row(prompt_id: str, slice_name: str, question: str, answer: str, sample: int = 0) -> dict:
    messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
    return {"messages": messages, "prompt_id": prompt_id, "slice": slice_name, "sample_index": sample}


ROWS = [
    _row("m1", "math", "What is 7 times 8? Show the steps you took, then give the number.", "7 x 8 = 56."),
    _row("m1", "math", "What is 7 times 8? Show the steps you took, then give the number.", "54.", sample=1),
    _row("m2", "math", "What is 7 times 8?", "56."),
    _row("m3", "math", "What is 7 multiplied by 8?", "56."),  # a paraphrase of m2
    _row("m4", "math", "Divide 144 by 12 and explain how you checked the result.", "12, since 12 x 12 = 144."),
    _row("m5", "math", "Is 17 prime?", "Yes."),  # short: scored below the rest, but unlike them
    _row("c1", "chat", "Was ist die Hauptstadt von Österreich?", "Wien."),
    _row("c2", "chat", "¿Cuál es la capital de Chile?", "Santiago."),
    _row("c3", "chat", "東京は日本の首都ですか？", "はい。"),
    _row("c4", "chat", "Quelle est la capitale du Canada ?", "Ottawa."),
]
VERDICTS_ROWS = [
    {"prompt_id": "m1", "sample_index": 0, "verifier": "number", "ok": True},
    {"prompt_id": "m1", "sample_index": 1, "verifier": "number", "ok": False},
    {"prompt_id": "m2", "sample_index": 0, "verifier": "number", "ok": True},
    {"prompt_id": "m3", "sample_index": 0, "verifier": "number", "ok": True},
    {"prompt_id": "m4", "sample_index": 0, "verifier": "number", "ok": True},
    {"prompt_id": "m5", "sample_index": 0, "verifier": "number", "ok": True},
]


def _select(tmp_path, **config):
    rows = write_dataset(ROWS, tmp_path / "rows.parquet", TRAINING_ROWS)
    verdicts = write_dataset(VERDICTS_ROWS, tmp_path / "verdicts.parquet", VERDICTS)
    return select(SelectionConfig(**config), rows, verdicts, None, str(tmp_path / "out"))


def test_exactly_the_budget_each_slice_its_share_the_rest_rejected_with_a_reason(tmp_path):
    for method in ("score", "random"):
        chosen = _select(tmp_path, budget=5, method=method)
        kept, rejected = read_dataset(chosen.rows), read_dataset(chosen.rejected)
        assert len(kept) == 5 and len(kept) + len(rejected) == len(ROWS)
        assert sorted(r["slice"] for r in kept) == ["chat", "chat", "math", "math", "math"]  # 6 and 4 of 10: 3 and 2
        assert {r["reason"].split(":")[0] for r in rejected} == {"not_selected"}


def test_the_best_rows_first_and_a_paraphrase_of_one_taken_waits(tmp_path):
    kept = read_dataset(_select(tmp_path, budget=7).rows)
    math = {r["prompt_id"] for r in kept if r["slice"] == "math" and r["sample_index"] == 0}
    # 4 math rows: the long verified questions first, one of "7 times 8" and its paraphrase, then the short one
    assert len(math) == 4 and {"m1", "m4", "m5"} <= math and len(math & {"m2", "m3"}) == 1


def test_quality_counts_the_row_s_verdict_and_its_prompt_s_pass_rate():
    found = scores(ROWS[:2], VERDICTS_ROWS, [])
    assert found[0] > found[1] > 0  # the same question: the right answer scores higher, the wrong one not zero


def test_a_paraphrase_is_taken_only_when_nothing_else_is_left():
    import numpy as np

    vectors = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
    assert diverse_best([0, 1, 2], vectors, 2, threshold=0.9) == [0, 2]
    assert diverse_best([0, 1, 2], vectors, 3, threshold=0.9) == [0, 2, 1]
