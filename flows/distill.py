"""The distillation DAG: prompt log in, a smaller, quantized, registered student out."""

from __future__ import annotations

from typing import Literal

from prefect import flow
from prefect.states import Failed, State
from pydantic import BaseModel, Field, model_validator

from flows.fresh import advance, fresh_window
from flows.placement import PlacementConfig, placed
from flows.preflight import ServiceDown, check_services
from tasks import storage
from tasks.cache import cached
from tasks.config import Config
from tasks.coverage import map_coverage
from tasks.curves import series
from tasks.decontaminate import DecontaminateConfig, EvalSetUnreadable, decontaminate_prompts, eval_sets_digest
from tasks.dedup import DedupConfig, dedup_rollouts
from tasks.dpo import PreferenceConfig
from tasks.drift import DriftConfig, drift_report
from tasks.evaluate import EvaluateConfig, Evaluated, ModelScore
from tasks.export import ExportConfig, Exported
from tasks.filter import FilterConfig, Filtered, filter_rollouts
from tasks.funnel import Step, funnel
from tasks.gate import (
    Evidence,
    GateConfig,
    Promotion,
    against_champion,
    choose_student,
    fallback_tags,
    promote_student,
    versus_champion,
)
from tasks.judge import JudgeConfig, JudgeUncalibrated, WinRate, calibration_digest, judge_rollouts, win_rate
from tasks.llm.config import LLMConfig
from tasks.llm.types import ModelUnavailable, NoTeacherSignal
from tasks.logfile.files import LogError
from tasks.pii import RedactConfig
from tasks.redact import redact_prompts
from tasks.refs import STUDENT, DatasetRef, ModelRef, Student
from tasks.replay import ReplayConfig, replay_prompts
from tasks.rollout import RolloutConfig
from tasks.schedule import ScheduleConfig
from tasks.selection import SelectionConfig, select_rows
from tasks.serve import ServeConfig
from tasks.source import SourceConfig, log_digest, source_prompts
from tasks.stage import StageReport, StageResult, dataset_ref, read_dataset, read_table
from tasks.storage import StorageConfig
from tasks.student import StudentConfig, prepare_student
from tasks.synthesize import SynthesisConfig, mostly_synthetic, synthesize_prompts, synthetic_shares
from tasks.teacher import prepare_teacher
from tasks.tracking import (
    Run,
    RunStops,
    TrackingConfig,
    champion,
    flat_params,
    log_dataset,
    log_funnel,
    log_image,
    log_markdown,
    log_metrics,
    log_stage,
    log_steps,
    tag_shipped_student,
    tracked_run,
)
from tasks.train import TrainConfig
from tasks.verifiers import VerifyConfig, with_labels
from tasks.verifiers.sandbox import SandboxUnavailable, check_sandbox
from tasks.verify import verify_rollouts


