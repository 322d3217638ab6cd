"""``interaction_report``: in one call, what a runs table needs about a trained model's interaction:
per-layer input AGOPs, the projected output AGOP, WᵀW superposition statistics of the input
embedding and of each block's first linear map, and the NFA correlation of each such linear's WᵀW
with its input AGOP (docs/method.md §2, §8 R1, R2, R5, R6)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from torch import nn

from ..nfa import NfaCorrelation, NfaPowerFit, fit_nfa_power, nfa_correlation
from ..superposition import SuperpositionStats, superposition_stats
from .api import capture_agop
from .input_agop import RowSink
from .layers import detect_blocks, first_linear, linear_weight, select_layers
from .record import LayerAgop

__all__ = ["InteractionReport", "interaction_report"]


@dataclass(repr=False)
class InteractionReport:
    """Everything ``interaction_report`` measured on one model.

    ``layers``: input AGOP of each block (or each linear when no block family is detected), in
    order; ``linears``: input AGOP of each block's first linear map (the NFA pairs);
    ``output``: the projected output AGOP; ``embedding``: superposition statistics of the input
    embedding (None without an ``nn.Embedding``); ``wtw``: superposition statistics of each NFA
    linear's weight; ``nfa`` / ``nfa_fit``: its WᵀW against its input AGOP at γ = 1 and the best γ.
    """

    layers: dict[str, LayerAgop]
    linears: dict[str, LayerAgop]
    output: LayerAgop
    embedding: SuperpositionStats | None
    embedding_name: str | None
    wtw: dict[str, SuperpositionStats]
    nfa: dict[str, NfaCorrelation]
    nfa_fit: dict[str, NfaPowerFit]
    settings: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        names = list(self.layers)
        span = f"{names[0]!r} .. {names[-1]!r}" if len(names) > 1 else ", ".join(repr(n) for n in names)
        return (f"InteractionReport({len(names)} layers [{span}], {len(self.nfa)} NFA pairs, "
                f"output k={self.output.dim}, embedding={self.embedding_name!r})")

    def block_linear(self, layer: str) -> str | None:
        """The first linear map inside ``layer`` whose WᵀW the NFA statistics compare (or None)."""
        return next((n for n in self.linears if n.startswith(layer + ".")), None)

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per layer: ``LayerAgop.to_row()`` plus the NFA statistics of its first
        linear map (``nfa_linear``, ``nfa_pearson``, ``nfa_pearson_offdiag``, ``nfa_cosine``,
        ``nfa_gamma``, ``wtw_aofe_ratio``; NaN without one)."""
        nan = float("nan")
        out = []
        for name, rec in self.layers.items():
            lin = self.block_linear(name)
            c, f, w = self.nfa.get(lin or ""), self.nfa_fit.get(lin or ""), self.wtw.get(lin or "")
            out.append(rec.to_row() | {
                "nfa_linear": lin,
                "nfa_pearson": c.pearson_all if c else nan,
                "nfa_pearson_offdiag": c.pearson_offdiag if c else nan,
                "nfa_cosine": c.cosine if c else nan,
                "nfa_gamma": f.gamma if f else nan,
                "wtw_aofe_ratio": w.wtw.aofe_ratio if w else nan,
            })
        return out

    def to_pandas(self) -> Any:
        """``rows()`` as a pandas DataFrame, one row per layer (needs pandas: the ``tables`` extra)."""
        from ..frames import frame

        return frame(self.rows())

    def to_dict(self) -> dict[str, Any]:
        """A nested plain dict (no matrices)."""
        return {
            "settings": dict(self.settings),
            "layers": {n: r.to_dict() for n, r in self.layers.items()},
            "linears": {n: r.to_dict() for n, r in self.linears.items()},
            "output": self.output.to_dict(),
            "embedding_name": self.embedding_name,
            "embedding": None if self.embedding is None else self.embedding.to_dict(),
            "wtw": {n: s.to_dict() for n, s in self.wtw.items()},
            "nfa": {n: c.to_dict() for n, c in self.nfa.items()},
            "nfa_fit": {n: f.to_dict() for n, f in self.nfa_fit.items()},
            "columns": self.to_columns(),
        }

    def to_columns(self) -> dict[str, float]:
        """Flat summary columns for a runs table (docs/capture.md lists them); NaN where undefined."""
        nan = float("nan")
        cols: dict[str, float] = {"n_layers": float(len(self.layers))}
        stats = [r.stats for r in self.layers.values()]
        for key, attr in (
            ("aofe_ratio", "aofe_ratio"),
            ("wmc2", "weighted_mean_cos2"),
            ("effective_rank", "effective_rank"),
            ("participation_ratio", "participation_ratio"),
        ):
            cols[f"agop_{key}_mean"] = _mean([getattr(s, attr) for s in stats])
        for i, s in enumerate(stats):
            cols[f"agop_aofe_ratio_L{i}"] = float(s.aofe_ratio)
            cols[f"agop_wmc2_L{i}"] = float(s.weighted_mean_cos2)
        o = self.output.stats
        cols.update(
            out_aofe_ratio=o.aofe_ratio,
            out_wmc2=o.weighted_mean_cos2,
            out_participation_ratio=o.participation_ratio,
            out_effective_rank=o.effective_rank,
            out_gaussian_rank=o.gaussian_rank,
            out_excess_over_rotation=o.excess_over_rotation,
        )
        e = self.embedding
        cols.update(
            wtw_emb_aofe_ratio=e.wtw.aofe_ratio if e else nan,
            wtw_emb_wmc2=e.wtw.weighted_mean_cos2 if e else nan,
            wtw_emb_participation_ratio=e.wtw.participation_ratio if e else nan,
            wtw_emb_null_aofe_ratio=e.null_wtw_aofe_ratio if e else nan,
        )
        cols["wtw_lin_aofe_ratio_mean"] = _mean([s.wtw.aofe_ratio for s in self.wtw.values()])
        cols["wtw_lin_wmc2_mean"] = _mean([s.wtw.weighted_mean_cos2 for s in self.wtw.values()])
        cols["nfa_pearson_mean"] = _mean([c.pearson_all for c in self.nfa.values()])
        cols["nfa_pearson_offdiag_mean"] = _mean([c.pearson_offdiag for c in self.nfa.values()])
        cols["nfa_cosine_mean"] = _mean([c.cosine for c in self.nfa.values()])
        cols["nfa_gamma_mean"] = _mean([f.gamma for f in self.nfa_fit.values()])
        cols["nfa_spectral_gamma_mean"] = _mean([f.spectral_gamma for f in self.nfa_fit.values()])
        cols["agop_nonfinite"] = float(sum(r.nonfinite for r in self.layers.values()))
        return {k: float(v) for k, v in cols.items()}


