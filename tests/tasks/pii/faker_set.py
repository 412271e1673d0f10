"""A PII evaluation set made with faker: 18 locales, 20 phrasings, every planted value's place known.

Each case is a support-desk message with a task that has a known answer (operands, a country, a
quoted phrase, a word to transform) and PII planted where people put it: greetings, "X here",
"From X:", quoted customer text, forwarded headers, signatures, `name=` fields, titles. Values:
names (first + last in the locale's script), emails, national phone formats, IBANs (valid,
mistyped, partial), other account numbers, cards, SSNs, IPv4/IPv6, street addresses (inline and
as a block).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

from faker import Faker

LOCALES = [
    "en_US", "en_GB", "en_IN", "de_DE", "fr_FR", "es_ES", "it_IT", "nl_NL", "pl_PL", "pt_BR", "sv_SE", "tr_TR",
    "ru_RU", "cs_CZ", "el_GR", "vi_VN", "ja_JP", "zh_CN",
]  # fmt: skip
UNSPACED_NAMES = {"ja_JP", "zh_CN"}  # family name first, as faker writes them

PHRASINGS = [
    "Hi, {name} here. My email is {email}. {task}",
    "From {name}: please call me back on {phone}. {task}",
    'Customer {name} wrote: "My card {card} was charged twice." {task}',
    "(ticket from {name}) Please refund to IBAN {iban}. {task}",
    "Dear support,\nmy account {account} is locked. {task}\nThanks,\n{name}",
    'name={name} email={email} ip={ip} question="{task}"',
    "---------- Forwarded message ---------\nFrom: {name} <{email}>\nSubject: question\n\n{task}",
    "My name is {name}, SSN {ssn}. {task}",
    "Hello {name}, your login from {ip} was blocked. {task}",
    "> {name} said: I live at {address_inline}.\n{task}",
    "{task}\n\nBest regards,\n{name}\n{phone}",
    "I'm {name} and my IBAN is {iban_mistyped}. {task}",
    "{task}\n-- \n{name}\n{address}",
    "Please contact {name} at {phone} or {email}. {task}",
    "{name} <{email}> wrote:\n> {task}",
    "Ship to: {address_inline}. Recipient: {name}. {task}",
    "user: {name} | phone: {phone} | card: {card} | issue: {task}",
    "This is {name} from accounts; wire it to {iban_partial}. {task}",
    "Dr. {name} asked: {task} Reply to {email}.",
    "Hey {name}! SSN on file: {ssn}, IP {ip6}. {task}",
]

COUNTRIES = ["France", "Germany", "Japan", "Brazil", "Kenya", "Canada", "Peru", "Norway", "Egypt", "India", "Chile"]
WORDS = ["apple", "river", "window", "garden", "silver", "orange", "planet", "yellow", "market", "forest"]
PHRASES = ["good morning", "thank you very much", "where is the station", "see you tomorrow", "happy birthday"]
LANGUAGES = ["French", "Spanish", "German", "Italian", "Portuguese"]


@dataclass
class Case:
    text: str
    planted: list[tuple[int, int, str]]  # [start, end) and the kind of value
    task: str  # must come out of redaction intact
    locale: str


def _task(rng: random.Random) -> str:
    a, b = rng.randint(2, 999), rng.randint(2, 999)
    return rng.choice(
        [
            f"What is {a} + {b}?",
            f"What is {a} * {b}?",
            f"Which is larger, {a} or {b}?",
            f"What is the capital of {rng.choice(COUNTRIES)}?",
            f"Uppercase this word: {rng.choice(WORDS)}",
            f'Translate "{rng.choice(PHRASES)}" into {rng.choice(LANGUAGES)}.',
        ]
    )


def _mistype(value: str, rng: random.Random) -> str:
    """One digit changed: the checksum no longer holds, the value is still someone's account."""
    positions = [i for i, c in enumerate(value) if c.isdigit() and i > 3]
    i = rng.choice(positions)
    return value[:i] + str((int(value[i]) + rng.randint(1, 9)) % 10) + value[i + 1 :]


def _grouped(value: str) -> str:
    return " ".join(value[i : i + 4] for i in range(0, len(value), 4))


def _values(fake: Faker, locale: str, rng: random.Random) -> dict[str, tuple[str, str]]:
    """{slot: (value, kind)} for one message."""
    name = fake.name() if locale in UNSPACED_NAMES else f"{fake.first_name()} {fake.last_name()}"
    iban = fake.iban()
    address = fake.address()
    return {
        "name": (name, "PERSON"),
        "email": (fake.email(), "EMAIL_ADDRESS"),
        "phone": (fake.phone_number(), "PHONE_NUMBER"),
        "card": (fake.credit_card_number(), "CREDIT_CARD"),
        "iban": (rng.choice([iban, _grouped(iban)]), "IBAN_CODE"),
        "iban_mistyped": (_mistype(iban, rng), "IBAN_CODE"),
        "iban_partial": (_grouped(iban[: rng.randint(12, 16)]), "IBAN_CODE"),
        "account": ("".join(rng.choices(string.digits, k=rng.randint(9, 14))), "ACCOUNT_NUMBER"),
        "ssn": (Faker("en_US").ssn(), "US_SSN"),
        "ip": (fake.ipv4(), "IP_ADDRESS"),
        "ip6": (fake.ipv6(), "IP_ADDRESS"),
        "address": (address, "STREET_ADDRESS"),
        "address_inline": (", ".join(address.splitlines()), "STREET_ADDRESS"),
    }


def build(per_pair: int = 1, seed: int = 0) -> list[Case]:
    """`per_pair` cases for every (locale, phrasing)."""
    rng = random.Random(seed)
    cases = []
    for locale in LOCALES:
        fake = Faker(locale)
        fake.seed_instance(rng.randint(0, 2**31))
        for phrasing in PHRASINGS:
            for _ in range(per_pair):
                cases.append(_fill(phrasing, _values(fake, locale, rng), _task(rng), locale))
    return cases


def _fill(phrasing: str, values: dict[str, tuple[str, str]], task: str, locale: str) -> Case:
    text, planted = "", []
    for literal, slot, _, _ in string.Formatter().parse(phrasing):
        text += literal
        if slot == "task":
            text += task
        elif slot:
            value, kind = values[slot]
            planted.append((len(text), len(text) + len(value), kind))
            text += value
    return Case(text, planted, task, locale)
