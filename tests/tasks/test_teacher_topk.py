"""The teacher's top-k, computed once: stored per row, read back after a restart without a second pass."""

import numpy as np
import pytest

from tasks.llm.store import open_store
from tasks.models import load_model
from tasks.teacher_topk import TopK, compute_top_k, stored_top_k


def test_pack_and_unpack_keep_every_number():
    top = TopK(
        positions=np.array([3, 4, 9], dtype=np.int32),
        ids=np.array([[5, 1], [70000, 2], [0, 9]], dtype=np.int32),  # ids past 65535: a 256k vocabulary fits
        log_probs=np.array([[-0.1, -2.5], [-0.7, -0.9], [-0.01, -6.0]], dtype=np.float16),
    )
    back = TopK.unpack(top.pack())
    assert back.positions.tolist() == [3, 4, 9] and back.ids.tolist() == top.ids.tolist()
    assert back.log_probs.tolist() == top.log_probs.tolist()
    assert len(top.pack()) <= 4 / 3 * (8 + 3 * 4 + 3 * 2 * (4 + 2)) + 4  # 6 bytes per (token, k) before base64


def test_top_k_is_the_teacher_s_own_distribution(tiny_teacher):
    import torch

    model, _ = load_model(str(tiny_teacher))
    ids = [1, 17, 42, 99, 7, 3]
    [top] = compute_top_k(model, [(ids, [2, 4])], k=3)
    with torch.no_grad():
        full = torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)
    expected = full[[2, 4]].topk(3, dim=-1)
    assert top.ids.tolist() == expected.indices.tolist()
    assert np.allclose(top.log_probs.astype(np.float32), expected.values.numpy(), atol=1e-2)
    # padded beside a longer row, the same numbers
    [again, _] = compute_top_k(model, [(ids, [2, 4]), (ids + [5] * 9, [1])], k=3)
    assert again.ids.tolist() == top.ids.tolist()


def test_stored_once_and_reused_after_a_restart_without_loading_the_teacher(tiny_teacher, tmp_path):
    rows = [([1, 17, 42, 99], [1, 2]), ([1, 8, 9], [1]), ([1, 17, 42, 99], [1, 2])]  # a repeated row: computed once
    loads = []

    def teacher():
        loads.append(1)
        model = load_model(str(tiny_teacher))[0]
        return lambda batch, k: compute_top_k(model, batch, k)

    store = open_store(str(tmp_path / "store.db"))
    first, computed = stored_top_k(store, "teacher-v1", rows, 4, teacher, batch_size=1)
    store.close()
    assert computed == 2 and len(loads) == 1 and [t.ids.shape for t in first] == [(2, 4), (1, 4), (2, 4)]

    def no_teacher():
        raise AssertionError("the teacher was loaded again")

    store = open_store(str(tmp_path / "store.db"))  # as after a crash: a new process opens the same store
    second, computed = stored_top_k(store, "teacher-v1", rows, 4, no_teacher)
    assert computed == 0 and [t.ids.tolist() for t in second] == [t.ids.tolist() for t in first]
    with pytest.raises(AssertionError, match="loaded again"):
        stored_top_k(store, "teacher-v1", rows, 8, no_teacher)  # another k is another request
    store.close()
