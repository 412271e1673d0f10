"""The teacher's top-k log-probabilities at each assistant token of the training rows, computed once, stored.

`kd` training (tasks.kd_loss) needs, for every position the loss counts, the teacher's k most likely next tokens
and their log-probabilities. A local teacher computes them in one forward pass per row; a served one (vLLM) scores
the row's own token ids. Each row's are committed to the durable request store (purpose `kd`, keyed by the row's
token ids and the teacher's fingerprint with k) as soon as its batch is done, so a crash during the pass or the
training, a second student, or a rerun never computes them again. Only the positions the loss counts are kept,
as int32 token ids and float16 log-probabilities: 6·k bytes a token before base64 (DistillKit stores about 300
bytes a token).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from tasks.llm.store import RequestStore
from tasks.llm.types import Completion, NoTeacherSignal
from tasks.stage import Progress

PURPOSE = "kd"
Scorer = Callable[[list[tuple[list[int], list[int]]], int], list["TopK"]]  # rows, k -> each row's top-k


@dataclass
class TopK:
    """One row's teacher top-k: at each kept position t, the teacher's k likeliest tokens for position t + 1."""

    positions: np.ndarray  # (n,) int32
    ids: np.ndarray  # (n, k) int32
    log_probs: np.ndarray  # (n, k) float16

    def pack(self) -> str:
        n, k = self.ids.shape
        head = np.array([n, k], dtype=np.int32).tobytes()
        body = self.positions.astype(np.int32).tobytes() + self.ids.astype(np.int32).tobytes()
        return base64.b64encode(head + body + self.log_probs.astype(np.float16).tobytes()).decode()

    @classmethod
    def unpack(cls, text: str) -> TopK:
        raw = base64.b64decode(text)
        n, k = np.frombuffer(raw[:8], dtype=np.int32)
        positions = np.frombuffer(raw, dtype=np.int32, count=n, offset=8)
        ids = np.frombuffer(raw, dtype=np.int32, count=n * k, offset=8 + 4 * n).reshape(n, k)
        log_probs = np.frombuffer(raw, dtype=np.float16, count=n * k, offset=8 + 4 * n + 4 * n * k).reshape(n, k)
        return cls(positions=positions, ids=ids, log_probs=log_probs)


def sequence_key(input_ids: list[int]) -> str:
    """A row's identity in the store: its token ids (the same text under another template is another row)."""
    return hashlib.sha256(np.asarray(input_ids, dtype=np.int32).tobytes()).hexdigest()[:32]


def compute_top_k(model, rows: list[tuple[list[int], list[int]]], k: int) -> list[TopK]:
    """The teacher's top-k at the given positions of each (token ids, positions) row, in one padded batch."""
    import torch

    width = max(len(ids) for ids, _ in rows)
    batch = torch.zeros(len(rows), width, dtype=torch.long)
    attention = torch.zeros(len(rows), width, dtype=torch.long)
    for i, (ids, _) in enumerate(rows):
        batch[i, : len(ids)], attention[i, : len(ids)] = torch.tensor(ids), 1
    with torch.no_grad():
        logits = model(input_ids=batch.to(model.device), attention_mask=attention.to(model.device)).logits
    out = []
    for i, (_, positions) in enumerate(rows):
        at = torch.as_tensor(positions, dtype=torch.long, device=logits.device)
        top = torch.log_softmax(logits[i, at].float(), dim=-1).topk(k, dim=-1)
        out.append(TopK(positions=np.asarray(positions, dtype=np.int32), ids=top.indices.cpu().numpy().astype(np.int32),
                        log_probs=top.values.cpu().numpy().astype(np.float16)))  # fmt: skip
    return out


def served_top_k(client, rows: list[tuple[list[int], list[int]]], k: int) -> list[TopK]:
    """The same from a served teacher (a tasks.llm.prompt_logprobs.PromptLogprobs): the distribution at position t
    is the server's for token t + 1, each row sent as its own token ids."""
    scored = client.top_k([ids for ids, _ in rows], k)
    out = []
    for (_, positions), per_token in zip(rows, scored, strict=True):
        tops = [sorted(per_token[t + 1].items(), key=lambda item: -item[1])[:k] for t in positions]
        if any(len(top) < k for top in tops):
            raise NoTeacherSignal(f"the teacher's server gave fewer than {k} log-probabilities a token: lower "
                                  "train.kd_top_k to its --max-logprobs, or raise that")  # fmt: skip
        ids = np.array([[token for token, _ in top] for top in tops], dtype=np.int32).reshape(len(tops), k)
        log_probs = np.array([[lp for _, lp in top] for top in tops], dtype=np.float16).reshape(len(tops), k)
        out.append(TopK(positions=np.asarray(positions, dtype=np.int32), ids=ids, log_probs=log_probs))
    return out


def stored_top_k(
    store: RequestStore,
    fingerprint: str,
    rows: list[tuple[list[int], list[int]]],
    k: int,
    load_scorer: Callable[[], Scorer],
    batch_size: int = 8,
) -> tuple[list[TopK], int]:
    """Each (token ids, positions) row's teacher top-k: from the store where it is there, else scored (the
    teacher loaded, or its server reached, only then) and committed batch by batch. Returns them in order, and
    how many were scored."""
    keyed = f"{fingerprint}:top{k}"
    keys = [sequence_key(ids) for ids, _ in rows]
    found = store.get(PURPOSE, keyed, sorted(set(keys)))
    have = {key: TopK.unpack(c.text) for (key, _), c in found.items()}
    missing = sorted({key: i for i, key in enumerate(keys) if key not in have}.values())
    if missing:
        score = load_scorer()
        progress = Progress("train teacher top-k", len(missing), unit="rows")
        for start in range(0, len(missing), batch_size):
            chosen = missing[start : start + batch_size]
            for i, top in zip(chosen, score([rows[i] for i in chosen], k), strict=True):
                have[keys[i]] = top
                done = Completion(text=top.pack(), finish_reason="stop", prompt_tokens=len(rows[i][0]),
                                  completion_tokens=len(top.positions))  # fmt: skip
                store.add(PURPOSE, keyed, keys[i], {0: done})
            progress.advance(len(chosen))
    return [have[key] for key in keys], len(missing)
