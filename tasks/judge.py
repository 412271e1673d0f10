"""Judge: an LLM scores teacher answers 1-5 with a rubric, where no verifier can say right or wrong; its
threshold is set on a labelled calibration set, never guessed.

1. Calibrate: the judge scores the calibration set (rows with a prompt, an answer and a human `label`, good or
   bad). For each threshold t in 1..5, "score >= t" is compared with the labels: accuracy, precision, recall.
   The threshold is the lowest t whose precision reaches `min_precision` (a kept answer is a good one that
   often); where none does, the stage fails naming the best it reached. No calibration set: refused unless
   `allow_uncalibrated`, and then every summary says "uncalibrated".
2. Score: the samples of the slices in `slices`. A sample at or above the threshold passes.
Comparing two answers (`Judge.compare`, for win rates), each pair is shown in a seeded random order, ties are
counted, and how often the judge preferred whichever answer came first is reported: 0.5 is no position bias.
Every request goes through the durable store (purpose `judge`): a judge outage costs a retry, never a paid call
twice. Output `judgments.parquet` (schemas.JUDGMENTS), which dedup (the best of a group) and the filter read.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from prefect import task
from pydantic import BaseModel, Field, model_validator

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import PLACE, Config
from tasks.llm.ask import ask
from tasks.llm.config import LLMConfig, greedy
from tasks.llm.store import open_store
from tasks.logfile.files import log_files, logs_digest
from tasks.logfile.read import read_log
from tasks.plots import figure, png
from tasks.refs import STUDENT, DatasetRef, ModelRef
from tasks.schemas import JUDGMENTS
from tasks.stage import StageReport, StageResult, Timer, read_dataset, user_text, write_dataset

PURPOSE = "judge"
SCORES = range(1, 6)
MIN_PASSED = 3
RUBRIC = (
    "You grade an assistant's answer to a user's request.\n"
    "Score it from 1 (wrong, unhelpful or unsafe) to 5 (correct, complete and clear).\n"
    "Reply with the score only, as: Score: N\n\n"
    "Request:\n{prompt}\n\nAnswer:\n{answer}\n"
)
GOOD, BAD = {"good", "1", "true", "yes", "pass"}, {"bad", "0", "false", "no", "fail"}


class JudgeConfig(Config):
    """Which slices an LLM judge scores, with which model and rubric, calibrated how."""

    slices: list[str] = Field(default=[], description="Slices whose answers the judge scores (none: no judge).")
    model: LLMConfig | None = Field(None, description="The judge (none: the teacher, greedy).")
    rubric: str = Field(
        RUBRIC, description="The judge's prompt, with {prompt} and {answer}; it must ask for 'Score: N'."
    )
    max_new_tokens: int = Field(16, ge=1, description="Room for the judge's reply.")
    calibration: str | None = Field(
        None,
        description="A labelled set (JSONL, CSV or Parquet: prompt, answer, label good/bad) the judge is measured on.",
        json_schema_extra=PLACE,
    )
    min_precision: float = Field(
        0.8, gt=0, le=1, description="The threshold is the lowest score whose precision on the calibration set "
        "reaches this.",
    )  # fmt: skip
    allow_uncalibrated: bool = Field(False, description="Filter with a judge no calibration set has measured.")
    win_rate: bool = Field(
        False,
        description="After evaluation, the judge compares the student's and the teacher's answer to every held-out "
        "prompt (order randomised per pair, ties counted): the student's win-rate.",
        json_schema_extra=PLACE,  # asked after the stages it would key; its answers are in the durable store
    )
    uncalibrated_threshold: int = Field(4, ge=1, le=5, description="The threshold of an uncalibrated judge.")

    @model_validator(mode="after")
    def _calibrated_or_said_so(self):
        if self.slices and not self.calibration and not self.allow_uncalibrated:
            raise ValueError(
                "judge.slices are set but judge.calibration is not: give the judge a labelled calibration set, or "
                "set judge.allow_uncalibrated: true to filter with a judge nobody measured"
            )
        if "{prompt}" not in self.rubric or "{answer}" not in self.rubric:
            raise ValueError("judge.rubric must contain {prompt} and {answer}")
        return self


class JudgeUncalibrated(ValueError):
    """No threshold can be trusted: the judge reaches the precision asked for at none (one line, the best it
    reached), or its calibration set cannot be read (the row at fault)."""


class Judged(StageResult):
    judgments: DatasetRef
    threshold: int
    calibrated: bool
    plot: str | None = None  # URI of the calibration PNG


def judge_score(reply: str) -> int | None:
    """The 1-5 score in a judge's reply ("Score: 4", "4/5", "I'd give it a 4"), or None."""
    stated = re.search(r"score\s*[:=]?\s*\**\s*([1-5])\b", reply, re.IGNORECASE)
    stated = stated or re.search(r"\b([1-5])\s*/\s*5\b", reply)  # "4/5"
    if stated:
        return int(stated.group(1))
    digits = re.findall(r"\b([1-5])\b", reply)  # the last: "on a scale of 1 to 5, a 4" is a 4
    return int(digits[-1]) if digits else None


