"""Demo traffic: a week of a checkable task's production log, with planted PII and a few bad rows.

Slices are tasks the embedded teacher gets right often but not always (measured per slice by
bench/demo_slices.py), each with a reference answer and a verifier, so N samples plus the verifier
beat any single sample: capitals (contains), sentiment (label), arithmetic (number), uppercase
(contains, case-sensitive); and a rare one on purpose, sounds (contains), for the coverage map and synthesis.
Users write like users: a greeting with their name, email, phone or card number around the
question. Most rows carry production's answer (`response`, a current model right about 70 % of the
time) for the shadow report. Deterministic by seed. The generator returns what it planted, so tests can check that
no PII survives redaction and that exactly the malformed lines are quarantined.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

CAPITALS = {
    "France": "Paris",
    "Japan": "Tokyo",
    "Italy": "Rome",
    "Germany": "Berlin",
    "Spain": "Madrid",
    "Egypt": "Cairo",
    "Russia": "Moscow",
    "China": "Beijing",
    "Greece": "Athens",
    "Portugal": "Lisbon",
    "Kenya": "Nairobi",
    "England": "London",
    "Ireland": "Dublin",
    "Austria": "Vienna",
    "Norway": "Oslo",
    "Sweden": "Stockholm",
    "Finland": "Helsinki",
    "Denmark": "Copenhagen",
    "Poland": "Warsaw",
    "Hungary": "Budapest",
    "Thailand": "Bangkok",
    "Peru": "Lima",
    "Cuba": "Havana",
    "Mexico": "Mexico City",
    "Argentina": "Buenos Aires",
    "Chile": "Santiago",
    "Turkey": "Ankara",
    "Iran": "Tehran",
    "Iraq": "Baghdad",
    "Canada": "Ottawa",
    "Australia": "Canberra",
    "India": "New Delhi",
    "South Korea": "Seoul",
    "Belgium": "Brussels",
    "Netherlands": "Amsterdam",
    "Switzerland": "Bern",
    "Czech Republic": "Prague",
    "Vietnam": "Hanoi",
    "Indonesia": "Jakarta",
    "Philippines": "Manila",
}
CAPITAL_QUESTIONS = ["What is the capital of {}?", "Which city is the capital of {}?", "Name the capital city of {}."]

PRODUCTS = [
    "blender",
    "headphones",
    "backpack",
    "kettle",
    "phone case",
    "desk lamp",
    "running shoes",
    "coffee maker",
    "vacuum cleaner",
    "keyboard",
    "water bottle",
    "office chair",
]
PRAISE = [
    "works great and I love it",
    "exceeded my expectations",
    "is excellent quality for the price",
    "arrived quickly and works perfectly",
    "is the best purchase I made this year",
]
COMPLAINTS = [
    "broke after two days, terrible",
    "arrived damaged and support never answered",
    "is awful quality, very disappointed",
    "stopped working after a week, a waste of money",
    "is the worst purchase I made this year",
]
SENTIMENT_QUESTION = "Classify the sentiment of this review as positive or negative: The {} {}."

ADDITION_QUESTIONS = ["What is {} + {}?", "What is {} plus {}?", "Add {} and {}."]

# The embedded teacher cannot uppercase a longer word, whatever the phrasing ("What is 'bridge' in uppercase?" and
# eleven other phrasings: 0-9% of samples right). It can a letter (72%) and, less often, a short word (20%): the
# slice mixes both, so that N samples plus the verifier have real work to do (bench/demo_slices.py measures it).
LETTERS = "abcdefghjkmnpqrstuvwxyz"
SHORT_WORDS = ["cat", "dog", "sun", "red", "box", "hat", "cup", "pen", "map", "bus", "car", "egg", "fox", "ice", "jam"]
UPPERCASE_LETTER_QUESTION = "What is the capital letter for '{}'?"
UPPERCASE_WORD_QUESTION = 'Write the word "{}" in uppercase letters.'

SLICE_WEIGHTS = {"capitals": 0.30, "sentiment": 0.22, "arithmetic": 0.15, "uppercase": 0.11}

# Slices for the math, json and code verifiers. bench/demo_slices.py measured the embedded teacher on them (12
# questions x 4 samples): right per sample 0.33 (halves), 0.88 (place), 0.69 (python). The json slice is checked
# against its schema only, so a wrong capital in valid JSON passes. (A person's name and age scored 0.62, but a name
# is PII; a product and price 0.04: the teacher wrote code; "<city> is in <country>" 0.45, but redaction took the city.)
HALVES = [(2, 1), (4, 2), (6, 3), (8, 4), (10, 5), (12, 6), (14, 7), (16, 8), (20, 10), (100, 50)]
FRACTION_QUESTIONS = ["What is half of {}?", "What is {} divided by 2?", "What is 1/2 of {}?"]
PLACE_QUESTION = 'Write a JSON object with the keys "country" and "capital" for {}.'
FUNCTIONS = [
    ("add(a, b)", "returns the sum of a and b", "assert add(2, 3) == 5\nassert add(-1, 1) == 0"),
    ("double(x)", "returns x times 2", "assert double(4) == 8\nassert double(0) == 0"),
    ("is_even(n)", "returns True if n is even", "assert is_even(4)\nassert not is_even(7)"),
    ("square(x)", "returns x squared", "assert square(3) == 9\nassert square(-2) == 4"),
]
CODE_QUESTION = "Write a Python function {} that {}."
SLICE_WEIGHTS |= {"halves": 0.08, "place": 0.07, "python": 0.07}

# A rare intent, on purpose: the sound an animal makes, about 3 % of rows, drawn on a stream of their own so that
# every other row is as it was. Sampled by slice, it gets a handful of training prompts: a thin slice, which
# synthesis (`synthesis.enabled`) fills. At the silhouette's k the map puts it with uppercase ("What is the capital
# letter for 'f'?"); a count of legs, a chemical symbol or a Spanish word fared no better.
SOUNDS = {"cow": "moo", "sheep": "baa", "duck": "quack", "pig": "oink", "lion": "roar", "owl": "hoot",
          "snake": "hiss", "horse": "neigh", "bee": "buzz"}  # fmt: skip
SOUND_QUESTIONS = ["What sound does a {} make?", "What noise does a {} make?", "Which sound do you hear from a {}?"]
RARE_SHARE = 0.03

FIRST_NAMES = [
    "James",
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Susan",
    "Maria",
    "Carlos",
    "Priya",
    "Ahmed",
    "Olga",
    "Kenji",
]
LAST_NAMES = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Wilson",
    "Anderson",
    "Taylor",
    "Thomas",
    "Moore",
    "Jackson",
    "Patel",
    "Nguyen",
]
EMAIL_DOMAINS = ["example.com", "mail.org", "inbox.net", "corp.io"]
AREA_CODES = ["212", "415", "646", "312", "617", "206"]

# How users wrap a question: (template, share). {q} is the question; other fields are PII.
WRAPPERS = [
    ("{q}", 0.30),
    ("Hi, this is {name} ({email}). {q}", 0.15),
    ("Hello, my name is {name} and my phone is {phone}. {q}", 0.15),
    ("I'm {name}, call me at {phone} if needed. {q}", 0.10),
    ("{q} Thanks, {name}", 0.10),
    ("My card {card} was charged twice, but first: {q} Regards, {name}, {email}", 0.10),
    ("{q} You can reach me at {email}.", 0.10),
]


@dataclass
class DemoTraffic:
    """What was written, and what was planted in it."""

    lines: list[str]
    malformed_lines: set[int] = field(default_factory=set)  # 1-based line numbers
    pii: set[str] = field(default_factory=set)
    questions: dict[str, str] = field(default_factory=dict)  # row id -> the task part of its prompt


def _question(slice_name: str, rng: random.Random) -> tuple[str, str]:
    """A (question, reference answer) pair for a slice."""
    if slice_name == "capitals":
        country = rng.choice(list(CAPITALS))
        return rng.choice(CAPITAL_QUESTIONS).format(country), CAPITALS[country]
    if slice_name == "sentiment":
        positive = rng.random() < 0.5
        phrase = rng.choice(PRAISE if positive else COMPLAINTS)
        return SENTIMENT_QUESTION.format(rng.choice(PRODUCTS), phrase), "positive" if positive else "negative"
    if slice_name == "arithmetic":
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        return rng.choice(ADDITION_QUESTIONS).format(a, b), str(a + b)
    if slice_name == "halves":
        whole, half = rng.choice(HALVES)
        return rng.choice(FRACTION_QUESTIONS).format(whole), str(half)
    if slice_name == "place":  # a place, not a person: a reference is not redacted, and must hold no PII
        # no reference: the json verifier checks the schema only (the teacher's capitals in JSON were never right,
        # and "Lisbon is in Portugal" had its city redacted as a location)
        return PLACE_QUESTION.format(rng.choice(list(CAPITALS))), None
    if slice_name == "python":
        signature, does, tests = rng.choice(FUNCTIONS)
        return CODE_QUESTION.format(signature, does), tests
    if rng.random() < 0.5:
        letter = rng.choice(LETTERS)
        return UPPERCASE_LETTER_QUESTION.format(letter), letter.upper()
    word = rng.choice(SHORT_WORDS)
    return UPPERCASE_WORD_QUESTION.format(word), word.upper()


def _sound_question(rng: random.Random) -> tuple[str, str]:
    animal = rng.choice(list(SOUNDS))
    return rng.choice(SOUND_QUESTIONS).format(animal), SOUNDS[animal]


def _card_number(rng: random.Random) -> str:
    """A Luhn-valid 16-digit Visa-style number, grouped in fours (Presidio validates the checksum)."""
    digits = [4] + [rng.randint(0, 9) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    text = "".join(map(str, digits))
    return " ".join(text[i : i + 4] for i in range(0, 16, 4))


def _phone(rng: random.Random) -> str:
    area, line = rng.choice(AREA_CODES), f"{rng.randint(100, 199):04d}"
    return rng.choice([f"{area}-555-{line}", f"({area}) 555-{line}", f"+1 {area} 555 {line}"])


def _wrap(question: str, rng: random.Random) -> tuple[str, dict[str, str]]:
    """The user's message around a question, and the PII planted in it ({kind: text})."""
    template = rng.choices([t for t, _ in WRAPPERS], weights=[w for _, w in WRAPPERS])[0]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    pii = {
        "name": f"{first} {last}",
        "email": f"{first.lower()}.{last.lower()}@{rng.choice(EMAIL_DOMAINS)}",
        "phone": _phone(rng),
        "card": _card_number(rng),
    }
    planted = {key: value for key, value in pii.items() if "{" + key + "}" in template}
    return template.format(q=question, **pii), planted