class DistillConfig(Config):
    """Everything one distillation run needs; the defaults run the CPU demo."""

    work_dir: str = Field(".redistill", description="Where datasets and models go: a folder or a URI (file://, ...).")
    request_store: str | None = Field(
        None,
        description="The durable LLM request store: a SQLite path, or `postgresql://…` shared by many workers; "
        "none: `<work_dir>/llm/requests.sqlite`.",
    )
    run_name: str | None = Field(None, description="MLflow run name (default: MLflow picks one).")
    stop_after: (
        Literal[
            "source",
            "coverage",
            "redact",
            "synthesize",
            "decontaminate",
            "rollout",
            "verify",
            "judge",
            "dedup",
            "filter",
            "selection",
            "train",
            "evaluate",
        ]
        | None
    ) = Field(
        None,
        description="Stop after this stage and show what it found: `redact` is a dry run before paying a teacher "
        "(quarantine by reason, PII by type, the slice mix, where the redacted prompts are).",
    )
    teacher: LLMConfig = LLMConfig()
    student: StudentConfig = StudentConfig()
    source: SourceConfig = SourceConfig()
    redact: RedactConfig = RedactConfig()
    rollout: RolloutConfig = RolloutConfig()
    drift: DriftConfig = DriftConfig()
    replay: ReplayConfig = ReplayConfig()
    synthesis: SynthesisConfig = SynthesisConfig()
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    verify: VerifyConfig = VerifyConfig()
    judge: JudgeConfig = JudgeConfig()
    dedup: DedupConfig = DedupConfig()
    filter: FilterConfig = FilterConfig()
    selection: SelectionConfig = SelectionConfig()
    train: TrainConfig = TrainConfig()
    dpo: PreferenceConfig = PreferenceConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
    serve: ServeConfig = ServeConfig()
    gate: GateConfig = GateConfig()
    tracking: TrackingConfig = TrackingConfig()
    storage: StorageConfig = StorageConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    placement: PlacementConfig = PlacementConfig()

    @model_validator(mode="after")
    def _sections_fit_together(self):
        """Mistakes that would otherwise surface stages later, after the teacher was paid."""
        if self.student.init == "prune" and not self.student.prune_from and not self.teacher.has_checkpoint:
            raise ValueError(
                "student.init 'prune' needs weights to prune, and a served teacher (teacher.backend 'openai') has "
                "none here: set student.prune_from to a local copy of its checkpoint, or use student.init 'checkpoint'"
            )
        pruned = [size.name for size in self.student.sizes if size.keep_layers is not None]
        if pruned and not self.student.prune_from and not self.teacher.has_checkpoint:
            raise ValueError(
                f"student.sizes {pruned} prune the teacher, and a served teacher has no weights here: set "
                "student.prune_from to a local copy of its checkpoint, or give those sizes a checkpoint"
            )
        if self.train.objective == "on_policy" and not self.teacher.has_checkpoint:
            raise ValueError(
                "train.objective 'on_policy' needs the teacher's weights here to score the student's own answers, and "
                "a served teacher (teacher.backend 'openai') has none: use train.objective 'kd' (its vLLM server "
                "scores the kept answers) or 'sft'"
            )
        if self.stop_after == "judge" and not self.judge.slices:
            raise ValueError("stop_after 'judge' but no judge.slices: the judge stage would not run, nor the run stop")
        if self.stop_after == "coverage" and not self.source.coverage.enabled:
            raise ValueError("stop_after 'coverage' but source.coverage.enabled is false: the run would not stop")
        if self.synthesis.enabled and not self.source.coverage.enabled:
            raise ValueError("synthesis.enabled needs source.coverage.enabled: thin clusters are found on its map")
        if self.stop_after == "synthesize" and not self.synthesis.enabled:
            raise ValueError("stop_after 'synthesize' but synthesis.enabled is false: the run would not stop")
        if self.stop_after == "selection" and not self.selection.budget:
            raise ValueError("stop_after 'selection' but no selection.budget: the selection stage would not run")
        if not storage.is_local(self.work_dir) and self.request_store is None:
            raise ValueError(f"work_dir {self.work_dir} is not on this machine: set request_store (postgresql://…)")
        return self

    def request_store_url(self) -> str:
        """The configured store, else SQLite under the (local) work dir."""
        return self.request_store or str(
            storage.local_path(storage.canonical(self.work_dir)) / "llm" / "requests.sqlite"
        )


# what the champion was trained on: its decontaminated prompts (runs before that stage: replayed, else redacted)
CHAMPION_TRAINED_ON = ("decontaminate.train_prompts", "replay.train_prompts", "redact.train_prompts")
# what the champion was scored on (runs before `evaluate.held_out` was logged: their redacted held-out prompts)
CHAMPION_SCORED_ON = ("evaluate.held_out", "redact.eval_prompts")


