"""V-probing (igsm-spec.md C.5, C.7; E4-E6, E10): probe inputs, the V-probe, a plain linear probe, metrics.

Library only (no Prefect, no I/O): ``run_probe`` turns a model, a tokenizer and problem rows (as in
``physlm.igsm.record``) into ``probe_predictions`` rows (one per test example) and ``probe_metrics`` rows (one
per slice), with the schemas of physlm.tables (PROBE_PREDICTIONS, PROBE_METRICS). Every E4-E6/E10 table
is then SQL over the predictions; the metrics rows are the common cuts, precomputed.

Probe inputs (spec C.5; README §4: the parameter universe is G_d). A sample ``(state, params, label)`` from
``labels.probe_samples`` becomes the training-format sequence truncated at the probe position, then
``[START] " A" [END]`` (dep: ``[START] " A" [MID] " B" [END]``):

* nece: the whole eval prompt ``[end][problem] problem [solution]`` (the end of the question in pq, of the
  problem in qp; both are the end of the problem text);
* dep: the end of the problem *statement*: pq ``[end][problem] statement`` (the question cut off, and so no
  [solution] marker), qp the whole prompt (its statement ends the problem);
* known, value, can_next, nece_next: the prompt + the gold solution up to sentence boundary ``s``
  (``labels.sentence_boundaries``), encoded from the solution substring; we check that these tokens are a
  prefix of the whole solution's tokens, i.e. exactly what the model saw in training.

The V-probe reads its head at the final ``[END]``, on any activation site (``layer``: -1 = after the final
LayerNorm, ``l`` = ``blocks.{l}.resid_post``; see physlm/model/activations.py).

Design decisions:

* Train/test: the *caller* passes the two row sets (the paper: template hash < 17 trains, >= 17 tests).
  Samples are drawn per problem from ``Random(sha256(seed, task, problem id))``, so the test pairs are the
  same for every layer and every baseline (paired comparisons); ``balanced`` applies to training only: the
  test set keeps the natural label distribution that the majority baseline is defined on.
* Baselines: majority class from the TRAIN labels, scored on test; the same V-probe on a random-init model
  (``random_init_like``; the caller runs ``run_probe`` on it with ``baseline_name="random_init"``); and
  ``baseline_name="linear"``: a softmax regression on frozen hidden states (no embedding update).
* MCC is Gorodkin's multiclass R_K (equal to the binary MCC for two classes); 0 when the predictions are
  constant (sklearn's convention), null when the slice's true labels are all one class (undefined: the
  per-label slices and most t-slices; read their accuracy).

This module is longer than ~350 lines because it is the whole probing concept (inputs, probe, training,
metrics, records) that must agree on one example layout; activation capture lives in activations.py.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from physlm.config import ProbeConfig
from physlm.igsm import labels as L
from physlm.igsm.graph import MOD
from physlm.igsm.record import graph_of
from physlm.model import activations as act

BASELINES = ("vprobe", "random_init", "linear")
MAX_T = 8
"""Distance slices t=1..MAX_T of the nece task (spec C.7)."""
A_INIT_STD = 0.02
"""Std of the random factor A of the embedding update (B starts at 0, so A·B = 0 at step 0); the model's
own init std, so that A·B grows on the scale of the embeddings."""
GPT2_PROBE_MARKERS = (225, 226, 227)
"""[START]/[MID]/[END] for the GPT-2 BPE tokenizer: the rarely used byte tokens right after the framing
markers 222-224 (spec E.7 leaves them open). The word-level tokenizer has its own special tokens."""


def n_classes(task: str) -> int:
    """24 for value (0..22 and 23 = unknown), 2 for the binary tasks."""
    return MOD + 1 if task == "value" else 2


# ---------------------------------------------------------------------------------------------------------
# Probe inputs (spec C.5)
@dataclass(frozen=True, slots=True)
class ProbeExample:
    """One probe input: a (problem, state, parameter(s)) triple, its label and its token ids."""

    problem_id: str
    task: str
    state: int
    """Solution sentences already written (0 for nece and dep)."""
    params: tuple[int, ...]
    """Indices into graph.params: (a,) or (a, b) for dep."""
    names: tuple[str, ...]
    label: int
    ids: tuple[int, ...]
    """Prefix + [START] A ([MID] B) [END]; the [END] is the last token, read at ``len(ids) - 1``."""
    necessary: bool
    """A is in the solution (nece(A))."""
    distance: int
    """Operand-edge distance of A to the query; -1 when A is unnecessary."""


def probe_markers(tok) -> tuple[int, int, int]:
    """Ids of [START], [MID], [END]."""
    if tok.kind == "gpt2":
        return GPT2_PROBE_MARKERS
    ids = tuple(tok.tok.token_to_id(t) for t in ("[START]", "[MID]", "[END]"))
    if None in ids:
        raise ValueError("tokenizer lacks the [START]/[MID]/[END] special tokens")
    return ids


def probe_prefix(tok, row: dict, task: str, state: int = 0) -> list[int]:
    """The training-format tokens up to the probe position of ``task`` (module docstring)."""
    prompt = tok.encode_prompt(row["problem"])  # [end][problem] problem [solution]
    if task == "nece" or (task == "dep" and row["format"] == "qp"):
        return prompt
    if task == "dep":
        problem, question = row["problem"], row["question"]
        if not problem.endswith(question):
            raise ValueError(f"{row['id']}: pq problem text does not end with its question")
        ids = prompt[:2] + tok.encode(problem[: len(problem) - len(question)])
        if prompt[: len(ids)] != ids:
            raise ValueError(f"{row['id']}: statement tokens are not a prefix of the problem's tokens")
        return ids
    if task in L.STATE_TASKS:
        solution = row["solution"]
        cut = L.sentence_boundaries(solution)[state]
        part = tok.encode(solution[:cut])
        if tok.encode(solution)[: len(part)] != part:
            raise ValueError(f"{row['id']}: solution[:{cut}] does not tokenize to a prefix of the solution")
        return prompt + part
    raise ValueError(f"unknown probe task {task!r}; expected one of {L.TASKS}")


def probe_suffix(tok, names: Sequence[str]) -> list[int]:
    """``[START] " A" [END]`` or ``[START] " A" [MID] " B" [END]``."""
    start, mid, end = probe_markers(tok)
    out = [start] + tok.encode(" " + names[0])
    for name in names[1:]:
        out += [mid] + tok.encode(" " + name)
    return out + [end]


def _rng(seed: int, task: str, problem_id: str) -> random.Random:
    """A sample stream per (seed, task, problem): independent of row order, layer and baseline."""
    digest = hashlib.sha256(f"{seed}/{task}/{problem_id}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "little"))


def _example(
    tok, row: dict, g, dist: np.ndarray, task: str, state: int, params: Sequence[int], label: int, prefix: list[int]
) -> ProbeExample:
    names = tuple(g.name(p) for p in params)
    return ProbeExample(
        problem_id=row["id"],
        task=task,
        state=int(state),
        params=tuple(int(p) for p in params),
        names=names,
        label=int(label),
        ids=tuple(prefix + probe_suffix(tok, names)),
        necessary=bool(dist[params[0]] >= 0),
        distance=int(dist[params[0]]),
    )


def make_example(
    tok, row: dict, task: str, params: Sequence[int], label: int, state: int = 0, solution_prefix: str | None = None
) -> ProbeExample:
    """One probe example for a chosen ``(state, params)`` of a problem row, e.g. the error analysis of spec
    C.6: nece(A) for the unnecessary A of a generated solution, or can_next(A) after a *generated* solution
    prefix (``solution_prefix``: the model's own text up to the probe position replaces the gold solution
    for the state tasks; ``state`` is then only recorded). The caller supplies the label."""
    g = graph_of(row)
    if solution_prefix is not None and task in L.STATE_TASKS:
        prefix = tok.encode_prompt(row["problem"]) + tok.encode(solution_prefix)
    else:
        prefix = probe_prefix(tok, row, task, state)
    return _example(tok, row, g, L.distance_to_query(g), task, state, params, label, prefix)


def build_examples(
    tok, rows: Sequence[dict], task: str, k: int = 10, balanced: bool = False, seed: int = 0
) -> list[ProbeExample]:
    """Up to ``k`` probe examples per problem row (``labels.probe_samples``), in row order."""
    out = []
    for row in rows:
        g = graph_of(row)
        dist = L.distance_to_query(g)
        prefixes: dict[int, list[int]] = {}  # state -> prefix tokens, shared by the row's samples
        for state, params, label in L.probe_samples(g, _rng(seed, task, row["id"]), task, k, balanced):
            if state not in prefixes:
                prefixes[state] = probe_prefix(tok, row, task, state)
            out.append(_example(tok, row, g, dist, task, state, params, label, prefixes[state]))
    return out


# ---------------------------------------------------------------------------------------------------------
# The V-probe (spec C.5)
class VProbe(nn.Module):
    """A frozen LM + a rank-r update of its input embeddings + a linear head at one activation site.

    Trainable: ``lora_a (d_vocab r)``, ``lora_b (r d_model)`` and ``head``; the model's own tensors never
    get a gradient (``requires_grad_(False)``) and are never written: the update is added to the looked-up
    rows, ``E[ids] + A[ids] @ B``, not to E.
    """

    def __init__(self, model, n_classes: int, layer: int = -1, rank: int = 8, seed: int = 0):
        super().__init__()
        model.requires_grad_(False)
        self.model = model.eval()
        self.site = act.site_name(layer)
        emb = model.get_input_embeddings().weight  # (d_vocab d_model)
        d_vocab, d_model = emb.shape
        g = torch.Generator().manual_seed(seed)
        # B = 0: the probe starts from the model as it is; A random so that B gets a gradient.
        self.lora_a = nn.Parameter((torch.randn(d_vocab, rank, generator=g) * A_INIT_STD).to(emb.device))
        self.lora_b = nn.Parameter(torch.zeros(rank, d_model, device=emb.device))
        # skip_init: no default init, so building a probe leaves the global torch RNG alone
        self.head = nn.utils.skip_init(nn.Linear, d_model, n_classes, device=emb.device)
        with torch.no_grad():
            self.head.weight.copy_(torch.randn(n_classes, d_model, generator=g) * A_INIT_STD)
            self.head.bias.zero_()

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()  # the frozen model stays in eval mode (no dropout) while the probe trains
        return self

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids (batch pos)`` -> ``(E + A·B)[ids]`` as ``(batch pos d_model)``, without forming E + A·B."""
        emb = self.model.get_input_embeddings().weight
        return F.embedding(ids, emb) + F.embedding(ids, self.lora_a) @ self.lora_b

    def forward(self, ids: torch.Tensor, mask: torch.Tensor, end: torch.Tensor) -> torch.Tensor:
        """``ids, mask (batch pos)`` (right-padded, as ``act.pad_right``), ``end (batch,)`` -> logits
        ``(batch n_classes)`` at each [END]. The mask is not passed on: in a causal model no position up to
        [END] sees the padding to its right, so it would change nothing that is read, and without it the
        attention runs its causal kernel (~7 % of a CPU probe step). The states are read through
        ``act.end_states``: the site's block runs its MLP on the end positions only."""
        return self.head(act.end_states(self.model, act.layer_of(self.site), end, inputs_embeds=self.embed(ids)))

    def trainable(self) -> dict[str, torch.Tensor]:
        """The probe's own tensors (what a checkpoint of the probe needs)."""
        return {
            "lora_a": self.lora_a,
            "lora_b": self.lora_b,
            **{f"head.{k}": v for k, v in self.head.state_dict().items()},
        }

    @torch.no_grad()
    def load_trainable(self, tensors: dict[str, torch.Tensor]) -> VProbe:
        """Set the probe's own tensors from :meth:`trainable` of another (e.g. trained in another process)."""
        self.lora_a.copy_(tensors["lora_a"])
        self.lora_b.copy_(tensors["lora_b"])
        self.head.load_state_dict({k[len("head.") :]: v for k, v in tensors.items() if k.startswith("head.")})
        return self


