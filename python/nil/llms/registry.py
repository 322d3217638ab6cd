"""The shipped registry of small dense open LLMs: shapes, MMLU-Pro scores, protocols and sources.

Why: the paper's claim that LLMs near the efficient depth/width interval score better on MMLU-Pro
can only be checked on numbers whose origin is known. Every number in the four CSV files under
``nil/data/`` carries a source key resolved by ``sources()``; scores are kept per protocol and per
variant (base or instruct) because the same checkpoint scores differently under each harness.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from ..errors import FormatError, NilValueError
from .params import ParamCount, param_count

__all__ = [
    "LlmShape",
    "LlmScore",
    "Protocol",
    "shapes",
    "scores",
    "protocols",
    "sources",
    "shape",
]

DATA_FILES = ("llm_shapes.csv", "llm_scores.csv", "llm_protocols.csv", "llm_sources.csv")


@dataclass(frozen=True)
class LlmShape:
    """One architecture: depth, widths, vocabulary, parameter counts and where they come from.

    Integer fields are ``None`` where no source gave the number; ``params_reported_b`` is the count
    (billions) a source published, ``params_note_b`` the count the research note computed.
    """

    name: str
    family: str
    arch: str
    layers: int
    hidden: int
    ffn: int | None
    heads: int | None
    kv_heads: int | None
    head_dim: int | None
    vocab: int | None
    tied: bool | None
    params_reported_b: float
    params_reported_source: str
    nonemb_reported_b: float
    nonemb_reported_source: str
    params_note_b: float
    nonemb_note_b: float
    source: str
    note: str

    @property
    def ratio(self) -> float:
        """R_D/W = layers / hidden size (docs/method.md §4.1)."""
        return self.layers / self.hidden

    @property
    def aspect(self) -> float:
        """Kaplan's aspect ratio d_model / n_layer = 1 / R_D/W."""
        return self.hidden / self.layers

    @property
    def computed(self) -> ParamCount | None:
        """Parameter count from the shape, or None when a needed field has no source."""
        need = (self.ffn, self.heads, self.kv_heads, self.head_dim, self.vocab, self.tied)
        if any(v is None for v in need):
            return None
        return param_count(
            self.arch,
            layers=self.layers,
            hidden=self.hidden,
            ffn=int(self.ffn),  # type: ignore[arg-type]
            heads=int(self.heads),  # type: ignore[arg-type]
            kv_heads=int(self.kv_heads),  # type: ignore[arg-type]
            head_dim=int(self.head_dim),  # type: ignore[arg-type]
            vocab=int(self.vocab),  # type: ignore[arg-type]
            tied=bool(self.tied),
        )

    @property
    def params_b(self) -> float:
        """Best available total count in billions: computed from the shape, else reported, else NaN."""
        c = self.computed
        return c.total / 1e9 if c is not None else self.params_reported_b

    def to_dict(self) -> dict[str, Any]:
        """A plain dict with the derived ratio and counts added."""
        d = asdict(self)
        c = self.computed
        d["ratio"] = self.ratio
        d["aspect"] = self.aspect
        d["params_computed_b"] = c.total / 1e9 if c else math.nan
        d["nonemb_computed_b"] = c.non_embedding / 1e9 if c else math.nan
        d["params_b"] = self.params_b
        return d


@dataclass(frozen=True)
class LlmScore:
    """One MMLU-Pro score (percent) of one checkpoint under one protocol, with its source."""

    checkpoint: str
    shape: str
    variant: str
    protocol: str
    score: float
    source: str
    at_chance: bool
    note: str

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return asdict(self)


@dataclass(frozen=True)
class Protocol:
    """An evaluation protocol: scores are compared only within one protocol."""

    key: str
    name: str
    shots: str
    variant: str
    source: str
    description: str

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return asdict(self)


def _rows(name: str) -> Iterator[tuple[int, dict[str, str]]]:
    text = resources.files("nil").joinpath("data").joinpath(name).read_text(encoding="utf-8")
    reader = csv.DictReader(text.splitlines())
    for i, row in enumerate(reader, start=2):
        if None in row or any(v is None for v in row.values()):
            raise FormatError(f"nil/data/{name} line {i}: expected {len(reader.fieldnames or [])} columns")
        yield i, row


