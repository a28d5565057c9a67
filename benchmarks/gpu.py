"""GPU throughput and model FLOP utilisation (MFU) for a bge-base-shaped embedder.

Run on a machine with CUDA: ``python -m benchmarks.gpu`` (a few minutes on one GPU). It embeds
synthetic documents of exactly 256 and 512 tokens with a random-weight model in bge-base's shape
(12 layers, 768 wide: the same cost as the real weights) three ways, in one run:

* pure compute: the model's forward over ready-made tensors already on the GPU;
* ``BGEEmbedder`` (fp16 on CUDA by default) from Python strings, tokenisation included;
* plain sentence-transformers ``encode`` in fp16, from the same strings.

MFU = achieved FLOP/s / the GPU's dense fp16 peak, where a forward pass costs
``2 x non-embedding parameters`` per token plus ``4 x layers x sequence x width`` per token for
attention. On a CPU it runs too (tiny sizes) so CI can check it does not rot.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from benchmarks.models import model_path

# Dense fp16/bf16 tensor-core peaks (no sparsity), TFLOP/s, by a substring of the device name.
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0, "T4": 65.0}


def flops_per_token(parameters: int, layers: int, width: int, sequence: int) -> float:
    """Forward FLOPs per token of a BERT encoder (matmuls only; embeddings excluded).

    Example:
        >>> flops_per_token(85_000_000, 12, 768, 512) / 1e9
        0.18887...

    """
    return 2.0 * parameters + 4.0 * layers * sequence * width


def _text_of(tokens: int, tokenizer: Any) -> str:
    words = ["retrieval", "augmented", "generation", "grounds", "answers", "in", "documents", "about", "pandas"]
    text = ""
    index = 0
    while len(tokenizer(text)["input_ids"]) < tokens:
        text += words[index % len(words)] + " "
        index += 1
    return text


def _time(call: Any, sync: Any, repeats: int) -> float:
    call()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    import torch
    from sentence_transformers import SentenceTransformer

    from bge_integrations import BGEEmbedder

    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu", description=__doc__)
    parser.add_argument("--documents", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lengths", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="bge-base")
    parser.add_argument("--model-path", help="a sentence-transformers model folder to run instead of --model")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's dense fp16 peak (default: looked up by name)")
    args = parser.parse_args(argv)

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    name = torch.cuda.get_device_name() if cuda else "CPU"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    path = args.model_path or str(model_path(args.model))
    dtype = torch.float16 if cuda else torch.float32
    plain = SentenceTransformer(path, device=device, model_kwargs={"dtype": dtype})
    ours = BGEEmbedder(path, device=device, batch_size=args.batch_size)
    ours.warm_up()
    transformer = plain[0].auto_model
    config = transformer.config
    parameters = sum(p.numel() for n, p in transformer.named_parameters() if "embeddings" not in n)
    size = f"{parameters / 1e6:.0f}M non-embedding parameters"
    print(f"Device: {name}; peak {peak or '?'} TFLOP/s fp16; model {args.model} ({size})")
    print("\n| tokens | path | docs/s | TFLOP/s | MFU |\n| ---: | --- | ---: | ---: | ---: |")
    for tokens in args.lengths:
        text = _text_of(tokens, plain.tokenizer)
        texts = [f"{i} {text}" for i in range(args.documents)]  # distinct, so nothing is de-duplicated
        ids = torch.randint(5, config.vocab_size, (args.batch_size, tokens), device=device)
        features = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}

        def pure(features: dict[str, Any] = features) -> None:
            with torch.inference_mode():
                for _ in range(max(1, args.documents // args.batch_size)):
                    plain(dict(features))

        calls = {
            "pure compute": (pure, max(1, args.documents // args.batch_size) * args.batch_size),
            "BGEEmbedder": (lambda texts=texts: ours.embed_documents(texts), len(texts)),
            "sentence-transformers": (
                lambda texts=texts: plain.encode(texts, batch_size=args.batch_size, convert_to_numpy=True),
                len(texts),
            ),
        }
        per_token = flops_per_token(parameters, config.num_hidden_layers, config.hidden_size, tokens)
        for label, (call, count) in calls.items():
            seconds = _time(call, sync, args.repeats)
            rate = count / seconds
            tflops = rate * tokens * per_token / 1e12
            mfu = f"{tflops / peak:.1%}" if peak else "-"
            print(f"| {tokens} | {label} | {rate:.0f} | {tflops:.1f} | {mfu} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
