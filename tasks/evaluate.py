"""Evaluate: base, teacher and each student answer the held-out prompts; score, compare, time them.

Greedy answers to every held-out prompt, judged by the slices' verifiers (tasks.verifiers): the
task metric per slice and overall with a 95 % bootstrap interval over prompts (tasks.stats), the
transfer ratio student / teacher with its own, and the prompts the teacher got right and the student
did not (tasks.comparison), as a table and a per-slice bar chart. The teacher answers
through the LLM layer, so a served teacher is scored through its server, and its answers are kept
in the durable store (purpose `evaluate`): a rerun does not pay for them again. Speed: single-prompt
latency (p50, p95) and tokens/s over the first `latency_prompts` prompts, one at a time, as one user
sees it (these timing requests go to the model each time: `latency_prompts: 0` spares a paid teacher),
and the peak memory loading and answering added (tasks.memory; none for a served teacher).
Several students (two sizes, SFT and SFT+DPO) are scored side by side under their names; "base" is the first
student's starting checkpoint. Where the log carries production's response, the shadow report (tasks.shadow)
gives each student's agreement with it per slice, and production's responses are scored as one more row.
Output `answers.parquet` (schemas.ANSWERS) and the score table in the result.
"""

from __future__ import annotations

import time

from prefect import task
from pydantic import BaseModel, Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.comparison import (
    disagreements,
    disagreements_markdown,
    judged,
    plot_slices,
    slice_intervals,
    transfer_intervals,
)
from tasks.config import Config
from tasks.fallback import Fallback, confidence, fallback_curve
from tasks.fallback import plot as plot_fallback
from tasks.llm.ask import ask, make_backend
from tasks.llm.config import LLMConfig, greedy
from tasks.llm.local import LocalBackend
from tasks.llm.store import RequestStore, open_store
from tasks.llm.types import Backend, Completion, answer_each
from tasks.memory import PeakMemory
from tasks.models import load_merged, load_model, parameter_count, size_mb
from tasks.pii import RedactConfig, Redactor
from tasks.refs import STUDENT, DatasetRef, ModelRef, Student
from tasks.schemas import ANSWERS
from tasks.shadow import PRODUCTION, Shadow, shadow, shadow_markdown
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
from tasks.stats import Interval, percentile
from tasks.verifiers import VerifyConfig

REFERENCES = ("base", "teacher")  # what every student is compared with
PURPOSE = "evaluate"


class EvaluateConfig(Config):
    """How the models are compared on the held-out prompts."""

    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens (greedy decoding).")
    batch_size: int = Field(16, ge=1, description="Prompts per generate call when scoring.")
    latency_prompts: int = Field(
        8, ge=0, description="Prompts answered one at a time to time latency (p50, p95) and tokens/s."
    )
    fallback_target_accuracy: float = Field(
        0.9,
        gt=0,
        le=1,
        description="Accuracy the student must keep on the answers it gives itself; below the chosen "
        "confidence threshold the teacher answers (tasks.fallback).",
    )
    disagreements_shown: int = Field(
        5, ge=0, description="Teacher-right, student-wrong prompts per slice in the summary (MLflow keeps all)."
    )
    shadow_rouge_l: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Shadow report: a student answer agrees with production's response when ROUGE-L F1 between "
        "them is at least this, where no verifier can judge (tasks.shadow).",
    )


class ModelScore(BaseModel):
    """One model's results on the held-out set (params and size: none for a served teacher)."""

    accuracy: dict[str, float]  # per slice, and "all"
    interval: dict[str, Interval] = {}  # the accuracy's 95 % bootstrap interval, per slice
    latency_s: float  # p50 at batch 1
    latency_p95_s: float = 0.0
    tokens_per_s: float
    peak_memory_mb: float | None = None
    params: int | None
    size_mb: float | None


class Evaluated(StageResult):
    answers: DatasetRef
    scores: dict[str, ModelScore]  # "base", "teacher", then each student by name
    transfer: dict[str, dict[str, Interval]] = {}  # per student: its accuracy / the teacher's per slice, with interval
    fallback: dict[str, Fallback] = {}  # per student: where it would hand over to the teacher
    plot: str | None = None  # per-slice bars, every model
    fallback_plots: dict[str, str] = {}  # per student: its fallback curve
    shadow: Shadow | None = None  # each student against production's responses, where the log has them

    @property
    def students(self) -> list[str]:
        return [name for name in self.scores if name not in REFERENCES]

    def transfer_ratio(self, slice_name: str = "all", student: str = STUDENT) -> float:
        """Student accuracy over teacher accuracy on the prompts both were scored on (0 when the teacher scores 0):
        the value of the interval the metrics carry; from the scores for a result without intervals."""
        if slice_name in self.transfer.get(student, {}):
            return self.transfer[student][slice_name].value
        teacher = self.scores["teacher"].accuracy.get(slice_name, 0.0)
        return self.scores[student].accuracy.get(slice_name, 0.0) / teacher if teacher else 0.0


