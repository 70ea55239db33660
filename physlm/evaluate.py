"""Evaluate a model on iGSM test sets: decode, check every whole solution, tabulate (spec C.3-C.4, E2-E3).

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

from physlm import decode, storage
from physlm.igsm import record
from physlm.scoring import accuracy_table, score

GENERATIONS = pa.schema([
    ("checkpoint_id", pa.string()), ("problem_id", pa.string()), ("test_set", pa.string()),
    ("op", pa.int16()), ("decoding", pa.string()), ("output", pa.string()), ("correct", pa.bool_()),
    ("answer_correct", pa.bool_()), ("n_unnecessary", pa.int16()), ("unnecessary", pa.list_(pa.string())),
    ("first_wrong_param", pa.string()), ("error", pa.string()), ("errors", pa.list_(pa.string())),
    ("n_tokens", pa.int32()), ("ended", pa.bool_()), ("answer", pa.string()), ("true_answer", pa.int8()),
])
ACCURACY = pa.schema([
    ("checkpoint_id", pa.string()), ("test_set", pa.string()), ("op", pa.int16()), ("decoding", pa.string()),
    ("n", pa.int32()), ("correct", pa.int32()), ("accuracy", pa.float64()), ("ci_low", pa.float64()),
    ("ci_high", pa.float64()), ("answer_accuracy", pa.float64()), ("mean_unnecessary", pa.float64()),
])


class PhyslmCodec:
    """Prompts and output parsing for our models: the paper's token framing (spec A.8)."""

    def __init__(self, tok):
        self.tok = tok
        self.end_id = tok.markers.end

    def prompt(self, problem: str) -> list[int]:
        return self.tok.encode_prompt(problem)

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


def evaluate_rows(model, codec, rows: list[dict], test_set: str, checkpoint_id: str,
                  decodings: tuple[decode.Decoding, ...] = (decode.GREEDY,),
                  opts: EvalOptions = EvalOptions()) -> list[dict]:
    """Decode every problem row with each decoding and score it; returns ``generations`` rows."""
    prompts = [codec.prompt(r["problem"]) for r in rows]
    out = []
    for dec in decodings:
        dec = decode.Decoding(dec.name, dec.beams, dec.sample, opts.max_new_tokens)
        results = decode.generate(model, prompts, codec.end_id, dec, opts.batch_size, opts.seed)
        for r, (ids, ended) in zip(rows, results):
            text, solution, answer = codec.parse(ids)
            s = score(record.graph_of(r), solution, answer, ended)
            out.append({"checkpoint_id": checkpoint_id, "problem_id": r["id"], "test_set": test_set,
                        "op": r["op"], "decoding": dec.name, "output": text, "n_tokens": len(ids),
                        "ended": ended, "answer": answer, **{k: s[k] for k in (
                            "correct", "answer_correct", "n_unnecessary", "unnecessary", "first_wrong_param",
                            "error", "errors", "true_answer")}})
    return out


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
    lines = ["| checkpoint | test set | op | decoding | n | accuracy | 95% CI | answer acc. | unnecessary |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for a in acc:
        unn = "-" if a["mean_unnecessary"] is None else f"{a['mean_unnecessary']:.2f}"
        op = "all" if a["op"] == -1 else a["op"]
        lines.append(f"| {a['checkpoint_id']} | {a['test_set']} | {op} | {a['decoding']} | {a['n']} | "
                     f"{a['accuracy']:.1%} | {a['ci_low']:.1%}–{a['ci_high']:.1%} | {a['answer_accuracy']:.1%} | "
                     f"{unn} |")
    return "\n".join(lines) + "\n"



def require_local_folder(folder: str, kind: str = "model") -> None:
    """FileNotFoundError naming ``folder`` unless it is a local transformers ``kind`` ("model": holds a
    config.json; "tokenizer": a tokenizer_config.json); cheap, so callers check before any other work."""
    import os

    marker = {"model": "config.json", "tokenizer": "tokenizer_config.json"}[kind]
    if not os.path.isfile(os.path.join(folder, marker)):
        raise FileNotFoundError(f"{folder} is not a {kind} folder (not a local transformers {kind} folder: "
                                f"{marker} missing; save_pretrained writes one)")


def load_external(model_dir: str, tokenizer_dir: str | None = None):
    """(model, TextCodec) for any local transformers causal-LM folder (never a hub id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    require_local_folder(model_dir, "model")
    require_local_folder(tokenizer_dir or model_dir, "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(model_dir, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir, local_files_only=True)
    return model.eval(), TextCodec(tok)
