"""One-at-a-time references for the batched transformers capture: the fit's rows as
``Positions.capture`` took them before its passes were batched (one pass per input, its
neighbours in passes of ``batch`` neighbours of that input alone)."""

import numpy as np
import torch

from equivtest.adapters.hf.sequences import align_length, select_positions
from equivtest.errors import EquivtestError


def with_neighbourhood(net, sample, nb, rng, batch: int, where: str):
    """The sample's layer sequence ``(T, f)`` and its neighbours' ``(M, T, f)``, one input at a time."""
    x = net.encode(sample, where)
    m, std = int(nb.size), nb.std
    if not np.isfinite(std):
        raise EquivtestError(f"{where}: the neighbourhood's delta {nb.delta!r} is not finite; give a finite delta")
    if net.modality == "audio":
        noisy = x.numpy()[None].astype(np.float64) + std * rng.standard_normal((m, x.numel()))
        noisy = torch.as_tensor(noisy, dtype=torch.float32)
        nbs = torch.cat([net.sequences(noisy[s : s + batch]) for s in range(0, m, batch)])
    else:
        emb = net.embed(x[None])  # (1, T, E)
        noise = torch.as_tensor(rng.standard_normal((m, *emb.shape[1:])), dtype=emb.dtype)
        noisy = emb + std * noise
        ids = x[None].expand(m, -1)
        nbs = torch.cat([net.sequences(ids[s : s + batch], embeddings=noisy[s : s + batch]) for s in range(0, m, batch)])
    return net.sequences(x[None])[0].numpy(), nbs.numpy()


def positions_capture(positions, pair, samples):
    """``(activations, groups, skipped)`` as ``Positions.capture`` gave them one input at a time."""
    rng = np.random.default_rng(positions.seed)
    rows = {"a": ([], []), "b": ([], [])}
    groups, skipped = [], []
    for i, item in enumerate(samples):
        seqs = {}
        for side in ("a", "b"):
            net = pair.side(side)
            x = pair.inputs_for(side, item)
            if side == "b" and pair.domain_map is not None and net.modality == "text" and not str(x).strip():
                skipped.append(i)
                break
            seqs[side] = with_neighbourhood(net, x, positions.neighbourhood, rng, positions.batch_size,
                                            f"sample {i} ({net.name})")
        if len(seqs) < 2:
            continue
        (sa, na), (sb, nb) = seqs["a"], seqs["b"]
        if callable(positions.align):
            index = positions.mapped(item, len(sa), len(sb))
            sa, na, length = sa[index], na[:, index], len(sb)
        else:
            length = max(len(sa), len(sb)) if positions.align == "pad" else min(len(sa), len(sb))
            sa, na, sb, nb = (align_length(s, length, positions.align) for s in (sa, na, sb, nb))
        pos = select_positions(length, positions.positions, rng, f"sample {i} (aligned length {length})")
        for side, s, n in (("a", sa, na), ("b", sb, nb)):
            rows[side][0].append(s[pos])
            rows[side][1].append(n[:, pos].transpose(1, 0, 2))
        groups.append(np.full(len(pos), i))
    activations = {s: (np.concatenate(rows[s][0]), np.concatenate(rows[s][1])) for s in "ab"}
    return activations, np.concatenate(groups), skipped, rng