def answer_all(backend: Backend, rows: list[dict], name: str) -> list[Completion]:
    """Every row's answer from a backend, with a progress line."""
    progress = Progress(f"evaluate {name}", len(rows), unit="prompts")
    return answer_each(backend, [conversation(r) for r in rows], progress.advance)


class Speed(BaseModel):
    """Single-prompt answers, one at a time: latency percentiles and generated tokens per second."""

    p50_s: float = 0.0
    p95_s: float = 0.0
    tokens_per_s: float = 0.0


def measure_speed(backend: Backend, rows: list[dict], prompts: int, name: str) -> Speed:
    """Latency and throughput over the first prompts, each answered alone (one progress line for them all)."""
    timings = []
    progress = Progress(f"evaluate {name} latency", min(prompts, len(rows)), unit="prompts")
    for row in rows[:prompts]:
        start = time.perf_counter()
        [completion] = answer_each(backend, [conversation(row)])
        timings.append((completion.completion_tokens, time.perf_counter() - start))
        progress.advance(1)
    seconds = [t for _, t in timings]
    if not timings:
        return Speed()
    tokens = sum(n for n, _ in timings)
    return Speed(p50_s=percentile(seconds, 50), p95_s=percentile(seconds, 95), tokens_per_s=tokens / sum(seconds))


def fallback_metrics(found: Fallback) -> dict[str, float]:
    """The chosen threshold, the share of traffic it hands to the teacher and the accuracy kept; with no threshold
    reaching the target, all traffic goes to the teacher; with no confidence measured, nothing is claimed."""
    if not found.points:
        return {}
    if found.chosen is None:
        return {"fallback.share": 1.0}
    chosen = found.chosen
    return {
        "fallback.threshold": chosen.threshold,
        "fallback.share": chosen.fallback_share,
        "fallback.kept_accuracy": chosen.student_accuracy,
    }


def score_table(scores: dict[str, ModelScore], transfer: dict[str, dict[str, Interval]]) -> str:
    """Markdown: accuracy per slice for each model and each student's transfer ratio, with 95 % intervals, then
    speed, memory and size."""
    models, students = list(scores), list(transfer)
    slices = sorted(set().union(*(s.accuracy for s in scores.values())) - {"all"}) + ["all"]
    ratios = ["transfer" if len(students) == 1 else f"transfer {m}" for m in students]
    lines = ["| slice | " + " | ".join(models + ratios) + " |", "|---|" + "---:|" * (len(models) + len(ratios))]
    for name in slices:
        cells = [str(scores[m].interval.get(name, "")) or f"{scores[m].accuracy.get(name, 0.0):.2f}" for m in models]
        cells += [str(transfer[m].get(name, "")) for m in students]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Each cell: the score and its 95 % bootstrap interval over the slice's prompts.",
        "",
        "| model | params (M) | size (MB) | latency p50 (s) | p95 (s) | tokens/s | peak memory (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in models:
        s = scores[m]
        params = f"{s.params / 1e6:.1f}" if s.params is not None else "served"
        size = f"{s.size_mb:.0f}" if s.size_mb is not None else "served"
        memory = f"{s.peak_memory_mb:.0f}" if s.peak_memory_mb is not None else "-"
        lines.append(
            f"| {m} | {params} | {size} | {s.latency_s:.2f} | {s.latency_p95_s:.2f} | {s.tokens_per_s:.1f} | {memory} |"
        )
    return "\n".join(lines)


def score_teacher(
    config: EvaluateConfig,
    teacher: LLMConfig,
    checkpoint: ModelRef | None,
    store: RequestStore,
    rows: list[dict],
) -> tuple[list[str], Speed]:
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
        speed = measure_speed(backend, rows, config.latency_prompts, "teacher")
    finally:
        backend.close()
    return texts, speed


def score_local(config: EvaluateConfig, model, tokenizer, rows: list[dict], name: str, sure: bool):
    """A model in this process: greedy answers to every row (with their log-probabilities where `sure`, the
    confidence fallback is cut on), and its speed timed as served, without them."""
    sampling = greedy(config.max_new_tokens)
    asked = sampling.model_copy(update={"logprobs": 0}) if sure else sampling
    backend = LocalBackend(model, tokenizer, asked, config.batch_size, seed=0)
    timed = LocalBackend(model, tokenizer, sampling, 1, seed=0)
    try:
        completions = answer_all(backend, rows, name)
        speed = measure_speed(timed, rows, config.latency_prompts, name)
    finally:
        backend.close()
        timed.close()
    confidences = [confidence(c.logprobs) for c in completions] if sure else None
    return [c.text for c in completions], confidences, speed


