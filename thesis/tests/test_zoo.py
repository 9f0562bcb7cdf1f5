"""The embedded 1d networks train deterministically and come back from the cache."""

import torch

from equivtest_thesis.zoo.one_d import one_d_networks


def test_training_is_deterministic_and_cached(tmp_path, monkeypatch):
    runs = []
    for folder in ("first", "second"):
        monkeypatch.setenv("EQUIVTEST_CACHE", str(tmp_path / folder))
        a, b, summary = one_d_networks(max_epochs=2)
        runs.append((a.state_dict(), b.state_dict(), summary))
    for before, after in ((runs[0][0], runs[1][0]), (runs[0][1], runs[1][1])):
        assert before.keys() == after.keys()
        assert all(torch.equal(before[k], after[k]) for k in before)
    assert runs[0][2] == runs[1][2]
    # a third call loads from the cache: same weights, no new files
    files = sorted(p.name for p in (tmp_path / "second" / "zoo").iterdir())
    a, _, _ = one_d_networks(max_epochs=2)
    assert all(torch.equal(a.state_dict()[k], runs[1][0][k]) for k in runs[1][0])
    assert sorted(p.name for p in (tmp_path / "second" / "zoo").iterdir()) == files
    assert not any(name.endswith(".tmp") or ".tmp" in name for name in files)


def test_a_fingerprint_names_the_weights_exactly():
    import copy

    import torch

    from equivtest_thesis.zoo.cache import fingerprint

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    twin = copy.deepcopy(net)
    assert fingerprint(net) == fingerprint(twin) and len(fingerprint(net)) == 16
    with torch.no_grad():  # one weight one unit in the last place away
        twin[0].weight[0, 0] = torch.nextafter(twin[0].weight[0, 0], torch.tensor(1.0))
    assert fingerprint(net) != fingerprint(twin)
