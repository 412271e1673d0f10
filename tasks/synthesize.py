"""Synthesize: new prompts where production traffic is thin, written by the teacher, before any rollout.

A cluster of the coverage map (tasks.coverage_map) with fewer than `fill_to` training prompts is thin, and so is
a slice (the map may put a rare slice in a cluster with a common one). For each thin target the teacher writes
new prompts of its kind: Self-Instruct from a few of its real prompts (a cluster's commonest slice's; never a
held-out one; redacted before the teacher sees them), then `evolve_depth` rounds of Evol-Instruct over each new
one (tasks.instructions). Every request goes through the LLM layer's durable store (purpose `synthesize`): a retry
or a rerun asks only for what is missing.
Each candidate is redacted (a teacher may invent a name), then checked (tasks.synthesis_checks: cut off, a
refusal, a copy of its seed, a near-duplicate, off its target's topic) and dropped with its reason otherwise.
A target takes its quota from the survivors, the most evolved first and one per lineage (`evolved_into` the
rewrite taken); the rest are `target_full`. Synthetic prompts are at most `max_share` of the training prompts as
they come here (decontamination may drop real ones after), and the thin targets share that cap in proportion to
what each lacks.
The kept prompts join the training prompts (origin `synthetic`, with `parent` and `operation`) and go through
decontamination, rollout and every filter as real ones do; none is ever held out. `synthetic.parquet`
(schemas.SYNTHETIC) holds every candidate with its reason.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from prefect import task
from pydantic import Field

from tasks import storage
from tasks.cache import STAGE_TASK, stage_uri
from tasks.config import Config
from tasks.instructions import OPERATIONS, Operation, evolve, new_prompt, self_instruct
from tasks.llm.ask import Spend, ask
from tasks.llm.config import LLMConfig, SamplingConfig
from tasks.llm.store import open_store
from tasks.pii import RedactConfig, Redactor
from tasks.refs import DatasetRef, ModelRef
from tasks.sampling import allocate
from tasks.schemas import REDACTED_PROMPTS, SYNTHETIC
from tasks.stage import (
    Progress,
    StageReport,
    StageResult,
    Timer,
    normalize_text,
    prompt_id,
    read_dataset,
    user_text,
    write_dataset,
)
from tasks.synthesis_checks import Candidate, Checks, Map, Target

PURPOSE = "synthesize"


class SynthesisConfig(Config):
    """Synthetic prompts, only where production traffic is thin (needs `source.coverage`)."""

    enabled: bool = Field(
        False, description="Have the teacher write prompts for the thin clusters and slices of the coverage map."
    )
    fill_to: int = Field(
        8, ge=1, description="A cluster or slice with fewer training prompts than this is thin, and filled up to it."
    )
    max_share: float = Field(
        0.2, gt=0, lt=1, description="Synthetic prompts are at most this share of the training prompts."
    )
    seeds: int = Field(
        3, ge=1, le=8, description="Real prompts of the thin cluster or slice shown per Self-Instruct request."
    )
    attempts: int = Field(
        3, ge=1, le=8, description="Candidates the teacher writes per prompt wanted (some fail and are dropped)."
    )
    evolve_depth: int = Field(
        1, ge=0, le=4, description="Evol-Instruct rounds over each new prompt; 0: Self-Instruct only."
    )
    operations: list[Operation] = Field(
        list(OPERATIONS),
        min_length=1,
        description="Evol-Instruct operations, one drawn per evolution: in depth `constrain`, `deepen`, `more_steps`; "
        "in breadth `concretize`, `mutate`.",
    )
    near_duplicate: float = Field(
        0.9, gt=0, le=1, description="Cosine at which a new prompt is a near-duplicate of one that exists."
    )
    on_topic: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A new prompt's cosine to its target's centre must reach this share of the cosine 95 % of the "
        "target's real prompts reach (a generic reply is near no centre).",
    )
    temperature: float = Field(1.0, ge=0, description="The teacher's sampling temperature when it writes prompts.")
    max_new_tokens: int = Field(96, ge=8, description="Longest new prompt, in tokens; longer ones are `truncated`.")
    seed: int = Field(0, description="Seed for the seeds shown and the operations drawn.")


class Synthesized(StageResult):
    train_prompts: DatasetRef  # the training prompts, the synthetic ones after them
    synthetic: DatasetRef  # every candidate, kept or not, and why


def thin(targets: list[Target], fill_to: int) -> list[Target]:
    """The clusters with fewer than `fill_to` training prompts, and the slices too, unless a thin cluster already
    writes as many for that slice as it lacks (a rare slice the map put in a cluster with a common one is thin on its
    own)."""
    clusters = [t for t in targets if t.name.startswith("cluster ") and t.have < fill_to]
    writes = {}  # per slice, the most a seeded thin cluster of it lacks
    for t in clusters:
        if t.seeds:
            writes[t.slice] = max(writes.get(t.slice, 0), fill_to - t.have)
    slices = [t for t in targets if t.name.startswith("slice ") and fill_to - t.have > writes.get(t.slice, 0)]
    return clusters + slices


def quotas(have: dict[str, int], config: SynthesisConfig, train_prompts: int) -> dict[str, int]:
    """New prompts per thin target: what each lacks of `fill_to`, within the cap on the synthetic share."""
    lacking = {name: config.fill_to - n for name, n in have.items() if n < config.fill_to}
    cap = int(config.max_share * train_prompts / (1 - config.max_share) + 1e-9)
    return {name: n for name, n in allocate(lacking, cap).items() if n}


def sampling(config: SynthesisConfig, teacher: LLMConfig) -> LLMConfig:
    """The teacher as it writes prompts: its own system prompt, our temperature and length."""
    own = teacher.sampling
    writes = SamplingConfig(system_prompt=own.system_prompt, temperature=config.temperature, top_p=own.top_p,
                            max_new_tokens=config.max_new_tokens)  # fmt: skip
    return teacher.model_copy(update={"sampling": writes})


@dataclass
class Reply:
    """What the teacher wrote for one sample: the prompt read from it, whether it was cut off before the prompt
    ended, and why there is none (a request the teacher refused)."""

    text: str
    cut: bool = False
    refused: str | None = None


class Writer:
    """Asks the teacher through the durable store, and redacts what it wrote."""

    def __init__(self, teacher: LLMConfig, checkpoint: ModelRef | None, store_url: str, redactor: Redactor):
        self.teacher, self.checkpoint, self.store_url, self.redactor = teacher, checkpoint, store_url, redactor
        self.spend = Spend(teacher)  # what this run paid for, over every round

    def replies(self, requests: dict[str, str], n: int, progress: Progress) -> dict[tuple[str, int], Reply]:
        """A reply per (request id, sample): the teacher's, or its refusal."""
        store = open_store(self.store_url)
        try:
            answers = ask(store, PURPOSE, self.teacher, self.checkpoint, requests, n, on_progress=progress.advance)
        finally:
            store.close()
        for name in ("requests", "samples", "prompt_tokens", "completion_tokens", "seconds"):
            setattr(self.spend, name, getattr(self.spend, name) + getattr(answers.spend, name))
        found = {}
        for rid in requests:
            for i in range(n):
                completion = answers.completions.get((rid, i))
                if completion is None:  # refused, or fewer samples returned than asked for
                    found[(rid, i)] = Reply("", refused=f"teacher_rejected: {answers.rejected.get(rid, 'no answer')}")
                    continue
                text, ended = new_prompt(completion.text)  # a reply cut off after its prompt ended is whole
                found[(rid, i)] = Reply(text, cut=completion.finish_reason == "length" and not ended)
        return found

    def redacted(self, texts: list[str]) -> list[tuple[str, tuple[str, ...]]]:
        """Each text with PII replaced, and the entity types found."""
        done = self.redactor.redact_conversations([[text] for text in texts]) if texts else []
        return [(redaction.texts[0], tuple(redaction.entities)) for redaction in done]

    def redact(self, candidates: list[Candidate]) -> None:
        """Each candidate's text redacted in place: it goes to the teacher and into every artifact."""
        for candidate, (text, pii) in zip(candidates, self.redacted([c.text for c in candidates]), strict=True):
            candidate.text, candidate.pii = text, pii


