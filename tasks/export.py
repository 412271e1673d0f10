"""Export: merge the LoRA adapter, quantize to 4-bit AWQ, reload it and prove it still answers right.

AWQ with llmcompressor (AWQModifier to scale salient channels, then W4A16 symmetric group
quantization, compressed-tensors `pack-quantized` on disk). Group size must divide the hidden and
MLP widths (SmolLM2's 576 is not a multiple of 128; the default is 16, see ExportConfig). The check: the
merged model and the export reloaded from disk, as a user would load it, answer the same held-out prompts
greedily; the slices' verifiers score both (the export per slice too), and a drop of more than
`max_accuracy_drop` fails it. The deploy check in vLLM is a stage of its own: tasks.serve.
"""

from __future__ import annotations

import logging
import sys
import warnings
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import Field

from tasks import llamacpp, storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.comparison import accuracy, answered, judged, slice_intervals
from tasks.config import Config
from tasks.llm.config import SamplingConfig
from tasks.llm.local import LocalBackend
from tasks.llm.types import Completion, answer_each
from tasks.models import load_merged, load_model, model_ref, size_mb
from tasks.refs import DatasetRef, ModelRef
from tasks.stage import StageReport, StageResult, Timer, conversation, read_dataset
from tasks.stats import Interval
from tasks.verifiers import VerifyConfig


class ExportConfig(Config):
    """How the student is packaged."""

    quantize: bool = Field(True, description="Quantize the merged student to 4-bit AWQ (else export it merged, fp32).")
    # measured on the demo's 48 held-out prompts: group 32 lost 5 of the merged student's 8 right answers, group 16
    # none (+7 % size). On GPUs vLLM runs 32/64/128 with its Marlin kernel, 16 with Exllama's: large students, 128.
    group_size: int = Field(
        16, ge=8, description="Weights per quantization group (smaller: more accurate, larger file); must divide "
        "the model's widths.",
    )  # fmt: skip
    calibration_rows: int = Field(32, ge=1, description="Training rows run through the model to calibrate AWQ.")
    max_calibration_tokens: int = Field(192, ge=16, description="Tokens per calibration row.")
    check_prompts: int | None = Field(
        None, ge=1, description="Held-out prompts the merged model and the export (and its GGUF) answer; none: all."
    )
    max_new_tokens: int = Field(48, ge=1, description="Longest check answer, in tokens (greedy).")
    batch_size: int = Field(16, ge=1, description="Prompts per generate call in the check.")
    gguf: Literal["f16", "bf16", "q8_0"] | None = Field(
        None,
        description="Also write the merged student as one GGUF file of this type for llama.cpp and Ollama, by "
        "llama.cpp's converter (`make gguf-env`), loaded back and scored on the check prompts; none: no GGUF.",
    )
    max_accuracy_drop: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Largest accuracy the export may lose against the merged model before it fails (0.01: one point).",
    )


class Exported(StageResult):
    model: ModelRef  # what ships: the AWQ folder, or the merged one when not quantizing
    quantized: bool
    merged_accuracy: float | None  # share right on the checked prompts; none when no prompt has a verifier
    exported_accuracy: float | None
    check_passed: bool  # the quantization loss within `max_accuracy_drop` (the deploy check is tasks.serve's)
    check_reason: str
    exported_interval: dict[str, Interval] = {}  # the export's accuracy per slice on the check prompts
    gguf: str | None = None  # the GGUF file (export.gguf)
    gguf_interval: dict[str, Interval] = {}  # its accuracy per slice on the check prompts, as transformers loads it


def _calibrate_on_cpu_too() -> None:
    """llmcompressor pins cached activations for fast host-to-device copies; with no accelerator
    `pin_memory` fails ("Cannot access accelerator device"). There is nothing to copy to: skip it."""
    import torch
    from llmcompressor.pipelines.cache import IntermediatesCache

    if not torch.cuda.is_available():
        IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None


