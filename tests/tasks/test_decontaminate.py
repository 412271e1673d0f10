"""Decontamination: training prompts overlapping an evaluation set are dropped before the teacher sees them."""

import json

from tasks.decontaminate import DecontaminateConfig, decontaminate
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import read_dataset, render_turns, write_dataset


def _prompts(path, texts: list[str | list[dict]]):
    """Plain prompts, or chat conversations (a list of turns)."""
    rows = [
        {"id": f"r{i}", "timestamp": None, "slice": "s", "pii": []}
        | ({"prompt": render_turns(t), "messages": t} if isinstance(t, list) else {"prompt": t})
        for i, t in enumerate(texts)
    ]
    return write_dataset(rows, path, REDACTED_PROMPTS)


def _chat(question: str) -> list[dict]:
    system = "You are the support assistant of Acme Home. Answer briefly, politely and only about our products."
    return [{"role": "system", "content": system}, {"role": "user", "content": question}]


HELD_OUT = [
    "Hi, this is <PERSON_1>. What is the capital of Japan?",
    "Résume en une phrase : le conseil municipal a voté hier le budget de la nouvelle médiathèque du quartier nord",
    "Wie viel ist 17 mal 23?",
]


def test_each_check_drops_what_it_should_and_names_set_check_and_row(tmp_path):
    train = [
        "hi, this is <PERSON_1>: what is the capital of Japan",  # the same once normalised
        "Bitte: le conseil municipal a voté hier le budget de la nouvelle médiathèque du quartier nord, merci",  # 13+
        "Kurze Frage: wie viel ist 17 mal 23? Danke!",  # contains a whole evaluation prompt shorter than 13 words
        "What is the capital of Peru?",
        "Résume en une phrase : le conseil a voté le budget",  # shares fewer than 13 words in a row
    ]
    result = decontaminate(
        DecontaminateConfig(), _prompts(tmp_path / "t.parquet", train), _prompts(tmp_path / "h.parquet", HELD_OUT),
        str(tmp_path / "out"),
    )  # fmt: skip
    assert [r["prompt"] for r in read_dataset(result.train_prompts)] == train[3:]
    assert [r["reason"] for r in read_dataset(result.rejected)] == [
        "eval_overlap.held_out: exact of its row 1",
        "eval_overlap.held_out: 13-gram of its row 2",
        "eval_overlap.held_out: 6-gram of its row 3",
    ]
    assert result.report.dropped == {"eval_overlap.held_out": 3}


def test_a_near_copy_without_a_long_shared_span_is_caught_by_similarity(tmp_path):
    words = ("the committee reviewed every proposal submitted this spring and ranked them by cost impact and "
             "risk before the final vote").split()  # fmt: skip
    held_out = " ".join(words * 3)  # 60 words
    near = " ".join(words * 3).replace("final vote the committee", "final vote our committee", 1)  # word 21 of 60
    result = decontaminate(
        DecontaminateConfig(ngram_words=50), _prompts(tmp_path / "t.parquet", [near, "an unrelated question"]),
        _prompts(tmp_path / "h.parquet", [held_out]), str(tmp_path / "out"),
    )  # fmt: skip
    assert [r["reason"] for r in read_dataset(result.rejected)] == ["eval_overlap.held_out: near of its row 1"]


def test_extra_eval_sets_in_any_format_are_counted_per_set(tmp_path):
    chat = tmp_path / "chat-eval.jsonl"
    chat.write_text(
        json.dumps({"messages": [{"role": "user", "content": "Translate to Spanish: the library opens at nine"}]})
        + "\n" + json.dumps({"text": "a row with no prompt"}) + "\n\n"
        + json.dumps({"prompt": "How many legs does a spider have?"}) + "\n"
    )  # fmt: skip
    csv = tmp_path / "qa.csv"
    csv.write_text('prompt,answer\n"¿Cuál es la capital de Chile?",Santiago\n')
    train = [
        _chat("Translate to Spanish: the library opens at nine"),  # the user turn is what counts
        "¿Cuál es la capital de Chile?",
        "How many legs does a spider have?",
        "How many legs does an ant have?",
    ]
    config = DecontaminateConfig(eval_sets={"chat": str(chat), "qa": str(csv)})
    result = decontaminate(
        config, _prompts(tmp_path / "t.parquet", train), _prompts(tmp_path / "h.parquet", HELD_OUT),
        str(tmp_path / "out"),
    )  # fmt: skip
    assert [r["prompt"] for r in read_dataset(result.train_prompts)] == ["How many legs does an ant have?"]
    assert result.report.dropped == {"eval_overlap.chat": 2, "eval_overlap.qa": 1}
    assert result.report.metrics["unreadable_eval_rows.chat"] == 1  # counted, not guessed
    assert result.report.metrics["eval_prompts.chat"] == 2 and result.report.metrics["eval_prompts.held_out"] == 3


def test_a_shared_system_prompt_or_template_is_not_a_leak_but_an_embedded_item_is(tmp_path):
    template = "Classify the sentiment of this review as positive or negative: The office chair "
    held_out = [_chat("Where is my order 4411?"), template + "broke after two days and the seller never replied."]
    train = [_chat(f"Can I return item {n}?") for n in range(3)]  # the same 17-word system prompt as the held-out
    train += [template + ending for ending in ("is comfortable.", "est confortable.", "ist bequem.", "is great.",
                                              "arrived late.", "squeaks.")]  # fmt: skip
    leaked = "Before you answer, note: " + template + "broke after two days and the seller never replied. Thanks!"
    result = decontaminate(
        DecontaminateConfig(), _prompts(tmp_path / "t.parquet", [*train, leaked]),
        _prompts(tmp_path / "h.parquet", held_out), str(tmp_path / "out"),
    )  # fmt: skip
    assert read_dataset(result.train_prompts) and len(read_dataset(result.train_prompts)) == len(train)
    assert [r["reason"] for r in read_dataset(result.rejected)] == ["eval_overlap.held_out: 13-gram of its row 2"]


def test_a_set_whose_prompt_column_is_named_otherwise_is_read_by_that_name_or_refused(tmp_path):
    import pytest

    gsm = tmp_path / "gsm.jsonl"
    gsm.write_text(json.dumps({"question": "Natalia sold clips to 48 of her friends in April", "answer": "72"}) + "\n")
    train = _prompts(tmp_path / "t.parquet", ["Natalia sold clips to 48 of her friends in April. How many?"])
    held = _prompts(tmp_path / "h.parquet", ["Kubernetes?"])  # one word: checked whole, not as a span
    with pytest.raises(ValueError, match="eval_sets.gsm: none of its 1 rows has a 'prompt' or 'messages' column"):
        decontaminate(DecontaminateConfig(eval_sets={"gsm": str(gsm)}), train, held, str(tmp_path / "a"))
    named = DecontaminateConfig(eval_sets={"gsm": {"path": str(gsm), "prompt_column": "question"}})
    result = decontaminate(named, train, held, str(tmp_path / "b"))
    assert result.report.dropped == {"eval_overlap.gsm": 1}
    short = decontaminate(DecontaminateConfig(), _prompts(tmp_path / "k.parquet", ["Is Kubernetes hard?"]), held,
                          str(tmp_path / "c"))  # fmt: skip
    assert short.report.dropped == {}
