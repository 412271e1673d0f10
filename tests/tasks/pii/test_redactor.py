import logging

import pytest

from tasks.pii import RedactConfig, Redactor
from tasks.pii import redactor as redactor_module


def test_placeholders_are_typed_and_numbered(redactor):
    text = "Hi, this is Maria Garcia (maria.garcia@example.com), card 4111 1111 1111 1111, call (212) 555-0199."
    [(redacted, types)] = redactor.redact([text])
    assert redacted == "Hi, this is <PERSON_1> (<EMAIL_ADDRESS_1>), card <CREDIT_CARD_1>, call <PHONE_NUMBER_1>."
    assert types == ["CREDIT_CARD", "EMAIL_ADDRESS", "PERSON", "PHONE_NUMBER"]


def test_the_same_person_keeps_one_number_across_a_conversation(redactor):
    turns = [
        "Hi, I'm Olusegun Adeyemi. My colleague is Dr. Ingrid Solberg.",
        "Thanks Olusegun Adeyemi, I will write to Dr. Ingrid Solberg.",
    ]
    [conversation] = redactor.redact_conversations([turns])
    assert conversation.texts == [
        "Hi, I'm <PERSON_1>. My colleague is Dr. <PERSON_2>.",
        "Thanks <PERSON_1>, I will write to Dr. <PERSON_2>.",
    ]


def test_an_answer_to_a_redacted_prompt_numbers_after_its_placeholders(redactor):
    """The teacher echoes <PERSON_1> and invents a name: the new one is <PERSON_2>, not a second <PERSON_1>."""
    [conversation] = redactor.redact_conversations([["Hello <PERSON_1>!", "Sure <PERSON_1>, ask Mr. Tanaka Hiroshi."]])
    assert conversation.texts[1] == "Sure <PERSON_1>, ask Mr. <PERSON_2>."


def test_allow_listed_terms_stay():
    redactor = Redactor(RedactConfig(allow_list=["Acme Support"], workers=1))
    [(text, _)] = redactor.redact(["Regards,\nAcme Support"])
    assert text == "Regards,\nAcme Support"


def test_pseudonyms_are_stable_across_conversations_and_need_a_secret(monkeypatch):
    monkeypatch.delenv("REDISTILL_PSEUDONYM_SALT", raising=False)
    with pytest.raises(ValueError, match="REDISTILL_PSEUDONYM_SALT"):
        Redactor(RedactConfig(placeholders="pseudonym"))
    monkeypatch.setenv("REDISTILL_PSEUDONYM_SALT", "s3cret")
    salted = Redactor(RedactConfig(placeholders="pseudonym", workers=1))
    (first, _), (second, _) = salted.redact(["Hi, I'm Aiko Tanaka.", "Aiko Tanaka here, again."])
    token = first.removeprefix("Hi, I'm ").removesuffix(".")
    assert token.startswith("<PERSON_") and second == f"{token} here, again." and "Aiko" not in first
    monkeypatch.setenv("REDISTILL_PSEUDONYM_SALT", "another")
    [(resalted, _)] = Redactor(RedactConfig(placeholders="pseudonym", workers=1)).redact(["Hi, I'm Aiko Tanaka."])
    assert resalted != first


def test_worker_processes_find_what_one_process_finds(redactor, monkeypatch):
    texts = [f"Ticket {i}: from Jana Nováková, call +420 797 763 {i:03d}. What is {i} + 1?" for i in range(40)]
    monkeypatch.setattr(redactor_module, "PARALLEL_FROM", 10)
    parallel = Redactor(RedactConfig(workers=2)).find(texts)
    assert parallel == redactor.find(texts)


def test_presidio_does_not_warn_about_recognizers_for_other_languages(caplog):
    with caplog.at_level(logging.INFO):
        Redactor(RedactConfig(workers=1)).redact(["Hi, I'm Maria."])
    assert not [r for r in caplog.records if "Recognizer not added" in r.getMessage()]
    assert not [r for r in caplog.records if r.name.startswith("presidio") and r.levelno < logging.WARNING]


def test_a_value_found_once_is_replaced_everywhere_in_the_conversation(redactor):
    """The name is found by its sign-off cue in one turn; alone in another turn it goes too."""
    turns = ["Kwame Mensah Kwame Mensah Kwame Mensah", "Thanks,\nKwame Mensah"]  # the NER splits the first badly
    [conversation] = redactor.redact_conversations([turns])
    assert not [word for word in ("Kwame", "Mensah") for text in conversation.texts if word in text]
    assert conversation.texts[1].startswith("Thanks,\n<PERSON_")


def test_a_person_the_ner_finds_ends_at_the_line_break(redactor):
    """spaCy may run a name on into the next paragraph ("Český Dub\n\nTranslate"): the task there stays."""
    text = 'Thanks!\nDrahoslav Beránek\nBratří Čapků 3\n327 64 Český Dub\n\nParaphrase "see you tomorrow".'
    [(redacted, _)] = redactor.redact([text])
    assert redacted.endswith('\n\nParaphrase "see you tomorrow".') and "Beránek" not in redacted


def test_numbers_in_key_value_fields_are_not_taken_for_operands(redactor):
    """`=` makes digits an operand only with a number on its other side (`2^31 - 1 = 2147483647`)."""
    [(text, _)] = redactor.redact(["acct=12345678901 phone=5551234567 card=4111 1111 1111 1111"])
    assert "1234567" not in text and "555" not in text and "4111" not in text and text.startswith("acct=<")
    [(kept, _)] = redactor.redact(["What is 2^31 - 1 = 2147483647?"])
    assert kept == "What is 2^31 - 1 = 2147483647?"


def test_propagation_respects_the_allow_list():
    allowing = Redactor(RedactConfig(allow_list=["Grace Hopper"], workers=1))
    [conversation] = allowing.redact_conversations([["Hi Grace Kelly,", "Who was Grace Hopper?"]])
    assert conversation.texts == ["Hi <PERSON_1>,", "Who was Grace Hopper?"]
