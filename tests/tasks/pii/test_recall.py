"""Redaction measured on the faker set (tests/tasks/pii/faker_set.py): recall per entity type, precision,
and the task left intact. Targets from the inputs issue: recall >= 0.99 per type, task preservation 100 %."""

from collections import Counter

import pytest

from tests.tasks.pii.faker_set import LOCALES, PHRASINGS, build


@pytest.fixture(scope="module")
def measured(redactor):
    cases = build(per_pair=2, seed=3)
    found = redactor.find(case.text for case in cases)
    return cases, found


def _covered(text: str, start: int, end: int, spans) -> bool:
    """Every letter and digit of [start, end) lies in some found span (a surname left behind is a leak)."""
    inside = {i for s in spans for i in range(s.start, s.end)}
    return all(i in inside for i in range(start, end) if text[i].isalnum())


def test_the_set_is_as_varied_as_promised(measured):
    cases, _ = measured
    assert len(LOCALES) >= 10 and len(PHRASINGS) >= 15
    kinds = Counter(kind for case in cases for _, _, kind in case.planted)
    assert set(kinds) == {
        "PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "ACCOUNT_NUMBER", "US_SSN",
        "IP_ADDRESS", "STREET_ADDRESS",
    }  # fmt: skip


def test_recall_is_at_least_099_for_every_type(measured):
    cases, found = measured
    caught, planted, missed = Counter(), Counter(), []
    for case in cases:
        for start, end, kind in case.planted:
            planted[kind] += 1
            if _covered(case.text, start, end, found[case.text]):
                caught[kind] += 1
            else:
                missed.append((case.locale, kind, case.text[start:end]))
    recall = {kind: caught[kind] / planted[kind] for kind in planted}
    assert min(recall.values()) >= 0.99, (recall, missed[:10])


def test_precision_what_is_redacted_was_planted(measured):
    cases, found = measured
    spans = [(case, s) for case in cases for s in found[case.text]]
    wrong = [
        case.text[s.start : s.end]
        for case, s in spans
        if not any(s.start < end and start < s.end for start, end, _ in case.planted)
    ]
    assert len(wrong) / len(spans) <= 0.01, wrong[:10]


def test_the_task_survives_redaction_in_every_case(measured, redactor):
    cases, _ = measured
    redacted = redactor.redact([case.text for case in cases])
    damaged = [(case.task, text) for case, (text, _) in zip(cases, redacted, strict=True) if case.task not in text]
    assert damaged == []


CLEAN_PROMPTS = [
    "What is 1234 * 5678?",
    "What is 2^31 - 1 = 2147483647?",
    "Compute 123456789 + 987654321.",
    "Translate 'Hello World' into German.",
    "Which is larger, 3.14159 or 2.71828?",
    "Is 2026-11-30 a Monday?",
    "Convert 30/11/2026 to ISO format.",
    "Python 3.11.4 fails with error 0x80070005, why?",
    "Hi team, what is the boiling point of water?",
    "From Paris to Rome, how far is it?",
    "Dear Sir or Madam, what is 7 * 8?",
    "Summarise: The Eiffel Tower is in Paris, France.",
    "Explain the function def add(a, b): return a + b",
    "Is 1000003 a prime number?",
    "Convert 1,234,567 to words.",
    "Count the vowels in 'Banana Republic'",
    "Customer service hours are 9-5, right?",
    "Best Practices for SQL?",
    "This is Python code: print(1)",
    "Name Three Countries",
    "See the User Guide",
    "Send it to me. What is 10 + 5 in binary notation.",
    "e.g. apples, i.e. fruit.",
    "1/2 cup flour, sifted",
    "No. 5 is the answer",
    "Convert this number to binary\nthe value is\n524288",
    "Sort these digits: 3 1 4 1 5 9 2 6 5 3",
    "Is 0.123456789 small?",
    "我住在这个城市很久了",
    "학교로 갑니다 그리고 집에 가요",
]


@pytest.mark.parametrize("prompt", CLEAN_PROMPTS)
def test_prompts_without_pii_come_out_unchanged(redactor, prompt):
    [(text, types)] = redactor.redact([prompt])
    assert (text, types) == (prompt, [])


def test_no_pattern_backtracks_for_long_on_a_long_prompt():
    """A 16,000-character prompt in a script without spaces, or with long runs of spaces, is matched in bounded
    time by every pattern (Presidio would silently skip a pattern past its timeout: a recall leak)."""
    import regex

    from tasks.pii.names import NAME_PATTERNS
    from tasks.pii.numbers import DIGIT_GROUPS, IBAN_SHAPED, PHONE
    from tasks.pii.places import ADDRESS_PATTERNS

    texts = ["สวัสดีครับ" * 1600, "我们今天很高兴见到你" * 1600, "address" + " " * 4000 + "x", "1 " * 8000]
    patterns = [p for p, _ in NAME_PATTERNS + ADDRESS_PATTERNS] + [DIGIT_GROUPS, IBAN_SHAPED, PHONE]
    for pattern in patterns:
        compiled = regex.compile(pattern, regex.MULTILINE)
        for text in texts:
            list(compiled.finditer(text, timeout=2))  # raises TimeoutError past 2 s (each takes about 0.01 s)
