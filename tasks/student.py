"""The student before training: pruned from the teacher's checkpoint, or a checkpoint of your own.

`init: prune` keeps some of the teacher's decoder layers (every other by default, as DistilBERT and
Minitron initialise students), saved once per (teacher, layers) as a normal checkpoint; it is the
"base" that evaluate scores before training. `init: checkpoint` starts from `checkpoint`. Either
way the tokenizer's chat template must mark the assistant turn for assistant-only loss: checked
here, once, before any training.
"""

from __future__ import annotations

from typing import Literal

from prefect import task
from pydantic import Field, model_validator

from tasks import storage
from tasks.cache import content_key
from tasks.config import Config
from tasks.models import check_chat_template, model_ref, resolve_model
from tasks.refs import ModelRef


class StudentSize(Config):
    """One more student, trained beside the first on the same data: another prune of the teacher, or a
    checkpoint of your own."""

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_]*$",
        description="Its name in the report and metrics, `student_<name>` (lower case, digits, underscores).",
    )
    keep_layers: Literal["every_other"] | list[int] | None = Field(
        None, description="The teacher's decoder layers it keeps (pruned like the first student)."
    )
    checkpoint: str | None = Field(None, description="Or: the folder of its own checkpoint.")

    @model_validator(mode="after")
    def _one_way_to_start(self):
        if self.name == "dpo" or self.name.endswith("_dpo"):
            raise ValueError(f"student.sizes '{self.name}': a name ending in 'dpo' is taken by DPO's students")
        if (self.keep_layers is None) == (self.checkpoint is None):
            raise ValueError(f"student.sizes '{self.name}': give keep_layers or checkpoint (one of them)")
        return self


class StudentConfig(Config):
    """Where the student starts."""

    init: Literal["prune", "checkpoint"] = Field(
        "prune", description="`prune`: drop teacher layers (see `keep_layers`); `checkpoint`: start from `checkpoint`."
    )
    checkpoint: str | None = Field(None, description="The student's own checkpoint folder (init: checkpoint).")
    prune_from: str | None = Field(
        None,
        description="Checkpoint to prune (init: prune); none: the teacher's. Needed when the teacher is served "
        "(`teacher.backend: openai`): the local copy of its weights.",
    )
    keep_layers: Literal["every_other"] | list[int] = Field(
        "every_other",
        description="Decoder layers the pruned student keeps: `every_other` (0, 2, 4, ...) or explicit indices.",
    )

    sizes: list[StudentSize] = Field(
        [],
        description="More students trained on the same data and scored beside the first (e.g. a 10-layer prune "
        "beside the 15-layer one); the gate ships the smallest that clears its bar.",
    )

    @model_validator(mode="after")
    def _checkpoint_given(self):
        if self.init == "checkpoint" and not self.checkpoint:
            raise ValueError("student.init 'checkpoint' needs student.checkpoint: the folder to start from")
        names = [size.name for size in self.sizes]
        if len(set(names)) < len(names):
            raise ValueError(f"student.sizes: each needs its own name, got {names}")
        return self

    def variants(self) -> dict[str, StudentConfig]:
        """Every student to train, by name: this one as `student`, each of `sizes` as `student_<name>`."""
        first = self.model_copy(update={"sizes": []})
        found = {"student": first}
        for size in self.sizes:
            start = {"init": "prune", "keep_layers": size.keep_layers} if size.keep_layers is not None else \
                {"init": "checkpoint", "checkpoint": size.checkpoint}  # fmt: skip
            found[f"student_{size.name}"] = first.model_copy(update=start)
        return found


def layers_to_keep(spec: Literal["every_other"] | list[int], num_layers: int) -> list[int]:
    """Indices of the teacher's decoder layers the student keeps."""
    keep = list(range(0, num_layers, 2)) if spec == "every_other" else sorted(set(spec))
    if not keep or keep[0] < 0 or keep[-1] >= num_layers:
        raise ValueError(f"student.keep_layers {spec!r} does not fit a teacher with {num_layers} layers")
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


def pruned_student(source: ModelRef, keep_layers, models_uri: str) -> ModelRef:
    """The depth-pruned `source`, saved once per (source, layers) under `models_uri`."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    uri = storage.join(models_uri, f"student-{content_key(source, keep_layers)}")
    if not storage.folder_complete(uri):
        path = storage.local_folder(source.uri)
        tokenizer = AutoTokenizer.from_pretrained(path)
        check_chat_template(tokenizer, source.uri)
        model = AutoModelForCausalLM.from_pretrained(path)
        prune_layers(model, layers_to_keep(keep_layers, model.config.num_hidden_layers))
        with storage.model_folder(uri) as folder:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
    return model_ref(uri)


def build_student(config: StudentConfig, teacher: ModelRef | None, work_dir: str) -> ModelRef:
    """The student's starting checkpoint, per `config.init`."""
    from transformers import AutoTokenizer

    models_uri = storage.join(work_dir, "models")
    if config.init == "checkpoint":
        student = resolve_model(config.checkpoint, models_uri)
        check_chat_template(AutoTokenizer.from_pretrained(storage.local_folder(student.uri)), student.uri)
        return student
    source = resolve_model(config.prune_from, models_uri) if config.prune_from else teacher
    if source is None:
        raise ValueError(
            "student.init 'prune' needs a checkpoint to prune: the teacher is served (teacher.backend 'openai'), so "
            "set student.prune_from to a local copy of its weights, or use student.init 'checkpoint'"
        )
    return pruned_student(source, config.keep_layers, models_uri)


@task(name="prepare_student")
def prepare_student(config: StudentConfig, teacher: ModelRef | None, work_dir: str) -> ModelRef:
    """The student before training, built once and fingerprinted."""
    return build_student(config, teacher, work_dir)
