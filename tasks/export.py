"""Export: merge the LoRA adapter, quantize to 4-bit AWQ, reload and answer; then the quality gate.

AWQ with llmcompressor (AWQModifier to scale salient channels, then W4A16 symmetric group
quantization, compressed-tensors `pack-quantized` on disk). Group size must divide the hidden and
MLP widths (SmolLM2's 576 is not a multiple of 128: the default is 32). The export is reloaded
with transformers and answers a few held-out prompts: that is the smoke test.
The gate registers every exported student as an MLflow model version, and promotes it (an
alias) only when the smoke test passed and the transfer ratio reaches the threshold.
"""

from __future__ import annotations

from pathlib import Path

from prefect import task
from pydantic import BaseModel, Field

from tasks.config import Config
from tasks.models import ModelRef, fingerprint_checkpoint, load_merged, load_model, size_mb, timed_generate
from tasks.stage import STAGE_CACHE, DatasetRef, StageReport, StageResult, Timer, log, read_dataset, stage_dir
from tasks.tracking import Run, log_directory, log_markdown, register_version, set_alias


class ExportConfig(Config):
    """How the student is packaged."""

    quantize: bool = Field(True, description="Quantize the merged student to 4-bit AWQ (else export it merged, fp32).")
    group_size: int = Field(32, ge=8, description="Weights per quantization group; must divide the model's widths.")
    calibration_rows: int = Field(32, ge=1, description="Training rows run through the model to calibrate AWQ.")
    max_calibration_tokens: int = Field(192, ge=16, description="Tokens per calibration row.")
    smoke_prompts: int = Field(4, ge=1, description="Held-out prompts the reloaded export must answer.")
    max_new_tokens: int = Field(32, ge=1, description="Longest smoke-test answer, in tokens.")


class GateConfig(Config):
    """When an exported student is promoted in the MLflow model registry."""

    registered_model: str = Field("redistill-student", description="MLflow registered model name.")
    min_transfer_ratio: float = Field(0.5, ge=0, description="Student/teacher accuracy needed to promote.")
    alias: str = Field("champion", description="Registry alias the promoted version gets.")


class Exported(StageResult):
    model: ModelRef  # what ships: the AWQ folder, or the merged one when not quantizing
    quantized: bool
    smoke_answers: list[str]
    smoke_passed: bool


def _calibrate_on_cpu_too() -> None:
    """llmcompressor pins cached activations for fast host-to-device copies; with no accelerator
    `pin_memory` fails ("Cannot access accelerator device"). There is nothing to copy to: skip it."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if not torch.cuda.is_available():
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None


def check_group_size(model_config, group_size: int) -> None:
    """Group quantization needs every quantized input width to be a multiple of the group size."""
    widths = {"hidden_size": model_config.hidden_size, "intermediate_size": model_config.intermediate_size}
    bad = {name: w for name, w in widths.items() if w % group_size}
    if bad:
        raise ValueError(
            f"export.group_size {group_size} does not divide the student's {bad}: pick a divisor (32 works for SmolLM2)"
        )


def quantize_awq(model, tokenizer, calibration: list[list[dict]], config: ExportConfig, out_dir: Path) -> None:
    """AWQ + W4A16 (symmetric, grouped) with llmcompressor, saved compressed to `out_dir`."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier

    _calibrate_on_cpu_too()
    check_group_size(model.config, config.group_size)
    scheme = QuantizationScheme(
        targets=["Linear"],
        weights=QuantizationArgs(
            num_bits=4, type="int", symmetric=True, strategy="group", group_size=config.group_size
        ),
    )
    texts = [tokenizer.apply_chat_template(messages, tokenize=False) for messages in calibration]
    oneshot(
        model=model,
        tokenizer=tokenizer,
        dataset=Dataset.from_dict({"text": texts}),
        recipe=[AWQModifier(), QuantizationModifier(config_groups={"group_0": scheme}, ignore=["lm_head"])],
        num_calibration_samples=len(texts),
        max_seq_length=config.max_calibration_tokens,
    )
    model.save_pretrained(out_dir, save_compressed=True)
    tokenizer.save_pretrained(out_dir)


