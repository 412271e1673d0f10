from tasks.dedup import DedupConfig, dedup_rows
from tasks.minhash import shingles


def _row(pid: str, index: int, prompt: str, completion: str) -> dict:
    return {"prompt_id": pid, "sample_index": index, "prompt": prompt, "completion": completion}


def test_exact_and_near_duplicates_are_dropped_naming_the_row_kept():
    long_answer = "The capital of France is Paris, a large city on the Seine known for its museums and cafes"
    rows = [
        _row("p1", 0, "What is the capital of France?", long_answer),
        _row("p1", 1, "What is the capital of France?", long_answer.upper() + "!"),  # same once normalised
        _row("p1", 2, "What is the capital of France?", long_answer + " too"),  # near
        _row("p1", 3, "What is the capital of France?", "Paris."),
    ]
    kept, rejected = dedup_rows(rows, [], DedupConfig())
    assert [(r["prompt_id"], r["sample_index"]) for r in kept] == [("p1", 0), ("p1", 3)]
    assert [r["reason"] for r in rejected] == ["exact_duplicate:p1/0", "near_duplicate:p1/0"]


def test_different_questions_with_shared_boilerplate_are_kept():
    preamble = "Hi, this is <PERSON_1> (<EMAIL_ADDRESS_1>). "
    rows = [_row(f"p{a}", 0, f"{preamble}What is {a} + 4?", f"{a} + 4 = {a + 4}.") for a in range(1, 10)]
    kept, rejected = dedup_rows(rows, [], DedupConfig())
    assert len(kept) == 9 and rejected == []


def test_rows_overlapping_the_held_out_prompts_are_dropped():
    held_out = [
        "Hi, this is <PERSON_1>. What is the capital of Japan?",
        "Name the capital city of Peru, please, I need it quickly for my homework",
    ]
    rows = [
        _row("a", 0, "hi, this is <PERSON_1>: what is the capital of Japan", "Tokyo"),  # same once normalised
        _row("b", 0, "Name the capital city of Peru, please, I need it quickly for my homework today", "Lima"),  # near
        _row("c", 0, "What is the capital of Peru?", "Lima"),
    ]
    kept, rejected = dedup_rows(rows, held_out, DedupConfig())
    assert [r["prompt_id"] for r in kept] == ["c"]
    assert [r["reason"] for r in rejected] == ["eval_overlap:exact", "eval_overlap:near"]
    kept, _ = dedup_rows(rows, held_out, DedupConfig(decontaminate=False))
    assert len(kept) == 3


def test_short_texts_still_get_a_shingle():
    assert shingles("Paris", 3) == {"paris"}
