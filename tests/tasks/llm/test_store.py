"""The durable request store, on SQLite and on PostgreSQL: one interface, the same exactly-once tests."""

import sqlite3
import threading

import pytest

from tasks.llm.ask import missing_samples
from tasks.llm.store import SqliteStore, open_store
from tasks.llm.types import Completion


@pytest.fixture
def store(store_url):
    opened = open_store(store_url)
    yield opened
    opened.close()


def test_the_first_write_wins_with_reasoning_and_logprobs(store):
    first = Completion("7", "stop", 12, 3, reasoning="3 + 4 is 7", logprobs=[-0.5, -0.25, -0.125])
    store.add("rollout", "t", "p", {0: first})
    store.add("rollout", "t", "p", {0: Completion("8", "stop", 12, 1)})
    assert store.get("rollout", "t", ["p"]) == {("p", 0): first}
    assert missing_samples(["p", "q"], 2, store.get("rollout", "t", ["p", "q"])) == {"p": [1], "q": [0, 1]}


def test_purpose_and_fingerprint_keep_answers_apart(store):
    store.add("rollout", "t", "p", {0: Completion("7", "stop", 1, 1)})
    assert store.get("evaluate", "t", ["p"]) == {}  # the same prompt asked by another stage
    assert store.get("rollout", "another-model", ["p"]) == {}


def test_committed_rows_survive_a_new_connection(store_url):
    writer = open_store(store_url)
    writer.add("rollout", "t", "p", {i: Completion(str(i), "stop", 1, 1) for i in range(3)})
    writer.db.close()  # no orderly close: what add() returned from is committed
    reader = open_store(store_url)
    assert len(reader.get("rollout", "t", ["p"])) == 3
    reader.close()


def test_concurrent_workers_store_each_key_exactly_once(store_url):
    """Eight workers (own connections, as on eight machines) write overlapping keys at once."""
    workers, failures = 8, []
    start = threading.Barrier(workers, timeout=60)

    def work(worker: int) -> None:
        try:
            store = open_store(store_url)
            start.wait()
            for request in range(20):
                store.add("rollout", "t", f"p{request}", {i: Completion(f"w{worker}", "stop", 1, 1) for i in range(2)})
            store.close()
        except Exception as e:  # noqa: BLE001 - reported below, with the worker
            failures.append((worker, repr(e)))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    store = open_store(store_url)
    stored = store.get("rollout", "t", [f"p{r}" for r in range(20)])
    assert len(stored) == 20 * 2
    for request in range(20):  # both samples of a request come from the one worker that wrote first
        assert stored[(f"p{request}", 0)].text == stored[(f"p{request}", 1)].text
    cursor = store.db.cursor()
    cursor.execute("SELECT COUNT(*) FROM requests")
    assert cursor.fetchone()[0] == 20 * 2
    store.close()


def test_a_store_with_another_layout_is_refused_not_misread(tmp_path):
    with sqlite3.connect(tmp_path / "old.sqlite") as db:
        db.execute("CREATE TABLE requests (prompt_id TEXT, sample_index INTEGER, teacher TEXT, completion TEXT)")
    with pytest.raises(RuntimeError, match="move it aside"):
        SqliteStore(tmp_path / "old.sqlite")


def test_a_store_url_of_another_kind_is_refused_and_credentials_stay_out_of_notes(postgres_server):
    with pytest.raises(ValueError, match="use a postgresql:// URL"):
        open_store("s3://bucket/requests.sqlite")
    url = postgres_server.get_uri()
    store = open_store(url.replace("postgresql://postgres:@", "postgresql://postgres:not-shown@"))
    assert "not-shown" not in store.where
    store.close()
