"""Where the heavy stages run: inside the distill flow run (the default), or each as its own flow run on the
workers of a work pool (a GPU pool for rollouts on vLLM and training, say), started with `run_deployment`
and awaited by the parent.

A placed stage runs the same cached task with the same arguments, so its cache key, its output folder and its
result are the ones it would have in-process; they travel as JSON (configs and dataset/model references) and
its result comes back through the shared result storage (S3 with the stack). `redistill deploy` registers one
`distill-stage/<pool>` deployment per pool named here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any, get_type_hints

from prefect import Task, flow
from prefect.tasks import exponential_backoff
from pydantic import Field, TypeAdapter

from tasks.cache import cached
from tasks.config import PLACE, Config
from tasks.dpo import dpo_student
from tasks.evaluate import evaluate_models
from tasks.export import export_student
from tasks.llm.config import LLMConfig
from tasks.rollout import rollout_teacher
from tasks.serve import serve_export
from tasks.train import train_student

STAGE_FLOW = "distill-stage"
PLACEABLE: dict[str, Task] = {
    "rollout": rollout_teacher,
    "train": train_student,
    "dpo": dpo_student,  # on the train pool
    "evaluate": evaluate_models,
    "export": export_student,
    "serve": serve_export,  # on the export pool: vLLM where the export is
}


class PlacementConfig(Config):
    """The work pool each heavy stage runs on; none: inside the distill flow run."""

    rollout: str | None = Field(None, description="Work pool for teacher rollouts (vLLM on a GPU pool, say).",
                                json_schema_extra=PLACE)  # fmt: skip
    train: str | None = Field(None, description="Work pool for training the students (SFT and DPO).",
                              json_schema_extra=PLACE)  # fmt: skip
    evaluate: str | None = Field(None, description="Work pool for the evaluation.", json_schema_extra=PLACE)
    export: str | None = Field(None, description="Work pool for the merge, quantization, check and vLLM deploy check.",
                               json_schema_extra=PLACE)  # fmt: skip

    def pools(self) -> set[str]:
        return {pool for pool in dict(self).values() if pool}


def _hints(task: Task) -> tuple[list[tuple[str, Any]], Any]:
    hints = get_type_hints(task.fn)
    names = list(inspect.signature(task.fn).parameters)
    return [(name, hints[name]) for name in names], hints["return"]


def encode(task: Task, args: tuple) -> dict[str, Any]:
    """The task's arguments as JSON, by parameter name."""
    parameters, _ = _hints(task)
    pairs = zip(parameters, args, strict=True)
    return {name: TypeAdapter(kind).dump_python(value, mode="json") for (name, kind), value in pairs}


def decode(task: Task, arguments: dict[str, Any]) -> list[Any]:
    parameters, _ = _hints(task)
    return [TypeAdapter(kind).validate_python(arguments[name]) for name, kind in parameters]


def with_retries(stage: str, args: Sequence[Any]) -> Task:
    """The stage's task, its retries as its arguments ask: a rollout waits out a teacher's outage as long as the
    teacher's server config says (`server.outage_retry_s`)."""
    task = PLACEABLE[stage]
    if stage != "rollout":
        return task
    teacher: LLMConfig = args[list(inspect.signature(task.fn).parameters).index("teacher")]
    return task.with_options(retry_delay_seconds=exponential_backoff(backoff_factor=teacher.server.outage_retry_s))


@flow(name=STAGE_FLOW, persist_result=True)
def run_stage(stage: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One stage of a distill run, as its own flow run (on the pool its deployment names)."""
    args = decode(PLACEABLE[stage], arguments)
    result = cached(with_retries(stage, args))(*args)
    return result.model_dump(mode="json")


def placed(stage: str, pool: str | None) -> Callable[..., Any]:
    """The stage to call from the distill flow: cached in-process, or a flow run on `pool`'s workers."""
    task = PLACEABLE[stage]
    if not pool:
        return lambda *args: cached(with_retries(stage, args))(*args)

    def remote(*args: Any) -> Any:
        from prefect.deployments import run_deployment

        child = run_deployment(f"{STAGE_FLOW}/{pool}", parameters={"stage": stage, "arguments": encode(task, args)})
        if not child.state.is_completed():
            raise RuntimeError(f"stage {stage} on pool {pool}: flow run {child.name} ended {child.state.name}: "
                               f"{child.state.message}")  # fmt: skip
        _, returns = _hints(task)
        return TypeAdapter(returns).validate_python(child.state.result())

    return remote
