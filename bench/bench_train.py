"""Step-time benchmark: Stage 2 step / Stage 1 step with scheduled sampling active, and label decoding.

Three step kinds on the same batches (tiny-t5 d128 2+2, batch 16, the synthetic triage data):
  stage1        explain forward/backward
  stage2 (r2d)  this trainer: predict pass, labels scored from its encoder states (no grad), explain
                prompts picked from pre-tokenised rows, one backward
  stage2 (authors' structure)  greedy `generate` (max_length 50) for the predicted labels, decode to
                text, re-tokenise the explain prompts, two forward/backward passes
with p = 1 (every example uses its predicted label) so sampling cost is always paid. All ratios
come from one run (these machines are noisy); medians of --repeats steps after a warm-up.
Measured twice: on the untrained model (generation runs long) and after --train-steps of Stage 2.

    python bench/bench_train.py [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from r2d.config import load_config
from r2d.model import prompts
from r2d.model.decode import LabelScorer, predict_labels
from r2d.train.batches import BatchOrder, pad, pad_targets
from r2d.train.objectives import TaskModel
from r2d.train.prepare import prepare


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--train-steps", type=int, default=60)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config("configs/triage-tiny.yaml", ["model.cache_dir=.cache/r2d-bench", "data.triage.size=1200"])
    prep = prepare(cfg, torch.device("cpu"))
    tok, model, split, labels = prep.tokenizer, prep.model, prep.splits["train"], prep.ds.labels
    examples = prep.ds.train
    pad_id = tok.pad_token_id
    task = TaskModel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scorer = LabelScorer(tok, labels, torch.device("cpu"))
    order = BatchOrder(len(split), args.batch, 0)
    dev = torch.device("cpu")
    state = {"step": 0}

    def rows():
        state["step"] += 1
        return order.global_batch(state["step"])

    def stage1_step():
        r = rows()
        ids, mask = pad([split.explain[i] for i in r], pad_id, dev)
        out = task(explain=(ids, mask, pad_targets([split.rationale_targets[i] for i in r], pad_id, dev)))
        out["expl"].mean().backward()
        opt.step()
        opt.zero_grad()

    def stage2_ours():
        r = rows()
        targets = pad_targets([split.rationale_targets[i] for i in r], pad_id, dev)

        def choose(states, ids, mask):
            best, _ = scorer(task, states, mask)  # p = 1: every example takes its predicted label
            e_ids, e_mask = pad([split.explain_given[k][i] for k, i in zip(best.tolist(), r)], pad_id, dev)
            return e_ids, e_mask, targets

        ids, mask = pad([split.predict[i] for i in r], pad_id, dev)
        out = task(predict=(ids, mask, pad_targets([split.label_targets[i] for i in r], pad_id, dev)),
                   choose_explain=choose)
        (0.7 * out["pred"].mean() + 0.3 * out["expl"].mean()).backward()
        opt.step()
        opt.zero_grad()

    def stage2_authors():
        r = rows()
        batch = [examples[i] for i in r]
        enc = tok([prompts.predict(e.input) for e in batch], padding=True, truncation=True,
                  max_length=cfg.data.max_input_tokens, return_tensors="pt")
        with torch.no_grad():
            out = model.generate(**enc, max_length=50, do_sample=False, num_beams=1)
        predicted = tok.batch_decode(out, skip_special_tokens=True)
        label_t = tok([e.label for e in batch], padding=True, return_tensors="pt").input_ids
        label_t = label_t.masked_fill(label_t == pad_id, -100)
        loss_pred = model(**enc, labels=label_t).loss
        explain = tok([prompts.explain_given(p.strip(), e.input) for p, e in zip(predicted, batch)], padding=True,
                      truncation=True, max_length=cfg.data.max_input_tokens, return_tensors="pt")
        rat = tok([e.rationale for e in batch], padding=True, truncation=True,
                  max_length=cfg.data.max_target_tokens, return_tensors="pt").input_ids
        rat = rat.masked_fill(rat == pad_id, -100)
        loss_expl = model(**explain, labels=rat).loss
        (0.7 * loss_pred + 0.3 * loss_expl).backward()
        opt.step()
        opt.zero_grad()

    def decode(mode):
        r = order.global_batch(10_000)
        ids, mask = pad([split.predict[i] for i in r], pad_id, dev)
        return lambda: predict_labels(model, tok, scorer, ids, mask, mode)

    def measure(tag: str) -> dict:
        model.train()
        s1, ours, authors = (timed(f, args.repeats) for f in (stage1_step, stage2_ours, stage2_authors))
        model.eval()
        score, gen = timed(decode("score"), args.repeats), timed(decode("generate"), args.repeats)
        return {"model": tag, "stage1_step_ms": 1000 * s1, "stage2_step_ms": 1000 * ours,
                "authors_stage2_step_ms": 1000 * authors, "stage2_over_stage1": ours / s1,
                "authors_over_stage1": authors / s1, "decode_score_ms": 1000 * score,
                "decode_generate_ms": 1000 * gen, "generate_over_score": gen / score}

    results = [measure("untrained")]
    model.train()
    for _ in range(args.train_steps):
        stage2_ours()
    results.append(measure(f"after {args.train_steps} stage-2 steps"))
    print(json.dumps({"threads": args.threads, "batch": args.batch, "repeats": args.repeats,
                      "results": results}, indent=1))
    print("\n| model | Stage 1 step | Stage 2 step (r2d) | ratio | authors' Stage 2 | ratio | label decode score | "
          "generate |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['stage1_step_ms']:.0f} ms | {r['stage2_step_ms']:.0f} ms | "
              f"{r['stage2_over_stage1']:.2f}x | {r['authors_stage2_step_ms']:.0f} ms | "
              f"{r['authors_over_stage1']:.2f}x | "
              f"{r['decode_score_ms']:.0f} ms | {r['decode_generate_ms']:.0f} ms |")


if __name__ == "__main__":
    main()
