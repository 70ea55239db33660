"""The probe stage: V-probes of the trained model (E4-E6, E10) and the probe points of the error analysis (E7, E8).

probe ``{root}/probe/{hash}/`` — config: ``ProbeConfig``; inputs: the train step, the "train" and "test_id"
generate steps (probe training problems: the first ``train_problems`` of "train", template hash < 17; test:
the first ``test_problems`` of each of ``test_sets``: "test_id", hash >= 17, and "test_seen", fresh problems of
the training templates, whose generate step is then an input too), the re-ask generate steps ("test_reask", and
"test_reask_seen" where the preset makes it) and the evaluate step (its greedy generations drive the error
analysis). The model's weights are never written
(``checkpoint.load_model`` + frozen ``VProbe``; the maths is physlm/model/probe.py). Writes
``probe_predictions.parquet`` and ``probe_metrics.parquet`` (physlm.tables) and ``probe_metrics.md``.
Prediction rows by ``source``:

* ``probe_test`` (:func:`fit`): every task x {vprobe, random_init, linear} on the test problems at layer -1,
  plus the nece V-probe at each extra ``layers`` site, each probe trained once and scored on every test set
  (``test_set``); the metrics rows are these only. The random-init
  model is ``probe.random_init_like(model, random_init_seed)`` (the seed is in step.json's config).
* ``reask_all_params`` (E7, :func:`e7_rows`): the trained nece V-probe (layer -1) on EVERY parameter of G_d
  of each re-ask problem whose greedy generation E7 reads (fully correct, with unnecessary steps); label =
  the true nece(A). Join ``unnest(generations.unnecessary)`` with ``param_a`` on ``(checkpoint_id,
  problem_id)``.
* ``first_wrong`` (E8, :func:`e8_rows`): for each wrong greedy generation of "test_id" and "test_reask" whose
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

import os
from dataclasses import dataclass, replace

from physlm.config import ProbeConfig
from physlm.igsm.record import graph_of
from physlm.presets import Preset
from physlm.stages import evaluate, generate, train
from physlm.store import storage
from physlm.store.steps import Step, require_done, run_step
from physlm.tables import PROBE_METRICS, PROBE_PREDICTIONS, REASK_SETS, TEST_ID, TEST_REASK, TRAIN, table

NAME = "probe"
GPU = True
VERSION = 1
KEEP = ("nece", "can_next", "nece_next")
"""Trained probes the error analysis reuses (E7: nece; E8: can_next, nece_next)."""


def plan(preset: Preset) -> list[Step]:
    return [probe_step(preset)]


def probe_step(preset: Preset) -> Step:
    inputs = {
        "train": train.train_step(preset).path(),
        "train_data": generate.dataset_step(preset, TRAIN).path(),
        **{
            name: generate.dataset_step(preset, name).path()
            for name in dict.fromkeys((TEST_ID, *preset.probe.test_sets))
        },
        **{name: generate.dataset_step(preset, name).path() for name in reask_sets(preset)},
        "evaluate": evaluate.evaluate_step(preset).path(),
    }
    return Step(NAME, preset.probe, inputs=inputs, version=VERSION)


def reask_sets(preset: Preset) -> list[str]:
    """The preset's re-ask test sets: "test_reask", and "test_reask_seen" with ``data.test_seen``."""
    return [name for name in REASK_SETS if name in preset.data.datasets()]


def describe(step: Step) -> str:
    cfg: ProbeConfig = step.config
    layers = f", layers {','.join(map(str, cfg.layers))}" if cfg.layers else ""
    return f"{','.join(cfg.tasks)}; {cfg.steps} steps{layers}"


