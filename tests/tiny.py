"""A tiny random causal LM with the embedded teacher's tokenizer: seconds to train, quantize and run."""

from pathlib import Path

# the template shipped in the GGUF (what the generation-marked one must render identically)
ORIGINAL_CHATML = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def build_tiny_teacher(out_dir: Path, layers: int = 4, seed: int = 0, logit_scale: float = 1.0) -> Path:
    """Llama-shaped: hidden 128 (AWQ's group 32 divides it), 2 heads of 64 (a width vLLM's CPU attention
    kernels support), saved with the fixed SmolLM2 tokenizer. Random weights predict almost uniformly;
    `logit_scale` (on the final norm) makes each position's distribution peaked and its own."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tasks.models import END_OF_TURN, embedded_tokenizer

    tokenizer = embedded_tokenizer()
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.convert_tokens_to_ids(END_OF_TURN),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.mul_(logit_scale)
    model.generation_config.eos_token_id = config.eos_token_id
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
