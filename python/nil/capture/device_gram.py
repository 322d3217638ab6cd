"""On-device Gram accumulation: per update a GᵀG product in float32 (float64 on CPU) added into a
float64 accumulator on the same device; handed over as an exact-sum ``nil.AgopAccumulator`` at the end.

Rows holding NaN or infinity are zeroed and counted (never silently kept). Counts stay on the
device until the end, so accumulating never forces a host synchronisation.
"""

from __future__ import annotations

import torch

from ..accumulator import AgopAccumulator

__all__ = ["DeviceGram", "product_dtype"]


def product_dtype(row_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the GᵀG product for rows of ``row_dtype``: float32 at least (bfloat16 and
    float16 products are exact in float32), float64 for float64 rows."""
    return torch.promote_types(row_dtype, torch.float32)


class DeviceGram:
    """Σ g gᵀ of rows on ``device``, a float64 (dim × dim) sum plus row and non-finite counts."""

    def __init__(self, dim: int, device: torch.device, row_dtype: torch.dtype) -> None:
        self.dim = int(dim)
        self.device = device
        self.product = product_dtype(row_dtype)
        self.sum = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        self.count = torch.zeros((), dtype=torch.int64, device=device)
        self.nonfinite = torch.zeros((), dtype=torch.int64, device=device)

    def add_rows(self, rows: torch.Tensor) -> None:
        """Adds Σ g gᵀ over the rows (n × dim); non-finite rows are zeroed and counted."""
        r = rows.to(self.product)
        bad = ~torch.isfinite(r).all(dim=1)
        r = r.masked_fill(bad.unsqueeze(1), 0.0)
        self.sum += (r.t() @ r).to(torch.float64)
        nbad = bad.sum()
        self.count += r.shape[0] - nbad
        self.nonfinite += nbad

    def add_gram(self, gram: torch.Tensor, rows: int | torch.Tensor, nonfinite: int | torch.Tensor = 0) -> None:
        """Adds a product formed elsewhere (already a sum over ``rows`` rows)."""
        self.sum += gram.to(torch.float64)
        self.count += rows
        self.nonfinite += nonfinite

    def merge(self, other: DeviceGram) -> None:
        """Adds another device Gram of the same dim."""
        self.sum += other.sum.to(self.device)
        self.count += other.count.to(self.device)
        self.nonfinite += other.nonfinite.to(self.device)

    def to_accumulator(self) -> AgopAccumulator:
        """The exact sum as a mergeable ``nil.AgopAccumulator`` (symmetrised)."""
        return AgopAccumulator.from_sum(
            self.sum.cpu().numpy(), int(self.count.item()), int(self.nonfinite.item())
        )
