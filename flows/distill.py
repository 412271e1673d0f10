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
from tasks.curves import series
from tasks.decontaminate import DecontaminateConfig, EvalSetUnreadable, decontaminate_prompts, eval_sets_digest
from tasks.dedup import DedupConfig, dedup_rollouts
from tasks.drift import DriftConfig, drift_report
from tasks.evaluate import EvaluateConfig, ModelScore
from tasks.export import ExportConfig
from tasks.filter import FilterConfig, filter_rollouts
from tasks.funnel import Step, funnel
from tasks.gate import (
    Evidence,
    GateConfig,
    Promotion,
    against_champion,
    fallback_tags,
    promote_student,
    versus_champion,
)
from tasks.judge import JudgeConfig, JudgeUncalibrated, calibration_digest, judge_rollouts, win_rate
from tasks.llm.config import LLMConfig
from tasks.llm.types import ModelUnavailable
from tasks.logfile.files import LogError
from tasks.pii import RedactConfig
from tasks.redact import redact_prompts
from tasks.refs import DatasetRef, ModelRef
from tasks.replay import ReplayConfig, replay_prompts
from tasks.rollout import RolloutConfig
from tasks.schedule import ScheduleConfig
from tasks.source import SourceConfig, log_digest, source_prompts
from tasks.stage import StageReport, dataset_ref, read_dataset, read_table
from tasks.storage import StorageConfig
from tasks.student import StudentConfig, prepare_student
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
            "source", "redact", "decontaminate", "rollout", "verify", "judge", "dedup", "filter", "train", "evaluate"
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
    decontaminate: DecontaminateConfig = DecontaminateConfig()
    verify: VerifyConfig = VerifyConfig()
    judge: JudgeConfig = JudgeConfig()
    dedup: DedupConfig = DedupConfig()
    filter: FilterConfig = FilterConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
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
        if self.stop_after == "judge" and not self.judge.slices:
            raise ValueError("stop_after 'judge' but no judge.slices: the judge stage would not run, nor the run stop")
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

    scores: dict[str, ModelScore]
    transfer_ratio: dict[str, float]
    exported_uri: str
    exported_mb: float
    export_check: str = ""  # the export's check: against the merged model, and served by vLLM where it ran
    promotion: Promotion
    fallback: str = ""  # where the student would hand over to the teacher, in words
    win_rate: str = ""  # the judge's student-vs-teacher verdicts, when asked for (judge.win_rate)
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
    except (JudgeUncalibrated, EvalSetUnreadable) as mistake:  # the config's data, not a bug: one line, no traceback
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


def _distill(cfg: DistillConfig, work: str, store: str) -> DistillSummary:
    """The DAG, one line per stage; `log_stage` raises RunStops where the run ends early."""
    with tracked_run(cfg.tracking, work, flat_params(cfg), cfg.run_name, cfg.stop_after) as run:
        label_slices = cfg.verify.slices_needing_labels()
        sourced = log_stage(run, cached(source_prompts)(cfg.source, label_slices, log_digest(cfg.source.path), work))
        verify = with_labels(cfg.verify, sourced.labels)
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
            check_sandbox()  # before the teacher is paid for answers nobody could check
        asked = train_prompts
        clean = cached(decontaminate_prompts)(
            cfg.decontaminate, train_prompts, held_out, eval_sets_digest(cfg.decontaminate), work
        )
        train_prompts = log_stage(run, clean).train_prompts
        teacher = prepare_teacher(cfg.teacher, work)
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
        steps = [Step("decontaminate", clean.rejected, "prompt"), Step("rollout", rollouts.rejected, "prompt"),
                 Step("dedup", unique.rejected, "sample"), Step("filter", filtered.rejected, "sample")]  # fmt: skip
        precision = judged.report.metrics.get("calibration.precision") if judged else None
        found = funnel(asked, rollouts.rollouts, filtered.rows, steps)
        log_funnel(run, found, precision, storage.join(work, "funnel"))  # before the filter's own stop_after
        kept = log_stage(run, filtered)
        base = prepare_student(cfg.student, teacher, work)
        trained = log_stage(run, placed("train", cfg.placement.train)(cfg.train, base, kept.rows, work))
        log_steps(run, "train.curve", series(trained.curve))
        if trained.curve_plot:
            log_image(run, trained.curve_plot, "train/curves.png", "train and eval loss, learning rate per step")
        scored = log_stage(
            run,
            placed("evaluate", cfg.placement.evaluate)(
                cfg.evaluate,
                cfg.redact,
                verify,
                cfg.teacher,
                teacher,
                base,
                trained.adapter,
                held_out,
                store,
                work,
            ),
        )
        log_image(run, scored.plot, "evaluate/slices.png", "held-out accuracy per slice, every model, 95 % intervals")
        log_image(run, scored.fallback_plot, "evaluate/fallback.png", "the student's accuracy against fallback")
        won = None
        if cfg.judge.win_rate:
            won = win_rate(cfg.judge, *_judge_model(cfg, teacher, work), read_dataset(scored.answers), store)
            log_metrics(run, "evaluate.judge", won.model_dump(exclude={"calibrated"}))
        if held_out is not redacted.eval_prompts:  # scored where the champion was: say how they compare
            metrics, table = versus_champion(scored.scores["student"].accuracy, best, held_out.rows)
            log_metrics(run, "evaluate", metrics)
            log_markdown(run, "champion", table)
        exported = log_stage(
            run,
            placed("export", cfg.placement.export)(
                cfg.export, verify, base, trained.adapter, kept.rows, held_out, work
            ),
        )
        tags = {"check_passed": str(exported.check_passed), "quantized": str(exported.quantized)}
        tags |= fallback_tags(scored.fallback)  # what the serving side needs to hand unsure answers to the teacher
        student = scored.scores["student"]
        evidence = Evidence(
            transfer_ratio=scored.transfer_ratio(),
            slice_accuracy=student.accuracy,
            latency_p95_s=student.latency_p95_s if cfg.evaluate.latency_prompts else None,
            check_passed=exported.check_passed,
            check_reason=exported.check_reason,
        )
        evidence = against_champion(evidence, read_dataset(scored.answers), best)
        promotion = promote_student(cfg.gate, run, exported.model.uri, tags, evidence, best)
    stages = (sourced, redacted, clean, rollouts, verdicts, *([judged] if judged else []), unique, kept, trained,
              scored, exported)  # fmt: skip
    return DistillSummary(
        scores=scored.scores,
        transfer_ratio={name: scored.transfer_ratio(name) for name in scored.scores["teacher"].accuracy},
        exported_uri=exported.model.uri,
        exported_mb=exported.report.metrics["exported_mb"],
        export_check=("passed: " if exported.check_passed else "FAILED: ") + exported.check_reason,
        promotion=promotion,
        fallback=scored.fallback.summary() if scored.fallback else "",
        win_rate=won.summary() if won else "",
        mlflow_run_id=run.run_id,
        tracking_uri=run.tracking_uri,
        stage_seconds={s.report.stage: s.report.seconds for s in stages},
    )
