"""Synthesis: the teacher writes prompts only for the map's thin clusters, from redacted real seeds, within the cap;
a failed prompt (a copy of its seed, a refusal, off its cluster, a near-duplicate) is dropped with its reason."""

import re
from collections import Counter

import numpy as np
import pytest

from tasks import synthesize as synthesis
from tasks.embed import embed
from tasks.llm.config import LLMConfig
from tasks.pii import RedactConfig
from tasks.source import SourceConfig, source
from tasks.stage import read_dataset
from tasks.synthesize import Reply, SynthesisConfig, mostly_synthetic, quotas, synthesize, synthetic_shares
from tests.tasks.test_coverage import VEGETABLES, _locked_out_cluster, _log

# how users of the rare intent might also have asked: what a good teacher writes for it
NEW_LOCKED_OUT = [
    "My account was locked after I changed my phone number; how do I reset the password?",
    "The password reset email never reaches my inbox and I am locked out. What else can I try?",
    "After three wrong password attempts my login is blocked. How long until I can sign in again?",
    "I forgot the password and the security questions too; can support unlock my account?",
    "Why does the app say my account is locked when I type the right password?",
    "Can I reset my password from the mobile app if the reset link expired?",
    "Two-factor codes stopped arriving and now I can't log in; how do I recover the account?",
    "Is there a way to unlock my account without access to my old email address?",
]


class ScriptedTeacher:
    """Stands in for `Writer.replies`: records every request the teacher would get, answers by `reply`."""

    def __init__(self, reply):
        self.reply, self.seen, self.written = reply, [], 0

    def __call__(self, requests, n, progress):
        out = {}
        for rid, text in requests.items():
            self.seen.append(text)
            for i in range(n):
                said = self.reply(text, self.written)
                out[(rid, i)] = said if isinstance(said, Reply) else Reply(said)
                self.written += 1
        return out


def seeds_of(request: str) -> list[str]:
    return re.findall(r"^- (.*)$", request, re.MULTILINE)


def evolved_from(request: str) -> str:
    return request.split("Request: ", 1)[1].rsplit("\n\nReply with", 1)[0]


@pytest.fixture(scope="module")
def sourced(tmp_path_factory):
    """The rare intent (4 % of 300 rows, Faker PII in six locales) has a few of the 150 sampled prompts, every other
    cluster of the map more than `fill` (the rare one's count and 3): only the rare one is thin."""
    folder = tmp_path_factory.mktemp("synthesis")
    path, planted = _log(folder)
    found = source(SourceConfig(path=path, sample_size=150, eval_size=12), [], str(folder / "source"))
    mapped = read_dataset(found.coverage_map)
    rare = _locked_out_cluster(mapped)
    sampled = Counter(r["cluster"] for r in mapped if r["part"] == "train")
    fill = sampled[rare] + 3
    assert all(n >= fill for cluster, n in sampled.items() if cluster != rare)  # the premise
    return found, planted, rare, mapped, fill


def _synthesize(sourced, tmp_path, config: SynthesisConfig, out: str = "syn"):
    found = sourced[0]
    return synthesize(config, RedactConfig(workers=1), LLMConfig(), None, found.train_prompts, [found.eval_prompts],
                      found.coverage_map, str(tmp_path / "r.sqlite"), str(tmp_path / out))  # fmt: skip