def first_round(targets: dict[str, Target], wanted: dict[str, int], held_out: set[str], config: SynthesisConfig,
                writer: Writer, progress: Progress) -> list[Candidate]:  # fmt: skip
    """Self-Instruct: per thin target, one request per prompt wanted, each with seeds of its own (drawn per
    request: another target's quota leaves them be), redacted and on one line each before the teacher sees them;
    none whose redacted text is held out (two prompts that differ by a name redact alike)."""
    texts = sorted({row["prompt"] for name in wanted for row in targets[name].seeds})
    redacted = writer.redacted(texts)
    shown = {text: " ".join(done.split()) for text, (done, _) in zip(texts, redacted, strict=True)}
    drawn = {}
    for name, n in sorted(wanted.items()):
        pool = [row for row in targets[name].seeds if normalize_text(shown[row["prompt"]]) not in held_out]
        draw = [random.Random(f"{config.seed}:{name}:{j}") for j in range(n)] if pool else []
        drawn[name] = [rng.sample(pool, min(config.seeds, len(pool))) for rng in draw]
    requests, asked = {}, {}
    for name, draws in drawn.items():
        for j, seeds in enumerate(draws):
            text = self_instruct([shown[row["prompt"]] for row in seeds])
            rid = prompt_id(f"{name}:{j}:{text}")
            requests[rid], asked[rid] = text, (targets[name], seeds)
    replies = writer.replies(requests, config.attempts, progress)
    out = []
    for rid, (target, seeds) in asked.items():
        for i in range(config.attempts):
            reply = replies[(rid, i)]
            out.append(Candidate(id=f"syn-{prompt_id(f'{rid}:{i}')}", target=target.name, cluster=target.home,
                                 slice=target.slice, parent=",".join(row["id"] for row in seeds),
                                 operation="self_instruct", depth=0, text=reply.text, truncated=reply.cut,
                                 against=[shown[row["prompt"]] for row in seeds], reason=reply.refused))  # fmt: skip
    return out


