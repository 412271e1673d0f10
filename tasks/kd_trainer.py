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
from tasks.llm.served import ServedModel
from tasks.llm.store import open_store
from tasks.llm.types import NoTeacherSignal
from tasks.models import load_model
from tasks.refs import ModelRef
from tasks.teacher_topk import Scorer, TopK, compute_top_k, sequence_key, served_top_k, stored_top_k

Teacher = ModelRef | ServedModel  # its weights here, or its vLLM server

# what a served teacher's tokenizer must split exactly as the student's: chat markers, accents, CJK, digits, emoji
PROBE = [
    {"role": "user", "content": "Größe? 東京都の人口は 1 400 万人。Ελληνικά, naïve café — 12 345,67 € 🙂"},
    {"role": "assistant", "content": "Ça dépend: ~14,0 M (2024).\n\tok"},
]


@dataclass(frozen=True)
class KDSettings:
    top_k: int
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


def check_same_tokenizer(student: ModelRef, teacher: Teacher) -> None:
    """The divergence compares the two distributions token by token: the vocabularies must be one
    (NoTeacherSignal)."""
    from transformers import AutoConfig, AutoTokenizer

    if isinstance(teacher, ServedModel):
        return check_served_tokenizer(student, teacher)
    theirs = AutoTokenizer.from_pretrained(storage.local_folder(teacher.uri)).get_vocab()
    ours = AutoTokenizer.from_pretrained(storage.local_folder(student.uri)).get_vocab()
    # one tokenizer, two logit widths (Qwen2.5 0.5B and 7B): a teacher's id past the student's width breaks gather
    widths = [AutoConfig.from_pretrained(storage.local_folder(m.uri)).get_text_config().vocab_size
              for m in (student, teacher)]  # fmt: skip
    if widths[0] != widths[1]:
        raise NoTeacherSignal(
            f"train.objective needs the student's output layer as wide as the teacher's: {widths[0]} logits against "
            f"{widths[1]} (one tokenizer, padded differently); use train.objective 'sft', or a student pruned from "
            "the teacher (student.init 'prune')"
        )
    if ours != theirs:
        differ = len(ours.items() ^ theirs.items())
        raise NoTeacherSignal(
            f"train.objective needs the student to share the teacher's tokenizer: the student's has {len(ours)} "
            f"tokens, the teacher's {len(theirs)}, {differ} (token, id) pairs differ; use train.objective 'sft', or a "
            "student of the teacher's family (student.init 'prune')"
        )


def check_served_tokenizer(student: ModelRef, teacher: ServedModel) -> None:
    """A served teacher's vocabulary is not readable, its tokenizer is: it must split a probe (the student's chat
    template over several scripts, then every added token the student has: where one family's versions differ)
    into the student's own token ids."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(storage.local_folder(student.uri))
    added = [token.content for _, token in sorted(tokenizer.added_tokens_decoder.items())]
    text = tokenizer.apply_chat_template(PROBE, tokenize=False) + "\n".join(added)
    ours, theirs = tokenizer.encode(text, add_special_tokens=False), served_client(teacher).tokenize(text)
    if ours != theirs:
        at = next((i for i, pair in enumerate(zip(ours, theirs, strict=False)) if pair[0] != pair[1]),
                  min(len(ours), len(theirs)))  # fmt: skip
        raise NoTeacherSignal(
            f"train.objective 'kd' needs the student to share the teacher's tokenizer: the server ({teacher.model}) "
            f"splits a probe into {len(theirs)} tokens, the student into {len(ours)}, differing from token {at} "
            f"({tokenizer.decode(ours[at : at + 3])!r}); use train.objective 'sft', or a student of the teacher's "
            "family"
        )


def served_client(teacher: ServedModel):
    """The teacher's server, asked with the API key the config names (never logged)."""
    from tasks.llm.http import resolve_api_key
    from tasks.llm.prompt_logprobs import PromptLogprobs

    return PromptLogprobs(teacher, resolve_api_key(teacher.server))


def scorer(teacher: Teacher) -> Scorer:
    """The teacher's top-k pass: its server's, or its weights loaded here, on the GPU where there is one (a 7B
    teacher's pass on a CPU takes hours)."""
    import torch

    if isinstance(teacher, ServedModel):
        client = served_client(teacher)
        return lambda rows, k: served_top_k(client, rows, k)
    model = load_model(teacher.uri)[0]
    model = model.to("cuda") if torch.cuda.is_available() else model
    return lambda rows, k: compute_top_k(model, rows, k)


def attach_teacher(trainer, teacher: Teacher, store_url: str, settings: KDSettings) -> int:
    """Give a TopKDistillationTrainer the teacher's top-k for every row it will see (training and validation),
    from the request store or scored now and stored; returns how many rows were scored."""
    rows = prepared_rows(trainer.train_dataset) + prepared_rows(trainer.eval_dataset)
    store = open_store(store_url)
    try:
        found, scored = stored_top_k(store, teacher.fingerprint, rows, settings.top_k, lambda: scorer(teacher))
    finally:
        store.close()
    width = trainer.model.get_output_embeddings().weight.shape[0]
    widest = max((int(top.ids.max()) for top in found if top.ids.size), default=-1)
    if widest >= width:  # a served teacher's vocabulary could not be compared before
        raise NoTeacherSignal(f"the teacher's top-k name token {widest}, past the student's {width} logits: "
                              "one tokenizer, but a wider vocabulary; use train.objective 'sft'")  # fmt: skip
    trainer.attach({sequence_key(ids): top for (ids, _), top in zip(rows, found, strict=True)}, settings)
    return scored


def distillation_trainer_class():
    """SFTTrainer whose loss mixes cross-entropy with the divergence from the teacher's stored top-k, given to it
    (by sequence key) with `attach` once it has prepared its datasets, before training."""
    import torch.nn.functional as F
    from trl import SFTTrainer

    from tasks.kd_loss import kd_loss

    class TopKDistillationTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.top_k: dict[str, TopK] | None = None
            self.kd: KDSettings | None = None

        def attach(self, top_k: dict[str, TopK], settings: KDSettings) -> None:
            self.top_k, self.kd = top_k, settings

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.top_k is None:
                raise RuntimeError("no teacher top-k attached: call attach_teacher before training")
            labels = inputs["labels"]
            outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], use_cache=False)
            logits = outputs.logits[:, :-1]
            targets = labels[:, 1:]
            counted = targets != -100
            ce = F.cross_entropy(logits[counted].float(), targets[counted]) if counted.any() else logits.sum() * 0
            settings = self.kd
            ids, log_probs, mask = batch_top_k(self.top_k, inputs["input_ids"], inputs["attention_mask"],
                                               settings.top_k)  # fmt: skip
            if (counted & ~mask).any():  # the labels changed since the teacher's pass: never train on half the signal
                raise RuntimeError("answer tokens without the teacher's top-k: the rows were tokenized otherwise")
            divergence = kd_loss(logits, ids, log_probs, counted, settings.divergence, settings.temperature,
                                 settings.beta)  # fmt: skip
            loss = settings.ce_weight * ce + (1 - settings.ce_weight) * divergence
            parts = self._metrics["train" if self.model.training else "eval"]  # beside the mix, in the log
            parts["ce"].append(ce.item())
            parts["divergence"].append(divergence.item())
            return (loss, outputs) if return_outputs else loss

    return TopKDistillationTrainer
