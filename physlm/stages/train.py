"""The train stage: one step that trains the preset's model and registers its checkpoints.

train ``{root}/train/{hash}/`` — config: ``TrainStepConfig`` (the model with the tokenizer's vocab size, the
recipe, the tokenizer kind, online or shard data); input: the "train" generate step (the training
distribution on record, online or not). It trains in the step's staging folder (``steps.parts_path``:
stable across restarts, so a killed or retried run resumes from its last checkpoint), then finishes the step
with every checkpoint, the tokenizer files and a ``save_pretrained`` copy of the final model
(``config.json`` + ``model.safetensors``), and registers each checkpoint in the registry
(``physlm sql "select * from checkpoints"``). The loop itself is physlm/model/train.py. With
``train.pretrained`` the final checkpoint is installed from shipped weights instead (physlm/store/pretrained.py:
their card must name this step), and the step is finished the same way.

A train step's id is cheap: the config is the preset's own objects (no tokenizer is built, no problem
generated). Whether the context holds the family's problems (:func:`check_context`) is checked before any
work by the CLI and again when the step runs, never while planning.
"""

from __future__ import annotations

import functools

from physlm.config import ConfigError, TrainStepConfig
from physlm.presets import Preset
from physlm.stages import generate
from physlm.store import registry, steps, storage
from physlm.store.steps import Step, exclusive, finalize_parts, parts_path, require_done

NAME = "train"
GPU = True
VERSION = 1
FIT_SAMPLE = 64
"""Problems drawn (fixed seeds) to check that the training context holds the family's problems."""


def plan(preset: Preset) -> list[Step]:
    return [train_step(preset)]


def train_step(preset: Preset) -> Step:
    cfg = TrainStepConfig(model=preset.model, train=preset.train, tokenizer=preset.tokenizer, online=preset.data.online)
    return Step(NAME, cfg, inputs={"data": generate.dataset_step(preset, "train").path()}, version=VERSION)


def describe(step: Step) -> str:
    cfg: TrainStepConfig = step.config
    made = f", installed from pretrained {cfg.train.pretrained!r}" if cfg.train.pretrained else ""
    return f"{cfg.model.name}, {cfg.train.steps} steps{made}"


def tokenizer_for(kind: str):
    from physlm.model.tokenizer import build_wordlevel

    return build_wordlevel(names=kind)


# ---------------------------------------------------------------------------------------------- the context


@functools.lru_cache(maxsize=64)
def _unit_lengths(gen, kind: str) -> tuple[int, ...]:
    from physlm.igsm.generate import generate as make_problem
    from physlm.model.data import encode_units

    probs = [make_problem(gen, 10_000_019 + i) for i in range(FIT_SAMPLE)]
    units = encode_units(
        tokenizer_for(kind), [p.problem for p in probs], [p.solution for p in probs], [p.answer for p in probs]
    )
    return tuple(sorted(len(u.ids) for u in units))


def check_context(cfg: TrainStepConfig, gen) -> None:
    """ConfigError naming ``model.n_ctx`` if it cannot hold most training problems of ``gen`` (the data
    sources would silently drop every problem longer than ``n_ctx - 1`` tokens)."""
    lengths = _unit_lengths(gen, cfg.tokenizer)
    fit = sum(n <= cfg.model.n_ctx - 1 for n in lengths)
    if fit < len(lengths) / 2:
        raise ConfigError(
            f"model.n_ctx: {cfg.model.n_ctx} tokens is shorter than most problems of family "
            f"{gen.family.name!r} ({fit} of {len(lengths)} sampled fit; median "
            f"{lengths[len(lengths) // 2]} tokens, longest {lengths[-1]}); raise model.n_ctx"
        )


def check_preset(preset: Preset) -> None:
    """:func:`check_context` for a preset, and that its ``train.pretrained`` weights are this train step's (the
    CLI calls it before any work)."""
    step = train_step(preset)
    if preset.train.pretrained:
        from physlm.store import pretrained

        pretrained.check(preset.train.pretrained, step)
    check_context(step.config, generate.dataset_step(preset, "train").config.gen)


# ---------------------------------------------------------------------------------------------- the run


def run(step: Step, force: bool = False) -> str:
    """Train (resuming from the staging folder), finish the step, register its checkpoints; returns the path."""
    if step.done() and not force:
        return step.path()
    data_step = steps.load(require_done(step.inputs["data"]))  # the training distribution on record
    check_context(step.config, data_step.config.gen)
    with exclusive(step):  # a second trainer of this step waits here, then finds it done
        if step.done() and not force:
            return step.path()
        return _train_and_finish(step, data_step, force)


