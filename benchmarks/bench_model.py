"""End-to-end model benchmark: a Llama-style transformers model with random
weights on flashcore (attn_implementation=flashcore.integrations.transformers.NAME)
against the same model on SDPA, in one process, on the same inputs.

    python benchmarks/bench_model.py [--dtype bf16] [--layers 8] [--batch 1]
        [--prompt 2048] [--decode 128] [--json out.json]

Prefill: tokens/s of one forward pass over the prompt (CUDA events, median of
repeats). Decode: tokens/s of greedy-shaped one-token steps on a dynamic KV cache
after that prefill (teacher-forced random tokens, so both backends run the same
sequence), timed over the whole decode loop, median of repeats. Needs a CUDA GPU
and transformers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt", type=int, default=2048)
    p.add_argument("--decode", type=int, default=128)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--json", help="write the numbers to this file")
    return p.parse_args(argv)


def timed(fn, repeats: int) -> float:
    """Median seconds of fn() over `repeats` runs, after one warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    from transformers import AutoModelForCausalLM, LlamaConfig

    import flashcore
    import flashcore.integrations.transformers as fct

    fct.register()
    dtype = DTYPES[args.dtype]
    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=args.layers,
        num_attention_heads=32,
        num_key_value_heads=8,
        max_position_embeddings=args.prompt + args.decode + 16,
    )
    torch.manual_seed(0)
    # Built on the GPU: random initialization of ~2B parameters on the CPU took
    # most of a minute.
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, attn_implementation="sdpa", dtype=dtype)
    model = model.eval()
    g = torch.Generator(device="cuda").manual_seed(1)
    prompt = torch.randint(0, cfg.vocab_size, (args.batch, args.prompt), device="cuda", generator=g)
    steps = torch.randint(0, cfg.vocab_size, (args.batch, args.decode), device="cuda", generator=g)

    results = {}
    for impl in ("sdpa", fct.NAME):
        model.set_attn_implementation(impl)

        def prefill():
            with torch.no_grad():
                return model(prompt, use_cache=True)

        def decode():
            with torch.no_grad():
                cache = model(prompt, use_cache=True).past_key_values
                torch.cuda.synchronize()
                start, end = (
                    torch.cuda.Event(enable_timing=True),
                    torch.cuda.Event(enable_timing=True),
                )
                start.record()
                for t in range(args.decode):
                    out = model(steps[:, t : t + 1], past_key_values=cache, use_cache=True)
                    cache = out.past_key_values
                end.record()
                end.synchronize()
                return start.elapsed_time(end) / 1e3

        flashcore.reset_call_counts()
        t_prefill = timed(prefill, args.repeats)
        decode()
        t_decode = statistics.median(decode() for _ in range(args.repeats))
        results[impl] = {
            "prefill_tokens_per_s": args.batch * args.prompt / t_prefill,
            "decode_tokens_per_s": args.batch * args.decode / t_decode,
            "calls": flashcore.call_counts(),
        }
    env = {
        "gpu": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "flashcore": flashcore.__version__,
        "args": vars(args),
    }
    print(json.dumps(env))
    print(f"{'backend':10s} {'prefill tok/s':>14s} {'decode tok/s':>13s}  calls")
    for impl, r in results.items():
        print(
            f"{impl:10s} {r['prefill_tokens_per_s']:14.0f} {r['decode_tokens_per_s']:13.1f}  "
            f"{r['calls'] if impl != 'sdpa' else ''}"
        )
    ours, base = results[fct.NAME], results["sdpa"]
    print(
        f"flashcore / SDPA: prefill {ours['prefill_tokens_per_s'] / base['prefill_tokens_per_s']:.3f}x, "
        f"decode {ours['decode_tokens_per_s'] / base['decode_tokens_per_s']:.3f}x"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"env": env, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
