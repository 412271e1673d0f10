"""Evaluate: base, teacher and student answer the held-out prompts; score, compare, time them.

Greedy answers to every held-out prompt, checked by the slices' verifiers (tasks.verify): the task
metric per slice and overall, and the transfer ratio student / teacher. Speed: single-prompt
latency and tokens/s over the first `latency_prompts` prompts, one at a time, as one user sees it.
Output `answers.parquet` (schemas.ANSWERS) and the score table in the result.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from prefect import task
from pydantic import BaseModel, Field

from tasks.config import Config
from tasks.models import ModelRef, generate, load_merged, load_model, parameter_count, size_mb, timed_generate
from tasks.schemas import ANSWERS
from tasks.stage import (
    STAGE_CACHE,
    DatasetRef,
    Progress,
    StageReport,
    StageResult,
    Timer,
    read_dataset,
    stage_dir,
    write_dataset,
)
from tasks.verify import VerifyConfig, slice_labels, verdict

MODELS = ("base", "teacher", "student")


class EvaluateConfig(Config):
    """How the models are compared on the held-out prompts."""

    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens (greedy decoding).")
    batch_size: int = Field(16, ge=1, description="Prompts per generate call when scoring.")
    latency_prompts: int = Field(8, ge=0, description="Prompts answered one at a time to time latency and tokens/s.")


class ModelScore(BaseModel):
    """One model's results on the held-out set."""

    accuracy: dict[str, float]  # per slice, and "all"
    latency_s: float
    tokens_per_s: float
    params: int
    size_mb: float


class Evaluated(StageResult):
    answers: DatasetRef
    scores: dict[str, ModelScore]  # "base", "teacher", "student"

    def transfer_ratio(self, slice_name: str = "all") -> float:
        """Student accuracy over teacher accuracy (0 when the teacher scores 0)."""
        teacher = self.scores["teacher"].accuracy.get(slice_name, 0.0)
        return self.scores["student"].accuracy.get(slice_name, 0.0) / teacher if teacher else 0.0


def accuracy_by_slice(answers: list[dict]) -> dict[str, float]:
    """Share correct per slice and over all checked answers (unverifiable answers are left out)."""
    checked: dict[str, list[bool]] = defaultdict(list)
    for a in answers:
        if a["correct"] is not None:
            checked[a["slice"]].append(a["correct"])
            checked["all"].append(a["correct"])
    return {name: sum(oks) / len(oks) for name, oks in sorted(checked.items())}


def answer_all(model, tokenizer, rows: list[dict], config: EvaluateConfig, name: str) -> list[str]:
    """Greedy answers to every row's prompt, in batches."""
    progress = Progress(f"evaluate {name}", len(rows), unit="prompts")
    texts = []
    for start in range(0, len(rows), config.batch_size):
        batch = [r["prompt"] for r in rows[start : start + config.batch_size]]
        texts += [c[0].text for c in generate(model, tokenizer, batch, max_new_tokens=config.max_new_tokens)]
        progress.advance(len(batch))
    return texts


def measure_speed(model, tokenizer, rows: list[dict], config: EvaluateConfig) -> tuple[float, float]:
    """(mean seconds per single-prompt answer, generated tokens per second) over the first prompts."""
    timings = [
        timed_generate(model, tokenizer, r["prompt"], config.max_new_tokens) for r in rows[: config.latency_prompts]
    ]
    if not timings:
        return 0.0, 0.0
    seconds = sum(t for _, t in timings)
    return seconds / len(timings), sum(c.completion_tokens for c, _ in timings) / seconds


def score_table(scores: dict[str, ModelScore], transfer: dict[str, float]) -> str:
    """Markdown: accuracy per slice for each model and the transfer ratio, then speed and size."""
    slices = sorted(set().union(*(s.accuracy for s in scores.values())) - {"all"}) + ["all"]
    lines = ["| slice | " + " | ".join(MODELS) + " | transfer |", "|---|" + "---:|" * (len(MODELS) + 1)]
    for name in slices:
        cells = [f"{scores[m].accuracy.get(name, 0.0):.2f}" for m in MODELS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {transfer.get(name, 0.0):.2f} |")
    lines += ["", "| model | params (M) | size (MB) | latency (s) | tokens/s |", "|---|---:|---:|---:|---:|"]
    for m in MODELS:
        s = scores[m]
        lines.append(f"| {m} | {s.params / 1e6:.1f} | {s.size_mb:.0f} | {s.latency_s:.2f} | {s.tokens_per_s:.1f} |")
    return "\n".join(lines)


def evaluate(
    config: EvaluateConfig,
    verify: VerifyConfig,
    teacher: ModelRef,
    base: ModelRef,
    adapter: ModelRef,
    prompts: DatasetRef,
    out_dir: Path,
) -> Evaluated:
    with Timer() as timer:
        rows = [r for r in read_dataset(prompts) if r["split"] == "eval"]
        labels = slice_labels(rows)
        loaders = {
            "base": lambda: load_model(base.path),
            "teacher": lambda: load_model(teacher.path),
            "student": lambda: load_merged(base.path, adapter.path),
        }
        checkpoint = {"base": base.path, "teacher": teacher.path, "student": base.path}  # merged = base's shape
        answers, scores = [], {}
        for name in MODELS:
            model, tokenizer = loaders[name]()
            texts = answer_all(model, tokenizer, rows, config, name)
            mine = [
                {
                    **{k: r[k] for k in ("id", "slice", "prompt", "reference")},
                    "model": name,
                    "answer": text,
                    "correct": verdict(verify, r, text, labels),
                }
                for r, text in zip(rows, texts, strict=True)
            ]
            latency, tokens_per_s = measure_speed(model, tokenizer, rows, config)
            scores[name] = ModelScore(
                accuracy=accuracy_by_slice(mine),
                latency_s=latency,
                tokens_per_s=tokens_per_s,
                params=parameter_count(checkpoint[name]),
                size_mb=size_mb(checkpoint[name]),
            )
            answers += mine
            del model
    result = Evaluated(
        answers=write_dataset(answers, out_dir / "answers.parquet", ANSWERS),
        scores=scores,
        report=StageReport(stage="evaluate", rows_in=len(rows), rows_out=len(answers), seconds=timer.seconds),
    )
    transfer = {name: result.transfer_ratio(name) for name in scores["teacher"].accuracy}
    result.report.metrics = {
        **{f"{m}.accuracy.{k}": v for m, s in scores.items() for k, v in s.accuracy.items()},
        **{f"{m}.latency_s": s.latency_s for m, s in scores.items()},
        **{f"{m}.tokens_per_s": s.tokens_per_s for m, s in scores.items()},
        **{f"transfer_ratio.{k}": v for k, v in transfer.items()},
    }
    result.report.details = score_table(scores, transfer)
    result.report.tables = {
        "scores": [
            {"slice": name, **{m: scores[m].accuracy.get(name, 0.0) for m in MODELS}, "transfer": transfer[name]}
            for name in transfer
        ]
    }
    return result


@task(name="evaluate_models", cache_policy=STAGE_CACHE, persist_result=True)
def evaluate_models(
    config: EvaluateConfig,
    verify: VerifyConfig,
    teacher: ModelRef,
    base: ModelRef,
    adapter: ModelRef,
    prompts: DatasetRef,
    work_dir: Path,
) -> Evaluated:
    """Score base, teacher and student on the held-out prompts, per slice, with latency."""
    out_dir = stage_dir(work_dir, "evaluate", config, verify, teacher, base, adapter, prompts)
    return evaluate(config, verify, teacher, base, adapter, prompts, out_dir)