def evolved(parents: list[Candidate], config: SynthesisConfig, writer: Writer, progress: Progress) -> list[Candidate]:
    """Evol-Instruct: each parent rewritten once by an operation drawn for it (seeded by its id)."""
    chosen = {p.id: random.Random(f"{config.seed}:{p.id}").choice(config.operations) for p in parents}
    asked = {p.id: evolve(chosen[p.id], p.text) for p in parents}
    requests = {prompt_id(f"{p.id}:{asked[p.id]}"): asked[p.id] for p in parents}
    replies = writer.replies(requests, 1, progress)
    out = []
    for parent, rid in zip(parents, requests, strict=True):
        reply = replies[(rid, 0)]
        out.append(Candidate(id=f"syn-{rid}", target=parent.target, cluster=parent.cluster, slice=parent.slice,
                             parent=parent.id,
                             operation=chosen[parent.id], depth=parent.depth + 1, text=reply.text, truncated=reply.cut,
                             against=[parent.text], ancestors=(*parent.ancestors, parent.id),
                             reason=reply.refused))  # fmt: skip
    return out


def take(candidates: list[Candidate], wanted: dict[str, int]) -> list[Candidate]:
    """Per target, its quota of survivors, the most evolved first and one per lineage (a prompt and its rewrite
    say nearly the same: the rewrite stands for both, `evolved_into`); the others `target_full`."""
    taken = []
    for name, count in wanted.items():
        alive = [c for c in candidates if c.target == name and c.reason is None]
        alive.sort(key=lambda c: -c.depth)  # stable: in the order written within a depth
        mine, stands_for = [], {}
        for candidate in alive:
            if candidate.id in stands_for:
                candidate.reason = f"evolved_into:{stands_for[candidate.id]}"
            elif len(mine) == count:
                candidate.reason = "target_full"
            else:
                mine.append(candidate)
                stands_for |= dict.fromkeys(candidate.ancestors, candidate.id)
        taken += mine
    return taken


