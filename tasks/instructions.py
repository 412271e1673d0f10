"""What the teacher is asked when it writes new prompts, and how its reply is read back as one.

Self-Instruct (Wang et al., 2023): a few real prompts of a kind shown as seeds, one new prompt of the same kind
asked for. Evol-Instruct (Xu et al., 2023, WizardLM): one prompt rewritten by an operation, in depth (a
constraint added, the question deepened, more reasoning steps) or in breadth (a new prompt of the same domain, a
general one made concrete). The wording is ours; the operations are theirs.
"""

from __future__ import annotations

import re
from typing import Literal

Operation = Literal["constrain", "deepen", "more_steps", "concretize", "mutate"]
OPERATIONS: tuple[Operation, ...] = ("constrain", "deepen", "more_steps", "concretize", "mutate")

SELF_INSTRUCT = (
    "Here are requests that users sent to an assistant:\n{seeds}\n\n"
    "Write one new request of the same kind, with different details. Reply with the new request only."
)

_REWRITE = "Rewrite the request below {how}. Keep it one request a person would send, answerable on its own.\n\n"
EVOLVE: dict[Operation, str] = {
    "constrain": _REWRITE.format(how="so that it adds one more constraint or requirement"),
    "deepen": _REWRITE.format(how="so that it asks about the same subject in more depth"),
    "more_steps": _REWRITE.format(how="so that answering it takes one more step of reasoning"),
    "concretize": _REWRITE.format(how="replacing its general words with specific ones"),
    "mutate": "Write a new request in the same domain as the one below, on a different, rarer subject. Keep it one "
    "request a person would send.\n\n",
}
EVOLVE_TAIL = "Request: {prompt}\n\nReply with the new request only."

# a label a model puts before what it was asked to write ("New request: ...", "**Rewritten request:**")
_LABEL = re.compile(
    r"^\W*(?:here is (?:a|the|my) )?(?:new|rewritten|evolved|updated)?\s*(?:user )?(?:request|question|prompt|"
    r"instruction)\s*(?:\d+)?[*_]*\s*(?::|[-–]\s)[*_\s]*",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’«»`"


def self_instruct(seeds: list[str]) -> str:
    """The Self-Instruct request: the seeds as a list, one new prompt of their kind asked for."""
    return SELF_INSTRUCT.format(seeds="\n".join(f"- {seed}" for seed in seeds))


def evolve(operation: Operation, prompt: str) -> str:
    """The Evol-Instruct request: `prompt` rewritten by `operation`."""
    return EVOLVE[operation] + EVOLVE_TAIL.format(prompt=prompt)


def new_prompt(reply: str) -> tuple[str, bool]:
    """The prompt a reply holds, and whether it ends there (a paragraph follows): its first paragraph, less a
    preamble line ending in a colon ("Here is a new request:"), a leading label and the quotes around it (a model
    answers "New request: "…"" and may go on to answer it in the next paragraph)."""
    paragraphs = [part.strip() for part in re.split(r"\n\s*\n", reply.strip()) if part.strip()]
    while len(paragraphs) > 1 and paragraphs[0].endswith(":"):  # a preamble of its own
        paragraphs.pop(0)
    first = paragraphs[0] if paragraphs else ""
    head, _, rest = first.partition("\n")
    if head.rstrip().endswith(":") and rest.strip():  # "Here is one more request:\n<the request>"
        first = rest.strip()
    text = _LABEL.sub("", first, count=1).strip()
    if len(text) > 1 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text, len(paragraphs) > 1


# a reply about the request rather than one ("Here's a new request", "Sure!", "I'm just a friendly AI"); not "Here is
# my essay: proofread it"
NOT_A_PROMPT = re.compile(
    r"^\W*(?:here(?:'s|’s| is| are) (?:a |an |the |one |some )?(?:new|rewritten|revised|updated|example|response|"
    r"more|another)\b|sure\b|certainly\b|of course\b|instead of\b)"
    r"|\bI(?:'m| am) (?:just )?(?:an? |your )?(?:friendly |helpful )?(?:AI|assistant|language model)"  # its voice,
    r"(?=[.,!]|\s+(?:designed|here|trained|that|who|and)\b|\s*$)",  # not "I'm an assistant manager"
    re.IGNORECASE,
)
