"""English speech generated here from text with eSpeak NG, paired with its text.

The speech suites need audio with transcripts, like LibriSpeech's ``audio`` and ``text``
columns, without a network. eSpeak NG (a formant synthesiser, GPL-3.0) comes as a shared
library inside the PyPI wheel ``espeakng-loader``, called here through ``ctypes``; no
system package is needed. Every utterance gets its own voice (six Klatt variants of eSpeak's English), speed
(words per minute) and pitch, drawn from a seeded generator, so the audio is not one
trivial signal; it is resampled from eSpeak's 22,050 Hz to 16 kHz and scaled to unit
variance, as Wav2Vec2's feature extractor would.

The text is Pang-Lee sentence polarity (shipped, see :mod:`text_data`): short sentences,
lower-cased, reduced to letters, apostrophes and spaces, so the transcript is what a
character-level recogniser can write. The sentiment label of each sentence comes along,
which the speech-sentiment suite uses.
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from equivtest.errors import EquivtestError

SAMPLE_RATE = 16_000
# eSpeak's default voicing adds random jitter (espeak_ng_SetRandSeed does not remove it), so the
# same call gives slightly different audio each time; its Klatt voice variants are deterministic.
VOICES = ("en+klatt", "en+klatt2", "en+klatt3", "en+klatt4", "en+klatt5", "en+klatt6")
RATES = (130, 190)  # words per minute, uniform
PITCHES = (30, 70)  # eSpeak's 0-100 scale, uniform
ALPHABET = "abcdefghijklmnopqrstuvwxyz'"
_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def _espeak():
    try:
        import espeakng_loader
    except ImportError:
        raise EquivtestError("speech generation needs the package espeakng-loader (eSpeak NG bundled): "
                             "pip install espeakng-loader") from None
    lib = ctypes.CDLL(espeakng_loader.get_library_path())
    rate = lib.espeak_Initialize(2, 0, espeakng_loader.get_data_path().encode(), 0)  # 2: synchronous
    if rate <= 0:
        raise EquivtestError("eSpeak NG failed to initialise from the espeakng-loader wheel")
    chunks: list[np.ndarray] = []
    callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

    def callback(wav, n, _events):
        if n > 0:
            chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        return 0

    keep = callback_type(callback)  # referenced below so it is not collected
    lib.espeak_SetSynthCallback(keep)
    return lib, rate, chunks, keep


def synthesize(text: str, voice: str = "en+klatt", rate: int = 160, pitch: int = 50) -> np.ndarray:
    """``text`` spoken by eSpeak NG: float32 at 16 kHz, zero mean, unit variance."""
    from scipy.signal import resample_poly

    if not text.strip():
        raise EquivtestError("cannot synthesise empty text")
    lib, native_rate, chunks, _ = _espeak()
    data = text.encode("utf-8")
    with _LOCK:
        chunks.clear()
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise EquivtestError(f"eSpeak NG has no voice {voice!r}; use one of {VOICES}")
        lib.espeak_SetParameter(1, int(rate), 0)   # espeakRATE
        lib.espeak_SetParameter(3, int(pitch), 0)  # espeakPITCH
        lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 0, None, None)
        lib.espeak_Synchronize()
        wave = np.concatenate(chunks).astype(np.float64) if chunks else np.zeros(0)
    if wave.size == 0:
        raise EquivtestError(f"eSpeak NG produced no audio for {text!r}")
    wave = resample_poly(wave, SAMPLE_RATE // 50, native_rate // 50)  # 22050 -> 16000 (320/441)
    wave = (wave - wave.mean()) / (wave.std() + 1e-8)
    return wave.astype(np.float32)


def normalise_text(text: str) -> str:
    """Lower case, letters and apostrophes only, single spaces (what the recognisers write)."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"\s'|'\s|^'|'$", " ", text)
    return " ".join(text.split())


@dataclass(frozen=True)
class Utterance:
    text: str
    label: int
    voice: str
    rate: int
    pitch: int

    def audio(self) -> np.ndarray:
        return synthesize(self.text, self.voice, self.rate, self.pitch)


def speech_corpus(split: str = "train", n: int | None = None, seed: int = 0, max_words: int = 8,
                  min_words: int = 3) -> list[Utterance]:
    """Utterances of the short sentences (``min_words``..``max_words`` words) of one Pang-Lee split,
    each with a seeded voice, speed and pitch."""
    from .text_data import polarity_splits

    splits = dict(zip(("train", "val", "test"), polarity_splits(seed=0)))
    if split not in splits:
        raise EquivtestError(f"split must be one of {sorted(splits)}, got {split!r}")
    source = splits[split]
    rng = np.random.default_rng([seed, ("train", "val", "test").index(split)])
    out = []
    for sentence, label in zip(source.sentences, source.labels):
        text = normalise_text(sentence)
        if min_words <= len(text.split()) <= max_words:
            out.append(Utterance(text, int(label), str(rng.choice(VOICES)), int(rng.integers(*RATES)),
                                 int(rng.integers(*PITCHES))))
            if n is not None and len(out) >= n:
                break
    return out