def _quiet_llmcompressor() -> None:
    """llmcompressor logs through loguru, on CPU a warning per layer ("No accelerator available!") and a progress
    bar per layer: the stage's own summary says what happened. compressed_tensors passes `disable=` itself, past
    TQDM_DISABLE (tasks/__init__.py)."""
    from loguru import logger

    logger.disable("llmcompressor")
    logger.disable("compressed_tensors")
    logging.getLogger("torch.fx._symbolic_trace").setLevel(logging.ERROR)
    import tqdm

    def quiet_bar(*args, **kwargs):
        return tqdm.tqdm(*args, **{**kwargs, "disable": True})

    for name, module in list(sys.modules.items()):
        if name.startswith("compressed_tensors") and getattr(module, "tqdm", None) is tqdm.tqdm:
            module.tqdm = quiet_bar


def check_group_size(model_config, group_size: int) -> None:
    """Group quantization needs every quantized input width to be a multiple of the group size."""
    widths = {"hidden_size": model_config.hidden_size, "intermediate_size": model_config.intermediate_size}
    bad = {name: w for name, w in widths.items() if w % group_size}
    if bad:
        raise ValueError(
            f"export.group_size {group_size} does not divide the student's {bad}: pick a divisor "
            "(16 and 32 work for SmolLM2)"
        )


def embeddings_in_bf16(model) -> None:
    """The (tied) embedding is not quantized (AWQ targets the Linear layers, lm_head excepted) and is most of a
    small model's file in fp32: bf16 halves it at no measurable cost. The model is only saved after this; loading
    upcasts it to the config's dtype, or serves it as is where the engine runs in bf16."""
    import torch

    for module in {model.get_input_embeddings(), model.get_output_embeddings()} - {None}:
        module.to(torch.bfloat16)


def quantize_awq(model, tokenizer, calibration: list[list[dict]], config: ExportConfig, out_dir: Path) -> None:
    """AWQ + W4A16 (symmetric, grouped) with llmcompressor, saved compressed to `out_dir`."""
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from llmcompressor.modifiers.transform.awq import AWQModifier

    _calibrate_on_cpu_too()
    _quiet_llmcompressor()
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
    embeddings_in_bf16(model)
    with warnings.catch_warnings():  # "saving a model with offloaded modules": the CPU is where it all is
        warnings.filterwarnings("ignore", message="Attempting to save a model with offloaded modules")
        model.save_pretrained(out_dir, save_compressed=True)
    tokenizer.save_pretrained(out_dir)


def check_answers(model, tokenizer, rows: list[dict], config: ExportConfig) -> list[Completion]:
    """Greedy answers to the check prompts."""
    sampling = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=config.max_new_tokens)
    backend = LocalBackend(model, tokenizer, sampling, config.batch_size, seed=0)
    return answer_each(backend, [conversation(r) for r in rows])


def check_decision(
    config: ExportConfig, merged: list[Completion], exported: list[Completion], accuracies: tuple[float | None, ...]
) -> tuple[bool, str]:
    """(passed, why): the export may lose at most `max_accuracy_drop` against the merged model, in accuracy by the
    verifiers (an empty answer is a wrong one), or in the share of prompts answered where nothing is verifiable."""
    if not exported:
        return True, "no held-out prompts to check it on (source.eval_size 0): reloaded, not scored"
    if not any(a.text.strip() for a in exported):
        return False, "the export gave only empty answers"
    before, after = accuracies
    measure = "accuracy"
    if before is None or after is None:
        before, after, measure = answered(merged), answered(exported), "answered share (no verifier)"
    allowed = config.max_accuracy_drop
    passed = before - after <= allowed + 1e-9  # float noise must not fail an equal drop
    within = "within" if passed else "more than"
    return passed, f"{measure} {after:.2f} exported vs {before:.2f} merged: {within} the allowed drop {allowed:.2f}"