class DistillSummary(BaseModel):
    """What a run produced, for the closing table."""

    scores: dict[str, ModelScore]  # base, teacher, each student
    student: str = STUDENT  # the one exported and registered; transfer_ratio and the gate are about it
    transfer_ratio: dict[str, float]
    exported_uri: str
    exported_mb: float
    export_check: str = ""  # the export's check: against the merged model, and served by vLLM where it ran
    exported_accuracy: dict[str, float] = {}  # the export's own score per slice, on the check prompts
    gguf: str = ""  # the GGUF file and its accuracy, with export.gguf
    promotion: Promotion
    fallback: str = ""  # where the student would hand over to the teacher, in words
    win_rate: str = ""  # the judge's student-vs-teacher verdicts, when asked for (judge.win_rate)
    production_accuracy: dict[str, float] = {}  # production's responses, scored per slice, where the log has them
    shadow: str = ""  # the shipped student's agreement with production, in words
    shadow_agreement: dict[str, float] = {}  # ... per slice
    mlflow_run_id: str
    tracking_uri: str
    stage_seconds: dict[str, float]


class StoppedEarly(BaseModel):
    """A run that ended after a stage, completed: as asked (`stop_after`), or because a scheduled run found not
    enough new traffic. What each stage found, and where its data is."""

    stage: str
    reason: str
    reports: list[StageReport]
    datasets: dict[str, str]
    mlflow_run_id: str
    tracking_uri: str


def _stopped(run: Run, stop: RunStops) -> StoppedEarly | State:
    if stop.failed:  # nothing left to work on: a failed run that says why, without a traceback
        return Failed(name="NothingToDistill", message=str(stop))
    return StoppedEarly(
        stage=stop.stage,
        reason=stop.reason,
        reports=run.reports,
        datasets=run.datasets,
        mlflow_run_id=run.run_id,
        tracking_uri=run.tracking_uri,
    )


@flow(name="distill")
def distill(config: DistillConfig = DistillConfig()) -> DistillSummary | StoppedEarly:
    """Distil the teacher into a smaller, quantized student from a prompt log."""
    cfg, work, store = config, storage.canonical(config.work_dir), config.request_store_url()
    try:
        storage.configure(cfg.storage)
        check_services(cfg)
    except (storage.StorageError, ServiceDown) as down:  # one line naming the service or field, before any work
        return Failed(name="ServiceDown", message=str(down))
    window = fresh_window(cfg.schedule) if cfg.schedule.fresh_traffic else None
    if window:  # the run reads, and logs as its params, the window of fresh traffic
        cfg = cfg.model_copy(update={"source": window.source(cfg.source)})
    try:
        summary = _distill(cfg, work, store)
    except RunStops as stop:
        return _stopped(stop.run, stop)
    except LogError as unreadable:  # a deployed run has no CLI to check the log first: one line, no traceback
        return Failed(name="LogUnreadable", message=str(unreadable))
    except SandboxUnavailable as missing:  # never run a teacher's code loose, nor pay it for answers left unchecked
        return Failed(name="SandboxUnavailable", message=str(missing))
    except (JudgeUncalibrated, EvalSetUnreadable, NoTeacherSignal) as mistake:  # the config's, not a bug: one line
        return Failed(name=type(mistake).__name__, message=str(mistake))
    except ModelUnavailable as down:  # still down after the rollout's retries: which teacher, and its last error
        message = f"the teacher ({cfg.teacher.model}) did not answer: {down}; a retry of this run asks it only for "
        return Failed(name="TeacherUnavailable", message=message + "what the request store lacks")
    if window:
        advance(window.variable, cfg.source.until)
    return summary


def slices_in(*datasets: DatasetRef) -> set[str]:
    return {name for ref in datasets for name in read_table(ref).column("slice").to_pylist()}


def _judge_model(cfg: DistillConfig, teacher: ModelRef | None, work: str) -> tuple[LLMConfig, ModelRef | None]:
    """The judge and its weights: the teacher unless `judge.model` names another model."""
    return (cfg.judge.model, prepare_teacher(cfg.judge.model, work)) if cfg.judge.model else (cfg.teacher, teacher)


