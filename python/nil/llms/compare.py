"""The MMLU-Pro comparison: where each model's R_D/W lies relative to an interval, and whether the
distance to the interval goes with MMLU-Pro within one protocol.

Definitions (docs/llms.md): R = layers / hidden; for an interval [lo, hi] the position is
"inside" when lo ≤ R ≤ hi, else "below"/"above"; the distance is log10(lo / R) below,
log10(R / hi) above and 0 inside (decades of R outside the interval). The paper's claim predicts a
negative association of the distance with the score. Four associations are reported, each with n,
a 95% interval and permutation p-values: raw; controlling for log10 of the parameter count (partial
correlation); within families (family fixed effects, permutations within families); and within
families controlling for log10 params. With no interval, log10 R itself takes the distance's place.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import FormatError, NilValueError
from .corr import Correlation, correlate
from .registry import LlmScore, LlmShape, protocols, scores, shape, shapes

__all__ = ["Interval", "Position", "position", "read_interval", "ComparisonRow", "Comparison", "compare", "shape_table"]


@dataclass(frozen=True)
class Interval:
    """An interval of R_D/W = layers / hidden, with where it came from."""

    lo: float
    hi: float
    source: str = "given bounds"

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and 0 < self.lo <= self.hi):
            raise NilValueError(
                f"interval ({self.source}): expected finite bounds 0 < lo <= hi, found lo={self.lo}, hi={self.hi}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return {"lo": self.lo, "hi": self.hi, "source": self.source}


@dataclass(frozen=True)
class Position:
    """R relative to an interval: "inside", "below" or "above", and the log10 distance (≥ 0)."""

    where: str
    distance: float


def position(ratio: float, interval: Interval) -> Position:
    """Where ``ratio`` lies relative to ``interval`` and how many decades away it is."""
    if ratio < interval.lo:
        return Position("below", math.log10(interval.lo / ratio))
    if ratio > interval.hi:
        return Position("above", math.log10(ratio / interval.hi))
    return Position("inside", 0.0)


def read_interval(path: str | Path, key: str = "interval") -> Interval:
    """Reads an interval from ``nil interval --json`` output: ``{"interval": {"lo": .., "hi": ..}}``
    (``key="smooth_interval"`` for the smooth-fit interval that command also writes)."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise FormatError(f"{p}: expected the JSON written by `nil interval --json`, found invalid JSON ({e})") from e
    iv = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(iv, dict) or "lo" not in iv or "hi" not in iv:
        found = sorted(doc) if isinstance(doc, dict) else type(doc).__name__
        raise FormatError(f'{p}: expected an object with "{key}": {{"lo": ..., "hi": ...}}, found keys {found}')
    lo, hi = iv["lo"], iv["hi"]
    if iv.get("missing"):
        raise FormatError(f'{p}: "{key}" is not estimable (no fitted band at budgets {iv["missing"]}); '
                          "no interval to compare with")
    if iv.get("empty") is True:
        raise FormatError(f'{p}: "{key}" is empty (the per-budget bands do not intersect); no interval to compare with')
    if not isinstance(lo, (int, float)) or not isinstance(hi, (int, float)):
        raise FormatError(f"{p}: {key} bounds must be numbers, found lo={lo!r}, hi={hi!r}")
    return Interval(float(lo), float(hi), source=f"{p}" + ("" if key == "interval" else f" ({key})"))