# ---------------------------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """What every part of the stage reads: the frozen model, its tokenizer and checkpoint id, the probes'
    train problem rows and test problem rows by test set."""

    model: object
    tok: object
    cid: str
    train_rows: list[dict]
    test_rows: dict[str, list[dict]]
    train_path: str


def load_inputs(step: Step) -> Inputs:
    from physlm.store import checkpoint
    from physlm.store.shards import read_shards

    cfg: ProbeConfig = step.config
    for path in step.inputs.values():  # never read an unfinished input (a reader's first duty)
        require_done(path)
    train_path = step.inputs["train"]
    train_rows = read_shards(step.inputs["train_data"]).slice(0, cfg.train_problems).to_pylist()
    test_rows = {name: read_shards(step.inputs[name]).slice(0, cfg.test_problems).to_pylist() for name in cfg.test_sets}
    if any(r["split"] != "train" for r in train_rows):
        raise ValueError("probe: train problems must have template hash < train_bins")
    for name, rows in test_rows.items():  # test_id: the unseen templates; test_seen: the training ones
        if any(r["split"] != ("test" if name == TEST_ID else "train") for r in rows):
            raise ValueError(f"probe: {name} problems are of the wrong template split")
    return Inputs(
        checkpoint.load_model(train_path),
        evaluate.load_tokenizer(train_path),
        train.final_checkpoint_id(train_path),
        train_rows,
        test_rows,
        train_path,
    )


def load_fit_inputs(step: Step) -> Inputs:
    """:func:`load_inputs` of the inputs :func:`fit` reads only (the model, its training problems, the test sets):
    probes refit on a root whose evaluate and re-ask steps are not needed (benchmarks/probe.py, probe_recipe.py)."""
    used = ("train", "train_data", *step.config.test_sets)
    return load_inputs(replace(step, inputs={k: v for k, v in step.inputs.items() if k in used}))


# ---------------------------------------------------------------------------------------------- E4-E6, E10


@dataclass(frozen=True)
class Job:
    """One probe of the step: a task's V-probe of the trained model, a baseline of it, or the nece V-probe at
    an extra layer."""

    task: str
    baseline: str = "vprobe"
    layer: int = -1


def jobs(cfg: ProbeConfig) -> list[Job]:
    """Every probe, in the order of the output rows: per task the V-probe then its baselines, then the
    layer-wise nece probes."""
    per_task = [Job(t, b) for t in cfg.tasks for b in ("vprobe", *cfg.baselines)]
    return per_task + [Job("nece", "vprobe", layer) for layer in cfg.layers]


def fit(cfg: ProbeConfig, x: Inputs) -> tuple[list[dict], list[dict], dict]:
    """Every job's probe: ``(prediction rows, metrics rows, {task: trained V-probe})`` for the tasks the error
    analysis reuses. Each task's examples are built once; the probes run in this process or, on a CPU with
    several cores, in a pool of spawned one-thread processes (the same results: each probe is seeded on its
    own; ``cfg.processes``)."""
    from physlm.model import probe as P
    from physlm.progress import progress

    todo = jobs(cfg)
    examples = {
        t: P.probe_examples(x.tok, x.train_rows, x.test_rows, cfg, t) for t in dict.fromkeys(j.task for j in todo)
    }
    n = processes(cfg, len(todo))
    with progress(len(todo) * cfg.steps, "probe", "steps") as bar:
        if n:
            results = _fit_in_pool(n, cfg, x, todo, examples, bar)
        else:
            models = {"trained": x.model}
            results = {}
            for job in todo:
                bar.describe(_label(job))
                results[job] = run_job(models, cfg, x.cid, x.tok.markers.end, job, *examples[job.task], bar.update)
    preds = [r for job in todo for r in results[job][0]]
    metrics = [r for job in todo for r in results[job][1]]
    probes = {
        job.task: P.VProbe(x.model, P.n_classes(job.task), -1, cfg.rank, cfg.seed)
        .load_trainable(results[job][2])
        .eval()
        for job in todo
        if results[job][2] is not None
    }
    return preds, metrics, probes


def run_job(models: dict, cfg: ProbeConfig, cid: str, pad: int, job: Job, train_ex, test_ex, on_step=None):
    """One probe: ``(prediction rows, metrics rows, trained tensors)``, the tensors (``VProbe.trainable``) only
    for the layer -1 V-probes of the tasks the error analysis reuses (KEEP). ``models`` holds the trained
    model and, once asked for, its random-init twin."""
    from physlm.model import probe as P

    if job.baseline == "random_init" and "random_init" not in models:
        models["random_init"] = P.random_init_like(models["trained"], cfg.random_init_seed)
    model = models["random_init" if job.baseline == "random_init" else "trained"]
    _compile(model, cfg)
    preds, metrics, vp = P.fit_probe(model, train_ex, test_ex, cfg, cid, job.baseline, job.layer, pad, on_step)
    keep = job.baseline == "vprobe" and job.layer == -1 and job.task in KEEP
    return preds, metrics, ({k: v.detach().clone() for k, v in vp.trainable().items()} if keep else None)


def _compile(model, cfg: ProbeConfig) -> None:
    """``cfg.compile="auto"``: the V-probes' training steps run the model's blocks compiled where torch.compile
    can run (``activations.compile_blocks``; speed only)."""
    from physlm.model import activations
    from physlm.model.probe import resolve_device
    from physlm.model.train import can_compile

    if cfg.compile == "auto" and can_compile(resolve_device(cfg.device)):
        activations.compile_blocks(model)


def _label(job: Job) -> str:
    return f"probe {job.task} {job.baseline}" + (f" layer {job.layer}" if job.layer >= 0 else "")


def processes(cfg: ProbeConfig, n_jobs: int) -> int:
    """Worker processes for the probes: ``cfg.processes`` if set; else on a CPU one per core (at most one
    per job) when there are several cores, 0 (in this process) on a GPU or a single core."""
    from physlm.model.probe import resolve_device

    if cfg.processes is not None:
        return min(cfg.processes, n_jobs)
    if resolve_device(cfg.device).type != "cpu":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return min(cores, n_jobs) if cores > 1 else 0


_worker: dict = {}
"""A pool worker's models (the trained one, loaded once per process; its random-init twin when asked)."""