def _judge(run: Run, cfg: DistillConfig, teacher: ModelRef | None, rollouts: DatasetRef, store: str, work: str):
    """The judge stage: the teacher judges, greedy, unless `judge.model` names another model."""
    model, checkpoint = _judge_model(cfg, teacher, work)
    digest = calibration_digest(cfg.judge)
    judged = log_stage(run, cached(judge_rollouts)(cfg.judge, model, checkpoint, rollouts, digest, store, work))
    if judged.plot:
        log_image(run, judged.plot, "judge/calibration.png", "the judge's precision and recall per threshold")
    return judged


def evidence_of(scored: Evaluated, student: str, latency_measured: bool) -> Evidence:
    """What evaluate found on a student, for the gate (its export not yet checked)."""
    score = scored.scores[student]
    return Evidence(
        transfer_ratio=scored.transfer_ratio(student=student),
        slice_accuracy=score.accuracy,
        latency_p95_s=score.latency_p95_s if latency_measured else None,
        check_passed=True,
    )


def renamed(result: StageResult, stage: str) -> StageResult:
    """A stage's result logged under another name (a second student's training: `train.student_small`)."""
    return result.model_copy(update={"report": result.report.model_copy(update={"stage": stage})})


def _students(
    run: Run, cfg: DistillConfig, teacher: ModelRef | None, kept: Filtered, work: str, store: str
) -> dict[str, Student]:
    """Every student, trained on the kept rows: the first, `student`, and one per `student.sizes`; then, with
    `dpo.enabled`, each one's DPO follow-up on the filter's verifier pairs, as `<name>_dpo`."""
    students = {}
    for name, start in reversed(cfg.student.variants().items()):  # the first last: stop_after 'train' is about it
        base = prepare_student(start, teacher, work)
        stage = "train" if name == STUDENT else f"train.{name}"
        # the teacher's weights, or its server; an sft student's cache key owes nothing to either
        taught = (teacher or cfg.teacher.served()) if cfg.train.objective != "sft" else None
        trained = placed("train", cfg.placement.train)(cfg.train, base, kept.rows, work, taught, store)
        trained = log_stage(run, renamed(trained, stage))
        log_steps(run, f"{stage}.curve", series(trained.curve))
        if trained.curve_plot:
            log_image(run, trained.curve_plot, f"{stage}/curves.png", "train and eval loss, learning rate per step")
        students[name] = Student(base=base, adapter=trained.adapter)
    students = dict(reversed(students.items()))
    if cfg.dpo.enabled:
        for name, sft in list(students.items()):
            found = placed("dpo", cfg.placement.train)(cfg.dpo, cfg.train.method, sft, kept.pairs, work)
            preferred = log_stage(run, renamed(found, "dpo" if name == STUDENT else f"dpo.{name}"))
            if preferred.student:
                students[f"{name}_dpo"] = preferred.student
    return students


