"""Loading transformers models and tokenizers, and reaching into their modules and outputs."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ...errors import ActivationError, EquivtestError, LayerNotFoundError


class StopForward(Exception):
    """Ends a forward pass once the layer has run."""

def load_model(source, model_class=None, **kwargs) -> nn.Module:
    """A transformers model from an object (returned as is), a local directory or a hub id.

    ``model_class`` is a transformers class or its name (default ``AutoModel``). A local
    directory must hold what ``save_pretrained`` wrote (``config.json`` and weights).
    """
    if isinstance(source, nn.Module):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"a network is a torch.nn.Module, a hub id or a directory path, got {type(source).__name__}")
    import transformers

    cls = model_class or transformers.AutoModel
    if isinstance(cls, str):
        cls = getattr(transformers, cls)
    path = Path(source)
    if path.exists():
        if not (path.is_dir() and (path / "config.json").exists()):
            raise EquivtestError(
                f"{str(source)!r} is not a model directory (no config.json in it); give a directory written by "
                "model.save_pretrained(...) or a hub id"
            )
        return cls.from_pretrained(str(path), **kwargs)
    try:
        return cls.from_pretrained(str(source), **kwargs)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EquivtestError(
            f"cannot load {str(source)!r} as a hub id ({first}). If the model hub is not reachable from here, "
            "download the model where it is, save it with save_pretrained(DIR) and give DIR instead of the id"
        ) from None


def load_tokenizer(source) -> Callable[[str], list[int]]:
    """A tokenizer (``AutoTokenizer``) from a local directory or hub id, as ``text -> ids``."""
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        raise EquivtestError(f"cannot load a tokenizer from {str(source)!r} ({type(exc).__name__}); "
                             "save one there with tokenizer.save_pretrained(DIR)") from None
    return tok

def module_path(model: nn.Module, module: nn.Module) -> str:
    for name, m in model.named_modules():
        if m is module:
            return name
    raise EquivtestError("the embedding module is not part of the model")


def resolve_module(model: nn.Module, path: str, what: str) -> nn.Module:
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        close = difflib.get_close_matches(path, names, n=5, cutoff=0.4)
        hint = f"did you mean {', '.join(map(repr, close))}?" if close else f"it has {', '.join(map(repr, names[:12]))} ..."
        raise LayerNotFoundError(
            f"{type(model).__name__} has no {what} {path!r}; {hint} (module paths as in model.named_modules())"
        ) from None


def pick_output(output, index, path: str) -> torch.Tensor:
    """The tensor of a layer's output: itself, an item of a tuple, or of a ModelOutput."""
    if isinstance(output, torch.Tensor):
        return output
    from transformers.utils import ModelOutput

    key = 0 if index is None else index
    if isinstance(output, ModelOutput):
        picked = output[key] if isinstance(key, str) else output.to_tuple()[key]
    elif isinstance(output, (tuple, list)):
        picked = output[key]
    else:
        picked = None
    if not isinstance(picked, torch.Tensor):
        raise ActivationError(f"layer {path!r} returned {type(output).__name__} whose item {key!r} is not a tensor; "
                              "choose the item with output=INDEX or output='name'")
    return picked


def put_output(output, index, new: torch.Tensor):
    """``output`` with the picked tensor replaced by ``new``."""
    if isinstance(output, torch.Tensor):
        return new
    from transformers.utils import ModelOutput

    key = 0 if index is None else index
    if isinstance(output, ModelOutput):
        copy = output.__class__(**output)
        name = key if isinstance(key, str) else list(output.keys())[key]
        copy[name] = new
        return copy
    items = list(output)
    items[key] = new
    return type(output)(items)