def _mean(values: Sequence[float]) -> float:
    """Mean over the finite values; NaN when there are none."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(finite)) if finite else float("nan")


def _input_embedding(model: nn.Module) -> tuple[str | None, nn.Embedding | None]:
    getter = getattr(model, "get_input_embeddings", None)
    if callable(getter):
        emb = getter()
        if isinstance(emb, nn.Embedding):
            for name, module in model.named_modules():
                if module is emb:
                    return name, emb
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding):
            return name, module
    return None, None


class _OnlyLayers:
    """A sink that passes on the rows of ``names`` only (the blocks, not the NFA linears)."""

    def __init__(self, sink: RowSink, names: Sequence[str]) -> None:
        self.sink = sink
        self.names = list(names)

    def write(self, rows: dict[str, Any]) -> Any:
        return self.sink.write({n: rows[n] for n in self.names if n in rows})


def interaction_report(
    model: nn.Module,
    batches: Iterable[Any],
    *,
    layers: str | Sequence[str] | None = None,
    project: int = 64,
    probes: int | Literal["exact"] = 8,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
    micro_batch: int | None = None,
    token_stride: int = 1,
    sink: RowSink | None = None,
) -> InteractionReport:
    """Input AGOPs of every block (and of each block's first linear), the projected output AGOP,
    WᵀW statistics and NFA correlations of ``model`` on ``batches`` (iterated twice).

    Input AGOPs use ``probes`` Gaussian probes on y = P·(last-position outputs) with P the same
    seeded k×V projection (k = ``project``) as the exact output AGOP, which differentiates with
    respect to the first block's input (a Transformer's embeddings). ``sink`` (e.g. a
    ``nil.ShardWriter`` over the blocks) receives the rows of the blocks' input AGOPs, the rows
    ``layers`` averages, so ``nil.analyze`` of the capture reproduces them.
    """
    data = list(batches)
    selected = select_layers(model, layers)
    _, blocks = detect_blocks(model)
    block_names = {layer.name for layer in selected} & set(blocks)
    if block_names:
        nfa_linears = [n for b in [l.name for l in selected if l.name in block_names]
                       if (n := first_linear(model, b)) is not None]
    else:
        nfa_linears = [l.name for l in selected if l.kind != "input"]
    names = [l.name for l in selected]
    capture_names = names + [n for n in nfa_linears if n not in names]
    inputs = capture_agop(
        model, data, layers=capture_names, mode="input", probes=probes, project=project,
        token_stride=token_stride, seed=seed, device=device, progress=progress, micro_batch=micro_batch,
        sink=None if sink is None else _OnlyLayers(sink, names),
    )
    output = capture_agop(
        model, data, layers=[names[0]], mode="output", project=project, seed=seed, device=device,
        progress=progress, micro_batch=micro_batch,
    )["output"]
    emb_name, emb = _input_embedding(model)
    embedding = superposition_stats(emb.weight.detach().float()) if emb is not None else None
    modules = dict(model.named_modules())
    wtw: dict[str, SuperpositionStats] = {}
    nfa: dict[str, NfaCorrelation] = {}
    nfa_fit: dict[str, NfaPowerFit] = {}
    for name in nfa_linears:
        w = linear_weight(modules[name]).float()
        sup = superposition_stats(w)
        wtw[name] = sup
        agop = inputs[name].matrix
        if sup.wtw_matrix.shape == agop.shape:
            nfa[name] = nfa_correlation(sup.wtw_matrix, agop, 1.0)
            nfa_fit[name] = fit_nfa_power(sup.wtw_matrix, agop)
    settings = {
        "project": project, "probes": probes, "seed": seed, "token_stride": token_stride,
        "micro_batch": micro_batch, "blocks": bool(block_names),
    }
    return InteractionReport(
        layers={n: inputs[n] for n in names},
        linears={n: inputs[n] for n in nfa_linears},
        output=output,
        embedding=embedding,
        embedding_name=emb_name,
        wtw=wtw,
        nfa=nfa,
        nfa_fit=nfa_fit,
        settings=settings,
    )