def evaluate(
    config: EvaluateConfig,
    redact: RedactConfig,
    verify: VerifyConfig,
    teacher: LLMConfig,
    teacher_checkpoint: ModelRef | None,
    store: RequestStore,
    students: dict[str, Student],
    held_out: DatasetRef,
    out_uri: str,
) -> Evaluated:
    if not students:
        raise ValueError("evaluate needs at least one student")
    with Timer() as timer:
        rows = read_dataset(held_out)
        answers, scores = [], {}
        first = next(iter(students.values()))
        for name in [*REFERENCES, *students]:
            confidences = None
            with PeakMemory() as peak:
                if name == "teacher":
                    texts, speed = score_teacher(config, teacher, teacher_checkpoint, store, rows)
                    weights = teacher_checkpoint.uri if teacher_checkpoint else None
                else:
                    student = students.get(name)  # none for "base": the first student before training
                    model, tokenizer = load_merged(student.base.uri, student.adapter.uri) if student else \
                        load_model(first.base.uri)  # fmt: skip
                    texts, confidences, speed = score_local(config, model, tokenizer, rows, name, bool(student))
                    del model
                    weights = (student or first).base.uri  # the merged student has its base's shape
            mine = judged(verify, rows, texts, name, confidences)
            interval = slice_intervals(mine, name)  # unverifiable answers are left out of every score
            scores[name] = ModelScore(
                accuracy={slice_name: found.value for slice_name, found in interval.items()},
                interval=interval,
                latency_s=speed.p50_s,
                latency_p95_s=speed.p95_s,
                tokens_per_s=speed.tokens_per_s,
                # a served teacher's memory is its server's; vLLM's engine runs in processes of its own
                peak_memory_mb=peak.mb if weights and not (name == "teacher" and teacher.backend == "vllm") else None,
                params=parameter_count(weights) if weights else None,
                size_mb=size_mb(weights) if weights else None,
            )
            answers += mine
        transfer = {name: transfer_intervals(answers, name) for name in students}
        # scored as answered, stored redacted: a model may echo a name it was shown, or invent one
        prompts = rows * len(scores)  # the answers, model by model, each in the rows' order
        redacted = Redactor(redact).redact_answers(prompts, [[a["answer"]] for a in answers], "redact answers")
        answers = [{**a, "answer": text} for a, [text] in zip(answers, redacted, strict=True)]
        # production's responses were redacted with their prompts: compared and shown as they are
        answered = [r for r in rows if r.get("response")]
        answers += judged(verify, answered, [r["response"] for r in answered], PRODUCTION)
        shadowed, differ = shadow(answers, list(students), config.shadow_rouge_l)
        # the verdicts are on the answers as given, the text shown redacted
        missed = {name: disagreements(answers, name) for name in students}
        handover = {name: fallback_curve(answers, config.fallback_target_accuracy, name) for name in students}
        plot_uri = storage.join(out_uri, "slices.png")
        drawn = {m: s.interval for m, s in scores.items()} | ({PRODUCTION: shadowed.production} if shadowed else {})
        storage.write_bytes(plot_slices(drawn), plot_uri)
        fallback_plots = {name: storage.join(out_uri, f"fallback-{name}.png") for name in students}
        for name, uri in fallback_plots.items():
            storage.write_bytes(plot_fallback(handover[name]), uri)
    result = Evaluated(
        answers=write_dataset(answers, storage.join(out_uri, "answers.parquet"), ANSWERS),
        scores=scores,
        transfer=transfer,
        fallback=handover,
        plot=plot_uri,
        fallback_plots=fallback_plots,
        shadow=shadowed,
        report=StageReport(stage="evaluate", rows_in=len(rows), rows_out=len(answers), seconds=timer.seconds),
    )
    result.report.metrics = evaluate_metrics(scores, transfer, handover, missed) | shadow_metrics(shadowed)
    result.report.details = score_table(scores, transfer) + "".join(
        student_section(name, handover[name], missed[name], config.disagreements_shown, len(students) > 1)
        + (f"\n{shadow_markdown(shadowed, differ[name], name, config.disagreements_shown)}" if shadowed else "")
        for name in students
    )
    result.report.tables = {
        "scores": scores_rows(scores, transfer),
        **{f"{prefix(name)}disagreements": rows for name, rows in missed.items() if rows},
        **{f"{prefix(name)}shadow_disagreements": rows for name, rows in differ.items() if rows},
    }
    return result