def resolve_device(device: str) -> torch.device:
    return torch.device(("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device)


def probe_lr(cfg: ProbeConfig, step: int) -> float:
    """The LR of probe step ``step``: linear decay from ``cfg.lr`` at step 0 to 0 after the last step, under a
    linear warm-up ramp ``(step + 1) / round(cfg.warmup * cfg.steps)`` if that is not 0."""
    decay, ramp = 1 - step / cfg.steps, round(cfg.warmup * cfg.steps)
    return cfg.lr * min(decay, (step + 1) / ramp) if ramp else cfg.lr * decay


def fit_vprobe(
    model,
    seqs: Sequence[Sequence[int]],
    labels: Sequence[int],
    n_classes: int,
    cfg: ProbeConfig,
    layer: int = -1,
    pad_id: int = 0,
    on_step=None,
) -> tuple[VProbe, list[float]]:
    """Train a V-probe on ``(sequence, label)`` pairs (each sequence ending with its [END]) with spec C.5's
    recipe: AdamW (β = 0.9, 0.98 as pretraining), ``cfg.lr`` on :func:`probe_lr`'s schedule, ``cfg.steps``
    steps of ``cfg.batch_size`` random examples (epochs of a seeded permutation). Moves ``model`` to
    ``cfg.device``; the head reads activation site ``layer``. Returns the probe (eval mode) and the loss per
    step."""
    if not len(seqs) or len(seqs) != len(labels):
        raise ValueError(f"fit_vprobe: need as many labels as sequences (> 0), got {len(seqs)}, {len(labels)}")
    dev = resolve_device(cfg.device)
    probe = VProbe(model.to(dev), n_classes, layer, cfg.rank, cfg.seed).to(dev).train()
    decay = [probe.lora_a, probe.lora_b, probe.head.weight]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": [probe.head.bias], "weight_decay": 0.0}],
        lr=cfg.lr,
        betas=(0.9, 0.98),
    )
    y_all = torch.as_tensor(list(labels), dtype=torch.long)
    g = torch.Generator().manual_seed(cfg.seed)
    order, pos = torch.randperm(len(seqs), generator=g), 0
    losses = []
    for step in range(cfg.steps):
        # ---- batch: the next cfg.batch_size indices of the current epoch's permutation
        idx = []
        while len(idx) < cfg.batch_size:
            if pos == len(order):
                order, pos = torch.randperm(len(seqs), generator=g), 0
            take = order[pos : pos + cfg.batch_size - len(idx)].tolist()
            idx += take
            pos += len(take)
        y = y_all[idx].to(dev)  # (batch,)
        for group in opt.param_groups:
            group["lr"] = probe_lr(cfg, step)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = _batch_logits(probe, [seqs[i] for i in idx], pad_id, dev)  # (batch n_classes)
        loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(1)
    return probe.eval(), losses


CPU_SUB_BATCH = 8
"""On a CPU a probe batch runs as length-sorted sub-batches of this many sequences: right padding to the
batch's longest sequence cost ~1.5x the real tokens (attention more), and on a CPU small batches lose
nothing (tiny preset, one thread, eager: 90 -> 63 ms per step with 4). With the compiled blocks each
sub-batch pays the compiled functions' call overhead, so 8 beats 4 (interleaved, 3 x 40 steps: 99.6 / 88.1 /
91.9 ms median with 4 / 8 / 16). A GPU gets the whole batch in one pass."""


def _batch_logits(probe: VProbe, seqs: Sequence[Sequence[int]], pad_id: int, dev: torch.device) -> torch.Tensor:
    """``(batch n_classes)`` logits of ``seqs`` in their order; the same batch and the same loss, computed
    in length-sorted sub-batches on a CPU (:data:`CPU_SUB_BATCH`)."""
    if dev.type != "cpu" or len(seqs) <= CPU_SUB_BATCH:
        return probe(*act.pad_right(seqs, pad_id, dev))
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
    parts = [order[i : i + CPU_SUB_BATCH] for i in range(0, len(order), CPU_SUB_BATCH)]
    logits = torch.cat([probe(*act.pad_right([seqs[i] for i in part], pad_id, dev)) for part in parts])
    back = torch.empty(len(order), dtype=torch.long)
    back[torch.tensor(order)] = torch.arange(len(order))
    return logits[back.to(dev)]


@torch.no_grad()
def predict_vprobe(probe: VProbe, seqs: Sequence[Sequence[int]], batch_size: int = 64, pad_id: int = 0) -> np.ndarray:
    """Class probabilities ``(n, n_classes)`` float32, rows in input order (batched by length)."""
    dev = probe.lora_a.device
    probe.eval()
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))  # little padding per batch
    out = np.zeros((len(seqs), probe.head.out_features), np.float32)
    for chunk in act.batched(order, batch_size):
        ids, mask, end = act.pad_right([seqs[i] for i in chunk], pad_id, dev)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
            logits = probe(ids, mask, end)
        out[list(chunk)] = logits.float().softmax(-1).cpu().numpy()
    return out


