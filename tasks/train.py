"""Train: build a smaller student from the teacher and fine-tune it on the kept teacher answers.

The student is the teacher with every other decoder layer kept (depth pruning, as DistilBERT and
Minitron initialise students), saved as a normal checkpoint: it is also the "base" that evaluate
scores before training. SFT with TRL's SFTTrainer and a PEFT LoRA adapter, loss on assistant
tokens only (the chat template's {% generation %} markers), a validation split held out by prompt,
eval loss every few steps, early stopping, and the best checkpoint kept.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import Field

from tasks.config import Config
from tasks.models import ModelRef, fingerprint_checkpoint
from tasks.stage import (
    STAGE_CACHE,
    DatasetRef,
    StageReport,
    StageResult,
    Timer,
    content_key,
    log,
    read_dataset,
    stage_dir,
)


class TrainConfig(Config):
    """The student and how it is fine-tuned."""

    # ---- student
    keep_layers: Literal["every_other"] | list[int] = Field(
        "every_other",
        description="Teacher decoder layers the student keeps: `every_other` (0, 2, 4, ...) or explicit indices.",
    )
    # ---- LoRA
    # a half-depth student needs repair, not a light touch: rank 64 and lr 2e-3 reached eval loss 4.3 in 30
    # demo steps where rank 16 at 5e-4 reached 7.3 (CPU, same data and time)
    lora_r: int = Field(64, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(128, ge=1, description="LoRA scaling numerator (alpha / r scales the update).")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    lora_targets: str = Field("all-linear", description="Modules that get adapters (PEFT `target_modules`).")
    # ---- optimisation
    learning_rate: float = Field(2e-3, gt=0, description="Peak learning rate (linear decay).")
    epochs: float = Field(3.0, gt=0, description="Passes over the training rows (early stopping may end sooner).")
    batch_size: int = Field(8, ge=1, description="Rows per optimiser step.")
    max_length: int = Field(192, ge=16, description="Tokens per row; longer rows are truncated.")
    validation_share: float = Field(0.1, gt=0, lt=1, description="Share of prompts held out for eval loss.")
    eval_every_steps: int = Field(10, ge=1, description="Steps between eval-loss checks (and checkpoints).")
    early_stopping_patience: int = Field(3, ge=1, description="Checks without improvement before stopping.")
    seed: int = Field(0, description="Seed for the validation split, LoRA init and data order.")


class Trained(StageResult):
    base: ModelRef  # the pruned student before training
    adapter: ModelRef  # the best LoRA adapter


def layers_to_keep(spec: Literal["every_other"] | list[int], num_layers: int) -> list[int]:
    """Indices of the teacher's decoder layers the student keeps."""
    keep = list(range(0, num_layers, 2)) if spec == "every_other" else sorted(set(spec))
    if not keep or keep[0] < 0 or keep[-1] >= num_layers:
        raise ValueError(f"train.keep_layers {spec!r} does not fit a teacher with {num_layers} layers")
    return keep


def prune_layers(model, keep: list[int]):
    """Keep only the listed decoder layers (in place), renumbering them for the KV cache."""
    import torch

    model.model.layers = torch.nn.ModuleList(model.model.layers[i] for i in keep)
    for new_index, layer in enumerate(model.model.layers):
        layer.self_attn.layer_idx = new_index
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = [model.config.layer_types[i] for i in keep]
    model.config.num_hidden_layers = len(keep)
    return model