def _distill(cfg: DistillConfig, work: str, store: str) -> DistillSummary:
    """The DAG, one line per stage; `log_stage` raises RunStops where the run ends early."""
    with tracked_run(cfg.tracking, work, flat_params(cfg), cfg.run_name, cfg.stop_after) as run:
        label_slices = cfg.verify.slices_needing_labels()
        sourced = log_stage(run, cached(source_prompts)(cfg.source, label_slices, log_digest(cfg.source.path), work))
        verify = with_labels(cfg.verify, sourced.labels)
        if sourced.coverage_map:  # before any teacher call: is the sample where production is?
            covered = log_stage(run, map_coverage(cfg.source.coverage, cfg.redact, sourced.coverage_map, work))
            log_image(run, covered.plot, "coverage/coverage.png", "production's prompts by cluster, the sample ringed")
        redacted = log_stage(
            run,
            cached(redact_prompts)(cfg.redact, sourced.train_prompts, sourced.eval_prompts, sourced.quarantine, work),
            artifacts=["quarantine"],
        )
        train_prompts, held_out = redacted.train_prompts, redacted.eval_prompts
        best = champion(run, cfg.gate.registered_model, cfg.gate.alias)
        if cfg.schedule.fresh_traffic and best and (scored_on := best.dataset(*CHAMPION_SCORED_ON)):
            held_out = dataset_ref(scored_on)  # the new student is scored where the champion was
        log_dataset(run, held_out, "evaluate.held_out", "evaluate")
        if best and (trained_on := best.dataset(*CHAMPION_TRAINED_ON)):
            # before any teacher call: how this traffic differs from the champion's
            drifted = log_stage(run, drift_report(cfg.drift, train_prompts, trained_on, best.version, work))
            log_image(run, drifted.plot, "drift/drift.png", f"slice mix and prompt lengths against v{best.version}")
            if cfg.replay.share:
                replayed = cached(replay_prompts)(cfg.replay, train_prompts, held_out, trained_on, work)
                train_prompts = log_stage(run, replayed).train_prompts
        if cfg.verify.code_slices() & slices_in(train_prompts, held_out):
            check_sandbox()  # before the teacher is paid for answers (or prompts) nobody could check
        teacher = prepare_teacher(cfg.teacher, work) if cfg.synthesis.enabled else None
        if cfg.synthesis.enabled:  # where traffic is thin, the teacher writes prompts; never held out
            never = [sourced.eval_prompts, held_out]  # held out: as read, and as scored (the champion's, scheduled)
            grown = cached(synthesize_prompts)(cfg.synthesis, cfg.redact, cfg.teacher, teacher, train_prompts, never,
                                               sourced.coverage_map, store, work)  # fmt: skip
            train_prompts = log_stage(run, grown, artifacts=["synthetic"]).train_prompts
        asked = train_prompts
        clean = cached(decontaminate_prompts)(
            cfg.decontaminate, train_prompts, held_out, eval_sets_digest(cfg.decontaminate), work
        )
        train_prompts = log_stage(run, clean).train_prompts
        teacher = teacher or prepare_teacher(cfg.teacher, work)
        rollouts = log_stage(
            run,
            placed("rollout", cfg.placement.rollout)(
                cfg.rollout, cfg.redact, cfg.teacher, teacher, train_prompts, store, work
            ),
        )
        verdicts = log_stage(run, cached(verify_rollouts)(verify, rollouts.rollouts, work))
        judged = _judge(run, cfg, teacher, rollouts.rollouts, store, work) if cfg.judge.slices else None
        judgments = judged.judgments if judged else None
        unique = log_stage(
            run, cached(dedup_rollouts)(cfg.dedup, rollouts.rollouts, verdicts.verdicts, judgments, work)
        )
        filtered = cached(filter_rollouts)(cfg.filter, unique.rollouts, verdicts.verdicts, judgments, work)
        selecting = cfg.selection.budget and cfg.stop_after != "filter"  # a stop at filter shows the filter's rows
        selected = selecting and cached(select_rows)(cfg.selection, filtered.rows, verdicts.verdicts, judgments, work)
        steps = [Step("decontaminate", clean.rejected, "prompt"), Step("rollout", rollouts.rejected, "prompt"),
                 Step("dedup", unique.rejected, "sample"), Step("filter", filtered.rejected, "sample")]  # fmt: skip
        steps += [Step("selection", selected.rejected, "sample")] if selected else []
        precision = judged.report.metrics.get("calibration.precision") if judged else None
        found = funnel(asked, rollouts.rollouts, (selected or filtered).rows, steps)
        log_funnel(run, found, precision, storage.join(work, "funnel"))  # before the filter's own stop_after
        kept = log_stage(run, filtered)
        if selected:  # the filter's pairs stay for DPO; its rows are the selection's
            kept = kept.model_copy(update={"rows": log_stage(run, selected).rows})
        students = _students(run, cfg, teacher, kept, work, store)
        scored = placed("evaluate", cfg.placement.evaluate)(
            cfg.evaluate, cfg.redact, verify, cfg.teacher, teacher, students, held_out, store, work
        )
        if cfg.synthesis.enabled:  # apart: where the student learnt mostly from the teacher's own prompts
            shares = synthetic_shares(read_dataset(kept.rows), read_dataset(train_prompts))
            metrics, table = mostly_synthetic(shares, {name: s.accuracy for name, s in scored.scores.items()})
            log_metrics(run, "evaluate", metrics)
            log_markdown(run, "synthetic", table)
        scored = log_stage(run, scored)  # (a stop after evaluate has the synthetic table too)
        log_image(run, scored.plot, "evaluate/slices.png", "held-out accuracy per slice, every model, 95 % intervals")
        found = {name: evidence_of(scored, name, bool(cfg.evaluate.latency_prompts)) for name in scored.students}
        choice = choose_student(cfg.gate, found, {name: scored.scores[name].params for name in found})
        shipped = choice.student
        tag_shipped_student(run, shipped)
        log_image(
            run, scored.fallback_plots[shipped], "evaluate/fallback.png", f"{shipped}'s accuracy against fallback"
        )
        if len(students) > 1:
            log_markdown(run, "students", choice.table)
        won = None
        if cfg.judge.win_rate:
            answers = read_dataset(scored.answers)
            won = win_rate(cfg.judge, *_judge_model(cfg, teacher, work), answers, store, shipped)
            log_metrics(run, "evaluate.judge", won.model_dump(exclude={"calibrated"}))
        if held_out is not redacted.eval_prompts:  # scored where the champion was: say how they compare
            metrics, table = versus_champion(scored.scores[shipped].accuracy, best, held_out.rows)
            log_metrics(run, "evaluate", metrics)
            log_markdown(run, "champion", table)
        exported = log_stage(
            run,
            placed("export", cfg.placement.export)(
                cfg.export, verify, students[shipped].base, students[shipped].adapter, kept.rows, held_out, work
            ),
        )
        served = log_stage(
            run, placed("serve", cfg.placement.export)(cfg.serve, verify, exported.model, held_out, work)
        )
        check_passed = exported.check_passed and served.passed
        check_reason = "; ".join(filter(None, [exported.check_reason, served.reason]))
        tags = {"check_passed": str(check_passed), "quantized": str(exported.quantized), "student": shipped}
        # what the serving side needs to hand unsure answers to the teacher
        tags |= fallback_tags(scored.fallback.get(shipped))
        evidence = found[shipped].model_copy(update={"check_passed": check_passed, "check_reason": check_reason})
        evidence = against_champion(evidence, read_dataset(scored.answers), best, shipped)
        promotion = promote_student(cfg.gate, run, exported.model.uri, tags, evidence, best)
    return _summary(run, scored, shipped, exported, (check_passed, check_reason), promotion, won)