def random_init_like(model_or_cfg, seed: int):
    """A freshly initialised model of the same architecture (the random-init baseline; record ``seed``).
    Takes a ``ModelConfig`` (``physlm.model.build``) or a built model (same HF config). The global torch RNG
    is left as it was."""
    from physlm.config import ModelConfig
    from physlm.model.gpt import build

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if isinstance(model_or_cfg, ModelConfig):
            return build(model_or_cfg)
        attn = getattr(model_or_cfg.config, "_attn_implementation", None) or "sdpa"
        return type(model_or_cfg)._from_config(model_or_cfg.config, attn_implementation=attn)


# ---------------------------------------------------------------------------------------------------------
# The linear probe on cached activations (the cheap companion)
@dataclass
class LinearProbe:
    """Softmax regression on standardized features: ``p = softmax(((X - mean) / scale) @ weight.T + bias)``."""

    mean: np.ndarray  # (d_model,)
    scale: np.ndarray  # (d_model,)
    weight: np.ndarray  # (n_classes d_model)
    bias: np.ndarray  # (n_classes,)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = ((X - self.mean) / self.scale) @ self.weight.T + self.bias  # (n n_classes)
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return (p / p.sum(1, keepdims=True)).astype(np.float32)


def fit_linear(
    X: np.ndarray, y: Sequence[int], n_classes: int | None = None, l2: float = 1e-3, max_iter: int = 200
) -> LinearProbe:
    """Full-batch L-BFGS on the cross-entropy + ``l2/2·|W|²`` (features standardized on X; deterministic).

    ``X (n, d_model)``, ``y (n,)`` ints in ``0..n_classes-1`` (default: ``max(y) + 1``)."""
    X = np.asarray(X, np.float32)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.long)
    c = int(y_t.max()) + 1 if n_classes is None else n_classes
    mean, scale = X.mean(0), X.std(0) + 1e-6
    x = torch.from_numpy((X - mean) / scale)  # (n d_model)
    w = torch.zeros(c, x.shape[1], requires_grad=True)
    b = torch.zeros(c, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y_t) + 0.5 * l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, scale, w.detach().numpy(), b.detach().numpy())


