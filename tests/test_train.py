"""nil.train: schedule, best-validation restore, determinism, early stopping, decay groups."""

from __future__ import annotations

import math

import pytest
import torch

from nil.models import build
from nil.tasks import make_task
from nil.train import PRESETS, TrainConfig, _lr_lambda, _param_groups, evaluate, train


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest (conftest)


@pytest.fixture(scope="module")
def ts_data():
    return make_task("ts-mlp", in_dim=8, out_dim=4, teacher_width=32, n_val=256, n_test=300).make(2000)


def _model(seed=0):
    return build("mlp", 2, 32, seed=seed, in_dim=8, out_dim=4)


CFG = TrainConfig(lr=3e-3, batch_size=64, warmup_steps=5, eval_every=10, step_factor=1.0)


def test_training_learns_and_restores_the_best_validation_state(ts_data):
    model = _model()
    before = evaluate(model, ts_data.test, torch.arange(300), "mse")
    r = train(model, ts_data, CFG, seed=0)
    assert r.base_steps == math.ceil(2000 / 64) == r.max_steps == r.steps
    assert r.test_loss < 0.8 * before
    best = min(h["val_loss"] for h in r.history)
    assert r.val_loss == pytest.approx(best, rel=1e-9)
    assert r.best_step == min(h["step"] for h in r.history if h["val_loss"] == best)
    # The reported test loss is that of the restored model, over the whole test split.
    assert evaluate(model, ts_data.test, torch.arange(300), "mse") == pytest.approx(r.test_loss, rel=1e-9)
    assert evaluate(model, ts_data.train, ts_data.train_eval_idx, "mse") == pytest.approx(r.train_loss, rel=1e-9)
    assert not model.training


def test_same_seed_same_run_and_the_global_rng_is_untouched(ts_data):
    state = torch.random.get_rng_state()
    a = train(_model(), ts_data, CFG, seed=1)
    b = train(_model(), ts_data, CFG, seed=1)
    c = train(_model(), ts_data, CFG, seed=2)
    assert torch.equal(state, torch.random.get_rng_state())
    assert a.history == b.history and a.test_loss == b.test_loss
    assert a.history != c.history


def test_step_budget_and_warmup_cap(ts_data):
    r = train(_model(), ts_data, CFG.replace(step_factor=1.5, warmup_steps=300, eval_every=100), seed=0)
    assert r.max_steps == math.ceil(1.5 * 32) == r.steps
    assert r.warmup_steps == 4  # warm-up longer than the run shrinks to a tenth of it
    r = train(_model(), ts_data, CFG.replace(max_steps=7), seed=0)
    assert r.steps == 7 and r.history[-1]["step"] == 7


def test_patience_stops_after_base_steps(ts_data):
    r = train(_model(), ts_data, CFG.replace(lr=0.0, patience=2, step_factor=3.0), seed=0)
    # base 32; evaluations at 10 (best), 20 and 30 stale but before base, 40 stops.
    assert r.stopped_early and r.steps == 40
    assert r.best_step == 10


def test_lr_schedule_warmup_then_cosine_to_zero():
    f = _lr_lambda(10, 110, 0.0)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0)
    assert f(10) == pytest.approx(1.0) and f(60) == pytest.approx(0.5) and f(110) == pytest.approx(0.0)
    assert _lr_lambda(10, 110, 0.1)(110) == pytest.approx(0.1)


def test_no_decay_group_holds_norms_embeddings_and_biases():
    model = build("gpt", 1, 16, seq_len=8)
    decay, rest = _param_groups(model, TrainConfig(no_decay_norm_emb=True))
    decayed = {id(p) for p in decay["params"]}
    assert id(model.blocks[0].fc1.weight) in decayed and id(model.head.weight) in decayed
    assert id(model.tok_emb.weight) not in decayed and id(model.ln_f.weight) not in decayed
    assert id(model.pos_emb) not in decayed
    assert rest["weight_decay"] == 0.0
    n = sum(p.numel() for p in decay["params"]) + sum(p.numel() for p in rest["params"])
    assert n == sum(p.numel() for p in model.parameters())
    assert len(_param_groups(model, PRESETS["reference-ntp"])) == 1  # the reference decays everything


def test_byte_lm_and_digits_train_end_to_end(tmp_path):
    for i in range(20):
        (tmp_path / f"{i}.txt").write_text("hello world, the quick brown fox. " * (20 + i))
    lm = make_task("bytes", corpus=str(tmp_path), seq_len=16, val_fraction=0.2, test_fraction=0.2).make(400)
    model = build("gpt", 1, 16, seed=0, **make_task("bytes", seq_len=16).model_kwargs("gpt"))
    r = train(model, lm, TrainConfig(lr=1e-2, batch_size=32, warmup_steps=2, eval_every=5), seed=0)
    assert r.test_loss < math.log(256) - 1.0  # well below the uniform byte distribution
    digits = make_task("digits").make(1500)
    cnn = build("cnn", 1, 16, seed=0, **make_task("digits").model_kwargs("cnn"))
    r = train(cnn, digits, TrainConfig(lr=1e-2, batch_size=64, warmup_steps=2, eval_every=10), seed=0)
    assert r.test_loss < math.log(10) - 0.5
