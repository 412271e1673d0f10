"""Shadow report: would switching traffic change what users get? The student against production's own answers.

When the log carries production's response (the current model's or the teacher's), the held-out prompts are
fresh traffic that already has an answer. A student answer agrees with production's when the slice's verifier
passes both; where it fails both, when the two give the same answer word for word (two mistakes read alike);
where no verifier can judge (no reference), when the two say the same thing: ROUGE-L F1 (longest common
subsequence of words, Lin 2004, as Google's `rouge-score` computes it) at least the configured threshold. A
verifier that passes one and fails the other is a disagreement however alike the texts read. Production's
answers are also scored by the verifiers, as one more row beside the models.

Works on ANSWERS rows (tasks.schemas) after redaction: the texts compared and shown are the redacted ones, and
production's response was redacted with its prompt, so a name has one placeholder in both.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

from pydantic import BaseModel

from tasks.comparison import ALL, correct_by_prompt, table_cell
from tasks.stage import words
from tasks.stats import Interval, mean_interval

PRODUCTION = "production"  # the model name production's answers carry in ANSWERS


@cache
def _scorer():
    from rouge_score import rouge_scorer, tokenizers  # nltk and absl behind it: imported when first scored

    class Words(tokenizers.Tokenizer):
        def tokenize(self, text: str) -> list[str]:
            return words(text)

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=Words())


def rouge_l(ours: str, theirs: str) -> float:
    """ROUGE-L F1 of two texts (symmetric). Texts without a word (emoji, punctuation) match only themselves."""
    if not words(ours) or not words(theirs):
        return float(ours.strip() == theirs.strip())
    return _scorer().score(theirs, ours)["rougeL"].fmeasure


def agreement(student: dict, production: dict, threshold: float) -> tuple[bool, str]:
    """Whether a student's answer agrees with production's on one prompt, and why (ANSWERS rows)."""
    verdicts = student["correct"], production["correct"]
    if verdicts == (True, True):
        return True, "both right"
    if None not in verdicts and verdicts[0] != verdicts[1]:
        return False, "student right, production wrong" if verdicts[0] else "student wrong, production right"
    if verdicts == (False, False):  # "the answer is 7" and "the answer is 8" read alike and are two mistakes
        same = words(student["answer"]) == words(production["answer"])
        return same, "both wrong, " + ("the same answer" if same else "different answers")
    similarity = rouge_l(student["answer"], production["answer"])
    return similarity >= threshold, f"ROUGE-L {similarity:.2f}"


class Shadow(BaseModel):
    """Agreement with production per student and slice ("all" included), with 95 % bootstrap intervals."""

    prompts: int  # held-out prompts with a production response
    threshold: float
    production: dict[str, Interval] = {}  # production's own accuracy per slice, where a verifier can tell
    agreement: dict[str, dict[str, Interval]]  # per student

    def summary(self, student: str) -> str:
        found = self.agreement[student].get(ALL)
        if found is None:
            return ""
        return (
            f"shadow: {student} agrees with production on {found.value:.0%} [{found.low:.0%}, {found.high:.0%}] of "
            f"{self.prompts} held-out prompts that carry production's answer"
        )


def shadow(answers: list[dict], students: list[str], threshold: float) -> tuple[Shadow | None, dict[str, list[dict]]]:
    """Each student against production's answers (model `production` in `answers`) on the prompts that have one,
    and per student the prompts where the two differ; none when no prompt has an answer from production."""
    theirs = {a["id"]: a for a in answers if a["model"] == PRODUCTION}
    if not theirs:
        return None, {}
    agreed, missed = {}, {}
    for student in students:
        found: dict[str, list[float]] = defaultdict(list)
        rows = []
        for mine in (a for a in answers if a["model"] == student and a["id"] in theirs):
            production = theirs[mine["id"]]
            same, why = agreement(mine, production, threshold)
            found[mine["slice"]].append(float(same))
            found[ALL].append(float(same))
            if not same:
                rows.append({**{k: mine[k] for k in ("slice", "id", "prompt", "reference")}, "production":
                             production["answer"], "student": mine["answer"], "why": why})  # fmt: skip
        agreed[student] = {name: mean_interval(scores) for name, scores in found.items()}
        missed[student] = sorted(rows, key=lambda r: (r["slice"], r["id"]))
    scored = {name: mean_interval(list(v.values())) for name, v in correct_by_prompt(answers, PRODUCTION).items()}
    return Shadow(prompts=len(theirs), threshold=threshold, production=scored, agreement=agreed), missed


def shadow_markdown(found: Shadow, rows: list[dict], student: str, per_slice: int) -> str:
    """Markdown: a student's agreement with production per slice, then the first of its disagreements (`rows`)
    per slice."""
    ratios = found.agreement[student]
    lines = [
        f"## shadow: {student} against production",
        "",
        f"{found.prompts} held-out prompts carry production's answer. Agreement: both verified right, or, where "
        f"no verifier tells them apart, ROUGE-L F1 ≥ {found.threshold:.2f}.",
        "",
        "| slice | agreement (95 %) |",
        "|---|---:|",
        *(f"| {name} | {ratios[name]} |" for name in sorted(set(ratios) - {ALL}) + [ALL] if name in ratios),
        "",
    ]
    if not rows:
        return "\n".join(lines + ["No disagreement with production.", ""])
    counts: dict[str, int] = defaultdict(int)
    lines += [
        f"{len(rows)} disagreements; up to {per_slice} per slice (all of them: the `shadow_disagreements` table).",
        "",
        "| slice | prompt | production | student | why |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        counts[r["slice"]] += 1
        if counts[r["slice"]] <= per_slice:
            cells = (
                r["slice"],
                table_cell(r["prompt"]),
                table_cell(r["production"]),
                table_cell(r["student"]),
                r["why"],
            )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + [""])
