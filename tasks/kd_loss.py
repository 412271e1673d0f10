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

A temperature above 1 softens both (the student's logits exactly, the teacher's k + 1 buckets as they are
stored), and the divergence is scaled by T² so its gradients keep their size (Hinton et al.). The mean is over
the positions the mask marks: the assistant's tokens only, as the SFT loss.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

Divergence = Literal["forward_kl", "reverse_kl", "jsd"]

_MAX_MASS = 1.0 - 1e-6  # the top-k never hold all the mass: log of the tail stays finite


def with_tail(top_log_probs: torch.Tensor) -> torch.Tensor:
    """(..., k) log-probabilities of k tokens -> (..., k + 1): the same, then the log of the mass left over."""
    held = torch.logsumexp(top_log_probs, dim=-1, keepdim=True).exp().clamp(max=_MAX_MASS)
    return torch.cat([top_log_probs, torch.log1p(-held)], dim=-1)


def student_buckets(logits: torch.Tensor, top_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """The student's (..., k + 1) bucket log-probabilities over the teacher's top-k tokens and the tail."""
    log_probs = F.log_softmax(logits.float() / temperature, dim=-1)
    return with_tail(log_probs.gather(-1, top_ids))


def teacher_buckets(top_log_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's stored top-k log-probabilities as k + 1 buckets, softened by the temperature."""
    buckets = with_tail(top_log_probs.float())
    return buckets if temperature == 1.0 else F.log_softmax(buckets / temperature, dim=-1)


def _kl(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """KL(p ‖ q) per position, from log-probabilities over the last axis."""
    return (p.exp() * (p - q)).sum(-1)


def divergence(student: torch.Tensor, teacher: torch.Tensor, kind: Divergence, beta: float = 0.5) -> torch.Tensor:
    """Per-position divergence between bucket log-probabilities (..., k + 1)."""
    if kind == "forward_kl":
        return _kl(teacher, student)
    if kind == "reverse_kl":
        return _kl(student, teacher)
    if not 0.0 < beta < 1.0:
        raise ValueError(f"jsd needs 0 < beta < 1, got {beta}: beta 0 and 1 are the two KLs")
    mixture = torch.logsumexp(torch.stack([teacher + torch.log(torch.tensor(beta)),
                                           student + torch.log1p(torch.tensor(-beta))]), dim=0)  # fmt: skip
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
    if not mask.any():
        return logits.sum() * 0.0  # no assistant token in the batch: zero, still on the graph
    ours = student_buckets(logits[mask], top_ids[mask], temperature)
    theirs = teacher_buckets(top_log_probs[mask], temperature)
    return divergence(ours, theirs, kind, beta).mean() * temperature**2
