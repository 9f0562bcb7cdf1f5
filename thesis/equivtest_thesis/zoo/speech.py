"""The speech suites' two recognisers, trained here on the closed-vocabulary phrases.

- ``wav2vec2``: ``Wav2Vec2ForCTC`` on the raw 16 kHz waveform: a 4-layer convolutional
  feature encoder (strides 8, 5, 4, 2: one frame per 20 ms; group norm on the first layer),
  a small transformer, and a character CTC head (blank, word delimiter ``|``, a-z, ``'``).
- ``speech2text``: ``Speech2TextForConditionalGeneration``, an encoder-decoder on 80
  log-mel features (25 ms windows every 10 ms, one stride-2 convolution: 20 ms per encoder
  position, as Wav2Vec2's), whose decoder writes whole words of the closed vocabulary.

So the two differ as the thesis's pair does (CTC on characters against an attention
decoder; raw waveform against filter-bank features), while their encoder sequences have
the same frame rate, so positions can be trimmed to a common length as in the thesis.
Both take the waveform as the network input: the log-mel front end of ``speech2text`` is
part of the network (:class:`LogMelNetwork`), so neighbourhoods are drawn around the
waveform for both, as the thesis draws them around LibriSpeech audio.

Training is deterministic (seeded, one thread) and cached (safetensors + JSON).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import numpy as np
import torch
from torch import nn

from equivtest.adapters.hf import HFNetwork, word_error_rate
from equivtest._threads import torch_threads
from equivtest.errors import EquivtestError
from .cache import cached_network, training_lock
from .speech_phrases import SYNTHESIS, SpeechSet, speech_set, vocabulary
from .speech_data import ALPHABET, SAMPLE_RATE

CHARACTERS = ("<pad>", "|", *ALPHABET)  # CTC blank = <pad> = 0
WORD_SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")  # pad 0, start 1, end 2
N_MELS = 80
WAV2VEC2 = {"hidden": 96, "layers": 3, "heads": 4, "ffn": 192, "conv": 64, "epochs": 12, "lr": 2e-3,
            "warmup": 150, "batch_size": 16, "seed": 0}
SPEECH2TEXT = {"d_model": 96, "encoder_layers": 3, "decoder_layers": 2, "heads": 4, "ffn": 192, "conv": 96,
               "epochs": 15, "lr": 3e-3, "warmup": 150, "batch_size": 16, "seed": 0}
# fixed, so the weights do not depend on the core count; two threads measured 5x slower on the busy 2 cores
THREADS = 1


# -- front end and vocabularies -----------------------------------------------------------
@lru_cache(maxsize=1)
def _mel_filters() -> torch.Tensor:
    from transformers.audio_utils import mel_filter_bank

    return torch.as_tensor(mel_filter_bank(201, N_MELS, 20.0, SAMPLE_RATE / 2, SAMPLE_RATE), dtype=torch.float32)


def log_mel(waves: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` waveforms -> ``(B, T, 80)`` log-mel features (T = N // 160 + 1), normalised
    per utterance to zero mean and unit variance per feature, as Speech2Text's extractor does."""
    spec = torch.stft(waves.float(), n_fft=400, hop_length=160, window=torch.hann_window(400),
                      return_complex=True).abs().pow(2)
    mel = torch.log(spec.transpose(1, 2) @ _mel_filters() + 1e-6)
    return (mel - mel.mean(1, keepdim=True)) / (mel.std(1, keepdim=True) + 1e-5)


def word_tokens() -> tuple:
    return WORD_SPECIALS + vocabulary()


def encode_characters(text: str) -> list[int]:
    index = {c: i for i, c in enumerate(CHARACTERS)}
    return [index["|" if c == " " else c] for c in text]


def encode_words(text: str) -> list[int]:
    index = {w: i for i, w in enumerate(word_tokens())}
    return [index.get(w, 3) for w in text.split()] + [2]


@dataclass
class SpeechNetwork(HFNetwork):
    """An audio :class:`HFNetwork` that refuses waveforms shorter than ``min_samples``: the
    feature encoders here need 368 samples (Wav2Vec2's receptive field) and 400 (one 25 ms
    log-mel window) for a single frame, and a shorter input fails deep inside a convolution."""

    min_samples: int = 400

    def encode(self, sample, where: str = "sample"):
        x = super().encode(sample, where)
        if self.modality == "audio" and x.numel() < self.min_samples:
            raise EquivtestError(f"{where}: audio of {x.numel()} samples is shorter than {self.name}'s feature "
                                 f"encoder needs for one frame ({self.min_samples} samples, 25 ms at 16 kHz); "
                                 "give longer audio")
        return x


