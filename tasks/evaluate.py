"""Evaluate: base, teacher and student answer the held-out prompts; score, compare, time them.

Greedy answers to every held-out prompt, judged by the slices' verifiers (tasks.verifiers): the
task metric per slice and overall, and the transfer ratio student / teacher. The teacher answers
through the LLM layer, so a served teacher is scored through its server, and its answers are kept
in the durable store (purpose `evaluate`): a rerun does not pay for them again. Speed: single-prompt
latency and tokens/s over the first `latency_prompts` prompts, one at a time, as one user sees it
(these timing requests go to the model each time: `latency_prompts: 0` spares a paid teacher).
Output `answers.parquet` (schemas.ANSWERS) and the score table in the result.
"""

from __future__ import annotations

import time
from collections import defaultdict

from prefect import task
from pydantic import BaseModel, Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.llm.ask import ask, make_backend
from tasks.llm.config import LLMConfig, greedy
from tasks.llm.local import LocalBackend
from tasks.llm.store import RequestStore, open_store
from tasks.llm.types import Backend, Completion, answer_each
from tasks.models import load_merged, load_model, parameter_count, size_mb
from tasks.pii import RedactConfig, Redactor
from tasks.refs import DatasetRef, ModelRef
from tasks.schemas import ANSWERS
from tasks.stage import (
    Progress,
    StageReport,
    StageResult,
    Timer,
    conversation,
    prompt_id,
    read_dataset,
    write_dataset,
)
from tasks.verifiers import VerifyConfig, verdict

MODELS = ("base", "teacher", "student")
PURPOSE = "evaluate"


class EvaluateConfig(Config):
    """How the models are compared on the held-out prompts."""

    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens (greedy decoding).")
    batch_size: int = Field(16, ge=1, description="Prompts per generate call when scoring.")
    latency_prompts: int = Field(4, ge=0, description="Prompts answered one at a time to time latency and tokens/s.")


class ModelScore(BaseModel):
    """One model's results on the held-out set (params and size: none for a served teacher)."""

    accuracy: dict[str, float]  # per slice, and "all"
    latency_s: float
    tokens_per_s: float
    params: int | None
    size_mb: float | None


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


def answer_all(backend: Backend, rows: list[dict], name: str) -> list[Completion]:
    """Every row's answer from a backend, with a progress line."""
    progress = Progress(f"evaluate {name}", len(rows), unit="prompts")
    return answer_each(backend, [conversation(r) for r in rows], progress.advance)


def measure_speed(backend: Backend, rows: list[dict], prompts: int) -> tuple[float, float]:
    """(mean seconds per single-prompt answer, generated tokens per second) over the first prompts."""
    timings = []
    for i, row in enumerate(rows[:prompts]):
        start = time.perf_counter()
        [completion] = answer_all(backend, [row], f"latency {i}")
        timings.append((completion.completion_tokens, time.perf_counter() - start))
    seconds = sum(t for _, t in timings)
    return (seconds / len(timings), sum(n for n, _ in timings) / seconds) if timings else (0.0, 0.0)


def judged(verify: VerifyConfig, rows: list[dict], texts: list[str], model: str) -> list[dict]:
    """ANSWERS rows: each answer with the slice's verdict on it."""
    out = []
    for row, text in zip(rows, texts, strict=True):
        found = verdict(verify, row, text)
        out.append(
            {
                **{k: row[k] for k in ("id", "slice", "prompt", "reference")},
                "model": model,
                "answer": text,
                "correct": found.ok if found else None,
                "reason": found.reason if found else None,
            }
        )
    return out


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
        params = f"{s.params / 1e6:.1f}" if s.params is not None else "served"
        size = f"{s.size_mb:.0f}" if s.size_mb is not None else "served"
        lines.append(f"| {m} | {params} | {size} | {s.latency_s:.2f} | {s.tokens_per_s:.1f} |")
    return "\n".join(lines)


