"""The demo's judge calibration set: answers to demo-like questions, labelled good or bad by hand.

Good: right, and says so plainly. Bad: wrong, evasive, off-topic, or right but buried in a wrong claim. Several
languages, as the traffic has. `redistill demo-data` writes it beside the demo log as JSONL.
"""

from __future__ import annotations

import json
from pathlib import Path

LABELLED = [
    ("What is the capital of France?", "The capital of France is Paris.", "good"),
    ("What is the capital of France?", "The capital of France is Lyon.", "bad"),
    ("Which city is the capital of Canada?", "Ottawa is the capital of Canada.", "good"),
    ("Which city is the capital of Canada?", "Toronto, the largest city, is the capital.", "bad"),
    ("Name the capital city of Kenya.", "Nairobi.", "good"),
    ("Name the capital city of Kenya.", "Mombasa.", "bad"),
    ("What is the capital of Australia?", "Canberra.", "good"),
    ("What is the capital of Australia?", "Sydney is the capital of Australia.", "bad"),
    ("Which city is the capital of Turkey?", "Ankara is Turkey's capital.", "good"),
    ("Which city is the capital of Turkey?", "Istanbul.", "bad"),
    ("What is the capital of Brazil?", "Brasília.", "good"),
    ("What is the capital of Brazil?", "I am not sure, maybe Rio de Janeiro or São Paulo.", "bad"),
    ("Name the capital city of Japan.", "Tokyo is the capital of Japan.", "good"),
    ("Name the capital city of Japan.", "Japan is an island country in East Asia.", "bad"),
    ("What is the capital of Switzerland?", "Bern (officially the federal city).", "good"),
    ("What is the capital of Switzerland?", "Geneva.", "bad"),
    ("Quelle est la capitale du Maroc ?", "La capitale du Maroc est Rabat.", "good"),
    ("Quelle est la capitale du Maroc ?", "Casablanca.", "bad"),
    ("¿Cuál es la capital de Bolivia?", "Sucre es la capital constitucional; La Paz es la sede del gobierno.", "good"),
    ("¿Cuál es la capital de Bolivia?", "Santa Cruz.", "bad"),
    ("Was ist die Hauptstadt von Deutschland?", "Berlin.", "good"),
    ("Was ist die Hauptstadt von Deutschland?", "Bonn ist die Hauptstadt.", "bad"),
    ("Qual é a capital de Portugal?", "Lisboa.", "good"),
    ("Qual é a capital de Portugal?", "Porto.", "bad"),
    ("What is 7 + 5?", "7 + 5 = 12.", "good"),
    ("What is 7 + 5?", "7 + 5 = 13.", "bad"),
    ("Add 9 and 6.", "9 and 6 make 15.", "good"),
    ("Add 9 and 6.", "The sum is 16.", "bad"),
    ('Write the word "river" in uppercase letters.', "RIVER", "good"),
    ('Write the word "river" in uppercase letters.', "River", "bad"),
    (
        "Classify the sentiment of this review as positive or negative: The lamp broke on day one.",
        "Negative.",
        "good",
    ),
    (
        "Classify the sentiment of this review as positive or negative: The lamp broke on day one.",
        "Positive: the customer liked the lamp.",
        "bad",
    ),
    ("What is the capital of Egypt?", "Cairo.", "good"),
    ("What is the capital of Egypt?", "As an AI, I cannot know that.", "bad"),
    ("What is the capital of Vietnam?", "Hanoi is the capital; Ho Chi Minh City is the largest city.", "good"),
    ("What is the capital of Vietnam?", "Ho Chi Minh City is the capital.", "bad"),
]


def write_calibration(path: Path) -> int:
    """Write the labelled set as JSONL (prompt, answer, label); returns its row count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        for prompt, answer, label in LABELLED:
            out.write(json.dumps({"prompt": prompt, "answer": answer, "label": label}, ensure_ascii=False) + "\n")
    return len(LABELLED)
