"""Shipped trained weights: a model folder with a card, installed as the output of the train step that made it.

A *pretrained folder* is a model folder that transformers and physlm load (``config.json``,
``model.safetensors``, the tokenizer files, ``physlm_markers.json``) plus ``card.json``:

* ``train_step``: the id of the train step whose output the weights are (``train-<hash>``);
* ``preset``: the preset's name and sections (``data``, ``model``, ``tokenizer``, ``train``, ``evaluate``,
  ``probe``; all fields), so a preset that installs the weights is rebuilt from the card, whatever the named
  preset becomes later;
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
import logging
import os
import shutil
import tempfile

from physlm.config import ConfigError, names_folder
from physlm.store import storage

log = logging.getLogger(__name__)

SHIPPED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "pretrained")
"""The folders shipped with physlm (package data): ``physlm/pretrained/<name>/``."""
CARD = "card.json"
REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "physlm_markers.json")
"""What a pretrained folder must hold (and its card list): the model folder physlm and transformers load."""
MODEL_FILES = (*REQUIRED, "generation_config.json")
"""Every file an export copies (generation_config.json where transformers wrote one)."""
FORMAT = 1


def names() -> list[str]:
    """The shipped pretrained folders."""
    if not os.path.isdir(SHIPPED):
        return []
    found = (n for n in os.listdir(SHIPPED) if not n.startswith("."))  # not a half-written export
    return sorted(n for n in found if os.path.isfile(os.path.join(SHIPPED, n, CARD)))


def locate(ref: str) -> str:
    """The folder of ``ref``: a shipped name (``tiny``) or a path to a folder holding a card; else ConfigError."""
    folder = os.path.expanduser(ref) if names_folder(ref) else os.path.join(SHIPPED, ref)
    if ref and os.path.isfile(os.path.join(folder, CARD)):
        return os.path.abspath(folder)
    shipped = ", ".join(names()) or "none"
    raise ConfigError(f"train.pretrained: {ref!r} is neither a shipped model ({shipped}) nor a folder with a {CARD}")


def read_card(folder: str) -> dict:
    """The card of a pretrained folder; ConfigError if it is unreadable, of another format or lists too little."""
    try:
        with open(os.path.join(folder, CARD)) as f:
            card = json.load(f)
    except (OSError, ValueError) as e:
        raise ConfigError(f"train.pretrained: {folder}/{CARD} is unreadable ({type(e).__name__}: {e})") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise ConfigError(f"train.pretrained: {folder}/{CARD} has format {got!r}, expected {FORMAT}")
    missing = [n for n in REQUIRED if n not in card.get("files", {})]
    if missing:
        raise ConfigError(f"train.pretrained: {folder}/{CARD} lists no {', '.join(missing)}")
    return card


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------- export


def export(preset, train_path: str, out: str, evaluate_path: str | None = None, machine: str | None = None) -> dict:
    """Write the pretrained folder ``out`` (local) from the finished train step ``train_path`` of ``preset``
    (and the accuracy of its finished evaluate step, if given); returns the card. ``machine``: where it trained,
    for a step that does not record it. ``out`` is replaced whole: written beside it, then renamed into place."""
    from physlm.store import checkpoint, steps

    _check_target(out)
    step = steps.load(train_path)
    info = steps.read_info(train_path)
    metas = [checkpoint.read_meta(train_path, s) for s in checkpoint.steps(train_path)]
    if not metas:
        raise FileNotFoundError(f"{train_path}: no checkpoint to export")
    installed = info.get("train_summary", {}).get("pretrained")  # an installed step: its weights' own history
    curve = [[m["step"], m["tokens_seen"], m["loss"]] for m in metas]
    sections = {"data": preset.data, "model": preset.model, "tokenizer": preset.tokenizer, "train": preset.train,
                "evaluate": preset.evaluate, "probe": preset.probe}  # fmt: skip
    card = {
        "format": FORMAT,
        "train_step": step.id,
        "preset": {"name": preset.name, **{k: _dict(v) for k, v in sections.items()}},
        "checkpoint": metas[-1],
        "loss_curve": installed["loss_curve"] if installed else curve,
        "trained": installed["trained"]
        if installed
        else {
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
            if storage.exists(storage.join(train_path, name)):
                data = steps.read_checked(train_path, name)  # against step.json: never ship damaged bytes
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


def _check_target(out: str) -> None:
    """FileExistsError unless ``out`` is missing, an empty folder, or a pretrained folder (which is replaced):
    an export never deletes anything else."""
    ours = os.path.isdir(out) and (not os.listdir(out) or os.path.isfile(os.path.join(out, CARD)))
    if os.path.exists(out) and not ours:
        raise FileExistsError(f"{out} exists and is not a pretrained folder (no {CARD}): choose a new folder")


def _replace_dir(new: str, out: str) -> None:
    """Rename ``new`` to ``out``; a folder already at ``out`` is moved aside first, put back if the rename
    fails, removed last."""
    old = None
    if os.path.exists(out):
        old = tempfile.mkdtemp(prefix=".replaced-", dir=os.path.dirname(os.path.abspath(out)))
        os.rmdir(old)
        os.rename(out, old)
    try:
        os.rename(new, out)
    except OSError:
        if old:
            os.rename(old, out)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------------------------- install


def check(ref: str, step) -> tuple[str, dict]:
    """``(folder, card)`` of ``ref`` if its card names train step ``step`` and every file matches the card's
    SHA-256, else a one-line ConfigError (the CLI calls it before any work: ~1 MB to hash)."""
    folder = locate(ref)
    card = read_card(folder)
    if card["train_step"] != step.id:
        raise ConfigError(
            f"train.pretrained: {ref!r} holds the weights of {card['train_step']} (preset "
            f"{card['preset']['name']!r}), but this preset's train step is {step.id}: another recipe"
        )
    for name, rec in card["files"].items():
        try:
            with open(os.path.join(folder, name), "rb") as f:
                ok = _sha256(f.read()) == rec["sha256"]
        except OSError:
            ok = False
        if not ok:
            raise ConfigError(f"train.pretrained: {folder}/{name} does not match its card (altered or missing)")
    return folder, card


def install(ref: str, step, work: str) -> dict:
    """Write the final checkpoint of train step ``step`` into its staging folder ``work`` from the pretrained
    folder ``ref`` (name or path), after :func:`check`; returns the step's train summary. Checkpoints a killed
    training run left in ``work`` are removed first (a step holds one run's checkpoints); the tokenizer the
    stage wrote there must have the shipped one's vocabulary and markers (else ConfigError: this physlm would
    frame text otherwise; the JSON bytes may differ between versions of the tokenizers library)."""
    from physlm.model import gpt
    from physlm.model.tokenizer import load
    from physlm.store import checkpoint

    folder, card = check(ref, step)
    ours, theirs = load(work), load(folder)
    if (ours.kind, ours.markers, ours.tok.get_vocab()) != (theirs.kind, theirs.markers, theirs.tok.get_vocab()):
        raise ConfigError(f"train.pretrained: {ref!r} was trained with another vocabulary than this physlm's tokenizer")
    for s in checkpoint.steps(work):
        checkpoint.remove(work, s)
    meta = dict(card["checkpoint"])
    model = gpt.load(folder)
    checkpoint.save(work, meta["step"], model, None, {k: meta[k] for k in _META_KEYS if k in meta})
    return {
        "step": meta["step"],
        "tokens_seen": meta["tokens_seen"],
        "loss": meta["loss"],
        "history": [],
        "pretrained": {"folder": folder, "trained": card["trained"], "loss_curve": card["loss_curve"]},
        "params": step.config.model.params(),
        "non_embedding_params": step.config.model.non_embedding_params(),
    }


def discard_installed(work: str) -> list[int]:
    """Remove from a train step's staging folder ``work`` the checkpoints a killed :func:`install` left there (no
    optimizer state: nothing a training run can resume from); returns their steps. The counterpart of
    :func:`install` removing a killed training run's checkpoints: whichever of the two runs next starts clean."""
    from physlm.store import checkpoint

    stale = [s for s in checkpoint.steps(work) if not checkpoint.resumable(work, s)]
    for s in stale:
        checkpoint.remove(work, s)
        log.info("%s: removed checkpoint %d, left by a killed install of shipped weights", work, s)
    return stale


_META_KEYS = ("model_config", "train_config", "name", "tokens_seen", "loss", "world", "position")
"""The final checkpoint meta's fields an installed checkpoint keeps (its step, files and time are its own)."""
