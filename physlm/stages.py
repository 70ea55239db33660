"""The train and evaluate steps of a preset: what each step's config is, and how it runs.

train ``{root}/train/{hash}/`` — config: the model (with the tokenizer's vocab size), the training
hyper-parameters, the tokenizer kind, online or shard data; input: the "train" generate step. It trains in
the step's staging folder (``steps.parts_path``: stable across restarts, so a killed or retried run resumes
from its last checkpoint), then finishes the step with every checkpoint, the tokenizer files and a
``save_pretrained`` copy of the final model (``config.json`` + ``model.safetensors``), and registers each
checkpoint in the registry (``physlm sql "select * from checkpoints"``).

evaluate ``{root}/evaluate/{hash}/`` — config: decodings, token cap, limit; inputs: the train step and each
test set's generate step. Writes ``generations.parquet``, ``accuracy.parquet``, ``accuracy.md``.

probe ``{root}/probe/{hash}/`` — config: the preset's ``ProbeSection``; inputs: the train step, the "train"
and "test_id" generate steps (probe training problems: the first ``train_problems`` of "train", template
hash < 17; test: the first ``test_problems`` of "test_id", hash >= 17), the "test_reask" generate step and
the evaluate step (its greedy generations drive the error analysis). The model's weights are never
written (``checkpoint.load_model`` + frozen ``VProbe``). Writes ``probe_predictions.parquet``
(:data:`PROBE_PREDICTIONS` = ``probe.PREDICTIONS`` + ``source``), ``probe_metrics.parquet``
(``probe.METRICS``) and ``probe_metrics.md``. Prediction rows by ``source``:

* ``probe_test``: every task x {vprobe, random_init, linear} on the test problems at layer -1, plus the
  nece V-probe at each extra ``layers`` site (E4-E6, E10); the metrics rows are these only. The random-init
  model is ``probe.random_init_like(model, random_init_seed)`` (the seed is in step.json's config).
* ``reask_all_params`` (E7): the trained nece V-probe (layer -1) on EVERY parameter of G_d of each
  "test_reask" problem that has a greedy generation; label = the true nece(A). Join
  ``unnest(generations.unnecessary)`` with ``param_a`` on ``(checkpoint_id, problem_id)``.
* ``first_wrong`` (E8): for each wrong greedy generation of "test_id" and "test_reask" whose
  ``first_wrong_param`` A is a parameter of G_d, the trained can_next / nece_next V-probes (those in
  ``tasks``) at the model's OWN prefix just before A's sentence (``probe.make_example(solution_prefix=...)``;
  the sentence is the one the checker blames, the first error naming A). ``state`` = the number of
  sentences written before it, retry "BACK" sentences not counted (as ``labels.boundary_states`` and the
  E8 query count them). Labels are the truth given what the generated prefix defined: known = the G_d
  parameters named by its (non-retry) "Define X as" sentences, right or wrong; can_next(A) = A not known and
  all its operands known; nece_next(A) = can_next(A) and A necessary. A generation whose A is not in G_d
  (unknown or structural-only names) or that has no solution text gets no row.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from physlm import checkpoint, datasets, registry, storage
from physlm.igsm.config import ConfigError
from physlm.igsm.labels import distance_to_query
from physlm.igsm.record import graph_of
from physlm.model import ModelConfig
from physlm.presets import Preset, ProbeSection
from physlm.steps import Step, exclusive, finalize_parts, parts_path, require_done
from physlm.tokenizer import build_wordlevel, load as load_tokenizer
from physlm.train import TrainConfig

TRAIN_VERSION = 1
EVAL_VERSION = 1
PROBE_VERSION = 1


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


FIT_SAMPLE = 64
"""Problems drawn (fixed seeds) to check that the training context holds the family's problems."""


@functools.lru_cache(maxsize=64)
def _unit_lengths(gen, kind: str) -> tuple[int, ...]:
    from physlm.data import encode_units
    from physlm.igsm.generate import generate

    probs = [generate(gen, 10_000_019 + i) for i in range(FIT_SAMPLE)]
    units = encode_units(tokenizer_for(kind), [p.problem for p in probs], [p.solution for p in probs],
                         [p.answer for p in probs])
    return tuple(sorted(len(u.ids) for u in units))