def _int(v: str, where: str) -> int | None:
    if v == "":
        return None
    try:
        return int(v)
    except ValueError as e:
        raise FormatError(f"{where}: expected an integer, found {v!r}") from e


def _float(v: str, where: str) -> float:
    if v == "":
        return math.nan
    try:
        return float(v)
    except ValueError as e:
        raise FormatError(f"{where}: expected a number, found {v!r}") from e


def _bool(v: str, where: str) -> bool | None:
    if v == "":
        return None
    if v in ("yes", "no"):
        return v == "yes"
    raise FormatError(f"{where}: expected yes/no, found {v!r}")


@lru_cache(maxsize=1)
def sources() -> dict[str, str]:
    """Source key → citation, for every key the other tables use."""
    return {r["key"]: r["citation"] for _, r in _rows("llm_sources.csv")}


@lru_cache(maxsize=1)
def protocols() -> dict[str, Protocol]:
    """Protocol key → description of the MMLU-Pro evaluation protocol."""
    return {r["key"]: Protocol(**r) for _, r in _rows("llm_protocols.csv")}


@lru_cache(maxsize=1)
def _shapes() -> tuple[LlmShape, ...]:
    out = []
    for i, r in _rows("llm_shapes.csv"):
        w = f"nil/data/llm_shapes.csv line {i} ({r['shape']})"
        layers, hidden = _int(r["layers"], w), _int(r["hidden"], w)
        if layers is None or hidden is None:
            raise FormatError(f"{w}: layers and hidden are required")
        out.append(
            LlmShape(
                name=r["shape"],
                family=r["family"],
                arch=r["arch"],
                layers=layers,
                hidden=hidden,
                ffn=_int(r["ffn"], w),
                heads=_int(r["heads"], w),
                kv_heads=_int(r["kv_heads"], w),
                head_dim=_int(r["head_dim"], w),
                vocab=_int(r["vocab"], w),
                tied=_bool(r["tied"], w),
                params_reported_b=_float(r["params_reported_b"], w),
                params_reported_source=r["params_reported_source"],
                nonemb_reported_b=_float(r["nonemb_reported_b"], w),
                nonemb_reported_source=r["nonemb_reported_source"],
                params_note_b=_float(r["params_note_b"], w),
                nonemb_note_b=_float(r["nonemb_note_b"], w),
                source=r["shape_source"],
                note=r["note"],
            )
        )
    return tuple(out)


def shapes(family: str | None = None) -> list[LlmShape]:
    """Every registered shape (optionally one family), in registry order."""
    return [s for s in _shapes() if family is None or s.family == family]


def shape(name: str) -> LlmShape:
    """The shape called ``name`` (e.g. ``"Qwen2.5-3B"``)."""
    for s in _shapes():
        if s.name == name:
            return s
    raise NilValueError(f"nil.llms: no shape named {name!r}; known: {', '.join(s.name for s in _shapes())}")


@lru_cache(maxsize=1)
def _scores() -> tuple[LlmScore, ...]:
    out = []
    for i, r in _rows("llm_scores.csv"):
        w = f"nil/data/llm_scores.csv line {i} ({r['checkpoint']}, {r['protocol']})"
        chance = _bool(r["at_chance"], w)
        out.append(
            LlmScore(
                checkpoint=r["checkpoint"],
                shape=r["shape"],
                variant=r["variant"],
                protocol=r["protocol"],
                score=_float(r["score"], w),
                source=r["source"],
                at_chance=bool(chance),
                note=r["note"],
            )
        )
    return tuple(out)


def scores(protocol: str | None = None, variant: str | None = None) -> list[LlmScore]:
    """MMLU-Pro scores, optionally of one protocol and/or one variant ("base" or "instruct")."""
    if protocol is not None and protocol not in protocols():
        raise NilValueError(
            f"nil.llms: unknown protocol {protocol!r}; expected one of {', '.join(protocols())}"
        )
    if variant not in (None, "base", "instruct"):
        raise NilValueError(f"nil.llms: variant must be 'base' or 'instruct', found {variant!r}")
    return [
        s
        for s in _scores()
        if (protocol is None or s.protocol == protocol) and (variant is None or s.variant == variant)
    ]