def test_a_thin_cluster_is_filled_with_new_prompts_and_a_dense_one_gets_none(sourced, tmp_path, monkeypatch):
    found, planted, rare, mapped, fill = sourced
    teacher = ScriptedTeacher(lambda text, i: NEW_LOCKED_OUT[i % len(NEW_LOCKED_OUT)])
    monkeypatch.setattr(synthesis.Writer, "replies", teacher)
    grown = _synthesize(sourced, tmp_path, SynthesisConfig(fill_to=fill, evolve_depth=0, max_share=0.5))

    rows = read_dataset(grown.train_prompts)
    made = [r for r in rows if r["origin"] == "synthetic"]
    assert len(rows) == 150 + len(made) and len(made) == 3  # filled up to fill_to, and no further
    assert {r["prompt"] for r in made} <= set(NEW_LOCKED_OUT)
    assert all(r["slice"] == "chat" and r["reference"] is None and r["operation"] == "self_instruct" for r in made)
    real_ids = {r["id"] for r in mapped if r["cluster"] == rare}
    held_out = {r["id"] for r in read_dataset(found.eval_prompts)}
    for row in made:  # its parents are the rare cluster's real prompts, never a held-out one
        assert set(row["parent"].split(",")) <= real_ids - held_out
    vectors = embed([r["prompt"] for r in made])
    assert (vectors @ vectors.T - np.eye(len(made))).max() < 0.9  # new, and not near-duplicates of each other
    candidates = read_dataset(grown.synthetic)
    assert {c["target"] for c in candidates} == {f"cluster {rare}"}  # the dense clusters: not a request
    assert {c["cluster"] for c in candidates} == {rare}
    assert all(set(seeds_of(text)) for text in teacher.seen)
    # the seeds were redacted before the teacher saw them
    for name, email in planted:
        assert not [t for t in teacher.seen if email in t or name in t]
    assert grown.report.metrics["thin_clusters"] == 1 and grown.report.metrics["thin_slices"] == 0
    assert grown.report.rows_out == len(made)


def test_the_synthetic_share_never_passes_the_cap(sourced, tmp_path, monkeypatch):
    teacher = ScriptedTeacher(lambda text, i: NEW_LOCKED_OUT[i % 8])
    monkeypatch.setattr(synthesis.Writer, "replies", teacher)
    grown = _synthesize(sourced, tmp_path, SynthesisConfig(fill_to=40, attempts=2, evolve_depth=0, max_share=0.05))
    made = [r for r in read_dataset(grown.train_prompts) if r["origin"] == "synthetic"]
    wanted = grown.report.tables["targets"]
    assert sum(r["wanted"] for r in wanted) == 7 and len(teacher.seen) == 7  # 5 % of 157 is 7.9: seven asked for
    assert len(made) <= 7 and len(made) / (150 + len(made)) <= 0.05
    assert grown.report.metrics["thin_clusters"] > 1  # every cluster lacks prompts: the cap binds, not fill_to


def test_quotas_share_the_cap_by_what_each_cluster_lacks():
    config = SynthesisConfig(fill_to=10, max_share=0.2)
    have = {"cluster 0": 10, "cluster 1": 2, "slice b": 6, "cluster 3": 40}
    assert quotas(have, config, 100) == {"cluster 1": 8, "slice b": 4}  # the cap (25) does not bind
    assert quotas(have, config, 20) == {"cluster 1": 3, "slice b": 2}  # 20 % of 25: 5, split 8:4
    assert quotas({"cluster 0": 10, "cluster 3": 40}, config, 100) == {}  # nothing is thin


def test_failed_prompts_are_dropped_with_their_reason(sourced, tmp_path, monkeypatch):
    found, fill = sourced[0], sourced[4]
    held = next(r["prompt"] for r in read_dataset(found.eval_prompts) if any(v in r["prompt"] for v in VEGETABLES))
    failures = [
        lambda text: seeds_of(text)[0],  # its seed, as is
        lambda text: "I'm sorry, but I can't help with that request.",
        lambda text: "Which hiking boots are best for a wet week in the Scottish Highlands?",  # another intent
        lambda text: held,  # a held-out prompt, word for word
        lambda text: NEW_LOCKED_OUT[0],
        lambda text: NEW_LOCKED_OUT[0],  # written twice: the second is a near-duplicate of the first
        lambda text: "Here is a new request with different details:",
        lambda text: Reply("", refused="teacher_rejected: HTTP 400: prompt too long"),
    ]
    teacher = ScriptedTeacher(lambda text, i: failures[i % len(failures)](text))
    monkeypatch.setattr(synthesis.Writer, "replies", teacher)
    grown = _synthesize(sourced, tmp_path, SynthesisConfig(fill_to=fill, attempts=8, evolve_depth=0, max_share=0.5))
    reasons = [c["reason"] for c in read_dataset(grown.synthetic)][:8]
    assert reasons[0] == "copy_of_seed" and reasons[1] == "refusal"
    assert reasons[2].startswith("off_topic: nearest cluster")
    assert reasons[3].startswith("near_duplicate:") and reasons[3].endswith("cosine 1.00")
    assert reasons[4] is None and reasons[5].startswith("near_duplicate:synthetic syn-")
    assert reasons[6] == "not_a_prompt" and reasons[7] == "teacher_rejected: HTTP 400: prompt too long"
    written = grown.report.rows_in
    assert written == grown.report.rows_out + sum(grown.report.dropped.values())  # every candidate accounted for