def check_context(preset: Preset) -> None:
    """ConfigError naming ``model.n_ctx`` if it cannot hold most training problems (checked before any work:
    the data sources would silently drop every problem longer than ``n_ctx - 1`` tokens)."""
    lengths = _unit_lengths(datasets.step_for(preset, "train").config.gen, preset.model.tokenizer)
    fit = sum(n <= preset.model.n_ctx - 1 for n in lengths)
    if fit < len(lengths) / 2:
        raise ConfigError(f"model.n_ctx: {preset.model.n_ctx} tokens is shorter than most problems of family "
                          f"{preset.data.family.name!r} ({fit} of {len(lengths)} sampled fit; median "
                          f"{lengths[len(lengths) // 2]} tokens, longest {lengths[-1]}); raise model.n_ctx")


def train_step(preset: Preset) -> Step:
    check_context(preset)
    data = datasets.step_for(preset, "train")
    tok = tokenizer_for(preset.model.tokenizer)
    mc = ModelConfig.from_name(preset.model.shape, vocab_size=tok.vocab_size, **preset.model.options())
    cfg = TrainStepConfig(model=mc, train=preset.train, tokenizer=preset.model.tokenizer,
                          online=preset.data.online)
    return Step("train", cfg, inputs={"data": data.path()}, version=TRAIN_VERSION)


def run_train(step: Step, data_step: Step, force: bool = False) -> str:
    """Train (resuming from the staging folder), finish the step, register its checkpoints; returns the path."""
    if step.done() and not force:
        return step.path()
    require_done(data_step.path())  # the data step is the training distribution on record, online or not
    with exclusive(step):  # a second trainer of this step waits here, then finds it done
        if step.done() and not force:
            return step.path()
        return _train_and_finish(step, data_step, force)


def _train_and_finish(step: Step, data_step: Step, force: bool) -> str:
    from physlm import data as pdata
    from physlm.train import train

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
        require_done(train_path)
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


# ---------------------------------------------------------------------------------------------- probe
def _probe_predictions_schema():
    import pyarrow as pa

    from physlm.probe import PREDICTIONS

    return PREDICTIONS.append(pa.field("source", pa.string(), nullable=False))


PROBE_SOURCES = ("probe_test", "reask_all_params", "first_wrong")
"""Values of the ``source`` column of ``probe_predictions`` (module docstring)."""


def probe_step(preset: Preset) -> Step:
    inputs = {"train": train_step(preset).path(),
              "train_data": datasets.step_for(preset, "train").path(),
              "test_id": datasets.step_for(preset, "test_id").path(),
              "test_reask": datasets.step_for(preset, "test_reask").path(),
              "evaluate": evaluate_step(preset).path()}
    return Step("probe", preset.probe, inputs=inputs, version=PROBE_VERSION)


def analyze_step(preset: Preset) -> Step:
    """The canned queries over the preset's evaluate and probe steps (physlm/analysis.py)."""
    from physlm import analysis

    return analysis.analyze_step({"evaluate": evaluate_step(preset).path(), "probe": probe_step(preset).path()})


def _probe_config(cfg: ProbeSection, task: str, layer: int = -1):
    from physlm.probe import ProbeConfig

    return ProbeConfig(task=task, layer=layer, rank=cfg.rank, steps=cfg.steps, batch_size=cfg.batch_size,
                       lr=cfg.lr, weight_decay=cfg.weight_decay, seed=cfg.seed,
                       samples_per_problem=cfg.samples_per_problem, balanced=cfg.balanced, device=cfg.device)


def _fit_vprobe(model, tok, train_rows, test_rows, pc, cid: str):
    """``probe.run_probe(..., "vprobe")`` that also returns the trained probe (for E7/E8)."""
    from physlm import probe as P

    pad = tok.markers.end
    train = P.build_examples(tok, train_rows, pc.task, pc.samples_per_problem, pc.balanced, pc.seed)
    test = P.build_examples(tok, test_rows, pc.task, pc.samples_per_problem, False, pc.seed)
    if not train or not test:
        raise ValueError(f"probe {pc.task}: no probe examples (train {len(train)}, test {len(test)})")
    y = [e.label for e in train]
    vp, _ = P.fit_vprobe(model, [e.ids for e in train], y, pc.n_classes, pc, pad_id=pad)
    probs = P.predict_vprobe(vp, [e.ids for e in test], pc.batch_size, pad_id=pad)
    preds = P.prediction_rows(test, probs, cid, pc.layer, "vprobe")
    return preds, P.metric_rows(preds, P.majority_class(y)), vp


