"""The thesis's experiments as suites, defined once for ``pytest suites/`` and ``equivtest run``.

Each experiment module provides ``NAME``, ``pair()``, ``sampler()``, ``CONFIG``,
``test_inputs()`` and ``THRESHOLDS``. The registry below names them without importing
them, so ``equivtest list`` and ``--help`` stay fast (no torch, no datafold).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Suite:
    name: str
    module: str
    title: str

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)


SUITES: dict[str, Suite] = {
    "1d": Suite("1d", "equivtest.experiments.one_d", "Experiment 1: 1-1-1 vs. 1-8-8-8-1 tanh MLPs on f(x) = -x^2"),
    "vibration": Suite("vibration", "equivtest.experiments.vibration",
                       "Experiment 2: LSTM vs. Conv1d + transformer on CWRU bearing windows, slices p = 25, 10, 2, 1"),
    "merge": Suite("merge", "equivtest.experiments.merge", "Weight merging: the TransformerAE report's double-encoder merger on digit CNNs"),
    "speech": Suite("speech", "equivtest.experiments.speech",
                    "Experiment 3: Wav2Vec2 CTC vs. Speech2Text encoder-decoder recognisers, both directions"),
    "text": Suite("text", "equivtest.experiments.text", "Experiment 4: XLNet-style vs. MiniLM (BERT) sentiment classifiers, both directions"),
    "speech-sentiment": Suite("speech-sentiment", "equivtest.experiments.speech_sentiment",
                              "Experiment 5: Wav2Vec2 CTC into an XLNet sentiment classifier, a speech sentiment network"),
}


def get(name: str) -> Suite:
    try:
        return SUITES[name]
    except KeyError:
        raise KeyError(f"no suite named {name!r}; available: {', '.join(SUITES)}") from None
