"""The drift report: slice mix then and now, new slices, lengths, and the share of prompts with no near neighbour
among the champion's; replayed prompts left out; no prompt text in it."""

from tasks.drift import DriftConfig, drift
from tasks.schemas import PROMPTS
from tasks.stage import write_dataset

CHAMPION = [  # last month's traffic: refunds and shipping questions
    *({"slice": "refunds", "prompt": f"Can I get a refund for order {n}? It arrived broken."} for n in range(6)),
    *(
        {"slice": "shipping", "prompt": f"Wann kommt meine Bestellung {n} an? Sie ist seit Tagen unterwegs."}
        for n in range(2)
    ),
]
NOW = [  # this week: the same refund question, and a new kind of question about invoices
    {"slice": "refunds", "prompt": "Can I get a refund for order 3? It arrived broken.", "origin": "traffic"},
    *(
        {"slice": "invoices", "prompt": f"請求書{n}の住所を変更できますか？会社名も違います。", "origin": "traffic"}
        for n in range(3)
    ),
    {
        "slice": "shipping",
        "prompt": "Wann kommt meine Bestellung 1 an? Sie ist seit Tagen unterwegs.",
        "origin": "replay",
    },
]


def test_the_report_compares_the_mix_names_new_slices_and_counts_prompts_without_a_neighbour(tmp_path):
    champion = write_dataset([r | {"id": str(i)} for i, r in enumerate(CHAMPION)], tmp_path / "then.parquet", PROMPTS)
    now = write_dataset([r | {"id": str(i)} for i, r in enumerate(NOW)], tmp_path / "now.parquet", PROMPTS)
    result = drift(DriftConfig(), now, champion.uri, "7", str(tmp_path / "out"))
    metrics = result.report.metrics
    assert result.report.rows_in == 4  # the replayed prompt is the champion's traffic, not this run's
    assert metrics["champion_prompts"] == 8 and metrics["new_slices"] == 1
    assert metrics["without_near_neighbour"] == 0.75  # the refund question has one; the invoices do not
    assert metrics["slice_share_now.invoices"] == 0.75 and metrics["slice_share_champion.refunds"] == 0.75
    assert "slice_share_now.shipping" not in metrics
    markdown = result.report.markdown()
    assert "new slices: invoices" in markdown and "| invoices | 0.00 | 0.75 | +0.75 |" in markdown
    assert not any(row["prompt"] in markdown for row in CHAMPION + NOW)
    assert (tmp_path / "out" / "drift.png").read_bytes().startswith(b"\x89PNG")
