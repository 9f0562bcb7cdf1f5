"""Hugging Face networks: variable-length audio and token inputs (thesis sections 3.2.3,
3.2.4, 3.3.3 and experiments 3 to 5).

A :class:`HFNetwork` is a transformers model (an object, a hub id or a local directory
saved with ``save_pretrained``) plus where to read it:

- ``layer``: a module path such as ``"wav2vec2.encoder.layers.11"`` or
  ``"transformer.layer.1"``; tuple outputs and ``BaseModelOutput``s give their item
  ``output`` (default 0);
- ``features``: how many equidistant features of that layer to keep (the thesis keeps
  24 of 768), or explicit indices;
- ``modality``: ``"audio"`` (a 1-d waveform per sample) or ``"text"`` (a string, turned
  into token ids by ``tokenizer``).

Every sample keeps its own length (samples are lists, not arrays). For each sample the
layer's output is a sequence of T positions; positions are rows. :class:`Positions` (the
pairing of transformers pairs) draws ``positions`` of them at random (the thesis: 64) per sample, the same ones in the
sample and in each of its neighbours, and treats every position as one sample of the
transformation. When the two networks give different lengths for one sample, the longer
sequence is trimmed to the shorter (``align="trim"``, the thesis) or the shorter is
padded with its per-feature mean over positions (``align="pad"``); the stitched network
does the same to the transformed sequence against the target's own length.

Neighbourhoods: for audio, Gaussian points around the waveform (variance delta/4 by the
thesis's convention). For text, which is discrete, they are drawn in the output space
of the embedding layer (``embedding``, by default the module that
``model.get_input_embeddings()`` returns): the sample's embedding output plus Gaussian
noise, put in place of the embedding output by a forward hook, for samples and
neighbours alike. The two networks' embedding spaces differ, so each network gets its
own neighbourhoods; nothing guarantees that a diffeomorphism between the two sets of
neighbourhoods exists (the thesis's caveat, section 3.2.4).

Cross-domain pairs: ``NetworkPair(a, b, domain_map=f)`` maps a sample of A's domain to B's (e.g.
the ASR network's transcript of the audio becomes B's text sample). Stitching then only
runs from A into B.

The target network of a stitched network still needs an input for the layers before the
replaced one: ``target_input="real"`` (default) gives it the real input, ``"dummy"`` a
zero waveform or a sequence of ``dummy_token_id`` of the same length. The thesis could
only reach its figures with the real input, because its models reuse the input after
the replaced layer (attention masks, positions, and the sequence length the replaced
output must have); results with the real input should be read in that light. With a
dummy the length still comes from the real input.
"""

from .ctc import ctc_alignment, ctc_collapse, ctc_greedy
from .fit import TASKS, HFFitted, HFPair, HFSampling, fit_hf
from .loading import load_model, load_tokenizer
from .network import MODALITIES, HFNetwork, equidistant
from .pairing import TARGET_INPUTS, Positions, answers_by_direction
from .sequences import ALIGNMENTS, align_length, select_positions
from .words import word_agreement, word_error_rate, word_errors

__all__ = [
    "ALIGNMENTS", "MODALITIES", "TARGET_INPUTS", "TASKS", "HFFitted", "HFNetwork", "HFPair", "HFSampling", "Positions",
    "align_length", "answers_by_direction", "ctc_alignment", "ctc_collapse", "ctc_greedy", "equidistant", "fit_hf", "load_model",
    "load_tokenizer", "select_positions",
    "word_agreement", "word_error_rate", "word_errors",
]