# ---------------------------------------------------------------------------------------------------------
# Metrics
def confusion(y: Sequence[int], p: Sequence[int], n_classes: int) -> np.ndarray:
    """``C[i, j]`` = examples with true class i predicted j, ``(n_classes, n_classes)``."""
    c = np.zeros((n_classes, n_classes), np.int64)
    np.add.at(c, (np.asarray(y, np.int64), np.asarray(p, np.int64)), 1)
    return c


def mcc(y: Sequence[int], p: Sequence[int], n_classes: int | None = None) -> float | None:
    """Matthews correlation; for K > 2 classes Gorodkin's R_K (identical to MCC for K = 2):
    ``(c·s − Σ p_k t_k) / sqrt((s² − Σ p_k²)(s² − Σ t_k²))``. None if the true labels are all one class
    (undefined), 0.0 if the predictions are (sklearn's convention)."""
    y, p = np.asarray(y, np.int64), np.asarray(p, np.int64)
    if not len(y) or len(np.unique(y)) < 2:
        return None
    k = n_classes or int(max(y.max(), p.max())) + 1
    cm = confusion(y, p, k).astype(np.float64)
    s, c = cm.sum(), np.trace(cm)
    t_k, p_k = cm.sum(1), cm.sum(0)  # true / predicted counts per class
    den = np.sqrt((s * s - p_k @ p_k) * (s * s - t_k @ t_k))
    return 0.0 if den == 0 else float((c * s - p_k @ t_k) / den)