def as_prompt(candidate: Candidate) -> dict:
    """A REDACTED_PROMPTS row: a user's prompt with no reference, time or production answer."""
    return {"id": candidate.id, "timestamp": None, "slice": candidate.slice, "prompt": candidate.text,
            "reference": None, "messages": None, "origin": "synthetic", "response": None,
            "parent": candidate.parent, "operation": candidate.operation, "pii": list(candidate.pii)}  # fmt: skip


def synthesize(
    config: SynthesisConfig,
    redact: RedactConfig,
    teacher: LLMConfig,
    checkpoint: ModelRef | None,
    train: DatasetRef,
    held_out: list[DatasetRef],
    coverage_map: DatasetRef,
    store_url: str,
    out_uri: str,
) -> Synthesized:
    """New prompts for the thin clusters and slices, checked and capped, after the training prompts."""
    with Timer() as timer:
        space, rows = Map.read(coverage_map), read_dataset(train)
        held = sorted({user_text(row) for ref in held_out for row in read_dataset(ref)})
        never = {normalize_text(text) for text in held}
        targets = {t.name: t for t in space.targets(never)}
        thinned = thin(list(targets.values()), config.fill_to)
        seedless = [t.name for t in thinned if not t.seeds]
        wanted = quotas({t.name: t.have for t in thinned if t.seeds}, config, len(rows))
        writer = Writer(sampling(config, teacher), checkpoint, store_url, Redactor(redact))
        others = {"a held-out prompt": held, "a training prompt": [user_text(row) for row in rows]}  # replayed too
        checks = Checks(space, targets, others, config.near_duplicate, config.on_topic)
        progress = Progress("synthesize", sum(wanted.values()) * config.attempts, unit="prompts written")
        candidates = first_round(targets, wanted, never, config, writer, progress)
        writer.redact(candidates)
        checks.check(candidates)
        generation = [c for c in candidates if c.reason is None]
        for _ in range(config.evolve_depth):
            progress.total += len(generation)
            generation = evolved(generation, config, writer, progress)
            writer.redact(generation)
            checks.check(generation)
            candidates += generation
            generation = [c for c in generation if c.reason is None]
        kept = take(candidates, wanted)
    found = report(candidates, kept, wanted, targets, len(rows), writer.spend.metrics(), timer.seconds)
    found.notes += [f"{name} is thin, but every prompt of it is held out: no seeds to show" for name in seedless]
    return Synthesized(
        train_prompts=write_dataset(
            rows + [as_prompt(c) for c in kept], storage.join(out_uri, "train_prompts.parquet"), REDACTED_PROMPTS
        ),
        synthetic=write_dataset(
            [candidate_row(c) for c in candidates], storage.join(out_uri, "synthetic.parquet"), SYNTHETIC
        ),
        report=found,
    )


def candidate_row(candidate: Candidate) -> dict:
    return {"id": candidate.id, "target": candidate.target, "cluster": candidate.cluster, "slice": candidate.slice,
            "parent": candidate.parent, "operation": candidate.operation, "depth": candidate.depth,
            "prompt": candidate.text, "kept": candidate.reason is None, "reason": candidate.reason}  # fmt: skip


