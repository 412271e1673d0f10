"""Gate: register every exported student as an MLflow model version; a student that clears the bar is the
`challenger`, and it becomes the `champion` only if it beats the current one on the same prompts.

The bar (GateConfig): the export passed its checks (a quantization loss within `export.max_accuracy_drop`, and
served by vLLM where the deploy check ran),
the transfer ratio, a minimum accuracy per named slice, and a maximum p95 latency. A student that misses
any of them is registered without an alias, and the verdict names every bar it missed. Beating the champion
is decided on the held-out prompts both were scored on, by an exact sign test on those where the two disagree
(one-sided p < 0.025; tasks.stats), shown with the paired bootstrap interval of the accuracy difference: a
difference of two prompts does not replace it. The first student to pass is champion by default; the one it
replaces keeps its version and gets the `previous` alias. The champion is read again just before promoting:
one promoted by another run meanwhile is not compared, so this student stays challenger.
"""

from __future__ import annotations

from prefect import task
from pydantic import BaseModel, Field

from tasks.comparison import ALL, paired
from tasks.config import Config
from tasks.fallback import Fallback
from tasks.refs import STUDENT
from tasks.stage import dataset_ref, read_dataset
from tasks.stats import Interval, difference_interval, sign_test
from tasks.tracking import Champion, Run, log_directory, log_markdown, register_version, set_alias
from tasks.tracking import champion as current_champion

SIGNIFICANCE = 0.025  # one-sided: a 95 % two-sided interval's worth of confidence


class GateConfig(Config):
    """The bar an exported student must clear, and the registry aliases it earns."""

    registered_model: str = Field("redistill-student", description="MLflow registered model name.")
    min_transfer_ratio: float = Field(0.5, ge=0, description="Student/teacher accuracy needed to pass.")
    min_slice_accuracy: dict[str, float] = Field(
        {},
        description="Least student accuracy per named slice, e.g. {capitals: 0.6}; a slice with no scored "
        "held-out prompt misses its bar.",
    )
    max_latency_p95_s: float | None = Field(
        None, gt=0, description="Most seconds at p95 for one answer at batch 1 (none: no latency bar)."
    )
    alias: str = Field("champion", description="Alias of the model serving traffic (replaced only by a better one).")
    challenger_alias: str = Field("challenger", description="Alias of the newest student that cleared the bar.")
    previous_alias: str = Field("previous", description="Alias the replaced champion keeps.")


class Versus(BaseModel):
    """This student against the champion on the held-out prompts both were scored on."""

    difference: Interval  # accuracy (this student - the champion), paired bootstrap
    prompts: int
    wins: int  # prompts this student got right and the champion wrong
    losses: int

    @property
    def p_value(self) -> float:
        return sign_test(self.wins, self.losses)


class Evidence(BaseModel):
    """What the gate judges a student on; `versus` is None without a champion to compare with."""

    transfer_ratio: float
    slice_accuracy: dict[str, float]
    latency_p95_s: float | None  # none when not measured (evaluate.latency_prompts 0)
    check_passed: bool
    check_reason: str = ""
    versus: Versus | None = None
    versus_missing: str = ""  # why there is no comparison with the champion, in words


class Decision(BaseModel):
    passed: bool
    missed: list[str]  # each bar missed, in words
    champion: bool  # becomes the champion
    reason: str


class Promotion(BaseModel):
    """The registered model version and the gate's verdict on it."""

    registered_model: str
    version: str
    promoted: bool  # became the champion
    challenger: bool = False  # cleared the bar
    reason: str
    missed: list[str] = []
    replaced: str | None = None  # the champion version it replaced


def missed_bars(config: GateConfig, evidence: Evidence) -> list[str]:
    """Every bar the student misses, each in words with the number that missed it."""
    missed = []
    if not evidence.check_passed:
        missed.append(f"the export failed its check ({evidence.check_reason})" if evidence.check_reason else
                      "the export failed its check")  # fmt: skip
    if evidence.transfer_ratio < config.min_transfer_ratio:
        missed.append(f"transfer ratio {evidence.transfer_ratio:.2f} < {config.min_transfer_ratio:.2f}")
    for name, least in sorted(config.min_slice_accuracy.items()):
        found = evidence.slice_accuracy.get(name)
        if found is None:
            missed.append(f"slice {name}: no scored held-out prompt (needs {least:.2f})")
        elif found < least:
            missed.append(f"slice {name} accuracy {found:.2f} < {least:.2f}")
    if config.max_latency_p95_s is not None:
        if evidence.latency_p95_s is None:
            bar = config.max_latency_p95_s
            missed.append(f"p95 latency not measured (evaluate.latency_prompts is 0; the bar is {bar:.2f}s)")
        elif evidence.latency_p95_s > config.max_latency_p95_s:
            missed.append(f"p95 latency {evidence.latency_p95_s:.2f}s > {config.max_latency_p95_s:.2f}s")
    return missed


