"""Word error rate and transcript agreement."""

from __future__ import annotations

from typing import Sequence


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """Word-level edit distance and the reference's word count."""
    r, h = reference.split(), hypothesis.split()
    d = list(range(len(h) + 1))
    for i in range(1, len(r) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(h) + 1):
            cur = min(d[j] + 1, d[j - 1] + 1, prev + (r[i - 1] != h[j - 1]))
            prev, d[j] = d[j], cur
    return d[len(h)], len(r)


def word_error_rate(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    errors = [word_errors(r, h) for r, h in zip(references, hypotheses)]
    return sum(e for e, _ in errors) / max(1, sum(n for _, n in errors))


def word_agreement(targets: Sequence[str], stitched: Sequence[str]) -> float:
    """1 - WER of the stitched transcripts against the target network's own (at least 0)."""
    return max(0.0, 1.0 - word_error_rate(targets, stitched))