def report(candidates: list[Candidate], kept: list[Candidate], wanted: dict[str, int], targets: dict[str, Target],
           real: int, spend: dict[str, float], seconds: float) -> StageReport:  # fmt: skip
    """Prompts written in, kept out, each drop by its reason (the near-duplicate's neighbour left out); per thin
    target, what it had and what it got."""
    reasons = Counter(c.reason.split(":")[0] for c in candidates if c.reason)
    got, table, notes = Counter(c.target for c in kept), [], []
    for name in sorted(wanted):
        mine, have = [c for c in candidates if c.target == name], targets[name].have
        table.append({"target": name, "slice": targets[name].slice, "training_prompts": have,
                      "wanted": wanted[name], "written": len(mine), "kept": got[name]})  # fmt: skip
        example = next((repr(c.text[:100]) for c in kept if c.target == name), "none kept")
        notes.append(f"{name}: {have} training prompts, +{got[name]} synthetic of {wanted[name]} wanted "
                     f"({len(mine)} written); e.g. {example}")  # fmt: skip
    by_operation = Counter(c.operation for c in kept)
    return StageReport(
        stage="synthesize",
        rows_in=len(candidates),
        rows_out=len(kept),
        dropped=dict(reasons),
        metrics={
            "thin_clusters": sum(name.startswith("cluster ") for name in wanted),
            "thin_slices": sum(name.startswith("slice ") for name in wanted),
            "training_prompts_before": real,
            "training_prompts_after": real + len(kept),
            "synthetic_prompts": len(kept),
            "synthetic_share": len(kept) / max(real + len(kept), 1),
            **{f"kept.{operation}": n for operation, n in sorted(by_operation.items())},
            **{f"teacher.{name}": value for name, value in spend.items()},
        },
        seconds=seconds,
        notes=notes or ["no cluster or slice is thin: nothing written"],
        tables={"targets": table},
    )


MOSTLY_SYNTHETIC = 0.5  # a slice trained on more synthetic rows than this is reported apart


def synthetic_shares(rows: list[dict], train_prompts: list[dict]) -> dict[str, float]:
    """Per slice, the share of training rows whose prompt is synthetic (by the prompt's id, as rollout keys it)."""
    synthetic = {prompt_id(r["prompt"]) for r in train_prompts if r.get("origin") == "synthetic"}
    total, made = Counter(r["slice"] for r in rows), Counter(r["slice"] for r in rows if r["prompt_id"] in synthetic)
    return {name: made[name] / n for name, n in sorted(total.items())}


def mostly_synthetic(shares: dict[str, float], accuracy: dict[str, dict[str, float]]) -> tuple[dict, str]:
    """Metrics and a table for the slices trained mostly on synthetic prompts: every model's held-out accuracy
    there (held-out prompts are all real), apart from the slices production's own prompts taught."""
    heavy = [name for name, share in shares.items() if share > MOSTLY_SYNTHETIC]
    metrics = {f"synthetic_share.{name}": share for name, share in shares.items()}
    metrics |= {f"mostly_synthetic.{model}.{name}": found[name]
                for model, found in accuracy.items() for name in heavy if name in found}  # fmt: skip
    if not heavy:
        return metrics, f"No slice was trained on more than {MOSTLY_SYNTHETIC:.0%} synthetic rows.\n"
    models = list(accuracy)
    lines = [
        f"Slices trained on more than {MOSTLY_SYNTHETIC:.0%} synthetic rows, scored on real held-out prompts:",
        "",
        "| slice | synthetic share | " + " | ".join(models) + " |",
        "|---|---:|" + "---:|" * len(models),
    ]
    lines += [f"| {name} | {shares[name]:.0%} | " + " | ".join(_score(accuracy[m], name) for m in models) + " |"
              for name in heavy]  # fmt: skip
    return metrics, "\n".join(lines) + "\n"


def _score(accuracy: dict[str, float], name: str) -> str:
    return f"{accuracy[name]:.2f}" if name in accuracy else "no held-out prompt"


@task(name="synthesize_prompts", **STAGE_TASK)
def synthesize_prompts(
    config: SynthesisConfig,
    redact: RedactConfig,
    teacher: LLMConfig,
    checkpoint: ModelRef | None,
    train: DatasetRef,
    held_out: list[DatasetRef],
    coverage_map: DatasetRef,
    store: str,
    work_dir: str,
) -> Synthesized:
    """Prompts for the thin clusters and slices of the map, by the teacher through the durable store."""
    out_uri = stage_uri(work_dir, "synthesize", config, redact, teacher, checkpoint, train, held_out, coverage_map)
    return synthesize(config, redact, teacher, checkpoint, train, held_out, coverage_map, store, out_uri)
