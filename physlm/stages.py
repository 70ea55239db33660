"""The train and evaluate steps of a preset: what each step's config is, and how it runs.

train ``{root}/train/{hash}/`` — config: the model (with the tokenizer's vocab size), the training
hyper-parameters, the tokenizer kind, online or shard data; input: the "train" generate step. It trains in
the step's staging folder (``steps.parts_path``: stable across restarts, so a killed or retried run resumes
from its last checkpoint), then finishes the step with every checkpoint, the tokenizer files and a
``save_pretrained`` copy of the final model (``config.json`` + ``model.safetensors``), and registers each
checkpoint in the registry (``physlm sql "select * from checkpoints"``).

evaluate ``{root}/evaluate/{hash}/`` — config: decodings, token cap, limit; inputs: the train step and each
test set's generate step. Writes ``generations.parquet``, ``accuracy.parquet``, ``accuracy.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from physlm import checkpoint, datasets, registry, storage
from physlm.model import ModelConfig
from physlm.presets import Preset
from physlm.steps import Step, finalize_parts, parts_path
from physlm.tokenizer import build_wordlevel, load as load_tokenizer
from physlm.train import TrainConfig

TRAIN_VERSION = 1
EVAL_VERSION = 1


@dataclass(frozen=True)
class TrainStepConfig:
    model: ModelConfig
    train: TrainConfig
    tokenizer: str
    """Word-level tokenizer with item names as whole tokens ("whole") or split into words ("words")."""
    online: bool
    """Fresh problems every step from the train dataset's generator config (the paper) vs its shards."""


@dataclass(frozen=True)
class EvalStepConfig:
    decodings: tuple[str, ...]
    max_new_tokens: int
    limit: int
    """Problems per test set (0 = all)."""
    batch_size: int = field(default=32, metadata={"hash": False})


# ---------------------------------------------------------------------------------------------- train
def tokenizer_for(kind: str):
    return build_wordlevel(names=kind)


def train_step(preset: Preset) -> Step:
    data = datasets.step_for(preset, "train")
    tok = tokenizer_for(preset.model.tokenizer)
    mc = ModelConfig.from_name(preset.model.shape, vocab_size=tok.vocab_size, n_ctx=preset.model.n_ctx,
                               rope_theta=preset.model.rope_theta)
    cfg = TrainStepConfig(model=mc, train=preset.train, tokenizer=preset.model.tokenizer,
                          online=preset.data.online)
    return Step("train", cfg, inputs={"data": data.path()}, version=TRAIN_VERSION)


def run_train(step: Step, data_step: Step, force: bool = False) -> str:
    """Train (resuming from the staging folder), finish the step, register its checkpoints; returns the path."""
    from physlm import data as pdata
    from physlm.train import train

    if step.done() and not force:
        return step.path()
    cfg: TrainStepConfig = step.config
    work = parts_path(step)
    tok = tokenizer_for(cfg.tokenizer)
    tok.save(work)
    if cfg.online:
        source = pdata.OnlineProblems(data_step.config.gen, tok)
    else:
        source = pdata.PackedShards(data_step.path(), tok)
    summary = train(cfg.model, cfg.train, source, work, resume=not force)
    model = checkpoint.load_model(work)
    model.save_pretrained(storage.join(work, "final"), safe_serialization=True)
    parts = sorted(u.rsplit("/", 1)[1] for u in storage.listdir(work) if not u.endswith("/final"))
    for name in ("config.json", "model.safetensors", "generation_config.json"):
        src = storage.join(work, "final", name)
        if storage.exists(src):
            storage.write_bytes(storage.join(work, name), storage.read_bytes(src))
            parts.append(name)
    storage.remove(storage.join(work, "final"), recursive=True)
    parts = sorted(set(parts))
    path = finalize_parts(step, parts, info=lambda out: {"train_summary": _jsonable(summary)}, force=force)
    for s in checkpoint.steps(path):
        meta = {**checkpoint.read_meta(path, s), "path": checkpoint.meta_url(path, s)}
        registry.register(registry.row_from_meta(meta, data_step.hash, step.hash))
    return path


def _jsonable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if isinstance(v, (int, float, str, bool, type(None), list))}


def final_checkpoint_id(train_path: str) -> str:
    last = checkpoint.latest(train_path)
    return registry.checkpoint_id(checkpoint.meta_url(train_path, last))


# ---------------------------------------------------------------------------------------------- evaluate
def test_sets(preset: Preset) -> list[str]:
    return [name for name in preset.data.datasets() if name != "train"]


def evaluate_step(preset: Preset) -> Step:
    inputs = {"train": train_step(preset).path()}
    inputs.update({name: datasets.step_for(preset, name).path() for name in test_sets(preset)})
    e = preset.evaluate
    cfg = EvalStepConfig(decodings=e.decodings, max_new_tokens=e.max_new_tokens, limit=e.limit,
                         batch_size=e.batch_size)
    return Step("evaluate", cfg, inputs=inputs, version=EVAL_VERSION)


def run_evaluate(step: Step, force: bool = False) -> str:
    """Decode every test set with the final checkpoint, check every solution, write the tables."""
    from physlm import decode
    from physlm.evaluate import EvalOptions, PhyslmCodec, evaluate_rows, write_results
    from physlm.shards import read_shards
    from physlm.steps import run_step

    cfg: EvalStepConfig = step.config
    train_path = step.inputs["train"]
    decodings = {"greedy": decode.GREEDY, "beam4": decode.BEAM4}

    def body(out: str) -> dict:
        model = checkpoint.load_model(train_path)
        tok = load_tokenizer(train_path)
        cid = final_checkpoint_id(train_path)
        rows = []
        for name, folder in step.inputs.items():
            if name == "train":
                continue
            problems = read_shards(folder).to_pylist()
            if cfg.limit:
                problems = problems[: cfg.limit]
            rows += evaluate_rows(model, PhyslmCodec(tok), problems, name, cid,
                                  tuple(decodings[d] for d in cfg.decodings),
                                  EvalOptions(batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens))
        return {"checkpoint_id": cid, **write_results(rows, out)}

    return run_step(step, body, force=force)
