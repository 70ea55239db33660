"""Training checkpoints in a run folder (local path or s3:// URL, through physlm.store.storage).

One checkpoint after ``step`` optimizer steps is three files, written in this order:

* ``model_{step:06d}.safetensors`` — the model's state dict (HF GPTNeoX key names; a tied LM head stored
  once, under the embedding's name);
* ``state_{step:06d}.pt`` — what resuming needs besides the weights: optimizer state, data position,
  RNG states (python, numpy, torch, cuda), tokens seen (``torch.save``; our own files, loaded with
  ``weights_only=False``);
* ``meta_{step:06d}.json`` — model/train configs, step, tokens seen, loss, time. Written **last**: a
  checkpoint exists only once its meta exists, so a run killed mid-write resumes from the previous one.

Each file is one whole-object write (atomic rename locally, one PUT on S3). Nothing here knows about training
schedules: ``physlm.model.train`` decides when to save and what goes in ``extra``.
"""

from __future__ import annotations

import io
import random
import re
import time

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from physlm.store import storage

MODEL, STATE, META = "model_{:06d}.safetensors", "state_{:06d}.pt", "meta_{:06d}.json"


def steps(folder: str) -> list[int]:
    """Steps of the complete checkpoints (those with a meta file) in ``folder``, ascending."""
    if not storage.exists(folder):
        return []
    found = (re.fullmatch(r"meta_(\d{6})\.json", name.rsplit("/", 1)[-1]) for name in storage.listdir(folder))
    return sorted(int(m[1]) for m in found if m)


def latest(folder: str) -> int | None:
    s = steps(folder)
    return s[-1] if s else None


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unique_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """State dict with shared tensors (tied embeddings) kept once: safetensors refuses aliases."""
    out, seen = {}, set()
    for k, v in model.state_dict().items():
        if v.data_ptr() in seen:
            continue
        seen.add(v.data_ptr())
        out[k] = v.detach().contiguous().cpu()
    return out


def save(folder: str, step: int, model: torch.nn.Module, optimizer, meta: dict, extra: dict | None = None) -> str:
    """Write the three files of checkpoint ``step``; returns the meta file's URL. ``optimizer=None``: the weights
    and meta only (a final checkpoint installed from shipped weights, physlm/store/pretrained.py: not resumable)."""
    storage.write_bytes(storage.join(folder, MODEL.format(step)), st_save(_unique_state_dict(model)))
    if optimizer is not None:
        buf = io.BytesIO()
        torch.save({"optimizer": optimizer.state_dict(), "rng": rng_state(), **(extra or {})}, buf)
        storage.write_bytes(storage.join(folder, STATE.format(step)), buf.getvalue())
    url = storage.join(folder, META.format(step))
    storage.write_json(
        url,
        {
            **meta,
            "step": step,
            "created_at": time.time(),
            "model_file": MODEL.format(step),
            "state_file": STATE.format(step) if optimizer is not None else None,
        },
    )
    return url


def remove(folder: str, step: int) -> None:
    """Delete checkpoint ``step``: its meta first, so that it stops existing before its other files go."""
    for name in (META, MODEL, STATE):
        url = storage.join(folder, name.format(step))
        if storage.exists(url):
            storage.remove(url)


def load_weights(folder: str, step: int, model: torch.nn.Module) -> None:
    """Load checkpoint ``step``'s weights into ``model`` in place (tied weights restored through the tie)."""
    sd = st_load(storage.read_bytes(storage.join(folder, MODEL.format(step))))
    missing, unexpected = model.load_state_dict(sd, strict=False)
    tied = {"lm_head.weight"} if getattr(model.config, "tie_word_embeddings", False) else set()
    if unexpected or set(missing) - tied:
        raise ValueError(f"checkpoint {folder} step {step}: missing {missing}, unexpected {unexpected}")


def load_state(folder: str, step: int) -> dict:
    """The resumable state of checkpoint ``step`` (optimizer, rng, and what ``save`` got in ``extra``)."""
    return torch.load(
        io.BytesIO(storage.read_bytes(storage.join(folder, STATE.format(step)))), map_location="cpu", weights_only=False
    )


def meta_url(folder: str, step: int) -> str:
    return storage.join(folder, META.format(step))


def read_meta(folder: str, step: int) -> dict:
    return storage.read_json(meta_url(folder, step))


def resumable(folder: str, step: int) -> bool:
    """Whether checkpoint ``step`` holds a training state to resume from: not one saved without an optimizer
    (shipped weights installed as a step's final checkpoint: ``state_file`` null; a meta without the key is
    older than that field and has one)."""
    return read_meta(folder, step).get("state_file", "") is not None


def load_model(folder: str, step: int | None = None, attn: str = "sdpa"):
    """Build the model of a checkpoint from its meta (``step=None``: the latest) and load its weights."""
    from physlm.config import ModelConfig
    from physlm.model.gpt import build

    step = latest(folder) if step is None else step
    if step is None:
        raise FileNotFoundError(f"no checkpoint under {folder}")
    model = build(ModelConfig(**read_meta(folder, step)["model_config"]), attn=attn)
    load_weights(folder, step, model)
    return model.eval()
