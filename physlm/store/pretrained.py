"""Shipped trained weights: a model folder with a card, installed as the output of the train step that made it.

A *pretrained folder* is a model folder that transformers and physlm load (``config.json``,
``model.safetensors``, the tokenizer files, ``physlm_markers.json``) plus ``card.json``:

* ``train_step``: the id of the train step whose output the weights are (``train-<hash>``);
* ``preset``: the preset sections that step covers (``data``, ``model``, ``tokenizer``, ``train``; all fields),
  so a preset that installs the weights is rebuilt from the card, whatever the named preset becomes later;
* ``checkpoint``: the final checkpoint's meta (step, tokens seen, loss, model and train configs);
* ``loss_curve``: ``[step, tokens_seen, loss]`` of every checkpoint of the run (only the final weights ship);
* ``trained``: the commit, machine and time of the run; ``accuracy``: its evaluate step's greedy accuracy
  by test set and op, when one was done; ``files``: size and SHA-256 of every shipped file.

:func:`export` writes one from a finished train step (``physlm export-model``, ``benchmarks/gpu_train.py
--out``). ``train.pretrained=<name or folder>`` (not hashed: it changes how the train step's output is made,
not what it is) makes the train stage call :func:`install` instead of training: the card's train step must be
this step (else a one-line ``ConfigError``: another recipe), the files must match the card, and the final
checkpoint is written from the shipped weights; the stage then finishes and registers the step as after
training. Evaluate, probe and analyze see an ordinary finished train step; its step.json says where the
weights came from (``train_summary.pretrained``). Folders shipped with physlm live in ``physlm/pretrained/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile

from physlm.config import ConfigError
from physlm.store import storage

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained")
"""The folders shipped with physlm (package data): ``physlm/pretrained/<name>/``."""
CARD = "card.json"
MODEL_FILES = ("config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
               "tokenizer_config.json", "physlm_markers.json")  # fmt: skip
"""What a model folder holds (generation_config.json where transformers wrote one)."""
FORMAT = 1


def names() -> list[str]:
    """The shipped pretrained folders."""
    if not os.path.isdir(SHIPPED):
        return []
    return sorted(n for n in os.listdir(SHIPPED) if os.path.isfile(os.path.join(SHIPPED, n, CARD)))


def locate(ref: str) -> str:
    """The folder of ``ref``: a shipped name (``tiny``) or a local folder holding a card; else ConfigError."""
    for folder in (os.path.join(SHIPPED, ref), ref):
        if ref and os.path.isfile(os.path.join(folder, CARD)):
            return os.path.abspath(folder)
    shipped = ", ".join(names()) or "none"
    raise ConfigError(f"train.pretrained: {ref!r} is neither a shipped model ({shipped}) nor a folder with a {CARD}")


def read_card(folder: str) -> dict:
    with open(os.path.join(folder, CARD)) as f:
        card = json.load(f)
    if card.get("format") != FORMAT:
        raise ConfigError(f"train.pretrained: {folder}/{CARD} has format {card.get('format')!r}, expected {FORMAT}")
    return card


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- export


def export(preset, train_path: str, out: str, evaluate_path: str | None = None, machine: str | None = None) -> dict:
    """Write the pretrained folder ``out`` (local) from the finished train step ``train_path`` of ``preset``
    (and the accuracy of its finished evaluate step, if given); returns the card. ``machine``: where it trained,
    for a step that does not record it. ``out`` is replaced whole: written beside it, then renamed into place."""
    from physlm.store import checkpoint, steps

    step = steps.load(train_path)
    info = steps.read_info(train_path)
    metas = [checkpoint.read_meta(train_path, s) for s in checkpoint.steps(train_path)]
    if not metas:
        raise FileNotFoundError(f"{train_path}: no checkpoint to export")
    sections = {"data": preset.data, "model": preset.model, "tokenizer": preset.tokenizer, "train": preset.train}
    card = {
        "format": FORMAT,
        "train_step": step.id,
        "preset": {"name": preset.name, **{k: _dict(v) for k, v in sections.items()}},
        "checkpoint": metas[-1],
        "loss_curve": [[m["step"], m["tokens_seen"], m["loss"]] for m in metas],
        "trained": {
            "git_sha": info.get("code", {}).get("git_sha"),
            "machine": info.get("train_summary", {}).get("machine") or machine,
            "ended_at": info.get("ended_at"),
        },
        "accuracy": _accuracy(evaluate_path) if evaluate_path else [],
        "files": {},
    }
    parent = os.path.dirname(os.path.abspath(out))
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        for name in MODEL_FILES:
            url = storage.join(train_path, name)
            if storage.exists(url):
                data = storage.read_bytes(url)
                with open(os.path.join(work, name), "wb") as f:
                    f.write(data)
                card["files"][name] = {"bytes": len(data), "sha256": _sha256(data)}
        with open(os.path.join(work, CARD), "w") as f:
            json.dump(card, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(work, 0o755)  # mkdtemp's folder is private; a shipped folder is not
        _replace_dir(work, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return card


def _dict(v):
    from physlm.store.steps import config_to_dict

    return v if isinstance(v, str) else config_to_dict(v)


def _accuracy(evaluate_path: str) -> list[dict]:
    """Greedy accuracy rows of an evaluate step: test set, op (-1 = all), n, accuracy, Wilson interval."""
    rows = storage.read_parquet(storage.join(evaluate_path, "accuracy.parquet")).to_pylist()
    keep = ("test_set", "op", "n", "accuracy", "ci_low", "ci_high", "answer_accuracy")
    return [{k: r[k] for k in keep} for r in rows if r["decoding"] == "greedy"]


def _replace_dir(new: str, out: str) -> None:
    """Rename ``new`` to ``out``; a folder already at ``out`` is moved aside first and removed last."""
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=".replaced-", dir=os.path.dirname(os.path.abspath(out)))
        os.rmdir(old)
        os.rename(out, old)
    os.rename(new, out)
    if old:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- install


def check(ref: str, step) -> tuple[str, dict]:
    """``(folder, card)`` of ``ref`` if its card names train step ``step``, else a one-line ConfigError (cheap:
    the CLI calls it before any work)."""
    folder = locate(ref)
    card = read_card(folder)
    if card["train_step"] != step.id:
        raise ConfigError(
            f"train.pretrained: {ref!r} holds the weights of {card['train_step']} (preset "
            f"{card['preset']['name']!r}), but this preset's train step is {step.id}: another recipe"
        )
    return folder, card


def install(ref: str, step, work: str) -> dict:
    """Write the final checkpoint of train step ``step`` into its staging folder ``work`` from the pretrained
    folder ``ref`` (name or path); returns the step's train summary. ConfigError if the folder is the output of
    another train step or its files do not match its card."""
    from physlm.model import gpt
    from physlm.store import checkpoint

    folder, card = check(ref, step)
    for name, rec in card["files"].items():
        with open(os.path.join(folder, name), "rb") as f:
            if _sha256(f.read()) != rec["sha256"]:
                raise ConfigError(f"train.pretrained: {folder}/{name} does not match its card (altered or damaged)")
    meta = dict(card["checkpoint"])
    model = gpt.load(folder)
    checkpoint.save(work, meta["step"], model, None, {k: meta[k] for k in _META_KEYS if k in meta})
    return {
        "step": meta["step"],
        "tokens_seen": meta["tokens_seen"],
        "loss": meta["loss"],
        "history": [],
        "pretrained": {"folder": ref, "trained": card["trained"], "loss_curve": card["loss_curve"]},
        "params": step.config.model.params(),
        "non_embedding_params": step.config.model.non_embedding_params(),
    }


_META_KEYS = ("model_config", "train_config", "name", "tokens_seen", "loss", "world", "position")
"""The final checkpoint meta's fields an installed checkpoint keeps (its step, files and time are its own)."""
