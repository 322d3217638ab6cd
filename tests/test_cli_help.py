"""Every verb's --help fits the terminal (at most 100 columns) and keeps its examples' layout."""

from __future__ import annotations

import argparse

import pytest

from nil.cli import build_parser


def _verbs(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("columns", [80, 100, 240])
def test_help_of_every_verb_fits(monkeypatch, columns):
    monkeypatch.setenv("COLUMNS", str(columns))
    parser = build_parser()
    limit = min(columns, 100)
    texts = {"nil": parser.format_help()} | {v: p.format_help() for v, p in _verbs(parser).items()}
    assert {"sweep", "llms", "capture", "interval"} <= set(texts)
    for verb, text in texts.items():
        long = [line for line in text.splitlines() if len(line) > limit]
        assert not long, f"nil {verb} --help at COLUMNS={columns}: {long[0][:120]!r}"


def test_epilog_examples_keep_their_alignment(monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    text = _verbs(build_parser())["llms"].format_help()
    assert "\n  nil llms --lo 0.01 --hi 0.02                  # shapes" in text
    # a long description is wrapped into several lines, not cut
    assert "Prints R_D/W = layers/hidden" in text and "within families." in text
