"""RunConfig: defaults, canonical forms, hashing, and clear errors for bad configs."""

import hashlib

import pytest

from limen.verify.records import config_key
from limen.verify.subliminal import Perturbation, RunConfig, derived_seed


def test_defaults_are_the_reference_protocol():
    c = RunConfig()
    assert (c.m, c.hidden, c.teacher_epochs, c.student_epochs) == (10, (256, 256), 5, 5)
    assert (c.batch_size, c.noise_batch, c.noise_steps, c.teacher_lr, c.student_lr) == (1024, 1000, 60, 1e-3, 1e-3)
    assert (c.noise, c.normalize_noise, c.noise_pool, c.eval_noise_batches, c.eval_noise_batch) == ("uniform", False, None, 10, 1000)
    assert c.init == c.teacher_init == "fc1:A,fc2:A,class_head:A,aux_head:A"
    assert c.trainable == "fc1:true,fc2:true,class_head:true,aux_head:true"
    assert c.student_hidden == (256, 256) and c.student_arch == "mlp"


def test_equivalent_spellings_give_one_key_and_hash():
    a = RunConfig(init={"fc1": "random", "fc2": "random"})
    b = RunConfig(init="fc1:random,fc2:random")
    c = RunConfig(init="random,random,A,A")
    d = RunConfig(init="all:random,class_head:A,aux_head:a")
    assert a == b == c == d and len({a, b, c, d}) == 1
    assert len({config_key(x) for x in (a, b, c, d)}) == 1
    assert config_key(a) != config_key(RunConfig())
    assert RunConfig(hidden=[256, 256]) == RunConfig()
    assert RunConfig(n_classes=10) == RunConfig()  # all classes == no truncation
    assert a.replace(seed=3).init == a.init


def test_derived_seed_is_the_reference_formula():
    h = hashlib.sha256("init_source:A:fc1".encode()).hexdigest()
    assert derived_seed(3, "init_source", "A", "fc1") == 300000 + int(h[:12], 16) % 900_000_000


@pytest.mark.parametrize("kw, msg", [
    ({"m": 0}, "m must be an integer >= 1"),
    ({"seed": -1}, "seed"),
    ({"data": "cifar"}, "data must be one of"),
    ({"init": {"fc3": "A"}}, "unknown layer 'fc3'"),
    ({"init": "A,A,A"}, "3 positional values for 4 layers"),
    ({"init": {"fc1": "C"}}, "not one of A, B, random"),
    ({"trainable": {"fc1": "maybe"}}, "not a boolean"),
    ({"hidden": ()}, "at least one layer"),
    ({"hidden": (256, 0)}, "hidden width"),
    ({"noise": "pink"}, "noise must be one of"),
    ({"teacher_lr": 0}, "teacher_lr must be a positive"),
    ({"n_classes": 11}, "exceeds the 10 classes"),
    ({"n_classes": 1}, "n_classes must be an integer >= 2"),
    ({"perturb": ["student:fc9,std=0.1"]}, "unknown layer 'fc9'"),
    ({"perturb": ["student:aux_head,std=-1"]}, "std must be finite and >= 0"),
    ({"perturb": ["student:aux_head,timing=later"]}, "timing 'later'"),
    ({"cnn_spec": [{"type": "conv2d", "out": 4}]}, "cnn_spec is given but arch is 'mlp'"),
    ({"arch": "cnn", "cnn_spec": [{"type": "pool"}]}, "type must be 'conv2d' or 'linear'"),
    ({"normalize": "zscore"}, "normalize must be"),
])
def test_bad_configs_are_rejected_with_clear_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        RunConfig(**kw)


def test_perturbation_shorthand():
    p = Perturbation.parse("student:aux_head+class_head,std=0.05,timing=before_student_training,include_bias=false")
    assert p == Perturbation("student", ("aux_head", "class_head"), 0.05, "before_student_training", True, False)
    c = RunConfig(perturb="teacher:all,std=0.01,timing=after_teacher_training")
    assert c.perturb[0].layers == ("all",) and c.perturb[0].target == "teacher"


def test_layer_names_follow_architecture():
    c = RunConfig(student_hidden=(256,), init={"fc1": "random"}, student_arch="cnn")
    assert c.layer_names("teacher") == ("fc1", "fc2", "class_head", "aux_head")
    assert c.layer_names("student") == ("conv1", "conv2", "fc1", "class_head", "aux_head")
    assert c.sources("student")["fc1"] == "random"
    with pytest.raises(ValueError, match="unknown layer 'fc2'"):
        RunConfig(student_hidden=(256,), init={"fc2": "random"})