def _init_worker(train_path: str) -> None:
    import multiprocessing
    import threading

    import torch

    from physlm.store import checkpoint

    parent = multiprocessing.parent_process()
    if parent is not None:  # a killed stage must not leave its workers behind (holding its stderr, its cores)
        threading.Thread(target=_exit_with, args=(parent.sentinel,), daemon=True).start()
    torch.set_num_threads(1)
    _worker["trained"] = checkpoint.load_model(train_path)


def _exit_with(sentinel: int) -> None:
    """Block until the parent process is gone (its sentinel becomes ready), then end this worker at once."""
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)


def _job_in_worker(cfg: ProbeConfig, cid: str, pad: int, job: Job, train_ex, test_ex):
    return run_job(_worker, cfg, cid, pad, job, train_ex, test_ex)


def _work(job: Job, cfg: ProbeConfig, examples, n_layer: int) -> float:
    """A job's work in token-blocks (forward + backward ~ 3 forwards): the pool starts the longest first, so
    that no long V-probe is left alone at the end while the other processes idle."""
    train_ex, test_ex = examples
    blocks = (job.layer + 1 if job.layer >= 0 else n_layer) / n_layer
    tokens = sum(len(e.ids) for e in train_ex)
    fit = tokens if job.baseline == "linear" else 3 * cfg.steps * cfg.batch_size * tokens / max(len(train_ex), 1)
    return blocks * (fit + sum(len(e.ids) for exs in test_ex.values() for e in exs))


