"""A closed-vocabulary speech corpus the recognisers can learn in minutes on a CPU.

Whole Pang-Lee sentences are too varied for a recogniser trained here in minutes: only
186 of them (all splits) use nothing but the 1,000 most frequent words. So the
utterances are *phrases*: runs of 3 to 5 consecutive words of a Pang-Lee sentence in
which every word is among the ``VOCABULARY_SIZE`` most frequent words of the training
sentences ("a good performance in a", "by the end you can't"). Training phrases come
from the training sentences; test phrases from the held-out test sentences, minus any
phrase text that also occurs in training. Each phrase keeps the Pang-Lee label of the
sentence it was cut from (a phrase such as "of a movie" carries no sentiment of its
own; the speech-sentiment suite compares the stitched network with its target's own
labels, so it does not depend on these).

Audio: eSpeak NG (:mod:`speech_data`), a seeded voice, speed and pitch per utterance, a
seeded noise floor (``DITHER``), synthesised once and cached as float16 in an ``.npz`` (no
pickle) with the texts in JSON.
"""

from __future__ import annotations

import collections
import json
import os
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from equivtest._io import atomic_write_bytes
from equivtest.errors import EquivtestError
from .cache import cache_dir, config_key
from .speech_data import PITCHES, RATES, VOICES, normalise_text, synthesize

VOCABULARY_SIZE = 200
MIN_WORDS, MAX_WORDS = 3, 5
# eSpeak writes exact digital silence between words; identical silent frames give identical
# activations (measured: repeated rows in the Speech2Text encoder, which make the RBF system
# singular). A seeded noise floor 40 dB under the speech, as any microphone has, removes them.
DITHER = 0.01


# eSpeak NG carries state from one utterance to the next inside its library (measured: the same
# call gives different audio after other utterances; neither espeak_ng_SetRandSeed, srand nor
# re-initialising resets it). So each set is spoken in a fresh process: its audio then depends on
# the set alone, not on what this process synthesised before (a cache filled by another order of
# runs would otherwise hold other audio under the same key).
SYNTHESIS = "one fresh process per set"


def _save_waves(path, waves: list) -> None:
    """Waveforms of different lengths as one ``.npz``: all values end to end, and the bounds."""
    bounds = np.cumsum([0] + [len(w) for w in waves])
    flat = np.concatenate(waves) if waves else np.zeros(0, np.float32)
    np.savez(path, audio=flat, bounds=bounds)


def _load_waves(path) -> list:
    with np.load(path, allow_pickle=False) as z:
        flat, bounds = z["audio"], z["bounds"]
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(bounds) - 1)]


def _in_fresh_process(texts: list, voices: list) -> list:
    """``synthesize(text, *voice)`` for each pair, in a new interpreter (``python -m`` this module:
    no re-import of the caller's main script, as multiprocessing's spawn would do); the audio
    comes back through an ``.npz`` file."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "audio.npz")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        done = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(
            {"texts": texts, "voices": voices, "out": out}), text=True, capture_output=True, env=env)
        if done.returncode != 0:
            raise EquivtestError(f"speech synthesis in a fresh process failed: {done.stderr.strip()[-2000:]}")
        return _load_waves(out)


def _synthesize_request() -> None:
    """The fresh process's side: a JSON request on stdin, the audio written to its ``out`` path."""
    import sys

    request = json.loads(sys.stdin.read())
    _save_waves(request["out"], [synthesize(text, *voice) for text, voice in zip(request["texts"], request["voices"])])


@dataclass(frozen=True)
class SpeechSet:
    """Utterances with their text, the label of their source sentence and the voice used."""

    texts: list
    labels: np.ndarray
    voices: list
    audio: list  # float32 waveforms at 16 kHz

    def __len__(self) -> int:
        return len(self.texts)