def export(
    config: ExportConfig,
    verify: VerifyConfig,
    base: ModelRef,
    adapter: ModelRef,
    rows: DatasetRef,
    held_out: DatasetRef,
    out_uri: str,
) -> Exported:
    with Timer() as timer:
        model, tokenizer = load_merged(base.uri, adapter.uri)
        check_rows = read_dataset(held_out)[: config.check_prompts]
        merged_answers = check_answers(model, tokenizer, check_rows, config)
        merged_uri = storage.join(out_uri, "merged")
        with storage.model_folder(merged_uri) as folder:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        target = merged_uri
        if config.quantize:
            calibration = [r["messages"] for r in read_dataset(rows)[: config.calibration_rows]]
            target = storage.join(out_uri, "awq")
            with storage.model_folder(target) as folder:
                quantize_awq(model, tokenizer, calibration, config, folder)
        del model
        gguf_file, gguf_interval = None, {}
        if config.gguf:
            gguf_file, gguf_interval = as_gguf(config, verify, merged_uri, check_rows, out_uri)
        exported_answers = check_answers(*load_model(target), check_rows, config)  # as a user loads it
        merged, exported = accuracy(verify, check_rows, merged_answers), accuracy(verify, check_rows, exported_answers)
        passed, reason = check_decision(config, merged_answers, exported_answers, (merged, exported))
        texts = [a.text for a in exported_answers]
        exported_interval = slice_intervals(judged(verify, check_rows, texts, "exported"), "exported")
    report = StageReport(
        stage="export",
        rows_in=len(check_rows),
        rows_out=sum(1 for a in exported_answers if a.text.strip()),
        metrics={
            "merged_mb": size_mb(merged_uri),
            "exported_mb": size_mb(target),
            "compression": size_mb(merged_uri) / max(size_mb(target), 1e-9),
            "check_passed": float(passed),
            **({"merged_accuracy": merged} if merged is not None else {}),
            **({"exported_accuracy": exported} if exported is not None else {}),
            **{f"exported_accuracy.{name}": found.value for name, found in exported_interval.items()},
            **({"gguf_mb": storage.local_file(gguf_file).stat().st_size / 1e6} if gguf_file else {}),
            **{f"gguf_accuracy.{name}": found.value for name, found in gguf_interval.items()},
        },
        seconds=timer.seconds,
        notes=[f"exported to {target}", f"check {'passed' if passed else 'FAILED'}: {reason}"]
        + ([f"GGUF ({config.gguf}) for llama.cpp and Ollama: {gguf_file}"] if gguf_file else [])
        + [f"export answer {i + 1}: {a.text[:120]!r}" for i, a in enumerate(exported_answers[:4])],
    )
    return Exported(
        model=model_ref(target),
        quantized=config.quantize,
        merged_accuracy=merged,
        exported_accuracy=exported,
        check_passed=passed,
        check_reason=reason,
        exported_interval=exported_interval,
        gguf=gguf_file,
        gguf_interval=gguf_interval,
        report=report,
    )


def as_gguf(
    config: ExportConfig, verify: VerifyConfig, merged_uri: str, rows: list[dict], out_uri: str
) -> tuple[str, dict[str, Interval]]:
    """The merged student as a GGUF file (llama.cpp's converter), loaded back by transformers and scored on the
    check prompts per slice: (its URI, its accuracy per slice)."""
    folder_uri = storage.join(out_uri, "gguf")
    name = f"student.{config.gguf}.gguf"
    with storage.model_folder(folder_uri) as folder:
        llamacpp.convert(storage.local_folder(merged_uri), folder / name, config.gguf)
    answers = check_answers(*llamacpp.load_gguf(storage.local_folder(folder_uri) / name), rows, config)
    intervals = slice_intervals(judged(verify, rows, [a.text for a in answers], "gguf"), "gguf")
    return storage.join(folder_uri, name), intervals


@task(name="export_student", **STAGE_TASK)
def export_student(
    config: ExportConfig,
    verify: VerifyConfig,
    base: ModelRef,
    adapter: ModelRef,
    rows: DatasetRef,
    held_out: DatasetRef,
    work_dir: str,
) -> Exported:
    """Merge LoRA, quantize to AWQ 4-bit, reload, and check it answers as well as the merged model."""
    out_uri = stage_uri(work_dir, "export", config, verify, base, adapter, rows, held_out)
    return export(config, verify, base, adapter, rows, held_out, out_uri)
