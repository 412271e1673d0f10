"""How often the embedded teacher is right, per demo slice: the numbers the demo's phrasings are chosen by.

    .venv/bin/python bench/demo_slices.py [prompts per slice] [slice ...]

For each slice of the demo traffic, distinct questions are asked N=4 times at the teacher's default
sampling and judged by the slice's default verifier. A slice earns its place in the demo when a
single sample is right about 30-90% of the time: N samples plus the verifier then keep better
answers than any one sample, and the student has something to learn.
"""

import random
import sys

from _setup import embedded_teacher

from tasks.demo_traffic import SLICE_WEIGHTS, _question
from tasks.llm.config import LLMConfig
from tasks.llm.local import LocalBackend
from tasks.llm.types import Request
from tasks.verifiers import VerifyConfig, verdict, with_labels

N = 4


def questions(slice_name: str, count: int, seed: int = 5) -> list[tuple[str, str]]:
    """`count` distinct (question, reference) pairs of one slice."""
    rng, found = random.Random(seed), {}
    for _ in range(50 * count):
        question, reference = _question(slice_name, rng)
        found.setdefault(question, reference)
        if len(found) == count:
            break
    return list(found.items())


def sample(backend: LocalBackend, asked: list[tuple[str, str]]) -> list[list]:
    """N completions per question, in question order."""
    done = {}
    requests = [Request(str(i), q, tuple(range(N))) for i, (q, _) in enumerate(asked)]
    backend.sample(requests, lambda r, c: done.__setitem__(r.id, c), lambda r, m: None)
    return [done[str(i)] for i in range(len(asked))]


def main(per_slice: int = 16, only: list[str] | None = None) -> None:
    teacher = LLMConfig()
    backend = LocalBackend.from_checkpoint(embedded_teacher().uri, teacher.sampling, teacher.batch_size, teacher.seed)
    verify = with_labels(VerifyConfig(), {"sentiment": ["negative", "positive"]})
    print(f"{per_slice} questions per slice x {N} samples (T={teacher.sampling.temperature})")
    print(f"{'slice':<12}{'per sample':>12}{'any of 4':>10}   example answer")
    for slice_name in only or SLICE_WEIGHTS:
        asked = questions(slice_name, per_slice)
        completions = sample(backend, asked)
        right = [
            [verdict(verify, {"slice": slice_name, "reference": ref}, c.text).ok for c in samples]
            for (_, ref), samples in zip(asked, completions, strict=True)
        ]
        per_sample = sum(map(sum, right)) / (N * len(right))
        any_of = sum(map(any, right)) / len(right)
        print(f"{slice_name:<12}{per_sample:>12.2f}{any_of:>10.2f}   {completions[0][0].text[:60]!r}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 16, sys.argv[2:])
