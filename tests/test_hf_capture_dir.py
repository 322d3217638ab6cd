"""`nil capture --hf DIR --out CAPTURE`, `--dataset`, one block naming scheme, to_pandas and reprs
(issue 13, Conventions). Tiny random checkpoints written offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")

import nil  # noqa: E402
from nil.capture import detect_blocks  # noqa: E402
from nil.cli import main  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore")
FAST = ["--tokens", "48", "--seq-len", "16", "--probes", "2", "--project", "4"]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ckpt") / "gpt2"
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(vocab_size=97, n_embd=16, n_layer=2, n_head=2, n_positions=32)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    return path


@pytest.fixture
def text(tmp_path) -> Path:
    f = tmp_path / "text.txt"
    f.write_text("def f(x):\n    return x * 2\n" * 30)
    return f


def _run(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["capture", "--hf", *args])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_out_writes_a_capture_that_analyze_reproduces(gpt2, text, tmp_path, capsys):
    cap = tmp_path / "cap"
    rc, out, err = _run(capsys, str(gpt2), "--text", str(text), *FAST, "--out", str(cap), "--json")
    assert rc == 0, err
    report = json.loads(out)
    layers = report["capture"]["layers"]
    manifest = json.loads((cap / "manifest.json").read_text())
    assert manifest["model"] | {"budget": None} == {"family": "gpt2", "depth": 2, "width": 16,
                                                    "params": report["model"]["params"], "budget": None,
                                                    "ratio": 2 / 16}
    assert manifest["capture"] == {"dtype": "float32", "mode": "input", "probes": 2, "projection_seed": 0,
                                   "token_stride": 1}
    assert manifest["extra"]["loading"]["strict"] and manifest["extra"]["text"]["tokens"] == 48
    records = {r.layer: r for r in nil.analyze(cap)}
    assert list(records) == list(layers)
    for name, rec in layers.items():
        assert records[name].rows == rec["count"] == 48 * 2  # every token, every probe
        assert records[name].aofe_ratio == pytest.approx(rec["stats"]["aofe_ratio"], rel=1e-5)
        assert records[name].participation_ratio == pytest.approx(rec["stats"]["participation_ratio"], rel=1e-5)
    # A second run never appends to it.
    rc, _, err = _run(capsys, str(gpt2), "--text", str(text), *FAST, "--out", str(cap))
    assert rc == 1 and "--out" in err and "already exists" in err
    assert sum(r.rows for r in nil.analyze(cap)) == sum(r.rows for r in records.values())


def test_one_block_naming_scheme_everywhere(gpt2, text, tmp_path, capsys):
    from nil.hf import hf_report

    want = detect_blocks(transformers.GPT2LMHeadModel.from_pretrained(gpt2))[1]
    assert want == ["transformer.h.0", "transformer.h.1"]  # what transformers calls the modules
    rep = hf_report(gpt2, text=text, tokens=32, seq_len=16, probes=1, project=4, progress=False,
                    out=tmp_path / "cap")
    assert list(rep.capture.layers) == want == rep.model["blocks"]
    assert [rec.name for rec in rep.capture.layers.values()] == want
    assert all(n.startswith(tuple(f"{b}." for b in want)) for n in rep.capture.nfa)
    assert list(rep.to_pandas()["layer"]) == want
    assert [layer["name"] for layer in json.loads((tmp_path / "cap" / "manifest.json").read_text())["layers"]] == want
    rc, out, _ = _run(capsys, str(gpt2), "--text", str(text), *FAST)
    assert rc == 0
    table = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│ transformer")]
    assert table == want


def test_dataset_files_and_folders(gpt2, tmp_path, capsys):
    from nil.hf.text import token_windows

    docs = [f"document {i}: " + "abc " * (5 + i) for i in range(12)]
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": i, "body": d}) for i, d in enumerate(docs)))
    w = token_windows(None, 97, text_file=None, dataset=jsonl, text_column="body", tokens=64, seq_len=16, batch_size=2)
    joined = "".join(docs).encode()  # no tokenizer: bytes mod vocab, documents back to back
    ids = torch.cat([b["input_ids"] for b in w.batches]).flatten().tolist()
    assert ids == [b % 97 for b in joined[:64]] and w.tokens == 64
    assert w.documents == next(i + 1 for i in range(len(docs)) if len("".join(docs[: i + 1])) >= 64)
    assert "TokenWindows(64 tokens" in repr(w) and "tensor" not in repr(w)
    # A local dataset folder in the Hugging Face layout: the split's Parquet files only.
    folder = tmp_path / "ds" / "data"
    folder.mkdir(parents=True)
    pd.DataFrame({"text": docs[:6]}).to_parquet(folder / "train-00000-of-00001.parquet")
    pd.DataFrame({"text": ["zzzz " * 50]}).to_parquet(folder / "test-00000-of-00001.parquet")
    w = token_windows(None, 97, text_file=None, dataset=tmp_path / "ds", tokens=32, seq_len=16, batch_size=2)
    assert torch.cat([b["input_ids"] for b in w.batches]).flatten().tolist() == [b % 97 for b in joined[:32]]
    rc, out, err = _run(capsys, str(gpt2), "--dataset", str(tmp_path / "ds"), "--split", "test", *FAST, "--json")
    assert rc == 0, err
    assert json.loads(out)["text"]["documents"] == 1 and json.loads(out)["text"]["tokens"] == 48
    rc, _, err = _run(capsys, str(gpt2), "--dataset", str(jsonl), *FAST)
    assert rc == 1 and "no column 'text'" in err and "--text-column" in err
    rc, _, err = _run(capsys, str(gpt2), "--dataset", str(tmp_path / "ds"), "--split", "validation", *FAST)
    assert rc == 1 and "split 'validation'" in err


def test_records_convert_to_pandas_with_the_same_columns(tmp_path):
    from nil.capture import capture_agop

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    batches = [torch.randn(8, 6) for _ in range(2)]
    agops = capture_agop(model, batches, probes=2, progress=False)
    df = nil.to_pandas(agops)
    assert list(df["layer"]) == list(agops) and list(df.columns[:5]) == ["layer", "kind", "dim", "rows", "nonfinite"]
    assert df["aofe_ratio"].tolist() == [a.stats.aofe_ratio for a in agops.values()]
    rows = {n: torch.randn(40, a.dim) for n, a in agops.items()}
    with nil.ShardWriter(tmp_path / "cap", layers={n: a.dim for n, a in agops.items()}, dtype="float32") as w:
        w.write(rows)
    recs = nil.analyze(tmp_path / "cap")
    frame = nil.to_pandas(recs)
    assert list(frame["layer"]) == [r.layer for r in recs] and frame["rows"].tolist() == [40, 40]
    assert set(df.columns) - set(frame.columns) == {"kind"}  # one vocabulary for per-layer tables
    assert frame["participation_ratio"].tolist() == [r.participation_ratio for r in recs]


def test_interval_fit_converts_to_a_per_budget_frame():
    rng = np.random.default_rng(0)
    rows = [(n, r, 1 + (np.log(r) + 3) ** 2 / 10 + 0.01 * rng.standard_normal())
            for n in (1e5, 1e6) for r in np.geomspace(0.005, 0.2, 6) for _ in range(2)]
    fit = nil.fit_interval({"budget": [r[0] for r in rows], "ratio": [r[1] for r in rows],
                            "test_loss": [r[2] for r in rows]}, metrics=[], bootstrap=0, permutations=0)
    df = nil.to_pandas(fit)
    assert len(df) == len(fit.budgets) and df["budget"].tolist() == [b.budget for b in fit.budgets]
    assert all(not isinstance(v, (list, np.ndarray)) for v in df.iloc[0])  # scalars only
    assert any(c.startswith("smooth.") for c in df.columns)


def test_reprs_are_short(gpt2, text):
    from nil.hf import hf_report, load_local

    rep = hf_report(gpt2, text=text, tokens=32, seq_len=16, probes=1, project=4, progress=False)
    sup = nil.superposition_stats(np.random.default_rng(0).standard_normal((200, 64)))
    rec = next(iter(rep.capture.layers.values()))
    for obj in (sup, rep, rep.capture, rec, rep.input_embedding, load_local(gpt2, device="cpu", progress=False)):
        r = repr(obj)
        assert len(r) < 320 and "\n" not in r and "array(" not in r and "tensor(" not in r, r
    assert "64x64 float64" in repr(sup) and repr(rep).startswith("HfReport(")
