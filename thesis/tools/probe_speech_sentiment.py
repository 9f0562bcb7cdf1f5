"""Where the speech-sentiment suite loses its target's labels (a by-hand investigation).

    python thesis/tools/probe_speech_sentiment.py [--n-train 6400] [--samples 128 1000] [--layers ...] [--dm 500]

Not part of the product or the tests: it measures what the README's speech-sentiment
section quotes about the suite's ceiling. For the suite's recogniser trained on
``--n-train`` phrases (cached like the suite's) and its XLNet target it prints:

- the recogniser's test WER and the target's label on the spoken words against its
  label on the transcript (what a network that heard every word right agrees);
- supervised stitches, fitted on ``--samples`` training phrases, scored as the suite
  scores its stitched network (agreement with XLNet's own label on the transcript, 200
  held-out phrases), for three ways to pair XLNet's token positions with the
  recogniser's frames: ``trim`` (the thesis's: token j with frame j), ``resample``
  (proportional positions) and ``ctc`` (the recogniser's own alignment: the frame at
  which it emitted the token's first character; ``<sep> <cls>`` take the last frames);
  a ridge map and a k-nearest-neighbour map per layer;
- with ``--dm N``: the diffusion-map transformation itself (``FitConfig`` defaults,
  ``epsilon_k`` 40 and 50 eigenvectors unless given) on N phrases with the ``ctc`` pairing, 100 neighbours each.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.neighbors import KNeighborsRegressor

from equivtest._threads import torch_threads
from equivtest.adapters.hf import HFNetwork, word_error_rate
from equivtest.adapters.hf.ctc import ctc_emissions, token_frames
from equivtest.adapters.hf.batching import capture_drawn, draw_neighbourhood
from equivtest.engine import FitConfig
from equivtest_thesis.experiments import speech_sentiment
from equivtest.sampling import GaussianNeighbourhood
from equivtest_thesis.zoo.speech_phrases import speech_set
from equivtest_thesis.zoo.text import xlnet_network


def phrase_rows(asr, tok, audio):
    """Per utterance with a non-empty transcript: token ids, ctc frame per token, the recogniser's sequence."""
    out = []
    for wave in audio:
        text, frames = ctc_emissions(asr, wave)
        if text.strip():
            seq = asr.sequences(asr.encode(wave)[None])[0].numpy()
            ids = torch.tensor(tok(text)["input_ids"])
            pos = token_frames(tok, text, frames, len(seq))
            out.append((ids, pos, seq, wave, text))
    return out


def paired(rows, net: HFNetwork, mode: str):
    xa, xb = [], []
    for ids, pos, seq, _, _ in rows:
        target = net.sequences(ids[None])[0].numpy()
        n = len(target)
        index = {"ctc": pos, "trim": np.arange(n).clip(max=len(seq) - 1),
                 "resample": np.round(np.linspace(0, len(seq) - 1, n)).astype(int)}[mode]
        xa.append(seq[index])
        xb.append(target)
    return xa, xb


