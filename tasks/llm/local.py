"""The local backend: transformers in this process, batched (the embedded CPU teacher, and the
students when they are evaluated)."""

from __future__ import annotations

import torch

from tasks.llm.config import SamplingConfig
from tasks.llm.types import (
    Completion,
    OnDone,
    OnRejected,
    Prompt,
    Request,
    by_missing_count,
    chat_messages,
    request_seed,
    split_reasoning,
)
from tasks.models import END_OF_TURN, load_model


def chat_prompts(tokenizer, prompts: list[Prompt], system_prompt: str | None) -> list[str]:
    """Render prompts (texts or conversations) through the chat template, ready for generation."""
    return [
        tokenizer.apply_chat_template(chat_messages(p, system_prompt), tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]


@torch.no_grad()
def generate(
    model,
    tokenizer,
    prompts: list[Prompt],
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
    # a batch of a decoder-only model pads on the left, whatever the tokenizer was saved with (a GGUF's: right)
    batch = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
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


class LocalBackend:
    """A model in this process, answering batches of requests."""

    def __init__(self, model, tokenizer, sampling: SamplingConfig, batch_size: int, seed: int):
        self.model, self.tokenizer = model, tokenizer
        self.sampling, self.batch_size, self.seed = sampling, batch_size, seed

    @classmethod
    def from_checkpoint(cls, path: str, sampling: SamplingConfig, batch_size: int, seed: int) -> LocalBackend:
        return cls(*load_model(path), sampling, batch_size, seed)

    def sample(self, requests: list[Request], on_done: OnDone, on_rejected: OnRejected) -> None:
        for n, batch in by_missing_count(requests, self.batch_size):
            torch.manual_seed(request_seed(self.seed, batch[0].id))
            answers = generate(
                self.model,
                self.tokenizer,
                [r.prompt for r in batch],
                n=n,
                temperature=self.sampling.temperature,
                top_p=self.sampling.top_p,
                max_new_tokens=self.sampling.max_new_tokens,
                system_prompt=self.sampling.system_prompt,
                logprobs=self.sampling.logprobs is not None,
            )
            for request, completions in zip(batch, answers, strict=True):
                on_done(request, completions)

    def close(self) -> None:
        del self.model
