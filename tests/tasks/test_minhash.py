"""The near-duplicate engine: candidates from LSH bands, decided by exact Jaccard, kept best-first."""

import numpy as np
import pytest

from tasks.minhash import Banding, Shingler, near_duplicates, near_neighbour_of

WORDS = (
    "river stone lantern copper meadow violet harbor thunder saddle pepper orchard quartz falcon ember cobalt "
    "willow canyon marble jasmine anchor tundra beacon walnut sparrow glacier pewter nectar bramble cinder lotus"
).split()


def _text(rng: np.random.Generator, words: int) -> list[str]:
    return list(rng.choice(WORDS, words))


def _jaccard(a: list[str], b: list[str], k: int = 5) -> float:
    sa = {tuple(a[i : i + k]) for i in range(len(a) - k + 1)}
    sb = {tuple(b[i : i + k]) for i in range(len(b) - k + 1)}
    return len(sa & sb) / len(sa | sb)


def test_pairs_are_decided_by_exact_jaccard_on_both_sides_of_the_threshold():
    rng = np.random.default_rng(3)
    texts, expected = [], []
    for _ in range(40):  # an original, then a copy with a few words changed: its exact similarity known
        original = _text(rng, 80)
        copy = list(original)
        for at in rng.choice(80, rng.integers(1, 9), replace=False):
            copy[at] = "zz" + copy[at]
        texts += [" ".join(original), " ".join(copy)]
        expected.append(_jaccard(original, copy) >= 0.8)
    found = near_duplicates(texts, 0.8, Banding())
    dropped = [found.original[2 * i + 1] == 2 * i for i in range(40)]
    assert dropped == expected  # every pair on the right side, 0.79 and 0.81 alike
    assert 0 < sum(expected) < 40
    assert all(abs(found.jaccard[2 * i + 1] - _jaccard(texts[2 * i].split(), texts[2 * i + 1].split())) < 1e-9
               for i in range(40) if expected[i])  # fmt: skip


def test_a_row_is_dropped_only_for_a_kept_row_never_for_a_dropped_one():
    rng = np.random.default_rng(5)
    a = _text(rng, 60)
    b = a[:30] + ["xx"] + a[31:]  # alike a
    c = b[:45] + ["yy"] + b[46:]  # alike b, less alike a
    found = near_duplicates([" ".join(a), " ".join(b), " ".join(c)], 0.8, Banding())
    assert _jaccard(a, b) >= 0.8 and _jaccard(b, c) >= 0.8 and _jaccard(a, c) < 0.8
    assert found.original.tolist() == [-1, 0, -1]  # c stays: the text it repeats was itself dropped


def test_exact_copies_are_told_apart_and_distinct_texts_kept():
    texts = ["The capital of France is Paris.", "the capital of france is paris", "The capital of Peru is Lima."]
    found = near_duplicates(texts, 0.8, Banding())
    assert found.original.tolist() == [-1, 0, -1] and found.exact.tolist() == [False, True, False]


def test_a_short_text_is_one_shingle_and_an_empty_one_too():
    shingles, bounds = Shingler(5).batch(["Paris", "", "one two three four five six"])
    assert np.diff(bounds).tolist() == [1, 1, 2]
    assert len(set(shingles.tolist())) == 4


def test_near_neighbours_name_the_most_alike_corpus_text():
    corpus = ["alpha beta gamma delta epsilon zeta eta theta", "one two three four five six seven eight"]
    queries = ["alpha beta gamma delta epsilon zeta eta iota", "nothing like either of them at all here"]
    assert near_neighbour_of(queries, corpus, 0.5, Banding.for_threshold(0.5, 3)).tolist() == [0, -1]


@pytest.mark.parametrize(("threshold", "bands", "rows"), [(0.5, 64, 2), (0.8, 25, 5), (0.9, 16, 8)])
def test_banding_for_a_threshold_takes_the_most_rows_that_still_propose_nearly_every_pair(threshold, bands, rows):
    banding = Banding.for_threshold(threshold, 5)
    assert (banding.bands, banding.rows) == (bands, rows)
    assert banding.proposal_rate(threshold) >= 0.999  # and one more row per band would not
    assert Banding(5, 128 // (rows + 1), rows + 1).proposal_rate(threshold) < 0.999
