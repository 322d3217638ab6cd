"""`nil llms --plot`: every point is named and no two names overlap, or cover a marker."""

from __future__ import annotations

import itertools

import pytest

pytest.importorskip("matplotlib")

from nil.llms import Interval, compare  # noqa: E402
from nil.llms.plot import _figure  # noqa: E402


@pytest.mark.parametrize("protocol,variant", [("oll-raw", "base"), ("qwen-base-5shot", "base"), ("tiger-5shot-cot", "instruct")])
def test_labels_do_not_overlap(protocol, variant):
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    comp = compare(protocol, variant, Interval(0.01, 0.02, source="test"), permutations=50)
    fig, ax, _ = _figure(comp)
    try:
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        named = [n for t in ax.texts for n in t.get_text().split(" / ")]
        assert sorted(named) == sorted(r.name for r in comp.rows)
        boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]  # the text without its leader line
        for (ta, a), (tb, b) in itertools.combinations(zip(ax.texts, boxes), 2):
            assert not a.overlaps(b), (ta.get_text(), tb.get_text())
        frame = ax.get_window_extent(renderer)
        marker = 3.0 * fig.dpi / 72  # half of the 6.5-pt marker
        for r in comp.rows:
            x, y = ax.transData.transform((r.ratio, r.score))
            for t, b in zip(ax.texts, boxes):
                hit = b.x0 < x + marker and x - marker < b.x1 and b.y0 < y + marker and y - marker < b.y1
                assert not hit, (t.get_text(), r.name)
        for b in boxes:
            assert frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1
    finally:
        plt.close(fig)