def _summary(
    run: Run,
    scored: Evaluated,
    shipped: str,
    exported: Exported,
    check: tuple[bool, str],
    promotion: Promotion,
    won: WinRate | None,
) -> DistillSummary:
    return DistillSummary(
        scores=scored.scores,
        student=shipped,
        transfer_ratio={name: scored.transfer_ratio(name, shipped) for name in scored.scores["teacher"].accuracy},
        exported_uri=exported.model.uri,
        exported_mb=exported.report.metrics["exported_mb"],
        export_check=("passed: " if check[0] else "FAILED: ") + check[1],
        exported_accuracy={name: found.value for name, found in exported.exported_interval.items()},
        gguf=f"GGUF {exported.gguf}: accuracy {exported.gguf_interval['all'].value:.2f} as transformers loads it"
        if exported.gguf and "all" in exported.gguf_interval
        else (exported.gguf or ""),
        promotion=promotion,
        fallback=scored.fallback[shipped].summary() if shipped in scored.fallback else "",
        win_rate=won.summary() if won else "",
        production_accuracy={k: v.value for k, v in scored.shadow.production.items()} if scored.shadow else {},
        shadow=scored.shadow.summary(shipped) if scored.shadow else "",
        shadow_agreement={k: v.value for k, v in scored.shadow.agreement[shipped].items()} if scored.shadow else {},
        mlflow_run_id=run.run_id,
        tracking_uri=run.tracking_uri,
        stage_seconds={report.stage: report.seconds for report in run.reports},
    )