def read_calibration(path: str) -> list[dict]:
    """The calibration rows: prompt, answer, label (True: good). A row that is not one is an error naming it."""
    rows = []
    for record in read_log(path):
        if record.fields is None:
            continue
        fields = record.fields if isinstance(record.fields, dict) else {}
        missing = [name for name in ("prompt", "answer", "label") if fields.get(name) in (None, "")]
        if missing:
            raise JudgeUncalibrated(f"judge.calibration {record.where}: no {', '.join(missing)}")
        label = str(fields["label"]).strip().lower()
        if label not in GOOD | BAD:
            raise JudgeUncalibrated(f"judge.calibration {record.where}: label {fields['label']!r} is not good or bad")
        rows.append({"prompt": str(fields["prompt"]), "answer": str(fields["answer"]), "label": label in GOOD})
    if not any(r["label"] for r in rows) or all(r["label"] for r in rows):
        raise JudgeUncalibrated(f"judge.calibration {path}: needs good and bad answers to measure precision and recall")
    return rows


def calibration_table(scores: list[int | None], labels: list[bool]) -> list[dict]:
    """Per threshold t: how "score >= t" agrees with the labels (an unscored answer counts as not passing)."""
    table = []
    for t in SCORES:
        passed = [s is not None and s >= t for s in scores]
        hits = sum(p and good for p, good in zip(passed, labels, strict=True))
        table.append(
            {
                "threshold": t,
                "accuracy": sum(p == good for p, good in zip(passed, labels, strict=True)) / len(labels),
                "precision": hits / sum(passed) if any(passed) else 0.0,
                "recall": hits / sum(labels),
                "passed": sum(passed),
            }
        )
    return table


def choose_threshold(table: list[dict], min_precision: float) -> int:
    # a precision measured on fewer passing answers than this says nothing
    reached = [row["threshold"] for row in table if row["passed"] >= MIN_PASSED and row["precision"] >= min_precision]
    if reached:
        return min(reached)
    best = max(table, key=lambda row: row["precision"])
    raise JudgeUncalibrated(
        f"the judge reaches precision {min_precision:.2f} at no threshold on its calibration set (best "
        f"{best['precision']:.2f} at score >= {best['threshold']}): use a stronger judge (judge.model), a clearer "
        "judge.rubric, or a lower judge.min_precision"
    )


def plot(table: list[dict], min_precision: float) -> bytes:
    drawn, axes = figure(figsize=(6, 4))
    thresholds = [row["threshold"] for row in table]
    for metric in ("precision", "recall", "accuracy"):
        axes.plot(thresholds, [row[metric] for row in table], marker="o", label=metric)
    axes.axhline(min_precision, color="grey", linestyle="--", label=f"precision asked ({min_precision:.2f})")
    axes.set_xticks(thresholds)
    axes.set_xlabel("threshold (judge score >= t passes)")
    axes.set_ylim(0, 1.05)
    axes.set_title("judge on its calibration set")
    axes.legend()
    return png(drawn)


