"""Replay: a share of the champion's training prompts joins this run's, stratified by slice, never a held-out
prompt, a new one, or one twice."""

from tasks.replay import ReplayConfig, replay, replay_rows
from tasks.schemas import REDACTED_PROMPTS
from tasks.stage import read_dataset, write_dataset


def _rows(slice_name: str, texts: list[str], origin: str = "traffic") -> list[dict]:
    return [{"id": t[:12], "slice": slice_name, "prompt": t, "origin": origin, "pii": []} for t in texts]


CHAMPION = _rows("billing", [f"Why was I charged twice for invoice {n}?" for n in range(6)]) + _rows(
    "tech", [f"Die App stürzt beim Öffnen von Bild {n} ab." for n in range(6)]
)


def test_a_share_of_the_champions_prompts_joins_stratified_and_marked(tmp_path):
    new = _rows("billing", [f"Can I pay invoice {n} by card?" for n in range(4)])
    chosen = replay_rows(new, CHAMPION, [], ReplayConfig(share=0.5))
    assert len(chosen) == 2 and {r["slice"] for r in chosen} == {"billing", "tech"}
    assert {r["origin"] for r in chosen} == {"replay"}
    assert replay_rows(new, CHAMPION, [], ReplayConfig(share=0.0)) == []
    prompts = write_dataset(new, tmp_path / "new.parquet", REDACTED_PROMPTS)
    held_out = write_dataset([], tmp_path / "held.parquet", REDACTED_PROMPTS)
    champion = write_dataset(CHAMPION, tmp_path / "champion.parquet", REDACTED_PROMPTS)
    result = replay(ReplayConfig(share=0.5), prompts, held_out, champion.uri, str(tmp_path / "out"))
    assert (result.report.metrics["new_prompts"], result.report.metrics["replayed_prompts"]) == (4, 2)
    assert len(read_dataset(result.train_prompts)) == 6


def test_no_held_out_new_or_repeated_prompt_comes_back():
    held_out = _rows("billing", ["Why was I charged twice for invoice 0?", "Why was I charged twice for invoice 1?"])
    new = _rows("tech", ["Die App stürzt beim Öffnen von Bild 2 ab."])
    repeated = CHAMPION + _rows("tech", ["Die App stürzt beim Öffnen von Bild 3 ab."], origin="replay")
    chosen = replay_rows(new * 12, repeated, held_out, ReplayConfig(share=1.0))  # asks for more than there is
    texts = [r["prompt"] for r in chosen]
    assert len(texts) == len(set(texts)) == 12 - 2 - 1  # all the champion's distinct prompts, less the excluded
    assert not set(texts) & {r["prompt"] for r in held_out + new}
