import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tasks.models import model_ref
from tasks.student import StudentConfig, build_student, layers_to_keep
from tests.tiny import ORIGINAL_CHATML


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return model_ref(str(tiny_teacher))


def test_student_keeps_every_other_layer_and_still_generates(teacher, tmp_path):
    student = build_student(StudentConfig(), teacher, str(tmp_path))
    model = AutoModelForCausalLM.from_pretrained(student.uri)
    assert model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in model.model.layers] == [0, 1]
    source = AutoModelForCausalLM.from_pretrained(teacher.uri)
    assert torch.equal(model.model.layers[1].mlp.up_proj.weight, source.model.layers[2].mlp.up_proj.weight)
    out = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=3, do_sample=False)
    assert out.shape == (1, 6)
    assert build_student(StudentConfig(), teacher, str(tmp_path)) == student  # built once per teacher and layers


def test_layers_to_keep():
    assert layers_to_keep("every_other", 30) == list(range(0, 30, 2))
    assert layers_to_keep([5, 0, 5], 6) == [0, 5]
    with pytest.raises(ValueError, match="does not fit"):
        layers_to_keep([0, 9], 6)


def test_a_student_checkpoint_of_your_own_and_a_served_teacher(teacher, tmp_path):
    own = build_student(StudentConfig(init="checkpoint", checkpoint=teacher.uri), None, str(tmp_path))
    assert own.fingerprint == teacher.fingerprint  # starts from exactly that checkpoint
    with pytest.raises(ValueError, match="set student.prune_from"):
        build_student(StudentConfig(), None, str(tmp_path))  # served teacher: nothing to prune
    pruned = build_student(StudentConfig(prune_from=teacher.uri), None, str(tmp_path))
    assert AutoModelForCausalLM.from_pretrained(pruned.uri).config.num_hidden_layers == 2
    with pytest.raises(ValueError, match="needs student.checkpoint"):
        StudentConfig(init="checkpoint")


def test_a_chat_template_without_generation_markers_is_refused_before_training(teacher, tmp_path):
    import shutil

    plain = tmp_path / "plain"
    shutil.copytree(teacher.uri, plain)
    tokenizer = AutoTokenizer.from_pretrained(plain)
    tokenizer.chat_template = ORIGINAL_CHATML
    tokenizer.save_pretrained(plain)
    with pytest.raises(ValueError, match="no {% generation %} markers"):
        build_student(StudentConfig(init="checkpoint", checkpoint=str(plain)), None, str(tmp_path))


def test_more_sizes_are_more_students_each_from_its_own_start():
    from pydantic import ValidationError

    config = StudentConfig(sizes=[{"name": "third", "keep_layers": [0, 3]}, {"name": "mine", "checkpoint": "/m"}])
    variants = config.variants()
    assert list(variants) == ["student", "student_third", "student_mine"]
    assert variants["student"].keep_layers == "every_other" and variants["student"].sizes == []
    assert (variants["student_third"].init, variants["student_third"].keep_layers) == ("prune", [0, 3])
    assert (variants["student_mine"].init, variants["student_mine"].checkpoint) == ("checkpoint", "/m")
    with pytest.raises(ValidationError, match="give keep_layers or checkpoint"):
        StudentConfig(sizes=[{"name": "both", "keep_layers": [0], "checkpoint": "/m"}])
    with pytest.raises(ValidationError, match="each needs its own name"):
        StudentConfig(sizes=[{"name": "a", "keep_layers": [0]}, {"name": "a", "keep_layers": [1]}])
    with pytest.raises(ValidationError, match="name"):
        StudentConfig(sizes=[{"name": "Big One", "keep_layers": [0]}])


def test_a_size_may_not_take_a_name_dpo_students_use():
    from pydantic import ValidationError

    for name in ("dpo", "small_dpo"):
        with pytest.raises(ValidationError, match="a name ending in 'dpo' is taken by DPO's students"):
            StudentConfig(sizes=[{"name": name, "keep_layers": [0]}])


def test_pruned_sizes_with_a_served_teacher_need_its_weights_before_anything_runs():
    from pydantic import ValidationError

    from flows.distill import DistillConfig

    served = {"backend": "openai", "model": "teacher", "server": {"base_url": "http://127.0.0.1:9/v1"}}
    with pytest.raises(ValidationError, match=r"student.sizes \['ten'\] prune the teacher"):
        DistillConfig(teacher=served, student={"init": "checkpoint", "checkpoint": "/m",
                                               "sizes": [{"name": "ten", "keep_layers": [0, 3]}]})  # fmt: skip
    DistillConfig(teacher=served, student={"init": "checkpoint", "checkpoint": "/m",
                                           "sizes": [{"name": "mine", "checkpoint": "/n"}]})  # fmt: skip