def solution_text(tok, output: str) -> str | None:
    """The solution part of a ``generations.output`` (decoded with its markers), None without [answer]."""
    end, answer = tok.decode([tok.markers.end]), tok.decode([tok.markers.answer])
    text = output.split(end, 1)[0]
    return text.split(answer, 1)[0] if answer in text else None


def _defined_name(sentence: str) -> str | None:
    head = sentence.split("; ", 1)[0]
    if " BACK" in sentence or not head.startswith("Define ") or " as " not in head:
        return None
    return head[len("Define "):].rpartition(" as ")[0] or None


def first_wrong_probe(row: dict, solution: str, first_wrong_param: str | None = None):
    """E8 probe point of a wrong solution: ``(state, solution_prefix, a, {"can_next": l, "nece_next": l})``
    or None (no parameter-level error, or A not in G_d). See the module docstring."""
    from physlm.igsm.check import check

    g = graph_of(row)
    mistake = next((m for m in check(g, solution).errors if m.param is not None), None)
    if mistake is None or mistake.step is None:
        return None
    if first_wrong_param is not None and mistake.param != first_wrong_param:
        return None
    index = {g.name(p): p for p in range(g.n)}
    a = index.get(mistake.param)
    if a is None:
        return None
    # the checker's sentences: strip, drop a final ".", split on ". "; sentence s starts after s of them
    text = solution.strip()
    text = text[:-1] if text.endswith(".") else text
    sentences = text.split(". ")
    s = mistake.step
    lead = len(solution) - len(solution.lstrip())
    cut = lead + sum(len(x) + 2 for x in sentences[:s]) - 1 if s else 0  # right after the "." (no space)
    names = [_defined_name(x) for x in sentences[:s]]
    known = {index[n] for n in names if n in index}
    can = a not in known and all(q in known for q in g.preds[a])
    necessary = a in set(g.order)
    state = sum(" BACK" not in x for x in sentences[:s])
    return state, solution[:cut], a, {"can_next": int(can), "nece_next": int(can and necessary)}


def _metrics_markdown(metrics: list[dict]) -> str:
    rows = [m for m in metrics if m["slice"] == "all"]
    rows.sort(key=lambda m: (m["task"], m["layer"] != -1, m["layer"], m["baseline"] != "vprobe", m["baseline"]))
    lines = ["| checkpoint | task | layer | baseline | n | accuracy | MCC | majority acc. |",
             "|---|---|---|---|---|---|---|---|"]
    for m in rows:
        mcc = "-" if m["mcc"] is None else f"{m['mcc']:.3f}"
        lines.append(f"| {m['checkpoint_id']} | {m['task']} | {m['layer']} | {m['baseline']} | {m['n']} | "
                     f"{m['accuracy']:.3f} | {mcc} | {m['majority_accuracy']:.3f} |")
    return "\n".join(lines) + "\n"