def build_student(teacher: ModelRef, config: TrainConfig, models_dir: Path) -> ModelRef:
    """The depth-pruned teacher, saved once per (teacher, layers) under `models_dir`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(models_dir) / f"student-{content_key(teacher.fingerprint, config.keep_layers)}"
    if not (out / "config.json").exists():
        tokenizer = AutoTokenizer.from_pretrained(teacher.path)
        if "{% generation %}" not in (tokenizer.chat_template or ""):
            raise ValueError(
                f"the teacher's chat template ({teacher.path}) has no {{% generation %}} markers, which assistant-only "
                "loss needs: add them around the assistant turn (see tasks.models.CHATML_WITH_GENERATION)"
            )
        model = AutoModelForCausalLM.from_pretrained(teacher.path)
        prune_layers(model, layers_to_keep(config.keep_layers, model.config.num_hidden_layers))
        tmp = out.with_name(out.name + ".partial")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        tmp.rename(out)
    return ModelRef(path=str(out.resolve()), fingerprint=fingerprint_checkpoint(out))


def split_by_prompt(rows: list[dict], share: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation) with every sample of a prompt on one side."""
    prompts = sorted({r["prompt_id"] for r in rows})
    random.Random(seed).shuffle(prompts)
    held = set(prompts[: max(1, round(share * len(prompts)))])
    return [r for r in rows if r["prompt_id"] not in held], [r for r in rows if r["prompt_id"] in held]


def sft(config: TrainConfig, base: ModelRef, rows: list[dict], out_dir: Path) -> dict[str, float]:
    """LoRA SFT on assistant tokens; saves the best adapter to `out_dir/adapter`; returns metrics."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, EarlyStoppingCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    class LogProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: round(v, 4) for k, v in (logs or {}).items() if k in ("loss", "eval_loss", "learning_rate")}
            log(f"train: step {state.global_step}/{state.max_steps} {shown}")

    on_gpu = torch.cuda.is_available()
    train_rows, validation_rows = split_by_prompt(rows, config.validation_share, config.seed)
    if not train_rows:
        raise ValueError(f"only {len(rows)} training rows, all held out for validation: sample more prompts")
    as_dataset = lambda part: Dataset.from_list([{"messages": r["messages"]} for r in part])  # noqa: E731
    args = SFTConfig(
        output_dir=str(out_dir / "checkpoints"),
        assistant_only_loss=True,
        max_length=config.max_length,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.batch_size,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        eval_strategy="steps",
        eval_steps=config.eval_every_steps,
        save_strategy="steps",
        save_steps=config.eval_every_steps,
        save_total_limit=2,
        load_best_model_at_end=True,
        metric_for_best_model="eval_loss",
        greater_is_better=False,
        logging_steps=config.eval_every_steps,
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
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(base.path),
        args=args,
        train_dataset=as_dataset(train_rows),
        eval_dataset=as_dataset(validation_rows),
        processing_class=AutoTokenizer.from_pretrained(base.path),
        peft_config=lora,
        callbacks=[EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience), LogProgress()],
    )
    before = trainer.evaluate()["eval_loss"]
    result = trainer.train()
    trainer.save_model(str(out_dir / "adapter"))
    shutil.rmtree(out_dir / "checkpoints", ignore_errors=True)
    return {
        "train_rows": len(train_rows),
        "validation_rows": len(validation_rows),
        "steps": result.global_step,
        "train_loss": result.training_loss,
        "eval_loss_before": before,
        "eval_loss_best": trainer.state.best_metric,
    }


def train(config: TrainConfig, teacher: ModelRef, rows_ref: DatasetRef, models_dir: Path, out_dir: Path) -> Trained:
    with Timer() as timer:
        rows = read_dataset(rows_ref)
        if len(rows) < 2:
            raise ValueError(
                f"{len(rows)} training rows survived filtering; at least 2 are needed (see the filter summary: "
                "sample more prompts, raise rollout.samples_per_prompt, or relax the filter)"
            )
        base = build_student(teacher, config, models_dir)
        metrics = sft(config, base, rows, out_dir)
    report = StageReport(stage="train", rows_in=len(rows), rows_out=len(rows), metrics=metrics, seconds=timer.seconds)
    adapter = ModelRef(path=str((out_dir / "adapter").resolve()), fingerprint=out_dir.name)
    return Trained(base=base, adapter=adapter, report=report)


@task(name="train_student", cache_policy=STAGE_CACHE, persist_result=True)
def train_student(config: TrainConfig, teacher: ModelRef, rows: DatasetRef, work_dir: Path) -> Trained:
    """Prune the teacher into a student and LoRA-fine-tune it on the kept answers."""
    out_dir = stage_dir(work_dir, "train", config, teacher, rows)
    return train(config, teacher, rows, Path(work_dir) / "models", out_dir)
