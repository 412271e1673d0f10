"""Train: fine-tune the student (tasks.student) on the kept teacher answers.

SFT with TRL's SFTTrainer and a PEFT LoRA adapter (or every weight, or QLoRA on a 4-bit student on a GPU:
`method`), loss on assistant tokens only (the chat template's {% generation %} markers); with `objective: kd`,
mixed with the divergence from the teacher's top-k log-probabilities (its weights', or its vLLM server's:
tasks.kd_trainer); with `on_policy`,
TRL's GKDTrainer, the student's own answers scored by the teacher. A validation split
held out by prompt, eval loss every few steps, early stopping, and the best checkpoint kept. The adapter is
the stage's model folder; the training curves (tasks.curves) go beside it as a PNG and into the result, for
MLflow step metrics.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config, Divergence, TrainMethod
from tasks.curves import CurvePoint, curve_from
from tasks.curves import plot as plot_curve
from tasks.kd_trainer import KDSettings, Teacher, attach_teacher, check_same_tokenizer, distillation_trainer_class
from tasks.models import load_for_training, load_model, model_ref
from tasks.refs import DatasetRef, ModelRef
from tasks.stage import StageReport, StageResult, Timer, log, read_dataset


class TrainConfig(Config):
    """How the student is fine-tuned (where it starts is the `student` section)."""

    objective: Literal["sft", "kd", "on_policy"] = Field(
        "sft",
        description="sft: cross-entropy on the teacher's sampled answers; kd: mixed with the divergence from the "
        "teacher's top-k log-probabilities at every answer token (computed once, kept in the request store); "
        "on_policy: the student also answers itself and the teacher scores its tokens (TRL's GKD). Both need a "
        "student with the teacher's tokenizer; kd, the teacher's weights here or its vLLM server (it returns "
        "prompt_logprobs; its --max-logprobs caps kd_top_k); on_policy, its weights.",
    )
    method: TrainMethod = Field(
        "lora",
        description="lora: an adapter on the frozen student; full: every weight trained; qlora: an adapter on the "
        "student loaded in 4-bit (bitsandbytes, CUDA only).",
    )
    # ---- kd
    kd_divergence: Divergence = Field(
        "forward_kl",
        description="forward_kl (teacher ‖ student, mass-covering), reverse_kl (student ‖ teacher, mode-seeking) "
        "or jsd (generalised Jensen-Shannon, kd_beta on the teacher).",
    )
    kd_top_k: int = Field(20, ge=1, le=1000, description="Teacher tokens kept per position (the rest: one bucket).")
    kd_temperature: float = Field(1.0, gt=0, description="Softens both distributions; the divergence is scaled by T².")
    kd_beta: float = Field(0.5, gt=0, lt=1, description="jsd only: the teacher's weight in the mixture.")
    kd_ce_weight: float = Field(
        0.5, ge=0, le=1, description="Weight of the cross-entropy on the sampled answer; the divergence has the rest."
    )
    # ---- on_policy
    on_policy_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Share of steps on the student's own answers (GKD's lambda); the rest on the "
        "teacher's sampled answers.",
    )
    on_policy_max_new_tokens: int = Field(48, ge=1, description="Longest answer the student writes on-policy.")
    on_policy_temperature: float = Field(0.9, gt=0, description="The student's sampling temperature on-policy.")
    # ---- LoRA (and QLoRA)
    # a half-depth student needs repair, not a light touch: rank 64 and lr 2e-3 reached eval loss 4.3 in 30
    # demo steps where rank 16 at 5e-4 reached 7.3 (CPU, same data and time)
    lora_r: int = Field(64, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(128, ge=1, description="LoRA scaling numerator (alpha / r scales the update).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    lora_targets: str = Field("all-linear", description="Modules that get adapters (PEFT `target_modules`).")
    # ---- optimisation
    learning_rate: float | None = Field(
        None, gt=0, description="Peak learning rate (linear decay); none: 2e-3 for an adapter, 1e-4 for full."
    )
    epochs: float = Field(3.0, gt=0, description="Passes over the training rows (early stopping may end sooner).")
    batch_size: int = Field(8, ge=1, description="Rows per optimiser step.")
    max_length: int = Field(192, ge=16, description="Tokens per row; longer rows are truncated.")
    validation_share: float = Field(0.1, gt=0, lt=1, description="Share of prompts held out for eval loss.")
    eval_every_steps: int = Field(10, ge=1, description="Steps between eval-loss checks (and checkpoints).")
    early_stopping_patience: int = Field(3, ge=1, description="Checks without improvement before stopping.")
    seed: int = Field(0, description="Seed for the validation split, LoRA init and data order.")

    @property
    def peak_learning_rate(self) -> float:
        return self.learning_rate or (1e-4 if self.method == "full" else 2e-3)


class Trained(StageResult):
    adapter: ModelRef  # the best LoRA adapter; with train.method full, the whole fine-tuned student
    curve: list[CurvePoint] = []  # train and eval loss, learning rate, per logged step
    curve_plot: str | None = None  # the curves as a PNG


def split_by_prompt(rows: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation) with every sample of a prompt on one side."""
    prompts = sorted({r["prompt_id"] for r in rows})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: max(1, round(share * len(prompts)))])
    return [r for r in rows if r["prompt_id"] not in held], [r for r in rows if r["prompt_id"] in held]


