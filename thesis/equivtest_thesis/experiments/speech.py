"""Experiment 3 of the thesis: two speech recognisers of different families, both directions.

Networks (``source="embedded"``, the default; see :mod:`equivtest_thesis.zoo.speech`): A is a small
``Wav2Vec2ForCTC`` (raw waveform, character CTC), B a small
``Speech2TextForConditionalGeneration`` (log-mel features, word decoder), both trained
here on closed-vocabulary phrases spoken by eSpeak NG (:mod:`equivtest_thesis.zoo.speech_phrases`).
``source="hub"`` loads a Wav2Vec2 CTC model and a speech encoder-decoder by hub id or
local directory (``hub_a``/``hub_b`` or ``EQUIVTEST_SPEECH_HUB_A``/``_B``); the thesis's
Speech2Text2 id is refused with an error naming its removal from transformers 5
(:mod:`equivtest_thesis.zoo.speech_hub`).

Protocol (thesis section 4.3): samples are training utterances; per sample a neighbourhood
of 100 waveforms (Gaussian around the sample, delta 0.05, variance delta/4 per audio
value, as the thesis draws them around LibriSpeech audio); the output of an encoder layer
of each network (see ``LAYERS``), at most 64 random positions per sample as separate
rows, the longer sequence trimmed to the shorter (both networks have one position per
20 ms). The stitched network starts the target with the real audio (the thesis's setting).

Criteria: ``word_agreement`` (1 - WER of the stitched network's transcript against the
target's own) and ``agreement`` (exact transcript match), per direction, beside the
thesis's 0.8969 (into Wav2Vec2) and 0.6971 (into Speech2Text2); its threshold is the
thesis's figure. Tables also give each network's WER on the held-out phrases.

Beside it, the ladder of maps (:mod:`equivtest_thesis.experiments.ladder`) on the same test
utterances: every position a row, paired through the same ``Positions`` (trimmed), split by
utterance; its stitched score is the share of identical transcripts on the held-out quarter.
"""

from __future__ import annotations

import os
import time
from dataclasses import replace

import numpy as np

from equivtest._threads import torch_threads
from equivtest.adapters.hf import Positions, answers_by_direction, word_error_rate
from equivtest.engine import FitConfig, fit
from equivtest.pairs import NetworkPair
from equivtest.report.tables import ResultTable
from equivtest.sampling import GaussianNeighbourhood
from equivtest.outcome import ExperimentOutcome
from . import ladder

NAME = "speech"
TITLE = "Experiment 3: Wav2Vec2 CTC vs. Speech2Text encoder-decoder recognisers, both directions"
THESIS = {"a->b": 0.6971, "b->a": 0.8969}  # into Speech2Text2, into Wav2Vec2
PROFILES = {
    # smoke: the whole suite in about a minute, on recognisers trained for 10 epochs (they barely
    # transcribe); it checks the plumbing in every default test run, not the figures
    "smoke": {"n_train": 320, "epochs": 10, "n_samples": 6, "neighbourhood": 100, "positions": 64, "n_test": 12,
              "n_eigenvectors": 10},
    # CI: recognisers trained on 1,600 phrases; 32 samples, 100 held-out test utterances
    "ci": {"n_train": 1600, "n_samples": 32, "neighbourhood": 100, "positions": 64, "n_test": 100,
           "n_eigenvectors": 50, "ladder": ladder.CI_RUNGS},
    # the thesis's 128 samples; 400 test utterances
    "full": {"n_train": 1600, "n_samples": 128, "neighbourhood": 100, "positions": 64, "n_test": 400,
             "n_eigenvectors": 50, "ladder": ladder.FULL_RUNGS},
}
DELTA = 0.05
# each encoder's output (after its final layer norm): what the CTC head and the decoder read.
# Measured on the middle layers (encoder.layers.1) first: Speech2Text's pre-norm residual stream
# there reaches |x| ~ 1000 against Wav2Vec2's ~7, and the fit's test activation MSE was 1e4 / 6e45.
LAYERS = {"wav2vec2": "wav2vec2.encoder.layer_norm", "speech2text": "model.encoder.layer_norm"}
# all 96 features of each layer; the thesis's equidistant selection (24 of 96, the rest mean-filled)
# measured no better: word agreement 0.014 / 0.000 (CI profile)
FEATURES = None
HUB_LAYERS = {"wav2vec2": 11, "speech2text": 11}
HUB_FEATURES = 128


def pair(source: str = "embedded", log=None, hub_a: str | None = None, hub_b: str | None = None,
         n_train: int = PROFILES["ci"]["n_train"], epochs: int | None = None) -> NetworkPair:
    if source == "hub":
        from ..zoo.speech_hub import HUB_IDS, encoder_decoder_network, wav2vec2_network

        ids = {"a": hub_a or os.environ.get("EQUIVTEST_SPEECH_HUB_A", HUB_IDS["wav2vec2"]),
               "b": hub_b or os.environ.get("EQUIVTEST_SPEECH_HUB_B", HUB_IDS["speech2text"])}
        a = wav2vec2_network(ids["a"], HUB_LAYERS["wav2vec2"], HUB_FEATURES)
        b = encoder_decoder_network(ids["b"], HUB_LAYERS["speech2text"], HUB_FEATURES)
        return NetworkPair(a, b, name=NAME, names=("wav2vec2", "speech2text"), task="transcription",
                      metadata={"source": "hub", "ids": ids})
    if source != "embedded":
        raise ValueError(f"source must be 'embedded' or 'hub', got {source!r}")
    from ..zoo.speech import recogniser_networks, speech_networks

    nets = speech_networks(n_train, log=log, epochs=epochs)
    wrapped = recogniser_networks(nets, LAYERS, FEATURES)
    p = NetworkPair(wrapped["wav2vec2"], wrapped["speech2text"], name=NAME, names=("wav2vec2-small", "speech2text-small"),
               task="transcription", metadata={"source": "embedded", "training": {
                   k: {x: v for x, v in nets[k][1].items() if x != "history"} for k in ("wav2vec2", "speech2text")}})
    p.train_set = nets["train"]
    return p


