"""The evaluate stage: decode every test set, check every whole solution, tabulate (spec C.3-C.4, E2-E3).

evaluate ``{root}/evaluate/{hash}/`` — config: ``EvalConfig`` (decodings, token cap, limit); inputs: the train
step and each test set's generate step. Writes ``generations.parquet``, ``accuracy.parquet`` (the schemas of
physlm.tables) and ``accuracy.md``.

``evaluate_rows`` runs one model over problem records (rows of the ``problems`` schema) with each decoding
and returns ``generations`` rows; ``write_results`` writes them with the accuracy table as Parquet plus a
markdown table. Two kinds of model:

* ours: a GPT-2+RoPE checkpoint with the physlm tokenizer; the prompt is the paper's token framing
  ``[end][problem] problem [solution]`` and the model must write solution, ``[answer]``, answer, ``[end]``;
* external (any local transformers causal LM + its tokenizer): the same problem rendered as text,
  ``"<problem>\\nSolution:"``, and the output parsed as ``" <solution>\\nAnswer: <n>"`` (see
  ``TextCodec``); the same checker judges it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from physlm.config import EvalConfig
from physlm.igsm import record
from physlm.model import decode
from physlm.model.scoring import accuracy_table, score
from physlm.presets import Preset
from physlm.stages import generate, train
from physlm.store import storage
from physlm.store.steps import Step, require_done, run_step
from physlm.tables import ACCURACY, GENERATIONS, TRAIN

NAME = "evaluate"
GPU = True
VERSION = 1


class PhyslmCodec:
    """Prompts and output parsing for our models: the paper's token framing (spec A.8). With ``fallback``, words
    outside the vocabulary (item names of another generator) are read through known words or spelt letter by
    letter instead of [UNK] (``Tokenizer.encode_with_fallback``); ``fallback_tokens`` / ``prompt_tokens`` count
    how much of the prompts that was."""

    def __init__(self, tok, fallback: bool = False):
        self.tok, self.fallback = tok, fallback
        self.end_id = tok.markers.end
        self.prompt_tokens = self.fallback_tokens = 0

    def prompt(self, problem: str) -> list[int]:
        if not self.fallback:
            return self.tok.encode_prompt(problem)
        ids, n = self.tok.encode_with_fallback(problem)
        m = self.tok.markers
        self.prompt_tokens += len(ids)
        self.fallback_tokens += n
        return [m.end, m.problem, *ids, m.solution]

    def parse(self, ids: list[int]) -> tuple[str, str | None, str | None]:
        """-> (full output text, solution text or None, answer text or None)."""
        solution, answer = self.tok.split_output(ids)
        text = self.tok.decode(ids)
        return text, (solution if answer is not None else None), answer


class TextCodec:
    """Plain-text prompts for external causal LMs: "<problem>\\nSolution:" -> " <solution>\\nAnswer: <n>"."""

    def __init__(self, hf_tokenizer):
        self.tok = hf_tokenizer
        self.end_id = hf_tokenizer.eos_token_id if hf_tokenizer.eos_token_id is not None else 0

    def prompt(self, problem: str) -> list[int]:
        return self.tok(problem.strip() + "\nSolution:", add_special_tokens=False)["input_ids"]

    def parse(self, ids: list[int]) -> tuple[str, str | None, str | None]:
        text = self.tok.decode(ids, skip_special_tokens=True)
        if "\nAnswer:" not in text:
            return text, None, None
        solution, answer = text.split("\nAnswer:", 1)
        return text, solution.rstrip("\n"), answer.strip().split("\n")[0].rstrip(".")


@dataclass(frozen=True)
class EvalOptions:
    batch_size: int = 32
    max_new_tokens: int = 512
    seed: int = 0


def evaluate_rows(
    model,
    codec,
    rows: list[dict],
    test_set: str,
    checkpoint_id: str,
    decodings: tuple[decode.Decoding, ...] = (decode.GREEDY,),
    opts: EvalOptions = EvalOptions(),
) -> list[dict]:
    """Decode every problem row with each decoding and score it; returns ``generations`` rows."""
    from physlm.progress import progress

    prompts = [codec.prompt(r["problem"]) for r in rows]
    out = []
    for dec in decodings:
        dec = decode.Decoding(dec.name, dec.beams, dec.sample, opts.max_new_tokens)
        with progress(len(prompts), f"evaluate {test_set} {dec.name}", "problems") as bar:
            results = decode.generate(model, prompts, codec.end_id, dec, opts.batch_size, opts.seed, bar.update)
        for r, (ids, ended) in zip(rows, results):
            text, solution, answer = codec.parse(ids)
            s = _best_score(r, solution, answer, ended)
            out.append(
                {
                    "checkpoint_id": checkpoint_id,
                    "problem_id": r["id"],
                    "test_set": test_set,
                    "op": r["op"],
                    "decoding": dec.name,
                    "output": text,
                    "n_tokens": len(ids),
                    "ended": ended,
                    "answer": answer,
                    **{
                        k: s[k]
                        for k in (
                            "correct",
                            "answer_correct",
                            "n_unnecessary",
                            "unnecessary",
                            "first_wrong_param",
                            "error",
                            "errors",
                            "true_answer",
                        )
                    },
                }
            )
    return out


def _best_score(row: dict, solution, answer, ended) -> dict:
    """Score against the row's graph; a problem read from text alone may have several readings (``graphs``):
    the first where the solution is correct, else whose answer is right, else the first (as ``physlm check``)."""
    if "graphs" not in row:
        return score(record.graph_of(row), solution, answer, ended)
    scores = [score(g, solution, answer, ended) for g in row["graphs"]]
    return next((x for x in scores if x["correct"]), None) or next(
        (x for x in scores if x["answer_correct"]), scores[0]
    )


def read_problem_file(path: str) -> list[dict]:
    """Problems of a JSON-lines file (``{problem[, op][, id]}`` per line, e.g. the authors' generator's output,
    or ``physlm sample``'s) as rows to evaluate: each problem's graph is read from its text alone (every
    consistent reading kept). ValueError naming the line for a line that is no such problem."""
    import json

    from physlm.igsm.parse import ParseError, parse_candidates

    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                graphs = parse_candidates(obj["problem"])
            except (ValueError, KeyError, TypeError, ParseError) as e:
                raise ValueError(f"{path} line {n}: not an iGSM problem ({type(e).__name__}: {e})") from None
            op = obj.get("op") if isinstance(obj.get("op"), int) else graphs[0].op()
            rows.append({"id": str(obj.get("id", n)), "problem": obj["problem"], "op": op, "graphs": graphs})
    return rows


def is_physlm_model(folder: str) -> bool:
    """A physlm model folder: a train step, or a model folder kept with its tokenizer (gpt_train --out)."""
    from physlm.model.tokenizer import MARKERS_FILE
    from physlm.store import storage

    return storage.exists(storage.join(folder, MARKERS_FILE))


def load_physlm(folder: str):
    """(model, PhyslmCodec with the fallback) of a physlm train step or kept model folder."""
    from physlm.model import gpt
    from physlm.store import checkpoint

    model = checkpoint.load_model(folder) if checkpoint.latest(folder) is not None else gpt.load(folder)
    return model.eval(), PhyslmCodec(load_tokenizer(folder), fallback=True)


def write_results(rows: list[dict], folder: str) -> dict:
    """``generations.parquet``, ``accuracy.parquet`` and ``accuracy.md`` under ``folder``; returns counts."""
    gens = pa.Table.from_pylist(rows, schema=GENERATIONS)
    storage.write_parquet(gens, storage.join(folder, "generations.parquet"))
    acc = accuracy_table(rows)
    storage.write_parquet(pa.Table.from_pylist(acc, schema=ACCURACY), storage.join(folder, "accuracy.parquet"))
    storage.write_bytes(storage.join(folder, "accuracy.md"), markdown(acc).encode())
    return {"generations": len(rows), "accuracy_rows": len(acc)}


def markdown(acc: list[dict]) -> str:
    """The accuracy table as markdown (op -1 = all ops of the test set pooled)."""
    lines = [
        "| checkpoint | test set | op | decoding | n | accuracy | 95% CI | answer acc. | unnecessary |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for a in acc:
        unn = "-" if a["mean_unnecessary"] is None else f"{a['mean_unnecessary']:.2f}"
        op = "all" if a["op"] == -1 else a["op"]
        lines.append(
            f"| {a['checkpoint_id']} | {a['test_set']} | {op} | {a['decoding']} | {a['n']} | "
            f"{a['accuracy']:.1%} | {a['ci_low']:.1%}–{a['ci_high']:.1%} | {a['answer_accuracy']:.1%} | "
            f"{unn} |"
        )
    return "\n".join(lines) + "\n"


def require_local_folder(folder: str, kind: str = "model") -> None:
    """FileNotFoundError naming ``folder`` unless it is a local transformers ``kind`` ("model": holds a
    config.json; "tokenizer": a tokenizer_config.json); cheap, so callers check before any other work."""
    import os

    marker = {"model": "config.json", "tokenizer": "tokenizer_config.json"}[kind]
    if not os.path.isfile(os.path.join(folder, marker)):
        raise FileNotFoundError(
            f"{folder} is not a {kind} folder (not a local transformers {kind} folder: "
            f"{marker} missing; save_pretrained writes one)"
        )


def load_external(model_dir: str, tokenizer_dir: str | None = None):
    """(model, TextCodec) for any local transformers causal-LM folder (never a hub id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require_local_folder(model_dir, "model")
    require_local_folder(tokenizer_dir or model_dir, "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir, local_files_only=True)
    return model.eval(), TextCodec(tok)


# ---------------------------------------------------------------------------------------------- the step


def test_sets(preset: Preset) -> list[str]:
    return [name for name in preset.data.datasets() if name != TRAIN]


def plan(preset: Preset) -> list[Step]:
    return [evaluate_step(preset)]


def evaluate_step(preset: Preset) -> Step:
    inputs = {"train": train.train_step(preset).path()}
    inputs.update({name: generate.dataset_step(preset, name).path() for name in test_sets(preset)})
    return Step(NAME, preset.evaluate, inputs=inputs, version=VERSION)


def describe(step: Step) -> str:
    return ", ".join(step.config.decodings)


def read_test_sets(folders: dict[str, str], limit: int = 0) -> dict[str, list[dict]]:
    """``{test set: its first ``limit`` problem rows (0 = all)}`` from generate step folders (checked reads)."""
    from physlm.store.shards import read_shards

    return {name: read_shards(folder).to_pylist()[: limit or None] for name, folder in folders.items()}


def evaluate_sets(
    model,
    codec,
    problems: dict[str, list[dict]],
    checkpoint_id: str,
    decodings: tuple[decode.Decoding, ...] = (decode.GREEDY,),
    opts: EvalOptions = EvalOptions(),
) -> list[dict]:
    """``generations`` rows of every test set (``evaluate_rows`` of each, in order)."""
    rows = []
    for name, rows_of_set in problems.items():
        rows += evaluate_rows(model, codec, rows_of_set, name, checkpoint_id, decodings, opts)
    return rows


def run(step: Step, force: bool = False) -> str:
    """Decode every test set with the final checkpoint, check every solution, write the tables."""
    from physlm.store import checkpoint

    cfg: EvalConfig = step.config
    train_path = step.inputs["train"]
    decodings = tuple({"greedy": decode.GREEDY, "beam4": decode.BEAM4}[d] for d in cfg.decodings)
    opts = EvalOptions(batch_size=cfg.batch_size, max_new_tokens=cfg.max_new_tokens)

    def body(out: str) -> dict:
        require_done(train_path)
        model, tok = checkpoint.load_model(train_path), load_tokenizer(train_path)
        cid = train.final_checkpoint_id(train_path)
        problems = read_test_sets({k: v for k, v in step.inputs.items() if k != "train"}, cfg.limit)
        rows = evaluate_sets(model, PhyslmCodec(tok), problems, cid, decodings, opts)
        return {"checkpoint_id": cid, **write_results(rows, out)}

    return run_step(step, body, force=force)


def load_tokenizer(train_path: str):
    from physlm.model.tokenizer import load

    return load(train_path)
