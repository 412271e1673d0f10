"""The shadow report: each student against production's own answers on fresh held-out traffic."""

import pytest

from tasks.comparison import judged
from tasks.pii import RedactConfig
from tasks.redact import redact
from tasks.schemas import PROMPTS, QUARANTINE
from tasks.shadow import PRODUCTION, agreement, rouge_l, shadow, shadow_markdown
from tasks.stage import read_dataset, write_dataset
from tasks.verifiers import Contains, Label, VerifyConfig


@pytest.mark.parametrize(
    ("ours", "theirs", "same"),
    [
        ("Der Termin ist am Montag um zehn Uhr.", "Ihr Termin ist am Montag um zehn Uhr.", True),
        ("Der Termin ist am Montag.", "Leider haben wir keinen freien Termin.", False),
        ("東京は日本の首都です。", "日本の首都は東京です。", True),  # no spaces: scored by character
        ("東京は日本の首都です。", "大阪に行きましょう。", False),
        ("Столица России — Москва.", "Москва — столица России.", True),  # rouge-score's own tokenizer keeps nothing
        ("Столица России — Москва.", "Я не знаю.", False),
        ("Votre colis arrive mardi.", "VOTRE COLIS ARRIVE MARDI !", True),  # case and punctuation do not count
    ],
)
def test_rouge_l_reads_every_script(ours, theirs, same):
    assert (rouge_l(ours, theirs) >= 0.5) is same
    assert rouge_l(ours, theirs) == pytest.approx(rouge_l(theirs, ours))


def _answer(model: str, row_id: str, answer: str, correct: bool | None, slice_name: str = "s") -> dict:
    return {"id": row_id, "slice": slice_name, "prompt": "p", "reference": None, "model": model, "answer": answer,
            "correct": correct}  # fmt: skip


def test_a_verifier_decides_before_the_wording_does():
    right, also_right = _answer("student", "1", "Paris.", True), _answer(PRODUCTION, "1", "The capital is Paris.", True)
    assert agreement(right, also_right, 0.5) == (True, "both right")  # ROUGE-L 0.4 would have said no
    wrong = _answer(PRODUCTION, "1", "The capital is Lyon.", False)
    assert agreement(_answer("student", "1", "The capital is Paris.", True), wrong, 0.5) == (
        False,
        "student right, production wrong",
    )  # ROUGE-L 0.75 would have said yes
    # two mistakes agree only when they are the same mistake, however alike they read
    lyon, marseille = (
        _answer("student", "1", "The capital is Lyon.", False),
        _answer(PRODUCTION, "1", "The capital is Marseille.", False),
    )
    assert agreement(lyon, marseille, 0.5) == (False, "both wrong, different answers")
    assert agreement(lyon, {**lyon, "model": PRODUCTION, "answer": "the capital is LYON"}, 0.5)[0]
    unverified = _answer(PRODUCTION, "1", "The capital is Paris.", None)
    assert agreement(_answer("student", "1", "The capital is Paris.", None), unverified, 0.5)[0]
    assert not agreement(_answer("student", "1", "I cannot help with that.", None), unverified, 0.5)[0]


def test_agreement_per_slice_production_scored_and_the_disagreements_listed():
    verify = VerifyConfig(by_slice={"capitals": Contains(), "sentiment": Label(labels=["positive", "negative"])})
    rows = [
        {"id": "c1", "slice": "capitals", "prompt": "Capital of France?", "reference": "Paris"},
        {"id": "c2", "slice": "capitals", "prompt": "Capital of Peru?", "reference": "Lima"},
        {"id": "s1", "slice": "sentiment", "prompt": "Review: great kettle", "reference": "positive"},
        {"id": "f1", "slice": "chat", "prompt": "Wann öffnet die Filiale?", "reference": None},
        {"id": "f2", "slice": "chat", "prompt": "営業時間は?", "reference": None},
    ]
    production = ["It is Paris.", "Lima.", "negative", "Die Filiale öffnet um neun Uhr.", "営業時間は9時から17時です。"]
    student = ["Paris", "Quito.", "positive", "Die Filiale öffnet um neun Uhr morgens.", "わかりません。"]
    answers = judged(verify, rows, student, "student") + judged(verify, rows, production, PRODUCTION)
    found, differ = shadow(answers, ["student"], threshold=0.5)
    agreed = found.agreement["student"]
    assert found.prompts == 5
    assert {name: a.value for name, a in agreed.items()} == {"capitals": 0.5, "sentiment": 0.0, "chat": 0.5, "all": 0.4}
    assert {name: a.value for name, a in found.production.items()} == {"capitals": 1.0, "sentiment": 0.0, "all": 2 / 3}
    why = {r["id"]: r["why"] for r in differ["student"]}
    assert list(why) == ["c2", "f2", "s1"]  # by slice: capitals, chat, sentiment
    assert why["c2"] == "student wrong, production right" and why["s1"] == "student right, production wrong"
    assert why["f2"].startswith("ROUGE-L 0.")
    table = shadow_markdown(found, differ["student"], "student", per_slice=5)
    assert "| all | 0.40" in table and "Quito." in table and "3 disagreements" in table