def check_method(config: TrainConfig) -> None:
    """QLoRA needs CUDA and bitsandbytes: refuse in one line before any work where either is missing."""
    if config.method != "qlora":
        return
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise ValueError("train.method 'qlora' loads the student in 4-bit with bitsandbytes, which needs a CUDA GPU; "
                         "this machine has none: use train.method 'lora'")  # fmt: skip
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("train.method 'qlora' needs bitsandbytes: pip install bitsandbytes (on the GPU worker)")


def sft_trainer(
    config: TrainConfig,
    base_path: Path,
    train_rows: list[dict],
    validation_rows: list[dict],
    scratch: Path,
    teacher_path: Path | None = None,
):
    """TRL's SFTTrainer for LoRA on assistant tokens, eval loss every few steps, early stopping, best kept; for
    `kd`, ours with the divergence term; for `on_policy`, TRL's GKDTrainer with the teacher beside the student."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import (
        AutoTokenizer,
        EarlyStoppingCallback,
        PrinterCallback,
        TrainerCallback,
    )
    from trl import SFTConfig, SFTTrainer

    class LogProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: round(v, 4) for k, v in (logs or {}).items() if k in ("loss", "eval_loss", "learning_rate")}
            log(f"train: step {state.global_step}/{state.max_steps} {shown}")

    on_gpu = torch.cuda.is_available()
    as_dataset = lambda part: Dataset.from_list([{"messages": r["messages"]} for r in part])  # noqa: E731
    arguments = SFTConfig if config.objective != "on_policy" else on_policy_arguments(config)
    args = arguments(
        output_dir=str(scratch / "checkpoints"),
        assistant_only_loss=config.objective != "on_policy",  # GKD's collator masks all but the last answer
        max_length=config.max_length,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.peak_learning_rate,
        eval_strategy="steps",
        eval_steps=config.eval_every_steps,
        save_strategy="steps",
        save_steps=config.eval_every_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=max(1, config.eval_every_steps // 2),  # the train curve at least twice as fine as the eval one
        report_to=[],  # the flow logs to MLflow itself, into the flow's run
        disable_tqdm=True,
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),  # CPU trains in fp32
        dataloader_pin_memory=on_gpu,
        seed=config.seed,
    )
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
        task_type="CAUSAL_LM",
    )
    if config.objective == "kd":
        trainer_class = distillation_trainer_class()
    elif config.objective == "on_policy":
        from trl.experimental.gkd import GKDTrainer as trainer_class
    else:
        trainer_class = SFTTrainer
    # GKD holds the teacher beside the student (the accelerator places both)
    teacher = {"teacher_model": load_model(str(teacher_path))[0]} if config.objective == "on_policy" else {}
    trainer = trainer_class(
        model=load_for_training(base_path, four_bit=config.method == "qlora"),
        **teacher,
        args=args,
        train_dataset=as_dataset(train_rows),
        eval_dataset=as_dataset(validation_rows),
        processing_class=AutoTokenizer.from_pretrained(base_path),
        peft_config=None if config.method == "full" else lora,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience), LogProgress()],
    )
    trainer.remove_callback(PrinterCallback)  # prints every log dict; LogProgress says it in one line
    # our loss and GKD's are means per batch: the trainer must average over accumulated steps itself (and GKD
    # would count the teacher's answer tokens for an on-policy batch)
    trainer.model_accepts_loss_kwargs = trainer.model_accepts_loss_kwargs and config.objective == "sft"
    return trainer


def sft(
    config: TrainConfig,
    base: ModelRef,
    rows: list[dict],
    adapter_dir: Path,
    scratch: Path,
    teacher: Teacher | None = None,
    store: str | None = None,
) -> tuple[dict[str, float], list[CurvePoint]]:
    """SFT on assistant tokens (with `kd`, mixed with the divergence from the teacher's top-k); saves the best
    adapter to `adapter_dir`; returns metrics and curves."""
    check_method(config)
    train_rows, validation_rows = split_by_prompt(rows, config.validation_share, config.seed)
    if not train_rows:
        raise ValueError(f"only {len(rows)} training rows, all held out for validation: sample more prompts")
    if config.objective != "sft":
        check_same_tokenizer(base, teacher)
    teacher_path = storage.local_folder(teacher.uri) if config.objective == "on_policy" else None
    trainer = sft_trainer(config, storage.local_folder(base.uri), train_rows, validation_rows, scratch, teacher_path)
    metrics = {}
    if config.objective == "kd":
        settings = KDSettings(
            config.kd_top_k, config.kd_divergence, config.kd_temperature, config.kd_beta, config.kd_ce_weight
        )
        store = store or f"sqlite:///{scratch / 'top_k.db'}"  # a direct call without the run's store
        metrics["teacher_top_k_computed"] = attach_teacher(trainer, teacher, store, settings)
    before = trainer.evaluate()
    result = trainer.train()
    trainer.save_model(str(adapter_dir))
    metrics |= {
        "train_rows": len(train_rows),
        "validation_rows": len(validation_rows),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "eval_loss_before": before["eval_loss"],
        "eval_loss_best": trainer.state.best_metric,
    }
    if config.objective == "kd":  # the divergence alone, before and at the best checkpoint
        best = [e for e in trainer.state.log_history if e.get("eval_loss") == trainer.state.best_metric]
        metrics |= {"eval_divergence_before": before["eval_divergence"], "eval_divergence_best":
                    best[-1]["eval_divergence"] if best else before["eval_divergence"]}  # fmt: skip
    return metrics, curve_from(trainer.state.log_history)


def on_policy_arguments(config: TrainConfig):
    """GKDConfig with the on-policy share, the student's sampling and the divergence (GKD's beta: 0 forward KL,
    1 reverse KL, between them the generalised JSD), ready for the arguments every objective shares."""
    from functools import partial

    from trl.experimental.gkd import GKDConfig

    beta = {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": config.kd_beta}[config.kd_divergence]
    return partial(GKDConfig, lmbda=config.on_policy_share, beta=beta, temperature=config.on_policy_temperature,
                   max_new_tokens=config.on_policy_max_new_tokens)  # fmt: skip


def check_teacher(config: TrainConfig, teacher: Teacher | None) -> None:
    """`kd` needs the teacher's weights here or its vLLM server, `on_policy` its weights (ValueError before any
    work)."""
    if config.objective == "kd" and teacher is None:
        raise ValueError("train.objective 'kd' needs the teacher: its weights here, or its vLLM server")
    if config.objective == "on_policy" and not isinstance(teacher, ModelRef):
        raise ValueError(
            "train.objective 'on_policy' needs the teacher's weights on this machine (an embedded or local teacher, "
            "or vllm with a local checkpoint): it scores every answer the student writes; use train.objective 'kd'"
        )


def train(
    config: TrainConfig,
    base: ModelRef,
    rows_ref: DatasetRef,
    out_uri: str,
    teacher: Teacher | None = None,
    store: str | None = None,
) -> Trained:
    check_teacher(config, teacher)
    with Timer() as timer:
        rows = read_dataset(rows_ref)
        if len(rows) < 2:
            raise ValueError(
                f"{len(rows)} training rows survived filtering; at least 2 are needed (see the filter summary: "
                "sample more prompts, raise rollout.samples_per_prompt, or relax the filter)"
            )
        adapter_uri = storage.join(out_uri, "adapter")
        with (
            tempfile.TemporaryDirectory(prefix="redistill-train-") as scratch,
            storage.model_folder(adapter_uri) as out,
        ):
            metrics, curve = sft(config, base, rows, out, Path(scratch), teacher, store)
        curve_uri = storage.join(out_uri, "curves.png")
        storage.write_bytes(plot_curve(curve), curve_uri)
    report = StageReport(stage="train", rows_in=len(rows), rows_out=len(rows), metrics=metrics, seconds=timer.seconds)
    return Trained(adapter=model_ref(adapter_uri), curve=curve, curve_plot=curve_uri, report=report)


@task(name="train_student", **STAGE_TASK)
def train_student(
    config: TrainConfig,
    base: ModelRef,
    rows: DatasetRef,
    work_dir: str,
    teacher: Teacher | None = None,
    store: str | None = None,
) -> Trained:
    """Fine-tune the student on the kept answers (with `kd` and `on_policy`, on the teacher's distribution too:
    `teacher` is its weights, or with `kd` its vLLM server)."""
    return train(config, base, rows, stage_uri(work_dir, "train", config, base, rows, teacher), teacher, store)
