"""Building and checking the ``manifest.json`` of a capture (docs/shard-format.md) on the Python side.

The Rust core validates every manifest before it is written or read; this module turns the
writer's arguments (``layers``, ``dtype``, ``meta``) into that document and compares a stored
manifest with the arguments of a writer that resumes it.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import DTypeError, NilValueError, ShardError

FORMAT = "nil.shards"
FORMAT_VERSION = 1
DTYPES = ("float16", "bfloat16", "float32")
MODEL_KEYS = ("family", "depth", "width", "params", "budget", "ratio")
CAPTURE_KEYS = ("mode", "probes", "projection_seed", "token_stride")
_ALIASES = {"param_count": "params", "n_params": "params", "r_dw": "ratio", "ratio_dw": "ratio"}
_INT_KEYS = {"depth", "width", "params", "budget", "probes", "projection_seed", "token_stride"}

__all__ = ["new_manifest", "check_resume", "check_layers", "check_dtype"]


def check_dtype(dtype: str) -> str:
    """The shard dtype name, or DTypeError."""
    if dtype not in DTYPES:
        raise DTypeError(f"ShardWriter: dtype expected one of {DTYPES}, found {dtype!r}")
    return dtype


def check_layers(layers: Mapping[str, int]) -> dict[str, int]:
    """``{name: dim}`` within the format's limits (docs/shard-format.md §7), or NilValueError.

    Names are non-empty, at most ``MAX_NAME_BYTES`` UTF-8 bytes, free of control characters and
    not reserved by safetensors (``__metadata__``); dims are integers in 1..``MAX_DIM``; at most
    ``MAX_LAYERS`` layers.
    """
    from .. import _core

    if not layers:
        raise NilValueError("ShardWriter: layers expected at least one {name: dim}, found none")
    if len(layers) > _core.MAX_LAYERS:
        raise NilValueError(f"ShardWriter: {len(layers)} layers exceed nil's maximum of {_core.MAX_LAYERS}")
    out: dict[str, int] = {}
    for name, dim in layers.items():
        if not isinstance(name, str) or not name:
            raise NilValueError(f"ShardWriter: layer names must be non-empty strings, found {name!r}")
        if name in _core.RESERVED_NAMES:
            raise NilValueError(
                f"ShardWriter: layer name {name!r} is reserved by the safetensors format (it holds "
                "each file's metadata); choose another name"
            )
        if len(name.encode()) > _core.MAX_NAME_BYTES:
            raise NilValueError(
                f"ShardWriter: layer name {name[:40]!r}… is {len(name.encode())} bytes long; "
                f"the maximum is {_core.MAX_NAME_BYTES}"
            )
        if any(unicodedata.category(c) == "Cc" for c in name):
            raise NilValueError(f"ShardWriter: layer name {name!r} holds a control character")
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= int(dim) <= _core.MAX_DIM:
            raise NilValueError(
                f"ShardWriter: layer {name}: dim must be an integer in 1..{_core.MAX_DIM}, found {dim!r}"
            )
        out[name] = int(dim)
    return out


def _coerce(section: str, key: str, value: Any) -> Any:
    if value is None:
        return None
    try:
        if key in _INT_KEYS:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if key == "ratio":
            v = float(value)
            if not math.isfinite(v):
                raise ValueError
            return v
        if key in ("family", "mode"):
            return str(value)
    except (TypeError, ValueError):
        raise NilValueError(f"ShardWriter: meta {section}.{key}: expected a number, found {value!r}") from None
    return value


def split_meta(meta: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Splits writer ``meta`` into the manifest's model and capture sections and free-form extras.

    Known keys may be given flat (``depth=4``) or nested (``model={"depth": 4}``).
    """
    rest = dict(meta or {})
    model = dict(rest.pop("model", None) or {})
    capture = dict(rest.pop("capture", None) or {})
    for alias, key in _ALIASES.items():
        for d in (rest, model):
            if alias in d:
                d.setdefault(key, d.pop(alias))
    for k in MODEL_KEYS:
        if k in rest:
            model[k] = rest.pop(k)
    for k in CAPTURE_KEYS:
        if k in rest:
            capture[k] = rest.pop(k)
    capture.pop("dtype", None)
    model = {k: _coerce("model", k, v) for k, v in model.items()}
    capture = {k: _coerce("capture", k, v) for k, v in capture.items()}
    if model.get("ratio") is None and model.get("depth") and model.get("width"):
        model["ratio"] = model["depth"] / model["width"]
    try:
        json.dumps([model, capture, rest], allow_nan=False)
    except (TypeError, ValueError) as e:
        raise NilValueError(f"ShardWriter: meta must be JSON-serialisable (finite numbers): {e}") from None
    return model, capture, rest


def new_manifest(layers: Mapping[str, int], dtype: str, meta: Mapping[str, Any] | None) -> dict[str, Any]:
    """The manifest of a new, empty capture."""
    from .. import __version__

    model, capture, extra = split_meta(meta)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_by": f"nil {__version__}",
        "model": {k: model.get(k) for k in MODEL_KEYS} | {k: v for k, v in model.items() if k not in MODEL_KEYS},
        "capture": {"dtype": dtype}
        | {k: capture.get(k) for k in CAPTURE_KEYS}
        | {k: v for k, v in capture.items() if k not in CAPTURE_KEYS},
        "layers": [{"name": n, "dim": d} for n, d in layers.items()],
        "shards": [],
        "extra": extra,
    }


def resume_differences(stored: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    """What a writer's arguments (``wanted``) change in the capture it would resume (``stored``),
    one phrase each: layers (names, order, dims), the shard dtype, and every meta value given that
    the capture records differently (a value not given is not a difference)."""
    out: list[str] = []
    have = [(layer["name"], layer["dim"]) for layer in stored["layers"]]
    want = [(layer["name"], layer["dim"]) for layer in wanted["layers"]]
    if have != want:
        pairs = [(h, w) for h, w in zip(have, want) if h != w]
        if pairs:
            (hn, hd), (wn, wd) = pairs[0]
            out.append(f"layer {wn} (dim {wd}) given, the capture has layer {hn} (dim {hd})")
        if len(have) != len(want) or len(pairs) > 1:
            out.append(f"layers {[n for n, _ in want]} given, the capture has {[n for n, _ in have]}")
    if stored["capture"]["dtype"] != wanted["capture"]["dtype"]:
        out.append(f"dtype {wanted['capture']['dtype']} given, the capture holds {stored['capture']['dtype']}")
    for section in ("model", "capture", "extra"):
        for k, v in (wanted.get(section) or {}).items():
            if section == "capture" and k == "dtype":
                continue
            old = (stored.get(section) or {}).get(k)
            if v is not None and old != v:
                recorded = "no value" if old is None else repr(old)
                out.append(f"meta {section}.{k} = {v!r} given, the capture records {recorded}")
    return out


def check_resume(path: str, stored: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Raises ShardError naming every difference when a writer's arguments disagree with the
    capture it would resume."""
    diffs = resume_differences(stored, wanted)
    if diffs:
        raise ShardError(f"{path}: cannot resume: {'; '.join(diffs)} (write to a new directory, or pass the "
                         "capture's own layers, dtype and meta)")
