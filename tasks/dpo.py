"""DPO from verifier pairs: where the teacher answered a prompt both right and wrong, teach the student which.

The filter stage writes the pairs (tasks.filter.preference_pairs: a kept answer a verifier passed against one a
verifier failed); up to `pairs_per_prompt` of them per prompt are used. TRL's DPOTrainer continues from the SFT
student: its LoRA adapter is trained further against a frozen copy of itself (TRL adds the copy as the reference
adapter), or with full fine-tuning the whole model against a frozen copy. The result is one more student, scored
beside the SFT one by evaluate (named `<student>_dpo`); the gate ships whichever is better.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config, TrainMethod
from tasks.models import load_for_training, model_ref
from tasks.refs import DatasetRef, Student
from tasks.stage import StageReport, StageResult, Timer, log, read_dataset


class PreferenceConfig(Config):
    """DPO after SFT, on pairs of the teacher's own right and wrong answers (off by default)."""

    enabled: bool = Field(False, description="Train one more student with DPO on verifier pairs, after SFT.")
    pairs_per_prompt: int = Field(1, ge=1, le=16, description="Most (chosen, rejected) pairs taken from one prompt.")
    min_pairs: int = Field(
        8, ge=1, description="Fewer pairs than this: DPO is skipped, with a note (too few to learn a preference)."
    )
    beta: float = Field(0.1, gt=0, description="DPO's beta: higher keeps the student closer to the SFT one.")
    learning_rate: float | None = Field(
        None, gt=0, description="Peak learning rate; none: 1e-4 for an adapter, 5e-6 for full fine-tuning."
    )
    epochs: float = Field(1.0, gt=0, description="Passes over the pairs.")
    batch_size: int = Field(8, ge=1, description="Pairs per optimiser step.")
    max_length: int = Field(192, ge=16, description="Tokens per prompt and answer; longer ones are truncated.")
    seed: int = Field(0, description="Seed for the data order.")

    def peak_learning_rate(self, method: TrainMethod) -> float:
        return self.learning_rate or (5e-6 if method == "full" else 1e-4)


class Preferred(StageResult):
    student: Student | None  # none when there were too few pairs
    pairs: int


def dpo_trainer(config: PreferenceConfig, method: TrainMethod, sft: Student, pairs: list[dict], scratch: Path):
    """TRL's DPOTrainer on the SFT student; its reference is the SFT student, frozen."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoTokenizer, PrinterCallback, TrainerCallback
    from trl import DPOConfig, DPOTrainer

    class LogProgress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {k: round(v, 4) for k, v in (logs or {}).items() if k in ("loss", "rewards/accuracies")}
            log(f"dpo: step {state.global_step}/{state.max_steps} {shown}")

    base, trained = storage.local_folder(sft.base.uri), storage.local_folder(sft.adapter.uri)
    if method == "full":
        model = load_for_training(trained)
    else:  # the SFT adapter, trainable; TRL copies it as the frozen reference
        model = PeftModel.from_pretrained(load_for_training(base, method == "qlora"), str(trained), is_trainable=True)
    on_gpu = torch.cuda.is_available()
    args = DPOConfig(
        output_dir=str(scratch / "checkpoints"),
        beta=config.beta,
        learning_rate=config.peak_learning_rate(method),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        max_length=config.max_length,
        gradient_checkpointing=False,  # small students: memory is not the limit, time is
        save_strategy="no",
        logging_steps=1,
        report_to=[],
        disable_tqdm=True,
        use_cpu=not on_gpu,
        bf16=on_gpu and torch.cuda.is_bf16_supported(),  # DPOConfig's default is bf16; the CPU trains in fp32
        dataloader_pin_memory=on_gpu,
        seed=config.seed,
    )
    columns = ("prompt", "chosen", "rejected")
    trainer = DPOTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list([{k: p[k] for k in columns} for p in pairs]),
        processing_class=AutoTokenizer.from_pretrained(base),
        callbacks=[LogProgress()],
    )
    trainer.remove_callback(PrinterCallback)
    return trainer


def train_dpo(
    config: PreferenceConfig, method: TrainMethod, sft: Student, pairs_ref: DatasetRef, out_uri: str
) -> Preferred:
    with Timer() as timer:
        pairs = [p for p in read_dataset(pairs_ref) if p["pair_index"] < config.pairs_per_prompt]
        student, metrics, notes = None, {"pairs": len(pairs)}, []
        if len(pairs) < config.min_pairs:
            notes.append(f"skipped: {len(pairs)} pairs of a verified right and wrong answer, dpo.min_pairs is "
                         f"{config.min_pairs} (more samples per prompt give more)")  # fmt: skip
        else:
            adapter_uri = storage.join(out_uri, "adapter")
            with (
                tempfile.TemporaryDirectory(prefix="redistill-dpo-") as scratch,
                storage.model_folder(adapter_uri) as out,
            ):
                trainer = dpo_trainer(config, method, sft, pairs, Path(scratch))
                result = trainer.train()
                if "ref" in getattr(trainer.model, "peft_config", {}):
                    trainer.model.delete_adapter("ref")  # the frozen SFT copy: the SFT student has it already
                trainer.save_model(str(out))
            last = {k: v for entry in trainer.state.log_history for k, v in entry.items() if k.startswith("rewards/")}
            metrics |= {"steps": result.global_step, "train_loss": result.training_loss}
            metrics |= {k.replace("/", "."): float(v) for k, v in last.items()}  # the last step's
            student = Student(base=sft.base, adapter=model_ref(adapter_uri))
    report = StageReport(
        stage="dpo", rows_in=len(pairs), rows_out=len(pairs), metrics=metrics, seconds=timer.seconds, notes=notes
    )
    return Preferred(student=student, pairs=len(pairs), report=report)


@task(name="train_dpo", **STAGE_TASK)
def dpo_student(
    config: PreferenceConfig, method: TrainMethod, sft: Student, pairs: DatasetRef, work_dir: str
) -> Preferred:
    """DPO on the SFT student with pairs of the teacher's verified right and wrong answers."""
    return train_dpo(config, method, sft, pairs, stage_uri(work_dir, "dpo", config, method, sft, pairs))
