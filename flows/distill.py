"""The distillation DAG: prompt log in, a smaller, quantized, registered student out."""

from __future__ import annotations

from pathlib import Path

from prefect import flow
from pydantic import BaseModel, Field

from tasks.config import Config
from tasks.dedup import DedupConfig, dedup_rollouts
from tasks.evaluate import EvaluateConfig, ModelScore, evaluate_models
from tasks.export import ExportConfig, GateConfig, Promotion, export_student, promote_student
from tasks.filter import FilterConfig, filter_rollouts
from tasks.redact import RedactConfig, redact_prompts
from tasks.rollout import RolloutConfig, prepare_teacher, rollout_teacher
from tasks.source import SourceConfig, log_digest, source_prompts
from tasks.tracking import TrackingConfig, flat_params, log_stage, tracked_run
from tasks.train import TrainConfig, train_student
from tasks.verify import VerifyConfig


class DistillConfig(Config):
    """Everything one distillation run needs; the defaults run the CPU demo."""

    work_dir: Path = Field(Path(".redistill"), description="Datasets, models, the rollout store and local MLflow.")
    run_name: str | None = Field(None, description="MLflow run name (default: MLflow picks one).")
    source: SourceConfig = SourceConfig()
    redact: RedactConfig = RedactConfig()
    rollout: RolloutConfig = RolloutConfig()
    dedup: DedupConfig = DedupConfig()
    filter: FilterConfig = FilterConfig()
    verify: VerifyConfig = VerifyConfig()
    train: TrainConfig = TrainConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    export: ExportConfig = ExportConfig()
    gate: GateConfig = GateConfig()
    tracking: TrackingConfig = TrackingConfig()


class DistillSummary(BaseModel):
    """What a run produced, for the closing table."""

    scores: dict[str, ModelScore]
    transfer_ratio: dict[str, float]
    exported_path: str
    exported_mb: float
    promotion: Promotion
    mlflow_run_id: str
    tracking_uri: str
    stage_seconds: dict[str, float]


@flow(name="distill")
def distill(config: DistillConfig = DistillConfig()) -> DistillSummary:
    """Distil the teacher into a smaller, quantized student from a prompt log."""
    work, cfg = config.work_dir.resolve(), config
    with tracked_run(cfg.tracking, work, flat_params(cfg), cfg.run_name) as run:
        sourced = log_stage(run, source_prompts(cfg.source, log_digest(cfg.source.path), work))
        redacted = log_stage(
            run, redact_prompts(cfg.redact, sourced.prompts, sourced.quarantine, work), artifacts=["quarantine"]
        )
        teacher = prepare_teacher(cfg.rollout, work)
        rollouts = log_stage(run, rollout_teacher(cfg.rollout, teacher, redacted.prompts, work))
        unique = log_stage(run, dedup_rollouts(cfg.dedup, rollouts.rollouts, redacted.prompts, work))
        kept = log_stage(run, filter_rollouts(cfg.filter, cfg.verify, unique.rollouts, work))
        trained = log_stage(run, train_student(cfg.train, teacher, kept.rows, work))
        scored = log_stage(
            run,
            evaluate_models(cfg.evaluate, cfg.verify, teacher, trained.base, trained.adapter, redacted.prompts, work),
        )
        exported = log_stage(
            run, export_student(cfg.export, trained.base, trained.adapter, kept.rows, redacted.prompts, work)
        )
        promotion = promote_student(cfg.gate, run, exported, scored.transfer_ratio())
    stages = (sourced, redacted, rollouts, unique, kept, trained, scored, exported)
    return DistillSummary(
        scores=scored.scores,
        transfer_ratio={name: scored.transfer_ratio(name) for name in scored.scores["teacher"].accuracy},
        exported_path=exported.model.path,
        exported_mb=exported.report.metrics["exported_mb"],
        promotion=promotion,
        mlflow_run_id=run.run_id,
        tracking_uri=run.tracking_uri,
        stage_seconds={s.report.stage: s.report.seconds for s in stages},
    )
