import pyarrow as pa

from tasks.dedup import DedupConfig, dedup_table
from tasks.schemas import ROLLOUTS, VERDICTS
from tasks.stage import render_turns


def _rollouts(rows: list[tuple]) -> pa.Table:
    """(prompt_id, sample_index, prompt or chat turns, completion[, finish_reason]) tuples as a ROLLOUTS table."""
    return pa.Table.from_pylist(
        [
            {"prompt_id": r[0], "sample_index": r[1], "slice": "s", "completion": r[3],
             "finish_reason": r[4] if len(r) > 4 else "stop"}
            | ({"prompt": render_turns(r[2]), "messages": r[2]} if isinstance(r[2], list) else {"prompt": r[2]})
            for r in rows
        ],
        schema=ROLLOUTS,
    )  # fmt: skip


def _verdicts(oks: dict[tuple[str, int], bool | None]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"prompt_id": p, "sample_index": s, "verifier": "number", "ok": ok} for (p, s), ok in oks.items()],
        schema=VERDICTS,
    )


LONG = "The capital of France is Paris, a large city on the Seine known for its museums, cafes and long boulevards"


def _ids(table: pa.Table) -> list[str]:
    return [f"{p}/{s}" for p, s in zip(table["prompt_id"].to_pylist(), table["sample_index"].to_pylist(), strict=True)]


def test_exact_and_near_duplicates_are_dropped_naming_the_row_kept_and_the_similarity():
    table = _rollouts([
        ("p1", 0, "What is the capital of France?", LONG),
        ("p1", 1, "What is the capital of France?", LONG.upper() + "!"),  # the same once normalised
        ("p1", 2, "What is the capital of France?", LONG + " too"),  # near
        ("p1", 3, "What is the capital of France?", "Paris."),
    ])  # fmt: skip
    kept, rejected = dedup_table(DedupConfig(), table, _verdicts({}))
    assert _ids(kept) == ["p1/0", "p1/3"]
    assert rejected["reason"].to_pylist() == [
        "exact_duplicate:p1/0",
        "near_duplicate:p1/0 jaccard 0.96",
    ]  # 22 of 23 shingles


def test_the_best_of_a_group_is_kept_a_pass_then_a_complete_answer_then_the_shortest():
    answers = [LONG + " and more", LONG, LONG + " and so on", LONG + " x"]
    table = _rollouts([
        ("p", 0, "Capital of France?", answers[0]),  # failed its verifier
        ("p", 1, "Capital of France?", answers[1], "length"),  # passed, but cut off
        ("p", 2, "Capital of France?", answers[2]),  # passed, complete, longer
        ("p", 3, "Capital of France?", answers[3]),  # passed, complete, shortest
    ])  # fmt: skip
    verdicts = _verdicts({("p", 0): False, ("p", 1): True, ("p", 2): True, ("p", 3): True})
    kept, rejected = dedup_table(DedupConfig(near_threshold=0.5), table, verdicts)
    assert _ids(kept) == ["p/3"]
    assert [r.split(" ")[0] for r in rejected["reason"].to_pylist()] == ["near_duplicate:p/3"] * 3


def test_different_questions_with_shared_boilerplate_are_kept():
    preamble = "Hi, this is <PERSON_1> (<EMAIL_ADDRESS_1>). "
    table = _rollouts([(f"p{a}", 0, f"{preamble}What is {a} + 4?", f"{a} + 4 = {a + 4}.") for a in range(1, 10)])
    kept, rejected = dedup_table(DedupConfig(), table, _verdicts({}))
    assert len(kept) == 9 and len(rejected) == 0


def test_prompt_level_drops_a_repeated_prompt_with_all_its_samples():
    question = "Please name the capital city of France for my geography homework due tomorrow morning at school"
    table = _rollouts([
        ("a", 0, question, "Paris"), ("a", 1, question, "Lyon"),
        ("b", 0, question + " please", "Paris"), ("b", 1, question + " please", "Nice"),
        ("c", 0, "Name the capital of Peru.", "Lima"),
    ])  # fmt: skip
    verdicts = _verdicts({("a", 0): False, ("a", 1): False, ("b", 0): True, ("b", 1): False})
    kept, rejected = dedup_table(DedupConfig(level="prompt"), table, verdicts)
    assert _ids(kept) == ["b/0", "b/1", "c/0"]  # b has the passing sample: it stays, a goes
    assert set(r.split(" ")[0] for r in rejected["reason"].to_pylist()) == {"near_duplicate_prompt:b"}