@dataclass(frozen=True)
class ComparisonRow:
    """One scored checkpoint in the comparison."""

    name: str
    shape: str
    family: str
    variant: str
    layers: int
    hidden: int
    ratio: float
    position: str
    distance: float
    params_b: float
    score: float
    at_chance: bool
    used: bool
    source: str
    shape_source: str
    note: str

    def to_dict(self) -> dict[str, Any]:
        """A plain dict."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Comparison:
    """The rows of one protocol and variant and the associations of score with distance."""

    protocol: str
    variant: str
    interval: Interval | None
    x_name: str
    rows: list[ComparisonRow]
    associations: list[Correlation]
    families: list[Correlation]
    excluded: dict[str, int] = field(default_factory=dict)

    @property
    def verdict(self) -> str:
        """One sentence a reader can check against the table."""
        used = [r for r in self.rows if r.used]
        if len(used) < 4:
            return f"n = {len(used)}: too few models in this protocol for any conclusion."
        if self.interval is not None and len({r.distance for r in used}) < 2:
            return "every model sits at the same distance from the interval: no comparison is possible."
        raw = self.associations[0]
        lead = "the paper's claim predicts a negative correlation" if self.interval else "no interval given; association with log10 R"
        parts = []
        for c in self.associations:
            if not math.isfinite(c.pearson):
                parts.append(f"{c.label}: undefined (n = {c.n})")
                continue
            sig = "CI excludes 0" if c.ci_excludes_zero else "CI includes 0"
            parts.append(f"{c.label}: r = {c.pearson:+.2f} [{c.ci_lo:+.2f}, {c.ci_hi:+.2f}], {sig}, perm p = {c.p_pearson:.3g}")
        support = [c for c in self.associations if c.ci_excludes_zero and c.pearson < 0]
        if self.interval is None:
            tail = ""
        elif not support:
            tail = " No association survives at the 95% level in the direction the claim predicts."
        else:
            tail = f" Negative and excluding 0: {', '.join(c.label for c in support)}."
        return f"n = {raw.n}; {lead}. " + "; ".join(parts) + "." + tail

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``nil llms --json``'s "comparison" field."""
        return {
            "protocol": self.protocol,
            "protocol_info": protocols()[self.protocol].to_dict(),
            "variant": self.variant,
            "interval": self.interval.to_dict() if self.interval else None,
            "x": self.x_name,
            "y": "MMLU-Pro score (%)",
            "rows": [r.to_dict() for r in self.rows],
            "associations": [c.to_dict() for c in self.associations],
            "families": [c.to_dict() for c in self.families],
            "excluded": dict(self.excluded),
            "verdict": self.verdict,
        }


def _row(s: LlmScore, sh: LlmShape, interval: Interval | None, used: bool) -> ComparisonRow:
    pos = position(sh.ratio, interval) if interval else Position("", math.log10(sh.ratio))
    return ComparisonRow(
        name=s.checkpoint,
        shape=sh.name,
        family=sh.family,
        variant=s.variant,
        layers=sh.layers,
        hidden=sh.hidden,
        ratio=sh.ratio,
        position=pos.where,
        distance=pos.distance,
        params_b=sh.params_b,
        score=s.score,
        at_chance=s.at_chance,
        used=used,
        source=s.source,
        shape_source=sh.source,
        note=s.note,
    )


def compare(
    protocol: str = "oll-raw",
    variant: str = "base",
    interval: Interval | None = None,
    *,
    include_chance: bool = False,
    permutations: int = 10_000,
    seed: int = 0,
) -> Comparison:
    """Correlates MMLU-Pro under ``protocol`` with the distance to ``interval`` (see module doc).

    Models scored at chance (flagged in the registry) are listed but left out unless
    ``include_chance``; models without a parameter count are left out of the controlled
    associations only.
    """
    rows: list[ComparisonRow] = []
    excluded: Counter[str] = Counter()
    for s in scores(protocol, variant):
        used = (include_chance or not s.at_chance) and math.isfinite(s.score)
        if not used:
            excluded["at chance" if s.at_chance else "no score"] += 1
        rows.append(_row(s, shape(s.shape), interval, used))
    used_rows = [r for r in rows if r.used]
    x_name = "log10 distance to interval" if interval else "log10 R_D/W"
    x = np.array([r.distance for r in used_rows])
    y = np.array([r.score for r in used_rows])
    fam = np.array([r.family for r in used_rows])
    logn = np.array([math.log10(r.params_b) if r.params_b > 0 else math.nan for r in used_rows])
    has_n = np.isfinite(logn)
    kw: dict[str, Any] = {"permutations": permutations, "seed": seed}
    multi = Counter(fam.tolist())
    in_multi = np.array([multi[f] >= 2 for f in fam], dtype=bool)
    m = in_multi & has_n
    associations = [
        correlate(x, y, label="raw", **kw),
        correlate(x[has_n], y[has_n], label="| log10 params", covariates={"log10_params": logn[has_n]}, **kw),
        correlate(x[in_multi], y[in_multi], label="within families", groups=fam[in_multi], **kw),
        correlate(
            x[m], y[m], label="within families | log10 params", groups=fam[m], covariates={"log10_params": logn[m]}, **kw
        ),
    ]
    families = [
        correlate(x[fam == f], y[fam == f], label=f, **kw) for f in sorted(multi) if multi[f] >= 3
    ]
    return Comparison(protocol, variant, interval, x_name, rows, associations, families, dict(excluded))


def shape_table(interval: Interval | None = None) -> list[dict[str, Any]]:
    """Every registered shape with its ratio, position relative to ``interval`` and counts."""
    out = []
    for sh in shapes():
        d = sh.to_dict()
        if interval is not None:
            pos = position(sh.ratio, interval)
            d["position"], d["distance"] = pos.where, pos.distance
        out.append(d)
    return out