@lru_cache(maxsize=2)
def vocabulary(size: int = VOCABULARY_SIZE) -> tuple:
    """The ``size`` most frequent words of the training sentences (ties by first appearance)."""
    from .text_data import polarity_splits

    train = polarity_splits(seed=0)[0]
    counts = collections.Counter(w for s in train.sentences for w in normalise_text(s).split())
    return tuple(w for w, _ in counts.most_common(size))


def phrases(split: str, size: int = VOCABULARY_SIZE) -> list[tuple[str, int]]:
    """Distinct in-vocabulary phrases of a split with their sentence's label, in corpus order."""
    from .text_data import polarity_splits

    names = ("train", "val", "test")
    if split not in names:
        raise EquivtestError(f"split must be one of {names}, got {split!r}")
    vocab = set(vocabulary(size))
    source = polarity_splits(seed=0)[names.index(split)]
    out: dict[str, int] = {}
    for sentence, label in zip(source.sentences, source.labels):
        run: list[str] = []
        for word in normalise_text(sentence).split() + [None]:
            if word in vocab:
                run.append(word)
                continue
            # a maximal in-vocabulary run, cut into consecutive chunks of up to MAX_WORDS words
            for start in range(0, len(run), MAX_WORDS - 1):
                chunk = run[start : start + MAX_WORDS]
                if len(chunk) >= MIN_WORDS:
                    out.setdefault(" ".join(chunk), int(label))
            run = []
    if split != "train":
        seen = {t for t, _ in phrases("train", size)}
        out = {t: l for t, l in out.items() if t not in seen}
    return list(out.items())


def speech_set(split: str, n: int, seed: int = 0, log=None) -> SpeechSet:
    """The first ``n`` phrases of a split (training phrases in a seeded random order), spoken;
    cached under ``$EQUIVTEST_CACHE/speech``."""
    items = phrases(split)
    if split == "train":
        order = np.random.default_rng(seed).permutation(len(items))
        items = [items[i] for i in order]
    if not 1 <= n <= len(items):
        raise EquivtestError(f"the {split} split has {len(items)} phrases; ask for between 1 and {len(items)}")
    items = items[:n]
    key = config_key({"split": split, "n": n, "seed": seed, "vocabulary": VOCABULARY_SIZE, "voices": VOICES,
                      "rates": RATES, "pitches": PITCHES, "dither": DITHER, "texts": [t for t, _ in items],
                      "synthesis": SYNTHESIS})
    folder = cache_dir() / "speech"
    audio_path, meta_path = folder / f"{split}-{n}-{key}.npz", folder / f"{split}-{n}-{key}.json"
    if audio_path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        audio = [w.astype(np.float32) for w in _load_waves(audio_path)]
        return SpeechSet(meta["texts"], np.asarray(meta["labels"]), meta["voices"], audio)
    if log:
        log(f"synthesising {n} {split} utterances with eSpeak NG (cached afterwards in {folder})")
    rng = np.random.default_rng([seed, ("train", "val", "test").index(split)])
    noise = np.random.default_rng([seed, ("train", "val", "test").index(split), 1])
    voices = [[str(rng.choice(VOICES)), int(rng.integers(*RATES)), int(rng.integers(*PITCHES))] for _ in items]
    audio = []
    for (text, _), wave in zip(items, _in_fresh_process([t for t, _ in items], voices)):
        wave = wave + DITHER * noise.standard_normal(len(wave)).astype(np.float32)
        audio.append((wave / wave.std()).astype(np.float16))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{audio_path.stem}.tmp{os.getpid()}.npz"
    _save_waves(tmp, audio)
    os.replace(tmp, audio_path)
    meta = {"texts": [t for t, _ in items], "labels": [l for _, l in items], "voices": voices}
    atomic_write_bytes(meta_path, json.dumps(meta).encode())
    # the float16 round trip is what a warm run reads, so a cold run returns the same values
    return SpeechSet(meta["texts"], np.asarray(meta["labels"]), voices, [a.astype(np.float32) for a in audio])


if __name__ == "__main__":
    _synthesize_request()
