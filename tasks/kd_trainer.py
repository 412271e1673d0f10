"""TRL's SFTTrainer with the distillation term: cross-entropy on the teacher's sampled answers, mixed with the
divergence from the teacher's stored top-k at each assistant token (tasks.kd_loss, tasks.teacher_topk).

Everything else is SFTTrainer's: the chat template, the assistant-only labels, truncation, LoRA, evaluation,
early stopping. The teacher's top-k are found per row by its token ids, as SFTTrainer prepared them; the eval
loss is the same mix, so early stopping and the best checkpoint follow what is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks import storage
from tasks.config import Divergence
from tasks.llm.store import open_store
from tasks.models import load_model
from tasks.refs import ModelRef
from tasks.teacher_topk import TopK, sequence_key, stored_top_k


@dataclass(frozen=True)
class KDSettings:
    divergence: Divergence
    temperature: float
    beta: float
    ce_weight: float  # of the cross-entropy on the sampled answer; the divergence has 1 - ce_weight


def loss_positions(input_ids: list[int], labels: list[int]) -> list[int]:
    """Positions t whose logits predict a token the loss counts (labels[t + 1] is not -100)."""
    return [t - 1 for t in range(1, len(input_ids)) if labels[t] != -100]


def prepared_rows(dataset) -> list[tuple[list[int], list[int]]]:
    """(token ids, loss positions) per row of a dataset SFTTrainer prepared (tokenized, labelled, truncated)."""
    return [(row["input_ids"], loss_positions(row["input_ids"], row["labels"])) for row in dataset]


def batch_top_k(top_k: dict[str, TopK], input_ids, attention_mask, k: int):
    """The teacher's top-k for a right-padded batch as (B, L - 1, k) ids and log-probabilities, and the (B, L - 1)
    mask of the positions they are for."""
    import torch

    rows, width = input_ids.shape
    ids = torch.zeros(rows, width - 1, k, dtype=torch.long)
    log_probs = torch.full((rows, width - 1, k), -1e4)
    mask = torch.zeros(rows, width - 1, dtype=torch.bool)
    for i in range(rows):
        key = sequence_key(input_ids[i][attention_mask[i].bool()].tolist())
        if key not in top_k:
            raise KeyError(f"no teacher top-k for batch row {i}: the rows changed after the teacher's pass")
        found = top_k[key]
        at = torch.from_numpy(found.positions.astype("int64"))
        ids[i, at] = torch.from_numpy(found.ids.astype("int64"))
        log_probs[i, at] = torch.from_numpy(found.log_probs.astype("float32"))
        mask[i, at] = True
    device = input_ids.device
    return ids.to(device), log_probs.to(device), mask.to(device)


def check_same_tokenizer(student: ModelRef, teacher: ModelRef) -> None:
    """The divergence compares the two distributions token by token: the vocabularies must be one (ValueError)."""
    from transformers import AutoTokenizer

    theirs = AutoTokenizer.from_pretrained(storage.local_folder(teacher.uri)).get_vocab()
    ours = AutoTokenizer.from_pretrained(storage.local_folder(student.uri)).get_vocab()
    if ours != theirs:
        differ = len(ours.items() ^ theirs.items())
        raise ValueError(
            f"train.objective needs the student to share the teacher's tokenizer: the student's has {len(ours)} "
            f"tokens, the teacher's {len(theirs)}, {differ} (token, id) pairs differ; use train.objective 'sft', or a "
            "student of the teacher's family (student.init 'prune')"
        )


def attach_teacher(trainer, teacher: ModelRef, store_url: str, k: int, settings: KDSettings) -> int:
    """Give a TopKDistillationTrainer the teacher's top-k for every row it will see (training and validation),
    from the request store or computed now and stored; returns how many rows were computed."""
    rows = prepared_rows(trainer.train_dataset) + prepared_rows(trainer.eval_dataset)
    store = open_store(store_url)
    try:
        found, computed = stored_top_k(store, teacher.fingerprint, rows, k, lambda: load_model(teacher.uri)[0])
    finally:
        store.close()
    trainer.top_k = {sequence_key(ids): top for (ids, _), top in zip(rows, found, strict=True)}
    trainer.k, trainer.kd = k, settings
    return computed


def distillation_trainer_class():
    """SFTTrainer whose loss mixes cross-entropy with the divergence from the teacher's stored top-k; set
    `top_k` (by sequence key) and `kd` before training."""
    import torch.nn.functional as F
    from trl import SFTTrainer

    from tasks.kd_loss import kd_loss

    class TopKDistillationTrainer(SFTTrainer):
        top_k: dict[str, TopK] = {}
        kd: KDSettings | None = None
        k: int = 0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"]
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
            logits = outputs.logits[:, :-1]
            targets = labels[:, 1:]
            counted = targets != -100
            ce = F.cross_entropy(logits[counted].float(), targets[counted]) if counted.any() else logits.sum() * 0
            ids, log_probs, mask = batch_top_k(self.top_k, inputs["input_ids"], inputs["attention_mask"], self.k)
            settings = self.kd
            divergence = kd_loss(logits, ids, log_probs, mask & counted, settings.divergence, settings.temperature,
                                 settings.beta)  # fmt: skip
            loss = settings.ce_weight * ce + (1 - settings.ce_weight) * divergence
            parts = self._metrics["train" if self.model.training else "eval"]  # beside the mix, in the log
            parts["ce"].append(ce.item())
            parts["divergence"].append(divergence.item())
            return (loss, outputs) if return_outputs else loss

    return TopKDistillationTrainer
