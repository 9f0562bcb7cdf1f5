"""The shipped Pang-Lee sentence polarity copy and its splits."""

import numpy as np

from equivtest_thesis.zoo.text_data import load_polarity, polarity_splits


def test_shipped_copy_is_complete_and_names_its_source():
    data = load_polarity()
    assert len(data["pos"]) == 5331 and len(data["neg"]) == 5331
    assert "Pang and Lee" in data["source"] and "CC BY 4.0" in data["licence"]
    assert data["pos"][0].startswith("the rock is destined")
    assert data["neg"][0] == "simplistic , silly and tedious ."


def test_splits_are_balanced_disjoint_and_deterministic():
    train, val, test = polarity_splits(seed=0)
    assert (len(train), len(val), len(test)) == (10662 - 1600, 600, 1000)
    for split in (val, test):
        assert split.positive_rate() == 0.5
    seen = [set(s.sentences) for s in (train, val, test)]
    # rt-polarity has a few duplicate sentences; the splits share no index, and almost no text
    assert len(seen[2] & seen[0]) < 10 and len(seen[1] & seen[2]) < 5
    again = polarity_splits(seed=0)
    assert again[2].sentences == test.sentences and np.array_equal(again[2].labels, test.labels)
    assert polarity_splits(seed=1)[2].sentences != test.sentences
    # labels follow the source files
    pos = set(load_polarity()["pos"])
    assert all((s in pos) == bool(y) for s, y in zip(test.sentences[:200], test.labels[:200]) if s not in set(load_polarity()["neg"]))
