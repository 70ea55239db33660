"""Evaluation decoding speed: our batched KV-cache decoding vs ``model.generate`` one problem at a time.

    python benchmarks/evaluate.py                      # random-init GPT2-2-2 (width 128), 32 tiny problems
    python benchmarks/evaluate.py --checkpoint DIR     # a saved model folder (config.json + safetensors)

Same model, same prompts, same greedy decoding and token cap, in the same process; prints problems/s of
both and the ratio, and checks that the outputs are identical.
"""

from __future__ import annotations

import argparse
import time

import torch

from physlm.config import ModelConfig
from physlm.igsm.config import Family, GenConfig
from physlm.igsm.generate import generate
from physlm.model import decode
from physlm.model.gpt import build, load
from physlm.model.tokenizer import build_wordlevel


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    tok = build_wordlevel()
    torch.manual_seed(0)
    model = (
        load(args.checkpoint)
        if args.checkpoint
        else build(ModelConfig(n_layer=2, n_head=2, vocab_size=tok.vocab_size, n_ctx=512))
    )
    cfg = GenConfig(family=Family("tiny", max_op=4, max_edge=6), split="test")
    prompts = [tok.encode_prompt(generate(cfg, s).problem) for s in range(args.n)]
    dec = decode.Decoding(max_new_tokens=args.max_new_tokens)
    end = tok.markers.end

    t = time.perf_counter()
    batched = decode.generate(model, prompts, end, dec, batch_size=args.batch_size)
    t_batched = time.perf_counter() - t

    t = time.perf_counter()
    single = []
    with torch.no_grad():
        for p in prompts:  # the baseline: plain model.generate, one problem at a time
            ids = torch.tensor([p])
            seq = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=dec.max_new_tokens,
                do_sample=False,
                eos_token_id=end,
                pad_token_id=end,
            )[0, len(p) :].tolist()
            single.append((seq[: seq.index(end)] if end in seq else seq, end in seq))
    t_single = time.perf_counter() - t

    print(f"problems: {args.n}, max_new_tokens: {dec.max_new_tokens}, threads: {torch.get_num_threads()}")
    print(f"one-by-one model.generate: {args.n / t_single:7.2f} problems/s")
    print(f"batched (batch {args.batch_size}):        {args.n / t_batched:7.2f} problems/s")
    print(f"ratio: {t_single / t_batched:.1f}x   identical outputs: {batched == single}")


if __name__ == "__main__":
    main()
