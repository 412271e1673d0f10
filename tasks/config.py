"""The base of every config section (imports only pydantic: vLLM's environment uses it too)."""

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict

# how a student is fine-tuned (train.method): DPO goes on the same way
TrainMethod = Literal["lora", "full", "qlora"]
Divergence = Literal["forward_kl", "reverse_kl", "jsd"]  # what `kd` training minimises (tasks.kd_loss)

# Marks a field that says where something is, or how patiently it is reached, not what is computed (a log's
# path, a server's URL, timeouts): cache keys leave it out (tasks.cache.identity), so moving a log or
# raising a timeout recomputes nothing. What the field points at enters the key by its digest instead.
PLACE = {"cache_key": False}


class Config(BaseModel):
    """An unknown key is an error, not silently ignored: a typo in a YAML file would otherwise run with
    the default."""

    model_config = ConfigDict(extra="forbid")


def place_fields(config: type[BaseModel], prefix: str = "") -> set[str]:
    """The dotted names of a config's PLACE fields, at any depth (`teacher.server.base_url`)."""
    found = set()
    for name, field in config.model_fields.items():
        if field.json_schema_extra == PLACE:
            found.add(prefix + name)
        for kind in (field.annotation, *get_args(field.annotation)):  # a section, or one in a union with None
            if isinstance(kind, type) and issubclass(kind, BaseModel):
                found |= place_fields(kind, f"{prefix}{name}.")
    return found