@dataclass
class LogMelNetwork(SpeechNetwork):
    """A :class:`SpeechNetwork` whose model reads log-mel features: the waveform a sample is
    (and its neighbours are) goes through :func:`log_mel` on the way in."""

    def __post_init__(self):
        self.input_name = self.input_name or "input_features"
        super().__post_init__()

    def kwargs(self, x: torch.Tensor) -> dict:
        if not x.is_floating_point():
            raise EquivtestError(f"{self.name} reads waveforms; got integer inputs")
        return {self.input_name: log_mel(x).to(next(self.model.parameters()).device),
                **(self.extra_inputs(int(x.shape[0])) if self.extra_inputs else {})}


def decoder_start(batch_size: int, start: int = 1) -> dict:
    """``decoder_input_ids`` of a start token, so a forward pass of an encoder-decoder runs."""
    return {"decoder_input_ids": torch.full((batch_size, 1), start, dtype=torch.long)}


def greedy_decode(to_text: Callable[[list], str], start: int = 1, end: int = 2, max_tokens: int = 12) -> Callable:
    """``predict`` for an encoder-decoder: the encoder once (hooks on its layers fire there),
    then the arg-max token until ``end``; ``to_text`` turns the token ids (start dropped) into text."""
    from transformers.modeling_outputs import BaseModelOutput

    def predict(model, kwargs) -> str:
        inputs = {k: v for k, v in kwargs.items() if not k.startswith("decoder_")}
        states = BaseModelOutput(last_hidden_state=model.get_encoder()(**inputs).last_hidden_state)
        ids = [start]
        for _ in range(max_tokens):
            logits = model(encoder_outputs=states, decoder_input_ids=torch.tensor([ids])).logits[0, -1]
            nxt = int(logits.argmax())
            if nxt == end:
                break
            ids.append(nxt)
        return to_text(ids[1:])

    return predict


def greedy_words(words, max_words: int = 12) -> Callable:
    """:func:`greedy_decode` for the word-level decoder of ``speech2text``."""
    return greedy_decode(lambda ids: " ".join(words[i] for i in ids if i >= len(WORD_SPECIALS)), 1, 2, max_words)


# -- models -------------------------------------------------------------------------------
def wav2vec2_model() -> nn.Module:
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    s = WAV2VEC2
    torch.manual_seed(s["seed"])
    config = Wav2Vec2Config(
        vocab_size=len(CHARACTERS), hidden_size=s["hidden"], num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"], intermediate_size=s["ffn"], conv_dim=(s["conv"] // 2,) + (s["conv"],) * 3,
        conv_stride=(8, 5, 4, 2), conv_kernel=(16, 10, 4, 2), feat_extract_norm="group", do_stable_layer_norm=True,
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, mask_time_prob=0.0, layerdrop=0.0,
        hidden_dropout=0.05, attention_dropout=0.05, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, ctc_loss_reduction="mean", pad_token_id=0, ctc_zero_infinity=True)
    return Wav2Vec2ForCTC(config)


def speech2text_model() -> nn.Module:
    from transformers import Speech2TextConfig, Speech2TextForConditionalGeneration

    s = SPEECH2TEXT
    torch.manual_seed(s["seed"])
    config = Speech2TextConfig(
        vocab_size=len(word_tokens()), d_model=s["d_model"], encoder_layers=s["encoder_layers"],
        decoder_layers=s["decoder_layers"], encoder_attention_heads=s["heads"], decoder_attention_heads=s["heads"],
        encoder_ffn_dim=s["ffn"], decoder_ffn_dim=s["ffn"], num_conv_layers=1, conv_kernel_sizes=(5,),
        conv_channels=s["conv"], input_feat_per_channel=N_MELS, dropout=0.05, max_source_positions=1000,
        max_target_positions=32, pad_token_id=0, bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
        tie_word_embeddings=False)  # tied tensors cannot be stored in safetensors as two names
    return Speech2TextForConditionalGeneration(config)


def ctc_transcribe(model, wave: np.ndarray) -> str:
    from equivtest.adapters.hf import ctc_greedy

    with torch.no_grad():
        return ctc_greedy(CHARACTERS)(model, {"input_values": torch.as_tensor(wave)[None]})


def s2t_transcribe(model, wave: np.ndarray) -> str:
    with torch.no_grad():
        return greedy_words(word_tokens())(model, {"input_features": log_mel(torch.as_tensor(wave)[None])})


# -- training -----------------------------------------------------------------------------
def _schedule(opt, warmup: int, total: int):
    def factor(step):  # linear warm-up, then cosine decay to a tenth
        if step < warmup:
            return (step + 1) / warmup
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def _length_batches(lengths, batch_size: int, gen: torch.Generator) -> list:
    """Batches of similar length (little padding), in a seeded random order."""
    order = np.argsort(lengths, kind="stable")
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=gen).tolist()]


