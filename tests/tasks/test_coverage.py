"""The coverage map: production's prompts clustered before any teacher call, the sample checked against it, a rare
intent named when the sample starves it and given its prompts when sampling is stratified by cluster."""

import json
import random

import pytest
from faker import Faker

from tasks.coverage import coverage
from tasks.coverage_map import CoverageConfig
from tasks.pii import RedactConfig
from tasks.sampling import cluster_quotas, cluster_stratified_sample
from tasks.source import SourceConfig, source
from tasks.stage import read_dataset

LOCALES = ["en_US", "de_DE", "fr_FR", "es_ES", "it_IT", "en_GB"]
WEATHER = ["What's the weather like in {} tomorrow?", "Will it rain in {} this weekend?",
           "How hot does it get in {} in July?", "Should I pack an umbrella for {} next week?"]  # fmt: skip
RECIPES = ["Give me a quick recipe for {} soup.", "How long do I bake a {} pie?",
           "What goes well with roasted {}?", "Can I freeze leftover {} stew?"]  # fmt: skip
VEGETABLES = ["pumpkin", "carrot", "leek", "tomato", "mushroom", "potato", "lentil", "onion"]
# the rare intent, with the PII a locked-out user writes
LOCKED_OUT = ["I'm {name} and I'm locked out of my account, my email is {email}; please reset my password.",
              "Password reset please: {name}, login {email}, the reset link never arrives.",
              "Hi, {name} here ({email}). My account is locked after too many password attempts."]  # fmt: skip


def _log(tmp_path, rows: int = 300, rare_share: float = 0.04, seed: int = 3) -> tuple[str, list[tuple[str, str]]]:
    """A log of one slice: two common intents and a rare one the slice's quota cannot protect; returns it and the
    rare intent's PII."""
    rng, lines, planted = random.Random(seed), [], []
    for i in range(rows):
        fake = Faker(rng.choice(LOCALES))
        fake.seed_instance(seed * 1000 + i)
        if rng.random() < rare_share:
            name, email = fake.name(), fake.email()
            planted.append((name, email))
            prompt, slice_name = rng.choice(LOCKED_OUT).format(name=name, email=email), "chat"
        elif rng.random() < 0.5:
            prompt, slice_name = rng.choice(WEATHER).format(fake.city()), "chat"
        else:
            prompt, slice_name = rng.choice(RECIPES).format(rng.choice(VEGETABLES)), "chat"
        lines.append(json.dumps({"id": f"r{i}", "slice": slice_name, "prompt": prompt}))
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path), planted


def _locked_out_cluster(rows: list[dict]) -> int:
    clusters = [r["cluster"] for r in rows if r["part"] == "production" and "password" in r["prompt"].lower()]
    return max(set(clusters), key=clusters.count)


def test_the_shares_add_up_and_a_starved_rare_intent_is_named_with_redacted_examples(tmp_path):
    path, planted = _log(tmp_path)
    config = SourceConfig(path=path, sample_size=24, eval_size=0)  # k by silhouette
    sourced = source(config, [], str(tmp_path / "source"))
    mapped = read_dataset(sourced.coverage_map)
    assert sum(r["part"] == "production" for r in mapped) == 300 and sum(r["part"] == "train" for r in mapped) == 24
    rare = _locked_out_cluster(mapped)
    in_rare = [r for r in mapped if r["part"] == "production" and r["cluster"] == rare]
    assert all("password" in r["prompt"].lower() for r in in_rare)  # the embedding tells the intents apart

    found = coverage(CoverageConfig(), RedactConfig(workers=1), sourced.coverage_map, str(tmp_path / "c"))
    clusters = found.report.tables["clusters"]
    assert sum(r["production"] for r in clusters) == 300 and sum(r["sampled"] for r in clusters) == 24
    assert sum(r["production_share"] for r in clusters) == pytest.approx(1.0, abs=1e-3)
    assert sum(r["sampled_share"] for r in clusters) == pytest.approx(1.0, abs=1e-3)
    assert sum(r["production_share"] for r in found.report.tables["slices"]) == pytest.approx(1.0, abs=1e-3)
    thin = {r["cluster"]: r for r in clusters if r["thin"]}
    assert rare in thin and thin[rare]["sampled"] == 0
    [note] = [n for n in found.report.notes if n.startswith(f"cluster {rare} ")]
    assert note.count("'") >= 6 and ("<PERSON_1>" in note or "<EMAIL_ADDRESS_1>" in note)  # three examples, redacted
    for name, email in planted:
        assert email not in note and name not in note
    assert (tmp_path / "c" / "coverage.png").read_bytes().startswith(b"\x89PNG")


def test_stratified_by_cluster_the_rare_intent_gets_its_floor(tmp_path):
    path, _ = _log(tmp_path)
    coverage_config = CoverageConfig(stratify=True, min_per_cluster=3)
    config = SourceConfig(path=path, sample_size=24, eval_size=0, coverage=coverage_config)
    mapped = read_dataset(source(config, [], str(tmp_path / "source")).coverage_map)
    rare = _locked_out_cluster(mapped)
    assert sum(1 for r in mapped if r["part"] == "train" and r["cluster"] == rare) >= 3
    assert sum(1 for r in mapped if r["part"] == "train") == 24  # exactly the budget


def test_cluster_quotas_give_floors_first_and_return_exactly_the_budget():
    assert cluster_quotas({0: 100, 1: 50, 2: 2}, 10, floor=2) == {0: 5, 1: 3, 2: 2}
    assert sum(cluster_quotas({0: 100, 1: 1, 2: 7}, 23, floor=3).values()) == 23
    assert cluster_quotas({0: 100, 1: 1}, 2, floor=2) == {0: 1, 1: 1}  # too few for every floor: shared out
    rows = [{"slice": "a"}] * 30 + [{"slice": "b"}] * 10
    clusters = [0] * 28 + [1] * 2 + [0] * 10
    picked = cluster_stratified_sample(rows, clusters, 8, seed=0, floor=2)
    assert len(picked) == 8


@pytest.mark.parametrize(
    ("texts", "clusters"),
    [
        (["hi"] * 5997 + ["Wie spät ist es?", "Reset my password", "東京の天気は？"], None),  # one prompt dominates
        (["What is 2 + 2?"] * 50, None),  # one distinct prompt: one cluster
        (["Only row"], None),
        (["a cat", "a dog", "eine Katze"], 8),  # more clusters asked for than there are prompts
    ],
)
def test_the_map_fits_any_window(texts, clusters):
    from tasks.coverage_map import fit_space

    rows = [{"id": str(i), "slice": "s", "prompt": text} for i, text in enumerate(texts)]
    space = fit_space(rows, CoverageConfig(clusters=clusters, map_rows=10_000), seed=0)
    assert 1 <= len(space.centroids) <= len(set(texts))
    mapped = space.map_rows(rows[:5], "production")
    assert all(0 <= r["cluster"] < len(space.centroids) for r in mapped)


def test_texts_that_embed_alike_are_one_cluster():
    from tasks.coverage_map import fit_space

    rows = [{"id": str(i), "slice": "s", "prompt": text} for i, text in enumerate(["Hi there", "hi there", "HI THERE"])]
    assert len(fit_space(rows, CoverageConfig(), seed=0).centroids) == 1  # the embedder ignores case