def test_an_evolution_that_copies_its_parent_is_dropped_and_one_that_adds_a_constraint_is_kept(
    sourced, tmp_path, monkeypatch
):
    def reply(text, i):
        if text.startswith("Here are requests"):
            return NEW_LOCKED_OUT[i % 8]
        parent = evolved_from(text)
        return parent if i % 2 else parent + " I need it done before Friday, without calling support by phone."

    monkeypatch.setattr(synthesis.Writer, "replies", ScriptedTeacher(reply))
    grown = _synthesize(sourced, tmp_path, SynthesisConfig(fill_to=sourced[4], attempts=1, evolve_depth=1))
    candidates = read_dataset(grown.synthetic)
    evolved = [c for c in candidates if c["depth"] == 1]
    by_id = {c["id"]: c for c in candidates}
    assert evolved and all(by_id[c["parent"]]["depth"] == 0 for c in evolved)
    assert {c["operation"] for c in evolved} <= set(SynthesisConfig().operations)
    copies = [c for c in evolved if c["prompt"] == by_id[c["parent"]]["prompt"]]
    assert copies and all(c["reason"] == "copy_of_seed" for c in copies)
    made = [r for r in read_dataset(grown.train_prompts) if r["origin"] == "synthetic"]
    assert any(r["operation"] != "self_instruct" for r in made)  # the most evolved are taken first
    for row in made:  # and stand for their parent, which is not taken too
        assert row["parent"] not in {r["id"] for r in made}
        if row["operation"] != "self_instruct":
            assert by_id[row["parent"]]["reason"] == f"evolved_into:{row['id']}"


def test_a_real_teacher_is_asked_through_the_store_once(sourced, tiny_teacher, tmp_path):
    """A random tiny model writes nonsense: every candidate is dropped with a reason, and a rerun asks nothing."""
    from tasks.models import resolve_model

    found, fill = sourced[0], sourced[4]
    teacher = LLMConfig(model=str(tiny_teacher))
    checkpoint = resolve_model(str(tiny_teacher), str(tmp_path / "models"))
    config = SynthesisConfig(fill_to=fill, attempts=2, evolve_depth=1, max_new_tokens=16)
    inputs = (found.train_prompts, [found.eval_prompts], found.coverage_map, str(tmp_path / "r.sqlite"))
    first, again = (synthesize(config, RedactConfig(workers=1), teacher, checkpoint, *inputs, str(tmp_path / out))
                    for out in ("s1", "s2"))  # fmt: skip
    assert first.report.metrics["teacher.requests_sent"] > 0 and again.report.metrics["teacher.requests_sent"] == 0
    candidates = read_dataset(first.synthetic)
    assert candidates == read_dataset(again.synthetic)  # the same replies, read back from the store
    asked = first.report.metrics["teacher.samples_generated"]
    assert len(candidates) == asked  # every sample written is a candidate, kept or dropped with its reason
    assert first.report.rows_in == asked and first.report.rows_out + sum(first.report.dropped.values()) == asked