class Judge:
    """One judge model, asking through the durable store."""

    def __init__(self, config: JudgeConfig, model: LLMConfig, checkpoint: ModelRef | None, store_url: str):
        self.config, self.checkpoint, self.store_url = config, checkpoint, store_url
        self.model = model.model_copy(update={"sampling": greedy(config.max_new_tokens)})

    def replies(self, texts: list[str]) -> tuple[list[str | None], dict[str, float]]:
        """The judge's reply to each text (None where it refused), and what asking cost."""
        ids = [hashlib.sha256(text.encode()).hexdigest()[:24] for text in texts]
        with closing(open_store(self.store_url)) as store:
            answers = ask(store, PURPOSE, self.model, self.checkpoint, dict(zip(ids, texts, strict=True)), 1)
        found = [answers.completions.get((i, 0)) for i in ids]
        return [c.text if c else None for c in found], answers.spend.metrics()

    def scores(self, pairs: list[tuple[str, str]]) -> tuple[list[int | None], dict[str, float]]:
        """A score per (prompt, answer) pair, and what asking cost."""
        rubric = self.config.rubric  # replace, not format: a rubric may show JSON braces
        replies, spend = self.replies([rubric.replace("{prompt}", p).replace("{answer}", a) for p, a in pairs])
        return [judge_score(r) if r else None for r in replies], spend

    def compare(self, triples: list[tuple[str, str, str]], seed: int = 0) -> Comparison:
        """x against y for each (prompt, x, y), in a random order per pair (see `compare`)."""
        return compare(lambda texts: self.replies(texts)[0], triples, seed)


PAIRWISE = (
    "You compare two assistant answers to a user's request.\n"
    "Which answer is better: more correct, complete and clear? Reply with A, B, or tie only.\n\n"
    "Request:\n{prompt}\n\nAnswer A:\n{first}\n\nAnswer B:\n{second}\n"
)


def preference(reply: str) -> str | None:
    """ "A", "B" or "tie" from a pairwise judge's reply, or None."""
    if re.search(r"\btie\b", reply, re.IGNORECASE):
        return "tie"
    stated = re.search(r"\b([AB])\b", reply)  # capitals only: "a" is an article
    return stated.group(1) if stated else None


@dataclass
class Comparison:
    """Pairwise verdicts for (prompt, x, y) pairs, each shown in a random order: x's wins, y's wins, ties, and
    how often the judge preferred whichever answer it saw first (0.5 is no position bias)."""

    x_wins: int
    y_wins: int
    ties: int
    unparsed: int
    first_shown_preferred: float

    @property
    def x_win_rate(self) -> float:
        """x's wins, ties counting half, over the pairs judged."""
        judged = self.x_wins + self.y_wins + self.ties
        return (self.x_wins + self.ties / 2) / judged if judged else 0.0


def compare(replies_for: Callable[[list[str]], list[str]], triples: list[tuple[str, str, str]], seed: int = 0):
    """Judge x against y for each (prompt, x, y), x shown first in a seeded half of the pairs."""
    rng = random.Random(seed)
    x_first = [rng.random() < 0.5 for _ in triples]
    texts = [
        PAIRWISE.format(prompt=prompt, first=x if first else y, second=y if first else x)
        for (prompt, x, y), first in zip(triples, x_first, strict=True)
    ]
    counts = Counter()
    for reply, first in zip(replies_for(texts), x_first, strict=True):
        said = preference(reply or "")
        if said is None:
            counts["unparsed"] += 1
        elif said == "tie":
            counts["ties"] += 1
        else:
            counts["first"] += said == "A"
            counts["x"] += (said == "A") == first
            counts["y"] += (said == "A") != first
    decided = counts["x"] + counts["y"]
    return Comparison(
        x_wins=counts["x"], y_wins=counts["y"], ties=counts["ties"], unparsed=counts["unparsed"],
        first_shown_preferred=counts["first"] / decided if decided else 0.5,
    )  # fmt: skip