def smoke_test(path: Path, prompts: list[str], max_new_tokens: int) -> tuple[list[str], float]:
    """Load the export as a user would and answer: (answers, mean seconds per answer)."""
    model, tokenizer = load_model(path)
    timed = [timed_generate(model, tokenizer, p, max_new_tokens) for p in prompts]
    return [c.text for c, _ in timed], sum(t for _, t in timed) / max(len(timed), 1)


def export(
    config: ExportConfig, base: ModelRef, adapter: ModelRef, rows: DatasetRef, prompts: DatasetRef, out_dir: Path
) -> Exported:
    with Timer() as timer:
        model, tokenizer = load_merged(base.path, adapter.path)
        merged_dir = out_dir / "merged"
        model.save_pretrained(merged_dir)
        tokenizer.save_pretrained(merged_dir)
        target = merged_dir
        if config.quantize:
            calibration = [r["messages"] for r in read_dataset(rows)[: config.calibration_rows]]
            target = out_dir / "awq"
            quantize_awq(model, tokenizer, calibration, config, target)
        held_out = [r["prompt"] for r in read_dataset(prompts) if r["split"] == "eval"][: config.smoke_prompts]
        answers, latency = smoke_test(target, held_out, config.max_new_tokens)
    passed = bool(answers) and all(a.strip() for a in answers)
    log(f"export smoke test ({'passed' if passed else 'FAILED'}): {answers}")
    report = StageReport(
        stage="export",
        rows_in=len(held_out),
        rows_out=sum(1 for a in answers if a.strip()),
        metrics={
            "merged_mb": size_mb(merged_dir),
            "exported_mb": size_mb(target),
            "compression": size_mb(merged_dir) / max(size_mb(target), 1e-9),
            "smoke_latency_s": latency,
            "smoke_passed": float(passed),
        },
        seconds=timer.seconds,
        notes=[f"exported to {target}"] + [f"smoke answer {i + 1}: {a[:120]!r}" for i, a in enumerate(answers)],
    )
    return Exported(
        model=ModelRef(path=str(target.resolve()), fingerprint=fingerprint_checkpoint(target)),
        quantized=config.quantize,
        smoke_answers=answers,
        smoke_passed=passed,
        report=report,
    )


@task(name="export_student", cache_policy=STAGE_CACHE, persist_result=True)
def export_student(
    config: ExportConfig, base: ModelRef, adapter: ModelRef, rows: DatasetRef, prompts: DatasetRef, work_dir: Path
) -> Exported:
    """Merge LoRA, quantize to AWQ 4-bit, reload and answer held-out prompts."""
    out_dir = stage_dir(work_dir, "export", config, base, adapter, rows, prompts)
    return export(config, base, adapter, rows, prompts, out_dir)


def gate_decision(config: GateConfig, transfer_ratio: float, smoke_passed: bool) -> tuple[bool, str]:
    """Whether to promote, and why, in words for the summary."""
    if not smoke_passed:
        return False, "not promoted: the export failed its smoke test"
    if transfer_ratio < config.min_transfer_ratio:
        return False, f"not promoted: transfer ratio {transfer_ratio:.2f} < {config.min_transfer_ratio:.2f}"
    return True, f"promoted to @{config.alias}: transfer ratio {transfer_ratio:.2f} >= {config.min_transfer_ratio:.2f}"


class Promotion(BaseModel):
    """The registered model version and the gate's verdict on it."""

    registered_model: str
    version: str
    promoted: bool
    reason: str


@task(name="promote_student")
def promote_student(config: GateConfig, run: Run, exported: Exported, transfer_ratio: float) -> Promotion:
    """Register the export as a model version in this run; promote it if it passes the gate."""
    promoted, reason = gate_decision(config, transfer_ratio, exported.smoke_passed)
    source = log_directory(run, exported.model.path, "student")
    tags = {
        "transfer_ratio": f"{transfer_ratio:.3f}",
        "smoke_passed": str(exported.smoke_passed),
        "quantized": str(exported.quantized),
    }
    version = register_version(run, source, config.registered_model, tags)
    if promoted:
        set_alias(run, config.registered_model, config.alias, version)
    log_markdown(run, "gate", f"## gate\n\n`{config.registered_model}` version {version}: {reason}\n")
    return Promotion(registered_model=config.registered_model, version=version, promoted=promoted, reason=reason)
