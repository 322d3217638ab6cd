"""A missing optional dependency is one line naming the pip command, exit 1, never a traceback
(issue 13, Installing). Each case runs the CLI in a subprocess whose ``sys.modules[name] = None``
makes ``import name`` fail exactly as an uninstalled package does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import REPO
from nil._optional import DIST, EXTRAS, MissingDependency, hint, require


def _cli_without(blocked: list[str], args: list[str], cwd=None) -> subprocess.CompletedProcess[str]:
    code = ("import sys\n"
            f"for name in {blocked!r}: sys.modules[name] = None\n"
            "from nil.cli import main\n"
            f"sys.exit(main({args!r}))\n")
    env = dict(os.environ, PYTHONPATH=str(REPO / "python") + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)


def _one_line(proc: subprocess.CompletedProcess[str], verb: str, package: str, extra: str) -> str:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"nil {verb}: error: ")
    assert lines[0].endswith(f"needs {package}: pip install '{DIST}[{extra}]'"), lines[0]
    return lines[0]


@pytest.mark.parametrize("blocked, package", [(["torch"], "torch"), (["transformers"], "transformers")])
def test_capture_without_torch_or_transformers(tmp_path, blocked, package):
    _one_line(_cli_without(blocked, ["capture", "--hf", str(tmp_path)]), "capture", package, "hf")


def test_sweep_plan_without_torch(tmp_path):
    proc = _cli_without(["torch"], ["sweep", "--preset", "demo", "--out", str(tmp_path / "s"), "--plan"])
    _one_line(proc, "sweep", "torch", "sweep")


def test_interval_plot_without_matplotlib(tmp_path):
    runs = tmp_path / "runs.csv"
    lines = ["budget,ratio,test_loss"] + [f"{n},{r},{1 + (r - 0.05) ** 2 + 0.001 * s}"
                                          for n in (1e5, 1e6) for r in (0.01, 0.02, 0.05, 0.1, 0.2) for s in (0, 1)]
    runs.write_text("\n".join(lines) + "\n")
    proc = _cli_without(["matplotlib"], ["interval", str(runs), "--bootstrap", "0", "--plot", str(tmp_path / "p")])
    _one_line(proc, "interval", "matplotlib", "plots")


def test_llms_plot_without_matplotlib(tmp_path):
    proc = _cli_without(["matplotlib"], ["llms", "--plot", str(tmp_path / "llms.png")])
    _one_line(proc, "llms", "matplotlib", "plots")


def test_dataset_parquet_without_pyarrow(tmp_path):
    pytest.importorskip("transformers")
    torch = pytest.importorskip("torch")
    import transformers

    torch.manual_seed(0)
    transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=50, n_embd=8, n_layer=1, n_head=2,
                                                         n_positions=16, bos_token_id=0,
                                                         eos_token_id=0)).save_pretrained(tmp_path / "m")
    (tmp_path / "d.parquet").write_bytes(b"PAR1")
    proc = _cli_without(["pyarrow"], ["capture", "--hf", str(tmp_path / "m"), "--dataset", str(tmp_path / "d.parquet"),
                                      "--tokens", "16", "--seq-len", "8"])
    _one_line(proc, "capture", "pyarrow", "tables")


def test_require_and_the_library_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependency, match=r"^to_pandas needs pandas: pip install 'neural-interaction-law\[tables\]'$"):
        import nil

        nil.to_pandas([{"layer": "a"}])
    assert isinstance(MissingDependency("x"), ImportError) and isinstance(MissingDependency("x"), nil.NilError)
    assert hint("sklearn.datasets", "the digits task") == f"the digits task needs scikit-learn: pip install '{DIST}[sweep]'"
    assert require("json", "a test").__name__ == "json"
    # Every extra named in a hint exists in pyproject.toml.
    text = (REPO / "pyproject.toml").read_text()
    for _, extra in EXTRAS.values():
        assert f"\n{extra} = [" in text, extra
    assert f'name = "{DIST}"' in text
    from importlib.metadata import version

    assert nil.__version__ == version(DIST)  # the version is looked up under the distribution's name