def test_no_thin_cluster_asks_the_teacher_nothing(sourced, tmp_path, monkeypatch):
    teacher = ScriptedTeacher(lambda text, i: NEW_LOCKED_OUT[0])
    monkeypatch.setattr(synthesis.Writer, "replies", teacher)
    grown = _synthesize(sourced, tmp_path, SynthesisConfig(fill_to=1))
    assert (
        not teacher.seen
        and grown.report.rows_out == 0
        and grown.report.notes == ["no cluster or slice is thin: nothing written"]
    )
    assert len(read_dataset(grown.train_prompts)) == 150


def test_slices_trained_mostly_on_synthetic_prompts_are_reported_apart():
    train_prompts = [{"prompt": "real one", "origin": "traffic"}, {"prompt": "made up", "origin": "synthetic"}]
    from tasks.stage import prompt_id

    real, made = prompt_id("real one"), prompt_id("made up")
    rows = [{"slice": "a", "prompt_id": real}, {"slice": "b", "prompt_id": made}, {"slice": "b", "prompt_id": made},
            {"slice": "b", "prompt_id": real}]  # fmt: skip
    shares = synthetic_shares(rows, train_prompts)
    assert shares == {"a": 0.0, "b": pytest.approx(2 / 3)}
    metrics, table = mostly_synthetic(shares, {"student": {"a": 0.5, "b": 0.25}, "teacher": {"a": 0.9, "b": 0.8}})
    assert metrics["mostly_synthetic.student.b"] == 0.25 and "mostly_synthetic.student.a" not in metrics
    assert "| b | 67% | 0.25 | 0.80 |" in table


@pytest.mark.parametrize(
    ("reply", "prompt", "ended"),
    [
        ("What sound does a wolf make?", "What sound does a wolf make?", False),
        ('New request: "Which animal says ribbit?"\n\nA frog says ribbit.', "Which animal says ribbit?", True),
        ("Here is a new request:\n\nHow loud is a lion's roar?", "How loud is a lion's roar?", False),
        ("Here is one more request:\nWhat noise does a goat make?", "What noise does a goat make?", False),
        ("**Rewritten request:** «Quel bruit fait un canard ?»", "Quel bruit fait un canard ?", False),
        ("Request 2 - 猫はどんな音を出しますか？\n\n", "猫はどんな音を出しますか？", False),
    ],
)
def test_the_prompt_is_read_from_the_ways_a_model_replies(reply, prompt, ended):
    from tasks.instructions import new_prompt

    assert new_prompt(reply) == (prompt, ended)


def test_a_rare_slice_the_map_put_with_a_common_one_is_thin_on_its_own():
    from tasks.synthesis_checks import Target
    from tasks.synthesize import thin

    def target(name, slice_name, have):
        return Target(name, slice_name, 0, have, [{"id": "r1", "prompt": "p"}], np.ones(384), 0.5)

    common = target("cluster 0", "uppercase", have=20)  # uppercase and sounds, the map's one cluster
    rare = target("slice sounds", "sounds", have=3)
    assert [t.name for t in thin([common, target("slice uppercase", "uppercase", 17), rare], 8)] == ["slice sounds"]
    own = target("cluster 4", "sounds", have=3)  # a cluster of its own: it writes for the slice, once
    assert [t.name for t in thin([common, own, rare], 8)] == ["cluster 4"]
    short = target("cluster 5", "sounds", have=6)  # lacks 2 where the slice lacks 5: the slice is still a target
    assert [t.name for t in thin([short, rare], 8)] == ["cluster 5", "slice sounds"]


@pytest.mark.parametrize(
    ("text", "about_the_request"),
    [
        ("Here's a new request with different details:", True),
        ("I'm just a friendly AI designed to assist you.", True),
        ("Sure! What sound does a goat make?", True),
        ("Here is my essay on farm animals: proofread it.", False),
        ("I'm unable to log in to my account, what should I do?", False),
        ("I'm an assistant manager, how do I book a room?", False),
        ("What sound does a goat make?", False),
    ],
)
def test_a_reply_about_the_request_is_told_from_a_prompt(text, about_the_request):
    from tasks.instructions import NOT_A_PROMPT

    assert bool(NOT_A_PROMPT.search(text)) is about_the_request