def majority_class(train_labels: Sequence[int]) -> int:
    """The most frequent training label (ties: the smallest)."""
    values, counts = np.unique(np.asarray(train_labels, np.int64), return_counts=True)
    return int(values[np.argmax(counts)])


def positive(task: str, label: int) -> bool:
    """The "positive" side of a label for the per-label split: 1 for binary tasks, known for value."""
    return label != L.UNKNOWN if task == "value" else label == 1


def slices(task: str, rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Named subsets of prediction rows: all, positive, negative, unnecessary (A not in the solution; E5)
    and, for nece, t=1..8 (necessary A at distance t from the query; E10). Empty slices are dropped."""
    out = {
        "all": list(rows),
        "positive": [r for r in rows if positive(task, r["label"])],
        "negative": [r for r in rows if not positive(task, r["label"])],
        "unnecessary": [r for r in rows if not r["param_a_necessary"]],
    }
    if task == "nece":
        out.update({f"t={t}": [r for r in rows if r["distance"] == t] for t in range(1, MAX_T + 1)})
    return {k: v for k, v in out.items() if v}


def metric_rows(pred_rows: Sequence[dict], majority: int) -> list[dict]:
    """``probe_metrics`` rows for one (checkpoint, test set, task, layer, baseline) group of prediction rows."""
    if not pred_rows:
        return []
    key = {k: pred_rows[0][k] for k in ("checkpoint_id", "test_set", "task", "layer", "baseline")}
    k = n_classes(key["task"])
    out = []
    for name, rows in slices(key["task"], pred_rows).items():
        y = np.array([r["label"] for r in rows])
        p = np.array([r["prediction"] for r in rows])
        out.append(
            {
                **key,
                "slice": name,
                "n": len(rows),
                "accuracy": float((y == p).mean()),
                "mcc": mcc(y, p, k),
                "majority_accuracy": float((y == majority).mean()),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Records and the whole run
def prediction_rows(
    examples: Sequence[ProbeExample],
    probs: np.ndarray,
    checkpoint_id: str,
    layer: int,
    baseline: str,
    source: str = "probe_test",
    test_set: str | Sequence[str] = "test_id",
) -> list[dict]:
    """``probe_predictions`` rows from examples and their class probabilities ``(n, n_classes)``; ``test_set``:
    the test set of every example's problem, or one per example."""
    pred = probs.argmax(1)
    binary = probs.shape[1] == 2
    sets = [test_set] * len(examples) if isinstance(test_set, str) else list(test_set)
    return [
        {
            "checkpoint_id": checkpoint_id,
            "test_set": sets[i],
            "task": e.task,
            "layer": layer,
            "baseline": baseline,
            "problem_id": e.problem_id,
            "state": e.state,
            "param_a": e.names[0],
            "param_b": e.names[1] if len(e.names) > 1 else None,
            "param_a_necessary": e.necessary,
            "distance": e.distance,
            "label": e.label,
            "prediction": int(pred[i]),
            "probability": float(probs[i, 1] if binary else probs[i, pred[i]]),
            "source": source,
        }
        for i, e in enumerate(examples)
    ]


def probe_examples(
    tok, train_rows: Sequence[dict], test_rows: Mapping[str, Sequence[dict]], cfg: ProbeConfig, task: str
):
    """``(train examples, {test set: test examples})`` of ``task`` (``test_rows``: problem rows by test set):
    built once, shared by its V-probe, every baseline and every layer (the same test pairs for all: paired
    comparisons)."""
    train = build_examples(tok, train_rows, task, cfg.samples_per_problem, cfg.balanced, cfg.seed)
    test = {
        name: build_examples(tok, rows, task, cfg.samples_per_problem, False, cfg.seed)
        for name, rows in test_rows.items()
    }
    empty = [name for name, exs in test.items() if not exs]
    if not train or not test or empty:
        raise ValueError(
            f"probe {task}: no probe examples (train {len(train)}, test sets without any: {empty or 'all'})"
        )
    return train, test


def fit_probe(
    model,
    train: Sequence[ProbeExample],
    test: Mapping[str, Sequence[ProbeExample]],
    cfg: ProbeConfig,
    checkpoint_id: str,
    baseline_name: str = "vprobe",
    layer: int = -1,
    pad_id: int = 0,
    on_step=None,
) -> tuple[list[dict], list[dict], VProbe | None]:
    """Probe the examples' task at ``layer``: train on ``train``, predict each test set of ``test`` (examples by
    test set; rows and metrics per set). ``baseline_name``:
    "vprobe" (this model), "random_init" (the caller passes ``random_init_like(model, seed)``; same V-probe)
    or "linear" (softmax regression on the frozen states at the site). Returns (predictions rows, metrics
    rows, the trained V-probe or None for "linear")."""
    if baseline_name not in BASELINES:
        raise ValueError(f"baseline_name: must be one of {BASELINES}, got {baseline_name!r}")
    task, y = train[0].task, [e.label for e in train]
    probe = None
    if baseline_name == "linear":
        model.to(resolve_device(cfg.device))
        site = act.site_name(layer)

        def states(examples):  # (n d_model), batched by length, rows back in example order
            order = sorted(range(len(examples)), key=lambda i: len(examples[i].ids))
            batches = act.batched([examples[i].ids for i in order], cfg.batch_size)
            return act.capture(model, batches, [site], pad_id=pad_id)[site][np.argsort(order)]

        linear = fit_linear(states(train), y, n_classes(task))

        def predict(exs):
            return linear.predict_proba(states(exs))

        if on_step is not None:
            on_step(cfg.steps)  # counted as one probe's worth of steps
    else:
        probe, _ = fit_vprobe(model, [e.ids for e in train], y, n_classes(task), cfg, layer, pad_id, on_step)

        def predict(exs):
            return predict_vprobe(probe, [e.ids for e in exs], cfg.batch_size, pad_id=pad_id)

    preds, metrics = [], []
    for name, exs in test.items():
        rows = prediction_rows(exs, predict(exs), checkpoint_id, layer, baseline_name, test_set=name)
        preds += rows
        metrics += metric_rows(rows, majority_class(y))
    return preds, metrics, probe


def run_probe(
    model,
    tok,
    train_rows: Sequence[dict],
    test_rows: Sequence[dict],
    cfg: ProbeConfig,
    task: str,
    checkpoint_id: str,
    baseline_name: str = "vprobe",
    layer: int = -1,
    on_step=None,
    test_set: str = "test_id",
) -> tuple[list[dict], list[dict]]:
    """:func:`fit_probe` on problem rows (the paper's split is template hash < 17 / >= 17, chosen by the
    caller; ``test_set`` names the test rows' set in the output): ``(predictions rows, metrics rows)``."""
    if baseline_name not in BASELINES:
        raise ValueError(f"baseline_name: must be one of {BASELINES}, got {baseline_name!r}")
    train, test = probe_examples(tok, train_rows, {test_set: test_rows}, cfg, task)
    preds, metrics, _ = fit_probe(
        model, train, test, cfg, checkpoint_id, baseline_name, layer, tok.markers.end, on_step
    )
    return preds, metrics