def test_no_production_answers_no_report():
    assert shadow([_answer("student", "1", "x", None)], ["student"], 0.5) == (None, {})


def _redacted(rows: list[dict], tmp_path, held_out: bool = True) -> list[dict]:
    prompts = write_dataset(rows, tmp_path / "p.parquet", PROMPTS)
    empty, quarantine = (
        write_dataset([], tmp_path / f"{n}.parquet", s) for n, s in (("e", PROMPTS), ("q", QUARANTINE))
    )
    train, held = (empty, prompts) if held_out else (prompts, empty)
    done = redact(RedactConfig(workers=1), train, held, quarantine, str(tmp_path / "o"))
    return read_dataset(done.eval_prompts if held_out else done.train_prompts)


def test_production_s_response_is_redacted_with_its_prompt_and_keeps_the_answer(tmp_path):
    rows = [
        {"id": "1", "timestamp": None, "slice": "support", "prompt": "Hallo, hier ist Jürgen Weißmann. Wann kommt "
         "mein Paket?", "reference": None, "response": "Hallo Jürgen Weißmann, Ihr Paket kommt morgen."},
        {"id": "2", "timestamp": None, "slice": "capitals", "prompt": "I'm Aiko Tanaka, aiko.t@example.jp. Capital "
         "of Austria?", "reference": "Vienna", "response": "Hi Aiko Tanaka! Vienna is the capital."},
        {"id": "3", "timestamp": None, "slice": "capitals", "prompt": "Capital of Argentina?",
         "reference": "Buenos Aires", "response": "The capital is Buenos Aires."},  # NER alone calls it a person
        {"id": "4", "timestamp": None, "slice": "capitals", "prompt": "Capital of Chile?", "reference": "Santiago",
         "response": None},
    ]  # fmt: skip
    out = _redacted(rows, tmp_path)
    assert out[0]["prompt"].startswith("Hallo, hier ist <PERSON_1>.")
    # one name, one placeholder (the rest as the English NER model reads German)
    assert out[0]["response"].startswith("Hallo <PERSON_1>, Ihr Paket") and "Jürgen" not in out[0]["response"]
    assert out[1]["response"] == "Hi <PERSON_1>! Vienna is the capital."
    assert "<EMAIL_ADDRESS_1>" in out[1]["prompt"]
    assert out[2]["response"] == "The capital is Buenos Aires."  # the reference is the task: it stays
    assert out[3]["response"] is None
    # a training row's response is read by nothing: it is not kept
    assert [r["response"] for r in _redacted(rows, tmp_path / "train", held_out=False)] == [None] * 4


def test_a_prompt_is_redacted_the_same_with_or_without_a_response(tmp_path):
    row = {"id": "1", "timestamp": None, "slice": "authors", "prompt": "Hi, this is William. Who wrote Hamlet?",
           "reference": "William Shakespeare"}  # fmt: skip
    bare = _redacted([row | {"response": None}], tmp_path / "bare")
    answered = _redacted([row | {"response": "William Shakespeare wrote it."}], tmp_path / "answered")
    assert bare[0]["prompt"] == answered[0]["prompt"] and "William." not in answered[0]["prompt"]
    assert answered[0]["response"] == "William Shakespeare wrote it."  # the reference: the task, kept