class Choice(BaseModel):
    """The student that ships when a run trains several (two sizes, SFT and SFT+DPO), and why."""

    student: str
    reason: str
    table: str  # markdown: every student, its size, transfer ratio and the bars it missed


def choose_student(config: GateConfig, found: dict[str, Evidence], params: dict[str, int | None]) -> Choice:
    """Of the students evaluate scored (`found`, before any export: its check passed; `size` in parameters), the
    smallest that clears the bar; of two the same size (SFT and SFT+DPO), the one with the higher transfer ratio.
    When none clears it, the one with the highest transfer ratio (the smaller on a tie): it is registered without
    an alias, showing how far it is."""
    missed = {name: missed_bars(config, evidence) for name, evidence in found.items()}
    size = {name: params.get(name) or float("inf") for name in found}  # an unknown size is never "the smallest"
    passing = [name for name in found if not missed[name]]
    if passing:
        chosen = min(passing, key=lambda name: (size[name], -found[name].transfer_ratio))
        reason = f"{chosen}: the smallest student that clears the bar"
    else:
        chosen = max(found, key=lambda name: (found[name].transfer_ratio, -size[name]))
        reason = f"{chosen}: no student clears the bar; the one with the highest transfer ratio"
    lines = ["| student | params (M) | transfer ratio | bars missed |", "|---|---:|---:|---|"]
    for name, evidence in found.items():
        mark = f"**{name}** (ships)" if name == chosen else name
        bars = "; ".join(missed[name]) or "none"
        lines.append(f"| {mark} | {size[name] / 1e6:.1f} | {evidence.transfer_ratio:.2f} | {bars} |")
    return Choice(student=chosen, reason=reason, table="## students\n\n" + reason + "\n\n" + "\n".join(lines) + "\n")


def gate_decision(config: GateConfig, evidence: Evidence, champion_version: str | None = None) -> Decision:
    """Pass or fail on the bar; then champion or challenger against the current champion."""
    missed = missed_bars(config, evidence)
    if missed:
        return Decision(passed=False, missed=missed, champion=False, reason="not promoted: " + "; ".join(missed))
    cleared = f"cleared the bar (transfer ratio {evidence.transfer_ratio:.2f})"
    if champion_version is None:
        return Decision(passed=True, missed=[], champion=True, reason=f"@{config.alias}: the first to have {cleared}")
    versus = evidence.versus
    if versus is None:
        why = evidence.versus_missing or f"no scored held-out prompt shared with v{champion_version}"
        return Decision(passed=True, missed=[], champion=False, reason=f"@{config.challenger_alias}: {cleared}, but "
                        f"{why}, so it cannot replace v{champion_version}")  # fmt: skip
    against = (
        f"v{champion_version} by {versus.difference} on {versus.prompts} prompts ({versus.wins} better, "
        f"{versus.losses} worse; sign test p={versus.p_value:.3f})"
    )
    if versus.p_value < SIGNIFICANCE:
        return Decision(passed=True, missed=[], champion=True, reason=f"@{config.alias}: {cleared} and beats {against}")
    return Decision(
        passed=True,
        missed=[],
        champion=False,
        reason=f"@{config.challenger_alias}: {cleared}, but does not beat {against}: p >= {SIGNIFICANCE}",
    )


def versus_champion_prompts(answers: list[dict], champion: Champion, student: str = STUDENT) -> Versus | str:
    """This student against the champion over the held-out prompts both were scored on, matched by prompt text;
    where there are none, why not, in words."""
    uri = champion.dataset("evaluate.answers")
    if not uri:
        return f"the answers v{champion.version} was scored with are gone (its run's evaluate.answers)"
    by_text = lambda rows, name: {  # noqa: E731
        r["prompt"]: float(r["correct"]) for r in rows if r["model"] == name and r["correct"] is not None
    }
    theirs = by_text(read_dataset(dataset_ref(uri)), champion.student)
    mine, before = paired(by_text(answers, student), theirs)
    if not mine:
        return f"no scored held-out prompt shared with v{champion.version} (a scheduled run scores on its set)"
    return Versus(
        difference=difference_interval(mine, before),
        prompts=len(mine),
        wins=sum(a > b for a, b in zip(mine, before, strict=True)),
        losses=sum(a < b for a, b in zip(mine, before, strict=True)),
    )


