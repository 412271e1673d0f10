"""The base of every config section (imports only pydantic: vLLM's environment uses it too)."""

from pydantic import BaseModel, ConfigDict


class Config(BaseModel):
    """An unknown key is an error, not silently ignored: a typo in a YAML file would otherwise run with
    the default."""

    model_config = ConfigDict(extra="forbid")