def _fit_in_pool(n: int, cfg: ProbeConfig, x: Inputs, todo: list[Job], examples: dict, bar) -> dict:
    """Run the jobs in ``n`` spawned processes, the costliest first (:func:`_work`); results by job."""
    import concurrent.futures
    import multiprocessing

    order = sorted(todo, key=lambda j: -_work(j, cfg, examples[j.task], x.model.config.num_hidden_layers))
    ctx = multiprocessing.get_context("spawn")  # s3fs and torch threads are not fork-safe
    with concurrent.futures.ProcessPoolExecutor(
        n, mp_context=ctx, initializer=_init_worker, initargs=(x.train_path,)
    ) as pool:
        futures = {
            pool.submit(_job_in_worker, cfg, x.cid, x.tok.markers.end, job, *examples[job.task]): job for job in order
        }
        bar.describe(f"probe: {len(todo)} probes in {n} processes")
        results = {}
        for done in concurrent.futures.as_completed(futures):
            job = futures[done]
            results[job] = done.result()
            bar.describe(f"{_label(job)} done ({len(results)}/{len(todo)} probes, {n} processes)")
            bar.update(cfg.steps)
    return results


# ---------------------------------------------------------------------------------------------- E7, E8


def greedy_generations(step: Step) -> list[dict]:
    import pyarrow.compute as pc

    gens = storage.read_parquet(storage.join(step.inputs["evaluate"], "generations.parquet"))
    return gens.filter(pc.equal(gens["decoding"], "greedy")).to_pylist()


def e7_rows(cfg: ProbeConfig, x: Inputs, probe, gens: list[dict], reask: dict[str, dict]) -> list[dict]:
    """The trained nece probe on every parameter of each re-ask problem (``reask``: rows by id, of every re-ask
    set) whose greedy generation is fully correct with unnecessary steps (the solutions E7 reads)."""
    from physlm.igsm.labels import distance_to_query
    from physlm.model import probe as P

    seen, examples, sets = set(), [], []
    for gen in gens:
        e7 = gen["test_set"] in REASK_SETS and gen["correct"] and gen["n_unnecessary"] > 0
        row = reask.get(gen["problem_id"]) if e7 else None
        if row is None or gen["problem_id"] in seen:
            continue
        seen.add(gen["problem_id"])
        g = graph_of(row)
        dist = distance_to_query(g)
        examples += [P.make_example(x.tok, row, "nece", (a,), int(dist[a] >= 0)) for a in range(g.n)]
        sets += [gen["test_set"]] * g.n
    if not examples:
        return []
    probs = P.predict_vprobe(probe, [e.ids for e in examples], cfg.batch_size, pad_id=x.tok.markers.end)
    return P.prediction_rows(examples, probs, x.cid, -1, "vprobe", "reask_all_params", sets)


def e8_rows(cfg: ProbeConfig, x: Inputs, probes: dict, gens: list[dict], problems: dict[str, dict]) -> list[dict]:
    """The can_next / nece_next probes just before the first wrong step of each wrong greedy generation."""
    from physlm.model import probe as P

    examples: dict[str, list] = {t: [] for t in probes}
    sets = []  # the test set of each generation with a probe point
    for gen in gens:
        row = problems.get(gen["test_set"], {}).get(gen["problem_id"])
        if row is None or gen["correct"] or not gen["first_wrong_param"]:
            continue
        solution = solution_text(x.tok, gen["output"])
        hit = None if solution is None else first_wrong_probe(row, solution, gen["first_wrong_param"])
        if hit is None:
            continue
        state, prefix, a, labels = hit
        sets.append(gen["test_set"])
        for t in probes:
            examples[t].append(P.make_example(x.tok, row, t, (a,), labels[t], state=state, solution_prefix=prefix))
    out = []
    for t, exs in examples.items():
        if exs:
            probs = P.predict_vprobe(probes[t], [e.ids for e in exs], cfg.batch_size, pad_id=x.tok.markers.end)
            out += P.prediction_rows(exs, probs, x.cid, -1, "vprobe", "first_wrong", sets)
    return out


def solution_text(tok, output: str) -> str | None:
    """The solution part of a ``generations.output`` (decoded with its markers), None without [answer]."""
    end, answer = tok.decode([tok.markers.end]), tok.decode([tok.markers.answer])
    text = output.split(end, 1)[0]
    return text.split(answer, 1)[0] if answer in text else None