def run_probe_stage(step: Step, force: bool = False) -> str:
    """Train and score every probe of the step (module docstring); returns the step path."""
    import pyarrow.compute as pc_

    from physlm import probe as P
    from physlm.shards import read_shards
    from physlm.steps import run_step

    cfg: ProbeSection = step.config

    def body(out: str) -> dict:
        for path in step.inputs.values():  # never read an unfinished input (a reader's first duty)
            require_done(path)
        train_path = step.inputs["train"]
        model = checkpoint.load_model(train_path)
        tok = load_tokenizer(train_path)
        cid = final_checkpoint_id(train_path)
        train_rows = read_shards(step.inputs["train_data"]).slice(0, cfg.train_problems).to_pylist()
        test_rows = read_shards(step.inputs["test_id"]).slice(0, cfg.test_problems).to_pylist()
        if any(r["split"] != "train" for r in train_rows) or any(r["split"] != "test" for r in test_rows):
            raise ValueError("probe: train problems must have template hash < train_bins, test problems >=")
        preds: list[dict] = []
        metrics: list[dict] = []

        def add(p_rows, m_rows, source="probe_test"):
            preds.extend({**r, "source": source} for r in p_rows)
            metrics.extend(m_rows)

        probes = {}
        rand = P.random_init_like(model, cfg.random_init_seed) if "random_init" in cfg.baselines else None
        for task in cfg.tasks:
            pcfg = _probe_config(cfg, task)
            p_rows, m_rows, probes[task] = _fit_vprobe(model, tok, train_rows, test_rows, pcfg, cid)
            add(p_rows, m_rows)
            if rand is not None:
                add(*P.run_probe(rand, tok, train_rows, test_rows, pcfg, cid, "random_init"))
            if "linear" in cfg.baselines:
                add(*P.run_probe(model, tok, train_rows, test_rows, pcfg, cid, "linear"))
            if task not in ("nece", "can_next", "nece_next"):
                probes.pop(task)
        del rand
        for layer in cfg.layers:
            add(*P.run_probe(model, tok, train_rows, test_rows, _probe_config(cfg, "nece", layer), cid))

        # ---- error analysis over the evaluate step's greedy generations (E7, E8)
        gens = storage.read_parquet(storage.join(step.inputs["evaluate"], "generations.parquet"))
        gens = gens.filter(pc_.equal(gens["decoding"], "greedy")).to_pylist()
        problems = {name: {r["id"]: r for r in read_shards(step.inputs[name]).to_pylist()}
                    for name in ("test_id", "test_reask")}
        pad = tok.markers.end
        n_e7 = n_e8 = 0
        if "nece" in probes:
            seen, examples = set(), []
            for gen in gens:
                row = problems["test_reask"].get(gen["problem_id"]) if gen["test_set"] == "test_reask" else None
                if row is None or gen["problem_id"] in seen:
                    continue
                seen.add(gen["problem_id"])
                g = graph_of(row)
                dist = distance_to_query(g)
                examples += [P.make_example(tok, row, "nece", (a,), int(dist[a] >= 0)) for a in range(g.n)]
            if examples:
                probs = P.predict_vprobe(probes["nece"], [e.ids for e in examples], cfg.batch_size, pad_id=pad)
                add(P.prediction_rows(examples, probs, cid, -1, "vprobe"), [], "reask_all_params")
                n_e7 = len(examples)
        e8_tasks = [t for t in ("can_next", "nece_next") if t in probes]
        if e8_tasks:
            examples = {t: [] for t in e8_tasks}
            for gen in gens:
                row = problems.get(gen["test_set"], {}).get(gen["problem_id"])
                if row is None or gen["correct"] or not gen["first_wrong_param"]:
                    continue
                solution = solution_text(tok, gen["output"])
                hit = None if solution is None else first_wrong_probe(row, solution, gen["first_wrong_param"])
                if hit is None:
                    continue
                state, prefix, a, labels = hit
                for t in e8_tasks:
                    examples[t].append(P.make_example(tok, row, t, (a,), labels[t], state=state,
                                                      solution_prefix=prefix))
            for t, exs in examples.items():
                if exs:
                    probs = P.predict_vprobe(probes[t], [e.ids for e in exs], cfg.batch_size, pad_id=pad)
                    add(P.prediction_rows(exs, probs, cid, -1, "vprobe"), [], "first_wrong")
                    n_e8 += len(exs)

        storage.write_parquet(P.to_table(preds, _probe_predictions_schema()),
                              storage.join(out, "probe_predictions.parquet"))
        storage.write_parquet(P.to_table(metrics, P.METRICS), storage.join(out, "probe_metrics.parquet"))
        storage.write_bytes(storage.join(out, "probe_metrics.md"), _metrics_markdown(metrics).encode())
        return {"checkpoint_id": cid, "random_init_seed": cfg.random_init_seed, "predictions": len(preds),
                "metrics": len(metrics), "reask_all_params": n_e7, "first_wrong": n_e8}

    return run_step(step, body, force=force)