def score_teacher(
    config: EvaluateConfig,
    teacher: LLMConfig,
    checkpoint: ModelRef | None,
    store: RequestStore,
    rows: list[dict],
) -> tuple[list[str], float, float]:
    """The teacher's greedy answers through the LLM layer and its store, and its speed."""
    greedy_teacher = teacher.model_copy(
        update={
            "sampling": greedy(config.max_new_tokens, teacher.sampling.system_prompt),
            "batch_size": config.batch_size,
        }
    )
    backend = make_backend(greedy_teacher, checkpoint)
    try:
        by_id = {prompt_id(r["prompt"]): conversation(r) for r in rows}
        answers = ask(store, PURPOSE, greedy_teacher, checkpoint, by_id, 1, backend=backend)
        if answers.rejected:
            raise RuntimeError(f"the teacher refused {len(answers.rejected)} held-out prompts: {answers.rejected}")
        texts = [answers.completions[(prompt_id(r["prompt"]), 0)].text for r in rows]
        latency, tokens_per_s = measure_speed(backend, rows, config.latency_prompts)
    finally:
        backend.close()
    return texts, latency, tokens_per_s


def evaluate(
    config: EvaluateConfig,
    redact: RedactConfig,
    verify: VerifyConfig,
    teacher: LLMConfig,
    teacher_checkpoint: ModelRef | None,
    store: RequestStore,
    base: ModelRef,
    adapter: ModelRef,
    held_out: DatasetRef,
    out_uri: str,
) -> Evaluated:
    with Timer() as timer:
        rows = read_dataset(held_out)
        answers, scores = [], {}
        sampling = greedy(config.max_new_tokens)
        for name in MODELS:
            if name == "teacher":
                texts, latency, tokens_per_s = score_teacher(config, teacher, teacher_checkpoint, store, rows)
                weights = teacher_checkpoint.uri if teacher_checkpoint else None
            else:
                model, tokenizer = load_model(base.uri) if name == "base" else load_merged(base.uri, adapter.uri)
                backend = LocalBackend(model, tokenizer, sampling, config.batch_size, seed=0)
                texts = [c.text for c in answer_all(backend, rows, name)]
                latency, tokens_per_s = measure_speed(backend, rows, config.latency_prompts)
                backend.close()
                weights = base.uri  # the merged student has the base's shape
            mine = judged(verify, rows, texts, name)
            scores[name] = ModelScore(
                accuracy=accuracy_by_slice(mine),
                latency_s=latency,
                tokens_per_s=tokens_per_s,
                params=parameter_count(weights) if weights else None,
                size_mb=size_mb(weights) if weights else None,
            )
            answers += mine
        # scored as answered, stored redacted: a model may echo a name it was shown, or invent one
        prompts = rows * len(MODELS)  # the answers, model by model, each in the rows' order
        redacted = Redactor(redact).redact_answers(prompts, [[a["answer"]] for a in answers], "redact answers")
        answers = [{**a, "answer": text} for a, [text] in zip(answers, redacted, strict=True)]
    result = Evaluated(
        answers=write_dataset(answers, storage.join(out_uri, "answers.parquet"), ANSWERS),
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


@task(name="evaluate_models", **STAGE_TASK)
def evaluate_models(
    config: EvaluateConfig,
    redact: RedactConfig,
    verify: VerifyConfig,
    teacher: LLMConfig,
    teacher_checkpoint: ModelRef | None,
    base: ModelRef,
    adapter: ModelRef,
    held_out: DatasetRef,
    store: str,
    work_dir: str,
) -> Evaluated:
    """Score base, teacher and student on the held-out prompts, per slice, with latency."""
    inputs = (config, redact, verify, teacher, teacher_checkpoint, base, adapter, held_out)
    out_uri = stage_uri(work_dir, "evaluate", *inputs)
    request_store = open_store(store)
    try:
        return evaluate(
            config, redact, verify, teacher, teacher_checkpoint, request_store, base, adapter, held_out, out_uri
        )
    finally:
        request_store.close()