def prefix(student: str) -> str:
    """Metric names of the first (or only) student are as a one-student run logs them; other students' carry their
    name in front."""
    return "" if student == STUDENT else f"{student}."


def student_section(name: str, handover: Fallback, missed: list[dict], shown: int, named: bool) -> str:
    """Markdown: where a student would hand over to the teacher, and the prompts it got wrong that the teacher
    got right."""
    said = f"{name} {handover.summary()}" if named else handover.summary()
    return f"\n\n{said}\n\n## teacher right, {name} wrong\n\n" + disagreements_markdown(missed, shown)


def scores_rows(scores: dict[str, ModelScore], transfer: dict[str, dict[str, Interval]]) -> list[dict]:
    """The `scores` table: per slice, every model's accuracy and each student's transfer ratio with its interval."""
    rows = []
    for name in next(iter(transfer.values())):
        row = {"slice": name, **{m: s.accuracy.get(name, 0.0) for m, s in scores.items()}}
        for student, ratios in transfer.items():
            if found := ratios.get(name):
                p = prefix(student)
                row |= {f"{p}transfer": found.value, f"{p}transfer_low": found.low, f"{p}transfer_high": found.high}
        rows.append(row)
    return rows


def evaluate_metrics(
    scores: dict[str, ModelScore],
    transfer: dict[str, dict[str, Interval]],
    handover: dict[str, Fallback],
    missed: dict[str, list[dict]],
) -> dict[str, float]:
    metrics = {
        **{f"{m}.accuracy.{k}": v for m, s in scores.items() for k, v in s.accuracy.items()},
        **{f"{m}.accuracy_low.{k}": v.low for m, s in scores.items() for k, v in s.interval.items()},
        **{f"{m}.accuracy_high.{k}": v.high for m, s in scores.items() for k, v in s.interval.items()},
        **{f"{m}.latency_s": s.latency_s for m, s in scores.items()},
        **{f"{m}.latency_p95_s": s.latency_p95_s for m, s in scores.items()},
        **{f"{m}.tokens_per_s": s.tokens_per_s for m, s in scores.items()},
        **{f"{m}.peak_memory_mb": s.peak_memory_mb for m, s in scores.items() if s.peak_memory_mb is not None},
    }
    for name, ratios in transfer.items():
        metrics |= {f"{prefix(name)}transfer_ratio.{k}": v.value for k, v in ratios.items()}
        metrics |= {f"{prefix(name)}transfer_ratio_low.{k}": v.low for k, v in ratios.items()}
        metrics |= {f"{prefix(name)}transfer_ratio_high.{k}": v.high for k, v in ratios.items()}
        metrics[f"{prefix(name)}disagreements"] = len(missed[name])
        metrics |= {f"{prefix(name)}{k}": v for k, v in fallback_metrics(handover[name]).items()}
    return metrics


def shadow_metrics(found: Shadow | None) -> dict[str, float]:
    """Production's accuracy and each student's agreement with it, per slice, with their intervals."""
    if found is None:
        return {}
    metrics = {"shadow.prompts": found.prompts} | interval_metrics(f"{PRODUCTION}.accuracy", found.production)
    for student, intervals in found.agreement.items():
        metrics |= interval_metrics(f"{prefix(student)}shadow.agreement", intervals)
    return metrics


def interval_metrics(name: str, intervals: dict[str, Interval]) -> dict[str, float]:
    """`name.<slice>` and its `name_low.<slice>`, `name_high.<slice>`."""
    return {f"{name}{part}.{k}": value for k, v in intervals.items()
            for part, value in (("", v.value), ("_low", v.low), ("_high", v.high))}  # fmt: skip


@task(name="evaluate_models", **STAGE_TASK)
def evaluate_models(
    config: EvaluateConfig,
    redact: RedactConfig,
    verify: VerifyConfig,
    teacher: LLMConfig,
    teacher_checkpoint: ModelRef | None,
    students: dict[str, Student],
    held_out: DatasetRef,
    store: str,
    work_dir: str,
) -> Evaluated:
    """Score base, teacher and each student on the held-out prompts, per slice, with latency."""
    inputs = (config, redact, verify, teacher, teacher_checkpoint, students, held_out)
    out_uri = stage_uri(work_dir, "evaluate", *inputs)
    request_store = open_store(store)
    try:
        return evaluate(config, redact, verify, teacher, teacher_checkpoint, request_store, students, held_out, out_uri)
    finally:
        request_store.close()
