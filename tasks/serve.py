"""The deploy check: vLLM, the engine users deploy with (its CPU build here), loads the export and answers the
held-out check prompts through its OpenAI-compatible server; they are scored by the slices' verifiers, with
tokens/s. An export vLLM cannot load, or that answers nothing there, fails.

A stage of its own, after the export: a change to the server client, or a server that fell over, checks the
export again without quantizing it again. A failed check is not reused from the cache: the next run tries again.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import BaseModel, Field

from tasks import storage
from tasks.cache import STAGE_TASK
from tasks.comparison import accuracy, answered
from tasks.config import Config
from tasks.llm.config import greedy
from tasks.llm.vllm_server import served_answers, vllm_python
from tasks.refs import DatasetRef, ModelRef
from tasks.stage import StageReport, StageResult, Timer, conversation, read_dataset
from tasks.verifiers import VerifyConfig


class ServeConfig(Config):
    """The deploy check: the export loaded and served by vLLM."""

    check: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Serve the export with vLLM (its own environment: `make vllm-env`, or $REDISTILL_VLLM_PYTHON) "
        "and score its answers. auto: where that environment exists; on: the check fails without it.",
    )
    prompts: int | None = Field(None, ge=1, description="Held-out prompts vLLM answers; none: all of them.")
    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens (greedy).")


class Served(BaseModel):
    """The export served by vLLM: its answers to the check prompts, scored."""

    accuracy: float | None  # none when no prompt has a verifier
    answered: float  # share of prompts with a non-empty answer
    tokens_per_s: float  # all check prompts at once, as the server batches them
    error: str | None = None  # why vLLM could not serve it


class ServeChecked(StageResult):
    served: Served | None  # none: not checked (`serve.check` off, or auto without vLLM's environment)
    passed: bool
    reason: str
    skipped: bool = False  # `auto` where vLLM's environment is missing: checked once it is there

    def reusable(self) -> bool:
        return self.passed and not self.skipped


def serve_check(config: ServeConfig, verify: VerifyConfig, model_uri: str, rows: list[dict]) -> Served | None:
    """The export loaded and served by vLLM, answering the check prompts; none when the check is off, or on
    `auto` where vLLM's environment is missing."""
    if config.check == "off" or not rows or (config.check == "auto" and not vllm_python().exists()):
        return None
    if not vllm_python().exists():
        why = f"serve.check is 'on' but vLLM's environment is missing ({vllm_python()}): run `make vllm-env`"
        return Served(accuracy=None, answered=0.0, tokens_per_s=0.0, error=why)
    with tempfile.TemporaryDirectory(prefix="redistill-serve-") as scratch:
        try:
            answers, seconds = served_answers(
                storage.local_folder(model_uri), [conversation(r) for r in rows], greedy(config.max_new_tokens),
                Path(scratch),
            )  # fmt: skip
        except (RuntimeError, TimeoutError) as error:  # the server died or never came up: its log's tail says why
            said = str(error).strip().splitlines()
            why = next((line for line in reversed(said) if "Error" in line), said[-1] if said else repr(error))
            return Served(accuracy=None, answered=0.0, tokens_per_s=0.0, error=why.strip()[-400:])
    tokens = sum(a.completion_tokens for a in answers)
    return Served(
        accuracy=accuracy(verify, rows, answers),
        answered=answered(answers),
        tokens_per_s=tokens / max(seconds, 1e-9),
    )


def served_decision(served: Served | None) -> tuple[bool, str]:
    """(passed, why) for the deploy check: vLLM must load the export and answer."""
    if served is None:
        return True, ""
    if served.error:
        return False, f"vLLM could not serve it: {served.error}"
    if not served.answered:
        return False, "served by vLLM, it gave only empty answers"
    score = f"accuracy {served.accuracy:.2f}" if served.accuracy is not None else f"answered {served.answered:.2f}"
    return True, f"served by vLLM: {score}, {served.tokens_per_s:.0f} tokens/s"


def served_metrics(served: Served) -> dict[str, float]:
    metrics = {"served_ok": float(served.error is None), "served_answered": served.answered}
    if served.accuracy is not None:
        metrics["served_accuracy"] = served.accuracy
    return metrics | ({"served_tokens_per_s": served.tokens_per_s} if served.error is None else {})


def check_serving(config: ServeConfig, verify: VerifyConfig, model: ModelRef, held_out: DatasetRef) -> ServeChecked:
    with Timer() as timer:
        rows = read_dataset(held_out)[: config.prompts]
        served = serve_check(config, verify, model.uri, rows)
        passed, reason = served_decision(served)
    report = StageReport(
        stage="serve",
        rows_in=len(rows) if served else 0,
        rows_out=round(served.answered * len(rows)) if served else 0,
        metrics=served_metrics(served) if served else {},
        seconds=timer.seconds,
        notes=[reason or f"not served (serve.check {config.check}; vLLM's environment: {vllm_python()})"],
    )
    skipped = served is None and config.check == "auto" and bool(rows)
    return ServeChecked(served=served, passed=passed, reason=reason, skipped=skipped, report=report)


@task(name="serve_export", **STAGE_TASK)
def serve_export(
    config: ServeConfig, verify: VerifyConfig, model: ModelRef, held_out: DatasetRef, work_dir: str
) -> ServeChecked:
    """Serve the export with vLLM and score its answers to the check prompts."""
    return check_serving(config, verify, model, held_out)
