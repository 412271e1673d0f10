"""Token-level distillation from the teacher's stored top-k log-probabilities (train.objective `kd`).

TRL's distillation trainers (GKDTrainer, DistillationTrainer) run the teacher beside the student at every step;
its server trainer asks a vLLM server for top-k log-probabilities at every step. Neither trains on top-k
log-probabilities computed once and stored, which is what keeps a crash from paying for the teacher again and
memory bounded: this loss is ours. Each position's distribution is k + 1 buckets, the teacher's top-k tokens and
the rest of the vocabulary as one tail bucket (as TRL's server trainer and DistillKit do), for the teacher and
the student alike, and the divergence is taken between those:

- `forward_kl`: KL(teacher ‖ student), mass-covering (Hinton et al. 2015; DistillKit's default);
- `reverse_kl`: KL(student ‖ teacher), mode-seeking (MiniLLM, Gu et al. 2024);
- `jsd`: the generalised Jensen-Shannon divergence of GKD (Agarwal et al. 2024) with weight `beta` on the teacher:
  beta · KL(teacher ‖ m) + (1 - beta) · KL(student ‖ m), m = beta · teacher + (1 - beta) · student.

A temperature above 1 softens both sides' k + 1 buckets alike (a student equal to the teacher stays at zero
loss), and the divergence is scaled by T² so its gradients keep their size (Hinton et al.). The mean is over
the positions the mask marks: the assistant's tokens only, as the SFT loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from tasks.config import Divergence

_MAX_MASS = 1.0 - 1e-6  # the top-k never hold all the mass: log of the tail stays finite
_FLOOR = -1e4  # log-probabilities below it (float16's -inf) count as this: 0 · -inf would be NaN


def with_tail(top_log_probs: torch.Tensor) -> torch.Tensor:
    """(..., k) log-probabilities of k tokens -> (..., k + 1): the same, then the log of the mass left over."""
    held = torch.logsumexp(top_log_probs, dim=-1, keepdim=True).exp().clamp(max=_MAX_MASS)
    return torch.cat([top_log_probs, torch.log1p(-held)], dim=-1)


def student_buckets(logits: torch.Tensor, top_ids: torch.Tensor) -> torch.Tensor:
    """The student's (..., k + 1) bucket log-probabilities: the teacher's top-k tokens, then all the others."""
    log_probs = F.log_softmax(logits.float(), dim=-1)
    rest = log_probs.scatter(-1, top_ids, float("-inf"))
    return torch.cat([log_probs.gather(-1, top_ids), torch.logsumexp(rest, dim=-1, keepdim=True)], dim=-1)


def softened(buckets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Bucket log-probabilities at a temperature, floored (both sides alike: equal buckets stay equal)."""
    buckets = buckets.clamp(min=_FLOOR)
    return buckets if temperature == 1.0 else F.log_softmax(buckets / temperature, dim=-1)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per position, from floored log-probabilities over the last axis."""
    return (p.exp() * (p - q)).sum(-1)


def divergence(student: torch.Tensor, teacher: torch.Tensor, kind: Divergence, beta: float = 0.5) -> torch.Tensor:
    """Per-position divergence between bucket log-probabilities (..., k + 1)."""
    if kind == "forward_kl":
        return _kl(teacher, student)
    if kind == "reverse_kl":
        return _kl(student, teacher)
    if not 0.0 < beta < 1.0:
        raise ValueError(f"jsd needs 0 < beta < 1, got {beta}: for the KL alone, use forward_kl or reverse_kl")
    mixture = torch.logsumexp(torch.stack([teacher + math.log(beta), student + math.log1p(-beta)]), dim=0)
    return beta * _kl(teacher, mixture) + (1 - beta) * _kl(student, mixture)


def kd_loss(
    logits: torch.Tensor,
    top_ids: torch.Tensor,
    top_log_probs: torch.Tensor,
    mask: torch.Tensor,
    kind: Divergence = "forward_kl",
    temperature: float = 1.0,
    beta: float = 0.5,
) -> torch.Tensor:
    """Mean divergence over the masked positions, times T².

    logits (B, T, V): the student's, already aligned with the positions they predict; top_ids and top_log_probs
    (B, T, k): the teacher's at the same positions; mask (B, T): true where the loss counts.
    """
    mask = mask.bool()  # an int mask would index rows, not positions
    if not mask.any():
        return logits[..., :0].sum()  # no assistant token in the batch: zero, still on the graph
    ours = softened(student_buckets(logits[mask], top_ids[mask]), temperature)
    theirs = softened(with_tail(top_log_probs[mask].float().clamp(min=_FLOOR)), temperature)
    return divergence(ours, theirs, kind, beta).mean() * temperature**2