def _pad(arrays, value=0.0, dtype=torch.float32):
    out = torch.full((len(arrays), max(len(a) for a in arrays), *np.shape(arrays[0])[1:]), value, dtype=dtype)
    mask = torch.zeros(out.shape[:2], dtype=torch.long)
    for i, a in enumerate(arrays):
        out[i, : len(a)] = torch.as_tensor(np.asarray(a), dtype=dtype)
        mask[i, : len(a)] = 1
    return out, mask


@torch_threads(THREADS)
def _train(model, kind: str, spec: dict, train: SpeechSet, val: SpeechSet, log=None) -> dict:
    torch.manual_seed(spec["seed"])
    gen = torch.Generator().manual_seed(spec["seed"])
    if kind == "wav2vec2":
        inputs = train.audio
        targets = [encode_characters(t) for t in train.texts]
        transcribe = ctc_transcribe
    else:
        inputs = [log_mel(torch.as_tensor(a)[None])[0].numpy() for a in train.audio]
        targets = [encode_words(t) for t in train.texts]
        transcribe = s2t_transcribe
    steps = spec["epochs"] * math.ceil(len(inputs) / spec["batch_size"])
    opt = torch.optim.AdamW(model.parameters(), lr=spec["lr"], weight_decay=0.01)
    sched = _schedule(opt, spec["warmup"], steps)
    history, best, best_state, t0 = [], 2.0, None, time.perf_counter()
    for epoch in range(1, spec["epochs"] + 1):
        model.train()
        total = 0.0
        for idx in _length_batches([len(x) for x in inputs], spec["batch_size"], gen):
            x, mask = _pad([inputs[i] for i in idx])
            y, _ = _pad([targets[i] for i in idx], value=-100, dtype=torch.long)
            key = "input_values" if kind == "wav2vec2" else "input_features"
            loss = model(**{key: x}, attention_mask=mask, labels=y).loss
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        wer = word_error_rate(val.texts, [transcribe(model, a) for a in val.audio])
        history.append({"epoch": epoch, "loss": total / len(inputs), "val_wer": wer,
                        "seconds": time.perf_counter() - t0})
        if log:
            log(f"{kind} epoch {epoch}: loss {total / len(inputs):.3f}, validation WER {wer:.3f}")
        if wer < best:
            best, best_state = wer, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    model.eval()
    return {"epochs": spec["epochs"], "best_epoch": min(history, key=lambda h: h["val_wer"])["epoch"],
            "val_wer": best, "train_utterances": len(inputs), "history": history}


def speech_networks(n_train: int, n_val: int = 100, seed: int = 0, log=None,
                    kinds: tuple = ("wav2vec2", "speech2text"), epochs: int | None = None) -> dict:
    """Train (or load from the cache) the recognisers ``kinds`` on ``n_train`` phrases
    (``epochs``, if given, in place of each one's default)."""
    unknown = set(kinds) - {"wav2vec2", "speech2text"}
    if unknown:
        raise EquivtestError(f"unknown recogniser(s) {sorted(unknown)}; choose from 'wav2vec2', 'speech2text'")
    with training_lock("speech-data"):
        train, val = speech_set("train", n_train, seed, log), speech_set("val", n_val, seed, log)
    data_key = {"data": "pang-lee-phrases-espeak", "synthesis": SYNTHESIS, "n_train": n_train, "n_val": n_val,
                "seed": seed, "vocabulary": len(vocabulary())}
    out = {"train": train, "val": val}
    builders = {"wav2vec2": (wav2vec2_model, WAV2VEC2), "speech2text": (speech2text_model, SPEECH2TEXT)}
    for kind in kinds:
        build, spec = builders[kind]
        spec = {**spec, "epochs": int(epochs or spec["epochs"])}
        with training_lock(f"speech-{kind}"):
            out[kind] = cached_network(f"speech-{kind}", {**data_key, **spec}, build,
                                       lambda m, k=kind, s=spec: _train(m, k, s, train, val, log), log)
    return out


def recogniser_networks(models: dict, layers: dict, features=None) -> dict:
    """The trained recognisers in ``models`` as :class:`HFNetwork`s reading ``layers[kind]``."""
    from equivtest.adapters.hf import ctc_greedy

    out = {}
    if "wav2vec2" in models:
        out["wav2vec2"] = SpeechNetwork(models["wav2vec2"][0], layers["wav2vec2"], "audio", features=features,
                                    predict=ctc_greedy(CHARACTERS), name="wav2vec2-small")
    if "speech2text" in models:
        out["speech2text"] = LogMelNetwork(models["speech2text"][0], layers["speech2text"], "audio", features=features,
                                           predict=greedy_words(word_tokens()), extra_inputs=decoder_start,
                                           name="speech2text-small")
    return out