def _response(slice_name: str, reference: str | None, name: str | None, rng: random.Random) -> str | None:
    """What the production model answered: right about 70 % of the time, in its own words, sometimes greeting the
    user by the name they gave; none for the json and code slices (another route serves them, unlogged)."""
    if reference is None or slice_name in ("place", "python"):
        return None
    right = rng.random() < 0.7
    if slice_name == "capitals":
        city = reference if right else rng.choice([c for c in CAPITALS.values() if c != reference])
        answer = rng.choice(["The capital is {}.", "{}.", "It is {}."]).format(city)
    elif slice_name == "sentiment":
        label = reference if right else {"positive": "negative", "negative": "positive"}[reference]
        answer = rng.choice(["{}", "The review is {}.", "Sentiment: {}"]).format(label)
    elif slice_name == "uppercase":
        answer = reference if right else reference.lower()
    elif slice_name == "sounds":
        sound = reference if right else rng.choice([s for s in SOUNDS.values() if s != reference])
        answer = rng.choice(["{}", "It says {}."]).format(sound)
    else:  # arithmetic, halves
        answer = rng.choice(["{}", "The answer is {}."]).format(reference if right else int(reference) + 1)
    return f"Hi {name}! {answer}" if name and rng.random() < 0.5 else answer


def _malformed(kind: int, row: dict) -> str:
    """A log line broken the ways real logs break: missing or wrong-typed fields, a bad date, a cut line."""
    broken = dict(row)
    match kind % 6:
        case 0:
            del broken["prompt"]
        case 1:
            broken["prompt"] = "   "
        case 2:
            broken["prompt"] = 42
        case 3:
            del broken["slice"]
        case 4:
            broken["timestamp"] = "yesterday, around noon"
        case 5:
            return json.dumps(row)[: len(json.dumps(row)) // 2]  # the writer died mid-line
    return json.dumps(broken)


def generate_traffic(rows: int = 600, seed: int = 0, malformed: int = 8) -> DemoTraffic:
    """`rows` log lines over a week (about `malformed` of them broken), deterministic by seed."""
    rng = random.Random(seed)
    start = datetime(2026, 11, 16, tzinfo=UTC)
    times = sorted(start + timedelta(seconds=rng.randint(0, 7 * 24 * 3600 - 1)) for _ in range(rows))
    broken_at = set(rng.sample(range(rows), min(malformed, rows)))
    traffic = DemoTraffic(lines=[])
    production = random.Random(f"{seed}:production")  # its own stream: the prompts are as without responses
    rare = random.Random(f"{seed}:rare")
    slices, weights = list(SLICE_WEIGHTS), list(SLICE_WEIGHTS.values())
    for i, when in enumerate(times):
        slice_name = rng.choices(slices, weights=weights)[0]
        question, reference = _question(slice_name, rng)
        prompt, planted = _wrap(question, rng)
        response = _response(slice_name, reference, planted.get("name"), production)
        if (
            rare.random() < RARE_SHARE
        ):  # on a stream of its own, after the row it replaces: the others stay as they were
            slice_name, (question, reference) = "sounds", _sound_question(rare)
            prompt, planted = _wrap(question, rare)
            response = _response(slice_name, reference, planted.get("name"), rare)
        row = {
            "id": f"req-{i:05d}",
            "timestamp": when.isoformat().replace("+00:00", "Z"),
            "slice": slice_name,
            "prompt": prompt,
            "reference": reference,
            "response": response,
        }
        traffic.pii.update(planted.values())
        if i in broken_at:
            traffic.lines.append(_malformed(len(traffic.malformed_lines), row))
            traffic.malformed_lines.add(i + 1)
        else:
            traffic.lines.append(json.dumps(row))
            traffic.questions[row["id"]] = question
    return traffic


def write_demo_traffic(path: Path, rows: int = 600, seed: int = 0) -> DemoTraffic:
    """Write the demo log as JSONL and return what it holds."""
    traffic = generate_traffic(rows=rows, seed=seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(traffic.lines) + "\n")
    return traffic