def _defined_name(sentence: str) -> str | None:
    head = sentence.split("; ", 1)[0]
    if " BACK" in sentence or not head.startswith("Define ") or " as " not in head:
        return None
    return head[len("Define ") :].rpartition(" as ")[0] or None


def first_wrong_probe(row: dict, solution: str, first_wrong_param: str | None = None):
    """E8 probe point of a wrong solution: ``(state, solution_prefix, a, {"can_next": l, "nece_next": l})``
    or None (no parameter-level error, or A not in G_d). See the module docstring."""
    from physlm.igsm.check import check
    from physlm.igsm.solution import sentences

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
    before = sentences(solution)[: mistake.step]  # the checker's sentences, up to the one it blames
    cut = before[-1].end if before else 0  # right after the "." (no space)
    known = {index[n] for n in (_defined_name(x.text) for x in before) if n in index}
    can = a not in known and all(q in known for q in g.preds[a])
    necessary = a in set(g.order)
    state = sum(not x.retry for x in before)
    return state, solution[:cut], a, {"can_next": int(can), "nece_next": int(can and necessary)}


# ---------------------------------------------------------------------------------------------- the run


def run(step: Step, force: bool = False) -> str:
    """Train and score every probe of the step, then the error-analysis probe points; returns the step path."""
    from physlm.store.shards import read_shards

    cfg: ProbeConfig = step.config

    def body(out: str) -> dict:
        x = load_inputs(step)
        preds, metrics, probes = fit(cfg, x)
        gens = greedy_generations(step)
        sets = [TEST_ID] + [name for name in REASK_SETS if name in step.inputs]
        problems = {name: {r["id"]: r for r in read_shards(step.inputs[name]).to_pylist()} for name in sets}
        reask = {i: r for name in sets[1:] for i, r in problems[name].items()}
        e7 = e7_rows(cfg, x, probes["nece"], gens, reask) if "nece" in probes else []
        e8_sets = {name: problems[name] for name in (TEST_ID, TEST_REASK)}  # E8 as the paper: unseen templates
        e8 = e8_rows(cfg, x, {t: probes[t] for t in ("can_next", "nece_next") if t in probes}, gens, e8_sets)
        write(out, preds + e7 + e8, metrics)
        return {
            "checkpoint_id": x.cid,
            "random_init_seed": cfg.random_init_seed,
            "predictions": len(preds) + len(e7) + len(e8),
            "metrics": len(metrics),
            "reask_all_params": len(e7),
            "first_wrong": len(e8),
        }

    return run_step(step, body, force=force)


def write(out: str, preds: list[dict], metrics: list[dict]) -> None:
    storage.write_parquet(table(preds, PROBE_PREDICTIONS), storage.join(out, "probe_predictions.parquet"))
    storage.write_parquet(table(metrics, PROBE_METRICS), storage.join(out, "probe_metrics.parquet"))
    storage.write_bytes(storage.join(out, "probe_metrics.md"), metrics_markdown(metrics).encode())


def metrics_markdown(metrics: list[dict]) -> str:
    rows = [m for m in metrics if m["slice"] == "all"]
    rows.sort(
        key=lambda m: (m["test_set"], m["task"], m["layer"] != -1, m["layer"], m["baseline"] != "vprobe", m["baseline"])
    )
    lines = [
        "| checkpoint | test set | task | layer | baseline | n | accuracy | MCC | majority acc. |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rows:
        mcc = "-" if m["mcc"] is None else f"{m['mcc']:.3f}"
        lines.append(
            f"| {m['checkpoint_id']} | {m['test_set']} | {m['task']} | {m['layer']} | {m['baseline']} | {m['n']} | "
            f"{m['accuracy']:.3f} | {mcc} | {m['majority_accuracy']:.3f} |"
        )
    return "\n".join(lines) + "\n"