def _train_and_finish(step: Step, data_step: Step, force: bool) -> str:
    from physlm.model import data as pdata
    from physlm.model.train import train
    from physlm.store import checkpoint, pretrained

    cfg: TrainStepConfig = step.config
    work = parts_path(step)
    tok = tokenizer_for(cfg.tokenizer)
    tok.save(work)
    curve = None  # [step, tokens_seen, loss] per checkpoint, when not this root's checkpoints
    if cfg.train.pretrained:  # shipped weights: their card names this step (physlm/store/pretrained.py)
        summary = pretrained.install(cfg.train.pretrained, step, work)
        curve = summary["pretrained"]["loss_curve"]
        _write_curve(work, cfg, step.hash, curve)
    else:
        pretrained.discard_installed(work)  # a killed install's weights: nothing to resume from
        if cfg.online:
            source = pdata.online(data_step.config.gen, tok, cfg.train)
        else:
            source = pdata.PackedShards(data_step.path(), tok)
        summary = train(cfg.model, cfg.train, source, work, resume=not force)
    _write_events(work, cfg, curve)
    parts = _save_final(work)
    path = finalize_parts(step, parts, info=lambda out: {"train_summary": _jsonable(summary)}, force=force)
    for s in checkpoint.steps(path):
        meta = {**checkpoint.read_meta(path, s), "path": checkpoint.meta_url(path, s)}
        registry.register(registry.row_from_meta(meta, data_step.hash, step.hash))
    return path


def _save_final(work: str) -> list[str]:
    """A ``save_pretrained`` copy of the last checkpoint's model beside the checkpoints (config.json,
    model.safetensors): the step folder is then a model folder transformers loads. Returns every part."""
    import os
    import tempfile

    from physlm.store import checkpoint

    model = checkpoint.load_model(work)
    parts = [u.rsplit("/", 1)[1] for u in storage.listdir(work)]
    with tempfile.TemporaryDirectory() as local:  # save_pretrained writes local files only, whatever the root
        model.save_pretrained(local, safe_serialization=True)
        for name in ("config.json", "model.safetensors", "generation_config.json"):
            if os.path.exists(os.path.join(local, name)):
                with open(os.path.join(local, name), "rb") as f:
                    storage.write_bytes(storage.join(work, name), f.read())
                parts.append(name)
    return sorted(set(parts))


def _write_events(work: str, cfg: TrainStepConfig, curve: list | None = None) -> None:
    """TensorBoard scalars of every checkpoint (physlm/model/tensorboard.py): a pure function of the checkpoint
    records, so a resumed run writes the same bytes as an uninterrupted one; of ``curve`` (an installed model's
    card: [step, tokens_seen, loss] rows) when given."""
    from physlm.model import tensorboard
    from physlm.model.train import lr_at
    from physlm.store import checkpoint

    if curve is None:
        metas = [checkpoint.read_meta(work, s) for s in checkpoint.steps(work)]
        curve = [(m["step"], m["tokens_seen"], m["loss"]) for m in metas]
    points = []
    for s, tokens_seen, loss in curve:
        scalars = {"train/loss": loss, "train/lr": lr_at(s - 1, cfg.train), "train/tokens_seen": tokens_seen}
        points.append((s, scalars))
    storage.write_bytes(storage.join(work, tensorboard.FILENAME), tensorboard.events(points))


def _write_curve(work: str, cfg: TrainStepConfig, train_hash: str, curve: list) -> None:
    """``loss_curve.parquet`` (physlm.tables.LOSS_CURVE) of an installed model: its card's curve."""
    import pyarrow as pa

    from physlm import tables

    rows = [dict(model=cfg.model.name, train_hash=train_hash, step=s, tokens_seen=t, loss=x) for s, t, x in curve]
    storage.write_parquet(
        pa.Table.from_pylist(rows, schema=tables.LOSS_CURVE), storage.join(work, "loss_curve.parquet")
    )


def _jsonable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool, type(None), list, dict))}


def final_checkpoint_id(train_path: str) -> str:
    from physlm.store import checkpoint

    last = checkpoint.latest(train_path)
    return registry.checkpoint_id(checkpoint.meta_url(train_path, last))
