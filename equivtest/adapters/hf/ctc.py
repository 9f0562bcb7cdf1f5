"""Greedy CTC decoding, and the position map it gives between a recogniser and a text network.

A CTC recogniser emits each character at one frame. So its transcript, tokenised by a
text network, carries its own alignment: token j of the text sample sits at the frame
where the recogniser emitted the token's first character. :func:`ctc_alignment` turns
that into an ``align=`` position map for :class:`HFSampling`, which pairs each of the
text network's positions with the frame that produced it instead of with frame j
(``"trim"``, the thesis) or a proportional frame (``"resample"``).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from ...errors import EquivtestError


def ctc_collapse(frame_ids: Sequence[int], vocabulary: Sequence[str], blank: int = 0,
                 word_delimiter: str = "|") -> tuple[str, np.ndarray]:
    """Greedy CTC: repeats merged, blanks dropped, the delimiter read as a space, spaces collapsed.
    Returns the transcript and, per character of it, the frame that emitted it."""
    text, frames, previous = [], [], None
    for frame, i in enumerate(frame_ids):
        if i != previous and i != blank:
            c = " " if vocabulary[i] == word_delimiter else vocabulary[i]
            # a space only between words: none at the start, none twice
            if c != " " or (text and text[-1] != " "):
                text.append(c)
                frames.append(frame)
        previous = i
    if text and text[-1] == " ":
        text, frames = text[:-1], frames[:-1]
    return "".join(text), np.asarray(frames, dtype=int)


def ctc_greedy(vocabulary: Sequence[str], blank: int = 0, word_delimiter: str = "|") -> Callable:
    """``predict`` for a CTC model: arg-max per frame, repeats merged, blanks dropped."""
    vocab = list(vocabulary)

    def predict(model, kwargs) -> str:
        return ctc_collapse(model(**kwargs).logits.argmax(-1)[0].tolist(), vocab, blank, word_delimiter)[0]

    predict.ctc = (vocab, blank, word_delimiter)  # what ctc_alignment decodes with, so the two agree
    return predict


def token_frames(tokenizer, text: str, frames: np.ndarray, n_frames: int) -> np.ndarray:
    """Per token of ``tokenizer(text)``: the frame that emitted its first character. Tokens that
    cover no character (``<sep>``, ``<cls>``, ``[CLS]``) take the last frames, in order."""
    try:
        offsets = tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, TypeError, KeyError) as err:
        raise EquivtestError("a CTC alignment needs a fast tokenizer (one that returns offset mappings)") from err
    if len(frames) != len(text):
        raise EquivtestError(f"{len(frames)} emission frames for a transcript of {len(text)} characters")
    out = []
    for start, end in offsets:
        while start < end - 1 and text[start] == " ":  # a metaspace token may start with the space
            start += 1
        out.append(int(frames[start]) if end > start else None)
    spare = sum(p is None for p in out)
    if spare > n_frames:
        raise EquivtestError(f"{spare} special tokens but only {n_frames} frames to place them on")
    tail = iter(range(n_frames - spare, n_frames))
    return np.array([p if p is not None else next(tail) for p in out], dtype=int)


def waveform_key(wave) -> tuple:
    """A cheap memo key for one waveform (its length, first values and sum)."""
    return len(wave), np.asarray(wave[:64]).tobytes(), float(np.asarray(wave, dtype=np.float64).sum())


def ctc_emissions(asr, wave) -> tuple[str, np.ndarray]:
    """``asr``'s greedy CTC transcript of ``wave`` and, per character, the frame that emitted it
    (``asr`` decodes with :func:`ctc_greedy`, whose vocabulary this reads)."""
    decoding = _decoding(asr)
    with torch.no_grad():
        ids = asr.model(**asr.kwargs(asr.encode(wave)[None])).logits.argmax(-1)[0].tolist()
    return ctc_collapse(ids, *decoding)


def _decoding(asr) -> tuple:
    decoding = getattr(asr.predict, "ctc", None)
    if decoding is None:
        raise EquivtestError(f"network {asr.name!r} does not decode with ctc_greedy(...); a CTC alignment needs "
                             "the recogniser's CTC vocabulary (give it predict=ctc_greedy(vocabulary))")
    return decoding


def ctc_alignment(asr, tokenizer) -> Callable:
    """A position map for ``HFSampling(align=...)``: ``(waveform, frames, tokens) -> frame per token``,
    from ``asr`` (an audio :class:`HFNetwork` that decodes with :func:`ctc_greedy`) and the text
    network's ``tokenizer``; pair it with ``asr``'s own transcript as the domain map."""
    _decoding(asr)  # a network without a CTC decoder is refused here, before any work
    memo: dict = {}

    def positions(wave, n_frames: int, n_tokens: int) -> np.ndarray:
        key = waveform_key(wave)
        if key not in memo:
            memo[key] = ctc_emissions(asr, wave)
        text, frames = memo[key]
        index = token_frames(tokenizer, text, frames, n_frames)
        if len(index) != n_tokens:
            raise EquivtestError(f"the CTC transcript {text!r} gives {len(index)} tokens where the text network "
                                 f"has {n_tokens} positions; use the recogniser's own transcript as the domain map")
        return index

    positions.__name__ = "ctc_alignment"
    return positions
