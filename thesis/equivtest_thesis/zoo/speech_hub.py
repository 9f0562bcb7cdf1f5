"""The speech suites' ``hub`` source: the thesis's recognisers by hub id or local directory.

- A Wav2Vec2 English CTC model (the thesis: ``patrickvonplaten/wav2vec2-librispeech-clean-100h-demo-dist``),
  read with its CTC tokenizer's vocabulary (``vocab.json`` in the same place).
- The thesis's English-to-German model ``facebook/s2t-wav2vec2-large-en-de`` is a
  ``SpeechEncoderDecoderModel`` with a Speech2Text2 decoder. transformers 5 removed
  Speech2Text2, so that id (or any directory whose decoder is ``speech_to_text_2``) is
  refused with an error saying so. In its place any local directory (or id) of a
  ``SpeechEncoderDecoderModel`` (raw waveform in) or a ``Speech2TextForConditionalGeneration``
  (80 log-mel features in, computed here from the waveform) is accepted.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from equivtest.adapters.hf import HFNetwork, ctc_greedy
from equivtest.errors import EquivtestError
from .speech import LogMelNetwork, decoder_start, greedy_decode

HUB_IDS = {"wav2vec2": "patrickvonplaten/wav2vec2-librispeech-clean-100h-demo-dist",
           "speech2text": "facebook/s2t-wav2vec2-large-en-de"}
REMOVED = {"facebook/s2t-wav2vec2-large-en-de", "facebook/s2t-wav2vec2-large-en-ar",
           "facebook/s2t-wav2vec2-large-en-ca", "facebook/s2t-wav2vec2-large-en-tr"}
# module paths inside each kind of model; the layer number is the suite's choice
ENCODER_LAYERS = {"wav2vec2": "wav2vec2.encoder.layers.{}", "speech-encoder-decoder": "encoder.encoder.layers.{}",
                  "speech_to_text": "model.encoder.layers.{}"}
REMOVAL = ("transformers 5 removed Speech2Text2 (the decoder of the thesis's facebook/s2t-wav2vec2-large-en-de), "
           "so {what} cannot be loaded here. Give instead a local directory (or hub id) of a "
           "SpeechEncoderDecoderModel or a Speech2TextForConditionalGeneration saved with save_pretrained, or use an "
           "environment with transformers<5, where the original model loads")


def _config(source) -> dict | None:
    path = Path(source)
    if path.is_dir() and (path / "config.json").exists():
        return json.loads((path / "config.json").read_text())
    return None


def _tokenizer(source):
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError, TypeError):
        return None


def wav2vec2_network(source, layer: int, features, name: str | None = None) -> HFNetwork:
    """A Wav2Vec2 CTC model read at ``wav2vec2.encoder.layers.<layer>``, decoding with its tokenizer."""
    tok = _tokenizer(source)
    if tok is None:
        raise EquivtestError(f"no CTC tokenizer found with {str(source)!r} (for a hub id: or the hub is not "
                             "reachable); a Wav2Vec2 CTC model needs its vocabulary: save the model and its "
                             "Wav2Vec2CTCTokenizer in one directory (save_pretrained(DIR)) and give DIR")
    vocab = tok.convert_ids_to_tokens(list(range(len(tok))))
    blank = tok.pad_token_id if tok.pad_token_id is not None else 0
    return HFNetwork(str(source), ENCODER_LAYERS["wav2vec2"].format(layer), "audio", features=features,
                     model_class="Wav2Vec2ForCTC", predict=ctc_greedy(vocab, blank=blank, word_delimiter="|"),
                     name=name or str(source))


def encoder_decoder_network(source, layer: int, features, name: str | None = None) -> HFNetwork:
    """A speech encoder-decoder read at its encoder's ``layer``; transcripts by greedy decoding."""
    source = str(source)
    if source in REMOVED:
        raise EquivtestError(REMOVAL.format(what=repr(source)))
    config = _config(source)
    if config is None and not os.path.exists(source):
        from transformers import AutoConfig

        try:
            config = AutoConfig.from_pretrained(source).to_dict()
        except (OSError, ValueError) as exc:
            raise EquivtestError(f"cannot load {source!r} as a hub id ({type(exc).__name__}); save the model with "
                                 "save_pretrained(DIR) where the hub is reachable and give DIR") from None
    if config is None:
        raise EquivtestError(f"{source!r} is not a model directory (no config.json in it)")
    kind = config.get("model_type")
    if kind == "speech-encoder-decoder" and config.get("decoder", {}).get("model_type") == "speech_to_text_2":
        raise EquivtestError(REMOVAL.format(what=f"{source!r} (its decoder is speech_to_text_2)"))
    if kind not in ("speech-encoder-decoder", "speech_to_text"):
        raise EquivtestError(f"{source!r} is a {kind!r} model; the speech suite's second network is a "
                             "SpeechEncoderDecoderModel or a Speech2TextForConditionalGeneration")
    decoder = config.get("decoder", config)
    start = config.get("decoder_start_token_id")
    start = decoder.get("decoder_start_token_id", decoder.get("bos_token_id", 0)) if start is None else start
    end = config.get("eos_token_id", decoder.get("eos_token_id", 2))
    tok = _tokenizer(source)
    to_text = ((lambda ids: tok.decode(ids, skip_special_tokens=True).strip()) if tok is not None
               else (lambda ids: " ".join(map(str, ids))))
    common = dict(features=features, predict=greedy_decode(to_text, int(start), int(end), max_tokens=40),
                  extra_inputs=lambda b: decoder_start(b, int(start)), name=name or source)
    layer_path = ENCODER_LAYERS[kind].format(layer)
    if kind == "speech_to_text":
        return LogMelNetwork(source, layer_path, "audio", model_class="Speech2TextForConditionalGeneration", **common)
    return HFNetwork(source, layer_path, "audio", model_class="SpeechEncoderDecoderModel", **common)

