import json

import pytest

from tasks.pii import RedactConfig, Redactor
from tasks.redact import redact
from tasks.schemas import PROMPTS, QUARANTINE
from tasks.stage import read_dataset, write_dataset


@pytest.fixture(scope="module")
def redactor():
    return Redactor(RedactConfig(workers=1))


def test_no_planted_pii_survives_and_the_task_is_intact(demo_log, redactor):
    _, traffic = demo_log
    rows = [json.loads(line) for n, line in enumerate(traffic.lines, 1) if n not in traffic.malformed_lines]
    redacted = redactor.redact([r["prompt"] for r in rows])
    text = "\n".join(t for t, _ in redacted)
    assert [p for p in traffic.pii if p in text] == []
    # over-redaction check: the question (what the verifier's reference is derived from) is untouched
    damaged = [r["id"] for r, (t, _) in zip(rows, redacted, strict=True) if traffic.questions[r["id"]] not in t]
    assert damaged == []


def test_stage_redacts_prompts_and_logs_the_quarantine_without_content(tmp_path):
    prompts = write_dataset(
        [
            {
                "id": "1",
                "timestamp": None,
                "slice": "s",
                "prompt": "I'm John Smith. What is 2 + 2?",
                "reference": "4",
            }
        ],
        tmp_path / "p.parquet",
        PROMPTS,
    )
    quarantine = write_dataset(
        [{"row": 7, "field": None, "reason": "row 7: not valid JSON", "raw": '{"prompt": "mail me at jo@mail.org'}],
        tmp_path / "q.parquet",
        QUARANTINE,
    )
    held_out = write_dataset(
        [{"id": "2", "timestamp": None, "slice": "s", "prompt": "Mail kim@corp.io: 3 + 3?", "reference": "6"}],
        tmp_path / "e.parquet",
        PROMPTS,
    )
    result = redact(RedactConfig(), prompts, held_out, quarantine, str(tmp_path / "out"))
    [held] = read_dataset(result.eval_prompts)
    assert held["prompt"] == "Mail <EMAIL_ADDRESS_1>: 3 + 3?"
    [row] = read_dataset(result.train_prompts)
    assert row["prompt"] == "I'm <PERSON_1>. What is 2 + 2?" and row["pii"] == ["PERSON"]
    [bad] = read_dataset(result.quarantine)
    assert bad == {"row": 7, "field": None, "reason": "row 7: not valid JSON", "raw": None}  # no content logged
    assert result.report.metrics["entities.EMAIL_ADDRESS"] == 1


def test_a_chat_row_is_redacted_turn_by_turn_with_one_numbering(tmp_path):
    turns = [
        {"role": "system", "content": "You are the support desk."},
        {"role": "user", "content": "Hi, I'm Aiko Tanaka (aiko@example.jp)."},
        {"role": "assistant", "content": "Hello Aiko Tanaka, how can I help?"},
        {"role": "user", "content": "Please cc Dr. Ingrid Solberg on my ticket."},
    ]
    row = {"id": "1", "timestamp": None, "slice": "support", "prompt": "ignored", "reference": None, "messages": turns}
    prompts = write_dataset([row], tmp_path / "p.parquet", PROMPTS)
    empty = write_dataset([], tmp_path / "e.parquet", PROMPTS)
    quarantine = write_dataset([], tmp_path / "q.parquet", QUARANTINE)
    [out] = read_dataset(redact(RedactConfig(workers=1), prompts, empty, quarantine, str(tmp_path / "o")).train_prompts)
    assert [m["content"] for m in out["messages"]] == [
        "You are the support desk.",
        "Hi, I'm <PERSON_1> (<EMAIL_ADDRESS_1>).",
        "Hello <PERSON_1>, how can I help?",
        "Please cc Dr. <PERSON_2> on my ticket.",
    ]
    assert out["prompt"].startswith("system: You are the support desk.\nuser: Hi, I'm <PERSON_1>")
    assert out["pii"] == ["EMAIL_ADDRESS", "PERSON"]


def test_references_are_task_content_unless_their_slice_holds_pii(tmp_path):
    """'Which email did the customer give?' -> the reference is PII, redacted with the prompt (one numbering, so
    the verifier compares placeholders); 'Who wrote Hamlet?' -> 'William Shakespeare' is the task, and stays."""
    rows = [
        {"id": "1", "timestamp": None, "slice": "extract", "prompt": "Mail me at jo@mail.org. Which email did I give?",
         "reference": "jo@mail.org", "messages": None},
        {"id": "2", "timestamp": None, "slice": "facts", "prompt": "Who wrote Hamlet?",
         "reference": "William Shakespeare", "messages": None},
    ]  # fmt: skip
    prompts = write_dataset(rows, tmp_path / "p.parquet", PROMPTS)
    empty, quarantine = (
        write_dataset([], tmp_path / "e.parquet", PROMPTS),
        write_dataset([], tmp_path / "q", QUARANTINE),
    )
    config = RedactConfig(workers=1, reference_slices=["extract"])
    extract, facts = read_dataset(redact(config, prompts, empty, quarantine, str(tmp_path / "o")).train_prompts)
    assert extract["prompt"] == "Mail me at <EMAIL_ADDRESS_1>. Which email did I give?"
    assert extract["reference"] == "<EMAIL_ADDRESS_1>"
    assert facts["reference"] == "William Shakespeare"