def run(*, profile: str = "ci", report_dir=None, stage=None, null_shuffles: int = 0, source: str = "embedded",
        seed: int = 0, hub_a: str | None = None, hub_b: str | None = None) -> ExperimentOutcome:
    """Fit once (both directions come from one transformation), evaluate, tabulate, record.
    ``null_shuffles`` is not used by this suite (its criteria are transcript agreements)."""
    cfg = PROFILES[profile]
    t0 = time.perf_counter()
    with torch_threads(1):  # one utterance at a time: a second thread only waits on a busy 2-core machine
        return _run(cfg, report_dir, stage, source, seed, t0, hub_a, hub_b)


def _run(cfg, report_dir, stage, source, seed, t0, hub_a, hub_b) -> ExperimentOutcome:
    from equivtest.record import write_run
    from ..zoo.speech_phrases import speech_set

    p = pair(source, log=stage, hub_a=hub_a, hub_b=hub_b, n_train=cfg["n_train"], epochs=cfg.get("epochs"))
    train = getattr(p, "train_set", None) or speech_set("train", cfg["n_train"], log=stage)
    test = speech_set("test", cfg["n_test"], log=stage)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(train), cfg["n_samples"], replace=False))
    samples = [train.audio[i] for i in chosen]
    timings = {"networks_s": time.perf_counter() - t0}
    sampling = Positions(GaussianNeighbourhood(cfg["neighbourhood"], DELTA), positions=cfg["positions"], align="trim",
                          seed=seed)
    fitted = fit(replace(p, pairing=sampling), samples, FitConfig(n_eigenvectors=cfg["n_eigenvectors"]), stage=stage)
    result = fitted.evaluate(test.audio, stage=stage)
    result = result.with_thresholds({"word_agreement": THESIS})
    timings.update(fitted.timings)
    tables = _tables(p, fitted, result, answers_by_direction(result), test)
    # the ladder after the thesis's method, whose figures it leaves as they were
    result, ladder_tables, verdicts = ladder.beside(fitted.pair, test.audio, result, cfg.get("ladder"), timings,
                                                    stage=stage)
    timings["total_s"] = time.perf_counter() - t0
    tables += ladder_tables
    records = [write_run(fitted, result, report_dir, suite=NAME, tables=tables)] if report_dir is not None else []
    return ExperimentOutcome([result], tables, records, timings, verdicts)


def _shuffled_wer(own: list) -> float:
    """WER of each target transcript against the next utterance's own transcript: what fluent
    output that ignores the audio would score (not clipped at 1, unlike word agreement)."""
    return word_error_rate(own, own[1:] + own[:1])


def _tables(p, fitted, result, answers, test):
    na, nb = p.names
    own = {"a": answers["b->a"]["own"], "b": answers["a->b"]["own"]}
    agree = ResultTable(
        "Transcript agreement of the stitched network with its target (cf. thesis section 4.3)",
        ["target", "samples", "rows", "test utterances", "word agreement", "exact transcripts", "thesis",
         "stitched WER vs. target", "shuffled WER vs. target", "stitched WER vs. text", "target WER vs. text"],
        notes=("word agreement: 1 - WER of the stitched transcript against the target's own; exact transcripts: "
               "share of identical transcripts; thesis: its accuracy on LibriSpeech with 128 samples (0.8969 into "
               "Wav2Vec2, 0.6971 into Speech2Text2); WER vs. target: the stitched transcripts against the target's "
               "own, unclipped (word agreement is 1 minus it, at least 0); shuffled: the target's transcripts against "
               "the next utterance's (fluent output that ignores the audio); vs. text: against the reference text."),
    )
    for direction, out in answers.items():
        target = nb if direction == "a->b" else na
        agree.add_row(target, len(fitted.sample_rows), sum(fitted.sample_rows), len(test),
                      result.value("word_agreement", direction), result.value("agreement", direction),
                      THESIS[direction], word_error_rate(out["own"], out["stitched"]), _shuffled_wer(out["own"]),
                      word_error_rate(test.texts, out["stitched"]), word_error_rate(test.texts, out["own"]))
    nets = ResultTable("Recognisers (word error rate on held-out phrases)",
                       ["network", "test WER", "validation WER", "training utterances", "epochs"])
    summaries = p.metadata.get("training", {})
    for side, name, key in (("a", na, "wav2vec2"), ("b", nb, "speech2text")):
        s = summaries.get(key, {})
        nets.add_row(name, word_error_rate(test.texts, own[side]), s.get("val_wer"), s.get("train_utterances"),
                     s.get("epochs"))
    examples = ResultTable("Example transcripts (cf. thesis Table 4.3)",
                           ["reference", na, f"{nb} -> {na}", nb, f"{na} -> {nb}"])
    for i in range(min(6, len(test))):
        examples.add_row(test.texts[i], own["a"][i], answers["b->a"]["stitched"][i], own["b"][i],
                         answers["a->b"]["stitched"][i])
    return [agree, nets, examples]