def agreement(net: HFNetwork, rows, predictions) -> float:
    same = 0
    for (ids, *_), pred in zip(rows, predictions):
        stitched = net.answer(ids, replace=lambda seq, pred=pred: torch.as_tensor(pred[None], dtype=seq.dtype))
        same += net.answer(ids) == stitched
    return same / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n-train", type=int, default=6400, help="phrases the recogniser is trained on (cached)")
    ap.add_argument("--samples", type=int, nargs="*", default=[128, 1000])
    ap.add_argument("--layers", nargs="+", default=["transformer.word_embedding", "transformer.layer.0",
                                                    "transformer.layer.2"])
    ap.add_argument("--dm", type=int, default=0, help="also fit the diffusion-map transformation on this many phrases")
    ap.add_argument("--eigenvectors", type=int, default=50, help="diffusion-map eigenvectors of the --dm fits")
    ap.add_argument("--epsilon-k", type=int, default=40, help="median-rule neighbour of the --dm fits")
    args = ap.parse_args()
    with torch_threads(1):
        pair = speech_sentiment.pair("embedded", n_train=args.n_train)
        asr, train = pair.a, pair.train_set
        xlnet, tok, _ = xlnet_network()
        nets = {layer: HFNetwork(xlnet, layer, "text", output=0, tokenizer=tok,
                                 embedding="transformer.word_embedding") for layer in args.layers}
        test = speech_set("test", 200)
        test_rows = phrase_rows(asr, tok, test.audio)
        clf, heard = pair.b, [pair.domain_map(w) for w in test.audio]
        spoken = np.mean([clf.answer(clf.encode(t)) == clf.answer(clf.encode(h))
                          for t, h in zip(test.texts, heard) if h.strip()])
        wer = word_error_rate(test.texts, heard)
        print(f"recogniser on {args.n_train} phrases: test WER {wer:.3f}; target on spoken text {spoken:.3f}")
        rng = np.random.default_rng(0)
        order = rng.permutation(len(train))
        for n in args.samples:
            rows = phrase_rows(asr, tok, [train.audio[i] for i in np.sort(order[:n])])
            for layer, net in nets.items():
                for mode in ("ctc", "resample", "trim"):
                    xa, xb = paired(rows, net, mode)
                    ta, _ = paired(test_rows, net, mode)
                    for name, model in (("ridge", Ridge(alpha=10.0)), ("1-nn", KNeighborsRegressor(1)),
                                        ("10-nn", KNeighborsRegressor(10, weights="distance"))):
                        model.fit(np.concatenate(xa), np.concatenate(xb))
                        agree = agreement(net, test_rows, [model.predict(x) for x in ta])
                        print(f"{n} phrases  {layer:28s} {mode:8s} {name:6s} agreement {agree:.3f}", flush=True)
        if args.dm:
            nb = GaussianNeighbourhood(100, 0.05)
            for layer, net in nets.items():
                parts = {k: [] for k in ("a", "na", "b", "nb")}
                chosen = [train.audio[i] for i in np.sort(order[:args.dm])]
                for ids, pos, seq, wave, text in phrase_rows(asr, tok, chosen):
                    drawn_a = draw_neighbourhood(asr, wave, nb, rng, "a")  # the draws in the old order
                    drawn_b = draw_neighbourhood(net, text, nb, rng, "b")
                    (sa, na), = capture_drawn(asr, [drawn_a], 50)
                    (sb, nbb), = capture_drawn(net, [drawn_b], 50)
                    for key, value in (("a", sa[pos]), ("na", na[:, pos].transpose(1, 0, 2)), ("b", sb),
                                       ("nb", nbb.transpose(1, 0, 2))):
                        parts[key].append(value)
                a, na, b, nbb = (np.concatenate(parts[k]) for k in ("a", "na", "b", "nb"))
                for smoothing in (0.0, 1.0):
                    try:
                        config = FitConfig(n_eigenvectors=args.eigenvectors, epsilon_k=args.epsilon_k,
                                           smoothing=smoothing)
                        tr = config.transformation(("a", "b")).fit(a, na, b, nbb)
                    except Exception as err:  # noqa: BLE001 - a probe reports why a fit is impossible
                        print(f"DM {args.dm} phrases {layer} smoothing {smoothing}: {type(err).__name__}: {err}")
                        continue
                    agree = agreement(net, test_rows, [tr.predict(r[2][r[1]], to="b") for r in test_rows])
                    overlap = tr.overlap_criterion()[0].value
                    print(f"DM {args.dm} phrases ({len(a)} rows, {args.eigenvectors} eigenvectors) {layer} "
                          f"smoothing {smoothing}: agreement {agree:.3f}, neighbour overlap {overlap:.3f}", flush=True)


if __name__ == "__main__":
    main()
