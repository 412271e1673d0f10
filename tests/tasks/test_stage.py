import pytest

from tasks.cache import content_key
from tasks.schemas import PROMPTS
from tasks.stage import StageReport, count_reasons, normalize_text, partition, read_dataset, write_dataset


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


@pytest.mark.parametrize("root", ["local", "file", "memory"])
def test_datasets_by_uri_and_a_changed_one_is_refused(root, tmp_path):
    base = {"local": str(tmp_path), "file": tmp_path.as_uri(), "memory": f"memory://{tmp_path.name}"}[root]
    row = {
        "id": "1",
        "timestamp": None,
        "slice": "s",
        "prompt": "What is 2 + 2?",
        "reference": "4",
        "messages": None,
        "origin": "traffic",
        "response": None,
        "parent": None,
        "operation": None,
    }
    rows = [row]
    ref = write_dataset(rows, f"{base}/stage/key/p.parquet", PROMPTS)
    assert ref.uri.startswith(base) and ref.rows == 1
    assert read_dataset(ref) == rows
    again = write_dataset(rows, f"{base}/elsewhere/p.parquet", PROMPTS)
    assert again.digest == ref.digest  # identity is content, not place
    write_dataset([], ref.uri, PROMPTS)
    with pytest.raises(FileNotFoundError, match="changed since it was written"):
        read_dataset(ref)


def test_content_key_and_normalisation():
    assert content_key({"a": 1}, "x") == content_key({"a": 1}, "x") != content_key({"a": 2}, "x")
    assert normalize_text("  What is 3 + 4?  ") == normalize_text("what is 3 + 4") != normalize_text("What is 3 - 4?")
