"""The teacher's weights: resolved once, so every stage that needs them names the same checkpoint.

A served teacher (`teacher.backend: openai`) has no checkpoint here: it is known by its served
name, scored through its server, and the student must then come from `student.prune_from` or
`student.checkpoint`.
"""

from __future__ import annotations

from prefect import task

from tasks import storage
from tasks.llm.config import LLMConfig
from tasks.models import resolve_model
from tasks.refs import ModelRef


@task(name="prepare_teacher")
def prepare_teacher(config: LLMConfig, work_dir: str) -> ModelRef | None:
    """The teacher's checkpoint (the embedded GGUF converted once) and its fingerprint; none if served."""
    return resolve_model(config.model, storage.join(work_dir, "models")) if config.has_checkpoint else None