def judge(
    config: JudgeConfig,
    model: LLMConfig,
    checkpoint: ModelRef | None,
    rollouts: DatasetRef,
    store_url: str,
    out_uri: str,
) -> Judged:
    with Timer() as timer:
        scorer = Judge(config, model, checkpoint, store_url)
        metrics: dict[str, float] = {}
        table, plot_uri = [], None
        if config.calibration:
            labelled = read_calibration(config.calibration)
            scores, _ = scorer.scores([(r["prompt"], r["answer"]) for r in labelled])
            table = calibration_table(scores, [r["label"] for r in labelled])
            threshold = choose_threshold(table, config.min_precision)
            metrics |= {
                f"calibration.{m}_at_{row['threshold']}": row[m] for row in table for m in ("precision", "recall")
            }
            metrics |= {"calibration.rows": len(labelled), "calibration.unscored": scores.count(None)}
            plot_uri = storage.join(out_uri, "calibration.png")
            storage.write_bytes(plot(table, config.min_precision), plot_uri)
        else:
            threshold = config.uncalibrated_threshold
        samples = [r for r in read_dataset(rollouts) if r["slice"] in config.slices]
        scores, spend = scorer.scores([(user_text(r), r["completion"]) for r in samples])
    rows = [
        {
            "prompt_id": r["prompt_id"],
            "sample_index": r["sample_index"],
            "score": score,
            "threshold": threshold,
            "ok": None if score is None else score >= threshold,
        }
        for r, score in zip(samples, scores, strict=True)
    ]
    precision = next((row["precision"] for row in table if row["threshold"] == threshold), None)
    notes = [f"threshold {threshold}" + (f", precision {precision:.2f} on the calibration set" if table else
                                          ": uncalibrated (no calibration set; judge.allow_uncalibrated)")]  # fmt: skip
    report = StageReport(
        stage="judge",
        rows_in=len(samples),
        rows_out=len(samples),
        metrics=metrics
        | {"threshold": threshold, "calibrated": float(bool(table)), "passed": sum(bool(r["ok"]) for r in rows)}
        | {"unscored": scores.count(None)}
        | ({"calibration.precision": precision} if precision is not None else {})
        | {f"judge_{k}": v for k, v in spend.items() if k in ("requests_sent", "cost_usd_this_run")},
        seconds=timer.seconds,
        notes=notes,
        tables={"calibration": table} if table else {},
    )
    return Judged(
        judgments=write_dataset(rows, storage.join(out_uri, "judgments.parquet"), JUDGMENTS),
        threshold=threshold,
        calibrated=bool(table),
        plot=plot_uri,
        report=report,
    )


class WinRate(BaseModel):
    """The student against the teacher on the held-out prompts, by the judge, pair by pair."""

    pairs: int
    student_wins: int
    teacher_wins: int
    ties: int
    unparsed: int
    win_rate: float  # the student's wins, ties counting half, over the pairs judged
    first_shown_preferred: float  # 0.5: no position bias
    calibrated: bool  # the judge was measured on a calibration set (its 1-5 scores)

    def summary(self) -> str:
        measured = "" if self.calibrated else ", uncalibrated judge"
        return (
            f"judge win-rate, student vs teacher: {self.win_rate:.2f} ({self.student_wins} won, {self.teacher_wins} "
            f"lost, {self.ties} tied of {self.pairs} prompts; first shown preferred {self.first_shown_preferred:.2f}"
            f"{measured})"
        )


@task(name="judge_win_rate")
def win_rate(
    config: JudgeConfig,
    model: LLMConfig,
    checkpoint: ModelRef | None,
    answers: list[dict],
    store_url: str,
    student: str = STUDENT,
) -> WinRate:
    """The judge's verdict on (student, teacher) for each held-out prompt both answered (evaluate's answers)."""
    said = {(r["model"], r["prompt"]): r["answer"] for r in answers}
    prompts = sorted({prompt for model_name, prompt in said if model_name == student})
    pairs = [(p, said[student, p], said["teacher", p]) for p in prompts if ("teacher", p) in said]
    found = Judge(config, model, checkpoint, store_url).compare(pairs)
    return WinRate(
        pairs=len(pairs),
        student_wins=found.x_wins,
        teacher_wins=found.y_wins,
        ties=found.ties,
        unparsed=found.unparsed,
        win_rate=found.x_win_rate,
        first_shown_preferred=found.first_shown_preferred,
        calibrated=bool(config.calibration),
    )


def calibration_digest(config: JudgeConfig) -> str:
    """The calibration set by its files' content: relabelled rows change the cache key."""
    return logs_digest(log_files(config.calibration)) if config.calibration else ""


@task(name="judge_rollouts", **STAGE_TASK)
def judge_rollouts(
    config: JudgeConfig,
    model: LLMConfig,
    checkpoint: ModelRef | None,
    rollouts: DatasetRef,
    calibration: str,
    store: str,
    work_dir: str,
) -> Judged:
    """Calibrate the judge on its labelled set, then score the answers of the judged slices."""
    return judge(config, model, checkpoint, rollouts, store, stage_uri(work_dir, "judge", config, model, checkpoint,
                                                                       rollouts, calibration))  # fmt: skip
