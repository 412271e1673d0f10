"""Our pattern recognizers, added to Presidio's: recall first, whatever the person's origin or the checksum.

Presidio's own recognizers need what real logs often lack: its IBAN recognizer a valid checksum (a
mistyped account number is still personal data), its phone recognizer a few regions' formats, and
en_core_web_sm's NER misses a third to a half of the names that are not English. What these add:
- PERSON: a capitalised name (any cased script; or a run of CJK, Arabic, Devanagari … letters) in a
  position where people write names: after a greeting, an introduction, a sign-off, a title, a
  `name=` field, "From …:", "ticket from …", "Customer …"; before "here", "wrote", "said", "<email>".
- IBAN_CODE: anything IBAN-shaped (country letters, two check digits, 11-30 letters and digits).
- ACCOUNT_NUMBER: nine or more digits in one group or in groups split by single spaces or dashes.
- PHONE_NUMBER: seven or more digits in any national format (+, 00, (0), dots, dashes, x123).
- STREET_ADDRESS: a street line with a house number beside a postal-code line, or whatever follows
  "address:", "ship to", "I live at" … on its line.
Digits next to an arithmetic operator are operands, not numbers about a person, and stay.
"""

from __future__ import annotations

import regex
from presidio_analyzer import Pattern, PatternRecognizer

from tasks.pii.names import NAME_PATTERNS
from tasks.pii.numbers import DIGIT_GROUPS, IBAN_SHAPED, PHONE
from tasks.pii.places import ADDRESS_PATTERNS


def our_recognizers() -> list[PatternRecognizer]:
    """The recognizers above, case-sensitive (names are told by their capital) and multi-line."""
    flags = regex.MULTILINE

    def recognizer(entity: str, name: str, patterns: list[tuple[str, float]]) -> PatternRecognizer:
        return PatternRecognizer(
            supported_entity=entity,
            name=name,
            patterns=[Pattern(f"{name} {i}", pattern, score) for i, (pattern, score) in enumerate(patterns)],
            global_regex_flags=flags,
        )

    return [
        recognizer("PERSON", "NameInContext", NAME_PATTERNS),
        recognizer("IBAN_CODE", "IbanShaped", [(IBAN_SHAPED, 0.7)]),
        recognizer("ACCOUNT_NUMBER", "LongDigitGroups", [(DIGIT_GROUPS, 0.45)]),
        recognizer("PHONE_NUMBER", "AnyPhoneFormat", [(PHONE, 0.5)]),
        recognizer("STREET_ADDRESS", "StreetAddress", ADDRESS_PATTERNS),
    ]
