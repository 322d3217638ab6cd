"""nil.tasks as a user calls them: determinism, training-only normalisation, corpus splits, digits,
the bottleneck closed forms, and the losses against plain references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nil.errors import NilValueError
from nil.tasks import (
    Bottleneck,
    load_corpus,
    loss_sum,
    make_task,
    parse_task_options,
)
from nil.tasks.bottleneck import input_agop, output_agop, sparse_points
from nil.tasks.corpus import default_corpus_files


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: one thread is fastest (conftest)


def test_teacher_student_is_deterministic_and_leaves_the_global_rng_alone():
    state = torch.random.get_rng_state()
    for teacher in ("mlp", "gpt"):
        t = make_task(f"ts-{teacher}", in_dim=8, out_dim=4, teacher_width=16, n_val=50, n_test=60)
        a, b = t.make(100), t.make(100)
        assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
        assert torch.equal(a.val_idx, b.val_idx) and torch.equal(a.capture_idx, b.capture_idx)
        c = make_task(f"ts-{teacher}", in_dim=8, out_dim=4, teacher_width=16, n_val=50, n_test=60, data_seed=1).make(100)
        assert not torch.equal(a.train.y, c.train.y)
    assert torch.equal(state, torch.random.get_rng_state())


def test_targets_are_normalised_with_training_statistics_only():
    t = make_task("ts-mlp", in_dim=6, out_dim=3, teacher_width=16, n_val=40, n_test=40)
    a, b = t.make(50), t.make(500)
    for d in (a, b):
        np.testing.assert_allclose(d.train.y.mean(0).numpy(), 0, atol=1e-5)
        np.testing.assert_allclose(d.train.y.std(0).numpy(), 1, atol=1e-5)
    assert torch.equal(a.val.x, b.val.x)
    ma, sa = torch.tensor(a.info["target_mean"]), torch.tensor(a.info["target_std"])
    mb, sb = torch.tensor(b.info["target_mean"]), torch.tensor(b.info["target_std"])
    assert not torch.allclose(ma, mb)
    # The validation targets move with the training statistics, so they were normalised by them.
    torch.testing.assert_close(a.val.y * sa + ma, b.val.y * sb + mb, rtol=1e-4, atol=1e-4)
    assert a.val.y.abs().mean() > 0.1


def _write_corpus(root, n_files=40):
    for i in range(n_files):
        (root / f"f{i:03d}.txt").write_bytes(bytes((i * 7 + j) % 251 for j in range(300 + 13 * i)))


def test_byte_lm_windows_and_hash_split(tmp_path):
    _write_corpus(tmp_path)
    t = make_task("bytes", corpus=str(tmp_path), seq_len=16, val_fraction=0.2, test_fraction=0.2, val_windows=8)
    d = t.make(30)
    x, y = d.train.batch(torch.arange(5))
    assert x.shape == (5, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])  # targets are the next bytes
    assert len(d.val_idx) == 8 and d.n_train_samples == 30
    assert torch.equal(d.val_idx, t.make(30).val_idx)
    c1 = load_corpus(str(tmp_path), 0.2, 0.2)
    assert c1.n_files == 40 and len(c1.val) > 0 and len(c1.test) > 0
    # A new file never moves existing files between splits: the old val stream is a prefix-ordered subset.
    (tmp_path / "zzz_new.txt").write_bytes(b"x" * 500)
    c2 = load_corpus.__wrapped__(str(tmp_path), 0.2, 0.2)
    for old, new in ((c1.val, c2.val), (c1.test, c2.test)):
        assert bytes(old) in bytes(new) or bytes(old) == bytes(new)


def test_byte_lm_corpus_glob_reads_only_matching_files(tmp_path):
    (tmp_path / "c" / "sub").mkdir(parents=True)
    _write_corpus(tmp_path / "c")
    (tmp_path / "c" / "sub" / "lib.so").write_bytes(bytes(range(256)) * 50)  # a binary beside the sources
    (tmp_path / "c" / "sub" / "__pycache__").mkdir()
    (tmp_path / "c" / "sub" / "__pycache__" / "f000.txt").write_bytes(b"cached" * 100)
    everything = load_corpus(str(tmp_path / "c"), 0.2, 0.2)
    text = load_corpus(str(tmp_path / "c"), 0.2, 0.2, pattern="*.txt")
    assert everything.n_files == 42 and text.n_files == 40 and text.source.endswith("**/*.txt")
    assert len(text.train) + len(text.val) + len(text.test) < len(everything.train) + len(everything.val) + len(everything.test)
    d = make_task("bytes", corpus=str(tmp_path / "c"), corpus_glob="*.txt", seq_len=16, val_fraction=0.2,
                  test_fraction=0.2).make(10)
    assert d.info["corpus_files"] == 40 and d.info["fingerprint"] == text.fingerprint != everything.fingerprint
    with pytest.raises(NilValueError, match="no files"):
        load_corpus(str(tmp_path / "c"), 0.2, 0.2, pattern="*.rs")
    with pytest.raises(NilValueError, match="give corpus=DIR"):
        make_task("bytes", corpus_glob="*.py").make(4)


def test_byte_lm_single_file_and_errors(tmp_path):
    f = tmp_path / "one.txt"
    f.write_bytes(bytes(range(256)) * 40)
    c = load_corpus(str(f), 0.1, 0.1)
    assert len(c.train) + len(c.val) + len(c.test) == 256 * 40
    assert bytes(c.train) + bytes(c.val) + bytes(c.test) == f.read_bytes()
    with pytest.raises(NilValueError, match="does not exist"):
        load_corpus(str(tmp_path / "missing"))
    small = tmp_path / "small.txt"
    small.write_bytes(b"abc" * 30)
    with pytest.raises(NilValueError, match="fewer than one window"):
        make_task("bytes", corpus=str(small), seq_len=64).make(4)


def test_default_corpus_is_the_stdlib_without_site_packages():
    root, files = default_corpus_files()
    assert len(files) > 100 and files == sorted(files)
    assert all("site-packages" not in f.parts for f in files)
    assert any(f.name == "os.py" for f in files)


def test_digits_split_and_normalisation():
    t = make_task("digits")
    d = t.make(500)
    n_tr, n_va, n_te = d.info["split_sizes"]
    assert n_tr + n_va + n_te == 1797 and len(d.train) == n_tr
    assert abs(float(d.train.x.mean())) < 1e-5 and abs(float(d.train.x.std()) - 1) < 1e-4
    assert set(d.train.y.unique().tolist()) == set(range(10))
    assert t.model_kwargs("cnn") == {"in_ch": 1, "patch": 2, "out_dim": 10}
    with pytest.raises(NilValueError, match="supports the model families"):
        t.model_kwargs("gpt")


def test_task_options_from_strings():
    assert parse_task_options("ts-mlp", {"in_dim": "8", "val_subset": "none", "teacher": "gpt"}) == {
        "in_dim": 8, "val_subset": None, "teacher": "gpt"}
    with pytest.raises(NilValueError, match="no option"):
        parse_task_options("digits", {"depth": "3"})
    with pytest.raises(NilValueError, match="unknown task"):
        make_task("cifar")


def test_bottleneck_closed_forms_match_autograd_jacobians():
    task = Bottleneck(data_size=30, dim=12, hidden=2, density=0.4, n_test=50, n_val=10)
    model = task.build_model(seed=0)
    with torch.no_grad():
        model.b.copy_(torch.linspace(-0.05, 0.05, 12))
    x = task.make().test.x.double()
    model = model.double()
    jac = torch.stack([torch.autograd.functional.jacobian(model, xi) for xi in x])  # (n, out, in)
    torch.testing.assert_close(output_agop(model, x), (jac @ jac.transpose(1, 2)).mean(0))
    torch.testing.assert_close(input_agop(model, x), (jac.transpose(1, 2) @ jac).mean(0))
    pts = sparse_points(200, 50, 0.05, torch.Generator().manual_seed(0))
    norms = pts.norm(dim=1)
    assert torch.all(((norms - 1).abs() < 1e-5) | (norms == 0)) and bool((norms == 0).any())
    # One fixed test set for every data size (METHOD §7 fix 24).
    assert torch.equal(Bottleneck(data_size=5, dim=12).make().test.x, Bottleneck(data_size=9, dim=12).make().test.x)


def test_losses_against_plain_formulas():
    g = torch.Generator().manual_seed(0)
    pred, target = torch.randn(4, 3, generator=g), torch.randn(4, 3, generator=g)
    s, c = loss_sum("mse", pred, target)
    assert c == 12 and float(s) == pytest.approx(float(((pred - target) ** 2).sum()), rel=1e-6)
    logits, labels = torch.randn(5, 7, generator=g), torch.tensor([0, 6, 2, 2, 1])
    s, c = loss_sum("ce", logits, labels)
    ref = -np.log(np.exp(logits.numpy())[np.arange(5), labels.numpy()] / np.exp(logits.numpy()).sum(1)).sum()
    assert c == 5 and float(s) == pytest.approx(ref, rel=1e-5)
    s, c = loss_sum("lm", torch.randn(2, 3, 7, generator=g), torch.randint(0, 7, (2, 3), generator=g))
    assert c == 6
    s, c = loss_sum("recon", torch.tensor([[-1.0, 2.0]]), torch.tensor([[1.0, 0.0]]))
    assert c == 1 and float(s) == pytest.approx(4.0)