def test_chat_rows_sharing_a_long_system_prompt_are_told_apart_by_their_questions():
    policy = ("You are the billing assistant of Nordbank. Answer in the customer's language, in at most two "
              "sentences. Never ask for a full card number, a PIN or a password. If a question is about fraud, "
              "tell the customer to call the number on the back of their card at once. Refunds take five to "
              "seven working days; disputes up to sixty. Be kind, concise and precise, and do not guess.")  # fmt: skip
    system = {"role": "system", "content": policy}
    questions = ["Is my card blocked?", "¿Puedo pagar en cuotas?", "Kann ich das Limit erhöhen?", "Is my card blocked?"]
    table = _rollouts([(f"q{i}", 0, [system, {"role": "user", "content": q}], "Yes.") for i, q in enumerate(questions)])
    kept, rejected = dedup_table(DedupConfig(), table, _verdicts({}))
    assert _ids(kept) == ["q0/0", "q1/0", "q2/0"] and rejected["reason"].to_pylist() == ["exact_duplicate:q0/0"]


def test_two_answers_to_one_long_question_are_two_samples_however_alike_the_texts():
    question = ("Classify the sentiment of this review as positive or negative, answering with one word only: The "
                "kettle broke after two days and the seller never answered my emails.")  # fmt: skip
    table = _rollouts(
        [("k", 0, question, "Negative."), ("k", 1, question, "Positive."), ("k", 2, question, "negative")]
    )
    kept, rejected = dedup_table(DedupConfig(), table, _verdicts({}))
    assert _ids(kept) == ["k/1", "k/2"] and rejected["reason"].to_pylist() == ["exact_duplicate:k/2"]  # the shorter


def test_semdedup_drops_paraphrases_minhash_misses_and_keeps_distinct_prompts():
    table = _rollouts([
        ("fr", 0, "What is the capital of France?", "Paris is the capital of France."),
        ("fr2", 0, "Which city is France's capital?", "The capital of France is Paris."),  # no shared 5-word shingle
        ("de", 0, "Was ist die Hauptstadt von Deutschland?", "Berlin."),
        ("pe", 0, "What is the capital of Peru?", "Lima is the capital of Peru."),  # alike in wording, not in fact
        ("tax", 0, "How do I file my taxes late?", "Ask for an extension, then file as soon as you can."),
    ])  # fmt: skip
    verdicts = _verdicts({("fr", 0): False, ("fr2", 0): True})
    assert len(dedup_table(DedupConfig(), table, verdicts)[0]) == 5  # MinHash alone: wording differs
    kept, rejected = dedup_table(DedupConfig(semantic_threshold=0.9), table, verdicts)
    assert _ids(kept) == ["fr2/0", "de/0", "pe/0", "tax/0"]  # the passing paraphrase kept
    [reason] = rejected["reason"].to_pylist()
    assert reason.startswith("semantic_duplicate:fr2/0 cosine 0.9")
    by_prompt = dedup_table(DedupConfig(level="prompt", semantic_threshold=0.9), table, verdicts)[1]
    assert [r.split(" ")[0] for r in by_prompt["reason"].to_pylist()] == ["semantic_duplicate_prompt:fr2"]


def test_semdedup_keeps_two_answers_to_a_question_longer_than_the_embedder_reads():
    contract = " ".join(f"Clause {i}: the tenant keeps the garden tidy and pays on the first." for i in range(40))
    question = f"{contract}\nDoes this lease allow pets? Answer yes or no."  # past all-MiniLM-L6-v2's 256 tokens
    table = _rollouts([("lease", 0, question, "Yes, pets are allowed."), ("lease", 1, question, "No.")])
    kept, _ = dedup_table(DedupConfig(semantic_threshold=0.9), table, _verdicts({}))
    assert len(kept) == 2  # the question alike, the answers not: two samples
