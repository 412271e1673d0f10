import pytest

from tasks.schemas import PROMPTS
from tasks.stage import StageReport, content_key, count_reasons, normalize_text, partition, read_dataset, write_dataset


def test_partition_keeps_every_row_somewhere_with_a_reason():
    rows = [{"n": n} for n in range(6)]
    kept, rejected = partition(rows, lambda r: None if r["n"] % 3 else f"multiple_of_3:{r['n']}")
    assert [r["n"] for r in kept] == [1, 2, 4, 5]
    assert rejected == [{"n": 0, "reason": "multiple_of_3:0"}, {"n": 3, "reason": "multiple_of_3:3"}]
    assert count_reasons(rejected) == {"multiple_of_3": 2}


def test_report_markdown_shows_counts_and_reasons():
    text = StageReport(
        stage="filter", rows_in=10, rows_out=7, dropped={"empty": 1, "refusal": 2}, metrics={"x": 0.5}
    ).markdown()
    assert "| 10 | 7 | 3 |" in text and "| refusal | 2 |" in text and "| x | 0.5 |" in text


def test_a_dataset_changed_after_writing_is_refused(tmp_path):
    ref = write_dataset([], tmp_path / "p.parquet", PROMPTS)
    assert read_dataset(ref) == [] and ref.rows == 0
    (tmp_path / "p.parquet").write_bytes(b"changed")
    with pytest.raises(FileNotFoundError, match="changed since it was written"):
        read_dataset(ref)


def test_content_key_and_normalisation():
    assert content_key({"a": 1}, "x") == content_key({"a": 1}, "x") != content_key({"a": 2}, "x")
    assert normalize_text("  What is 3 + 4?  ") == normalize_text("what is 3 + 4") != normalize_text("What is 3 - 4?")


def test_a_stage_cache_key_covers_the_project_modules_it_uses():
    import tasks.filter
    from tasks.stage import _project_modules

    seen = {}
    _project_modules(tasks.filter, seen)
    # an edit to the verifiers or to a dataset schema must invalidate the filter stage's cache
    assert {"tasks.filter", "tasks.verify", "tasks.schemas", "tasks.stage"} <= set(seen)
    assert "tasks.train" not in seen  # nor is the cache shared with unrelated stages