def versus_champion(accuracy: dict[str, float], champion: Champion, prompts: int) -> tuple[dict[str, float], str]:
    """This student against the champion on the same held-out prompts: metrics and a table, per slice."""
    logged = f"evaluate.{champion.student}.accuracy."
    theirs = {key.removeprefix(logged): value for key, value in champion.metrics.items() if key.startswith(logged)}
    names = sorted((set(accuracy) | set(theirs)) - {ALL}) + [ALL]
    lines = [
        "## against the champion",
        "",
        f"The same {prompts} held-out prompts the champion (version {champion.version}) was scored on.",
        "",
        "| slice | champion | this student | difference |",
        "|---|---:|---:|---:|",
    ]
    metrics = {}
    for name in names:
        ours, before = accuracy.get(name, 0.0), theirs.get(name, 0.0)
        metrics[f"champion.accuracy.{name}"], metrics[f"vs_champion.{name}"] = before, ours - before
        lines.append(f"| {name} | {before:.2f} | {ours:.2f} | {ours - before:+.2f} |")
    return metrics, "\n".join(lines) + "\n"


def against_champion(
    evidence: Evidence, answers: list[dict], champion: Champion | None, student: str = STUDENT
) -> Evidence:
    """The evidence with this student's answers compared to the champion's on the prompts both were scored on."""
    if champion is None:
        return evidence
    found = versus_champion_prompts(answers, champion, student)
    if isinstance(found, str):
        return evidence.model_copy(update={"versus": None, "versus_missing": found})
    return evidence.model_copy(update={"versus": found, "versus_missing": ""})


def fallback_tags(found: Fallback | None) -> dict[str, str]:
    """The registered version's tags for the serving side: below `fallback.threshold` the teacher answers."""
    if found is None or not found.points:
        return {}
    if found.chosen is None:
        return {"fallback.threshold": "inf", "fallback.target_accuracy": f"{found.target:.3f}"}
    return {
        "fallback.threshold": repr(found.chosen.threshold),  # exact: the boundary answer stays on its side
        "fallback.share": f"{found.chosen.fallback_share:.3f}",
        "fallback.target_accuracy": f"{found.target:.3f}",
        "fallback.confidence": "mean token log-probability of the answer",
    }


@task(name="promote_student")
def promote_student(
    config: GateConfig, run: Run, model_uri: str, tags: dict[str, str], evidence: Evidence, champion: Champion | None
) -> Promotion:
    """Register the export as a model version in this run; alias it as far as the bar and the champion allow."""
    now = current_champion(run, config.registered_model, config.alias)
    if champion and now is None:  # the alias was removed, or the registry did not answer: replace nothing unseen
        why = f"v{champion.version}, the champion at this run's start, is not @{config.alias} now"
        evidence = evidence.model_copy(update={"versus": None, "versus_missing": why})
    elif now and (champion is None or now.version != champion.version):  # another run promoted one meanwhile
        why = f"the champion changed during this run (now v{now.version}), which it was not compared with"
        evidence = evidence.model_copy(update={"versus": None, "versus_missing": why})
        champion = now
    decision = gate_decision(config, evidence, champion.version if champion else None)
    source = log_directory(run, model_uri, "student")
    tags = tags | {
        "transfer_ratio": f"{evidence.transfer_ratio:.3f}",
        "gate": "passed" if decision.passed else "failed",
        **({"gate.missed": "; ".join(decision.missed)[:5000]} if decision.missed else {}),
    }
    version = register_version(run, source, config.registered_model, tags)
    replaced = None
    if decision.passed:
        set_alias(run, config.registered_model, config.challenger_alias, version)
    if decision.champion:
        if champion:
            set_alias(run, config.registered_model, config.previous_alias, champion.version)
            replaced = champion.version
        set_alias(run, config.registered_model, config.alias, version)
    lines = [f"## gate\n\n`{config.registered_model}` version {version}: {decision.reason}\n"]
    lines += [f"- missed: {bar}" for bar in decision.missed]
    if replaced:
        lines.append(f"\nversion {replaced}, the champion until now, keeps its version and @{config.previous_alias}")
    log_markdown(run, "gate", "\n".join(lines) + "\n")
    return Promotion(
        registered_model=config.registered_model,
        version=version,
        promoted=decision.champion,
        challenger=decision.passed,
        reason=decision.reason,
        missed=decision.missed,
        replaced=replaced,
    )
