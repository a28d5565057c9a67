"""The ``mine`` and ``finetune`` commands of ``bge-integrations``: BGE fine-tuning from the shell.

``mine`` writes FlagEmbedding's training format (``{"query", "pos", "neg"}`` per line) with hard
negatives taken from the model's own ranking; ``finetune embedder|reranker`` trains on it and,
with ``--eval``, scores the base model and the result on the same data and prints both.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bge_integrations.cli import _positive_int, _progress_option, _query_lines_option, _show_progress
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.reranker import BGEReranker

if TYPE_CHECKING:
    from bge_integrations.evaluation.beir import RetrievalDataset
    from bge_integrations.evaluation.reranking import RerankingSet

MINE_HELP = """\
Hard negatives for fine-tuning, from the embedder's own ranking (FlagEmbedding's hn_mine):
each query's corpus ranking is cut to --range (ranks, 0-based, end excluded), positives and the
query itself are removed, and --negatives are drawn from what is left (seeded). With --reranker,
candidates it scores above --max-negative-score (0..1) are dropped as likely false negatives and
every example gets the reranker's pos_scores and neg_scores.

IN is a JSON Lines file in FlagEmbedding's format ({"query", "pos": [...], "neg": [...]}; the
candidate pool is --corpus, or every pos and neg text in IN), or a BEIR folder (positives from
its qrels, candidates from its corpus)."""

MINE_EXAMPLES = """\
examples:
  bge-integrations mine ../shared/data/scifact scifact-odd.jsonl --model BAAI/bge-small-en-v1.5 \\
      --query-lines odd --range 10-100 --negatives 7
  bge-integrations mine pairs.jsonl mined.jsonl --model BAAI/bge-base-en-v1.5 --corpus passages.jsonl \\
      --reranker BAAI/bge-reranker-base --max-negative-score 0.9"""

FINETUNE_HELP = """\
Fine-tune a BGE embedder or reranker on FlagEmbedding's training format, on sentence-transformers'
trainers (no deepspeed). The embedder learns with in-batch and hard negatives (InfoNCE at
--temperature), the query instruction in front of queries only, as BGE was trained; the reranker
with a softmax over each query's positive and --negatives hard negatives. Checkpoints go to
OUTPUT/checkpoints (--resume continues from the latest); the model goes to OUTPUT with a model
card that records its base model, so bge-integrations applies the base's conventions to it.
--eval scores the base model and the result on the same data and prints both."""

FINETUNE_EXAMPLES = """\
examples:
  bge-integrations finetune embedder scifact-odd.jsonl --model BAAI/bge-small-en-v1.5 \\
      --output bge-small-scifact --eval ../shared/data/scifact --eval-query-lines even
  bge-integrations finetune reranker mined.jsonl --model BAAI/bge-reranker-base --output reranker-ft \\
      --eval ../shared/data/scifact --eval-query-lines even"""


def add_training_commands(commands: argparse._SubParsersAction[Any]) -> None:
    """Add ``mine`` and ``finetune`` to the command's subparsers."""
    mine = commands.add_parser(
        "mine",
        help="hard negatives from a corpus for fine-tuning (FlagEmbedding's JSON Lines format)",
        description=MINE_HELP,
        epilog=MINE_EXAMPLES,
    )
    mine.add_argument("input", type=Path, metavar="IN", help="training pairs (.jsonl/.jsonl.gz) or a BEIR folder")
    mine.add_argument("output", type=Path, metavar="OUT", help="where to write the mined examples (.jsonl/.jsonl.gz)")
    mine.add_argument("--model", "--embed-model", dest="model", required=True, help="embedder hub id or path")
    mine.add_argument(
        "--range", dest="sample_range", type=_range, default=(10, 100), metavar="START-END", help="ranks to draw from"
    )
    mine.add_argument("--negatives", type=_positive_int, default=7, help="hard negatives per query")
    mine.add_argument("--corpus", type=Path, help="candidate passages, JSON Lines with a 'text' (and 'title') each")
    mine.add_argument("--seed", type=int, default=0, help="seed of the draw")
    mine.add_argument("--reranker", "--rerank-model", dest="reranker", help="cross-encoder that vets the negatives")
    mine.add_argument(
        "--max-negative-score", type=float, default=None, help="drop candidates the reranker scores above this (0..1)"
    )
    beir = mine.add_argument_group("a BEIR folder as IN")
    beir.add_argument("--split", default="test", help="which qrels/SPLIT.tsv gives the positives")
    beir.add_argument("--min-grade", type=int, default=1, help="lowest grade that makes a positive")
    _query_lines_option(beir)
    _device_options(mine)
    _progress_option(mine)
    mine.set_defaults(run=_mine)

    finetune = commands.add_parser(
        "finetune",
        help="fine-tune an embedder or a reranker the BGE way, evaluated before and after",
        description=FINETUNE_HELP,
        epilog=FINETUNE_EXAMPLES,
    )
    finetune.add_argument("kind", choices=("embedder", "reranker"), help="what to fine-tune")
    finetune.add_argument("data", type=Path, help="training examples, FlagEmbedding's JSON Lines (e.g. from mine)")
    finetune.add_argument("--model", required=True, help="the base model: hub id or path")
    finetune.add_argument("--output", type=Path, required=True, help="folder for the model and its checkpoints")
    training = finetune.add_argument_group("training")
    training.add_argument("--epochs", type=float, default=1.0, help="passes over the data")
    training.add_argument("--lr", "--learning-rate", dest="learning_rate", type=float, default=1e-5)
    training.add_argument("--batch-size", type=_positive_int, default=16, help="queries per step")
    training.add_argument("--negatives", type=_positive_int, default=7, help="hard negatives per query in a step")
    training.add_argument("--temperature", type=float, default=0.02, help="InfoNCE temperature (embedder)")
    training.add_argument("--max-steps", type=_positive_int, help="stop after this many steps (overrides --epochs)")
    training.add_argument("--warmup-ratio", type=float, default=0.1, help="share of steps with a rising rate")
    training.add_argument("--max-length", type=_positive_int, help="tokens per text (default: the model's)")
    training.add_argument("--save-steps", type=_positive_int, default=500, help="checkpoint every N steps")
    training.add_argument("--seed", type=int, default=0)
    training.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in OUTPUT")
    training.add_argument(
        "--query-instruction", help="embedder: the instruction in front of queries (default: the base's; '' for none)"
    )
    evaluation = finetune.add_argument_group("evaluation before and after")
    evaluation.add_argument(
        "--eval",
        type=Path,
        metavar="DATA",
        help="a BEIR folder (embedder: nDCG@10; reranker: MAP on its BM25 candidates) or a reranking set (reranker)",
    )
    evaluation.add_argument(
        "--eval-query-lines", choices=("all", "odd", "even"), default="all", help="only these queries of --eval"
    )
    finetune.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    _progress_option(finetune)
    finetune.set_defaults(run=_finetune)


def _range(text: str) -> tuple[int, int]:
    """An argparse type: 'START-END', two ranks with 0 <= START < END."""
    start, _, end = text.partition("-")
    try:
        bounds = int(start), int(end)
    except ValueError:
        bounds = (0, 0)
    if not 0 <= bounds[0] < bounds[1]:
        msg = f"must be START-END with 0 <= START < END, e.g. 10-100, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return bounds


def _device_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--batch-size", type=_positive_int, default=32, help="texts (or pairs) per forward pass")


def _mine(args: argparse.Namespace) -> int:
    from bge_integrations.training.examples import examples_from_beir, read_examples, write_examples
    from bge_integrations.training.mining import mine_hard_negatives

    start = time.perf_counter()
    corpus: list[str] | None = None
    if args.input.is_dir():
        from bge_integrations.evaluation import load_beir

        collection = load_beir(args.input, split=args.split, query_lines=args.query_lines)
        examples, corpus = examples_from_beir(collection, min_grade=args.min_grade)
        source = f"{collection.name}: {len(examples)} queries with a positive, {len(corpus)} documents"
    else:
        examples = read_examples(args.input)
        source = f"{args.input}: {len(examples)} examples"
    if args.corpus is not None:
        corpus = _read_corpus(args.corpus)
        source += f"; candidates from {args.corpus} ({len(corpus)} passages)"
    if args.max_negative_score is not None and args.reranker is None:
        msg = f"--max-negative-score {args.max_negative_score} needs --reranker"
        raise ValueError(msg)
    progress = _show_progress(args)
    embedder = BGEEmbedder(args.model, device=args.device, batch_size=args.batch_size, show_progress_bar=progress)
    reranker = BGEReranker(args.reranker, device=args.device, batch_size=args.batch_size) if args.reranker else None
    mined = mine_hard_negatives(
        examples,
        embedder,
        corpus=corpus,
        sample_range=args.sample_range,
        negatives=args.negatives,
        reranker=reranker,
        max_negative_score=args.max_negative_score,
        seed=args.seed,
        progress=progress,
    )
    write_examples(mined, args.output)
    counts = [len(example.neg) for example in mined]
    print(f"input       {source}")
    print(f"model       {embedder.model_name}")
    if reranker is not None:
        print(f"reranker    {reranker.model_name} (drops candidates scored above {args.max_negative_score})")
    print(f"range       ranks {args.sample_range[0]}-{args.sample_range[1]}, {args.negatives} negatives per query")
    print(f"negatives   {sum(counts)} over {len(mined)} examples (min {min(counts, default=0)} per example)")
    print(f"output      {args.output}")
    print(f"seconds     {time.perf_counter() - start:.1f}")
    return 0


def _read_corpus(path: Path) -> list[str]:
    """Passages of a JSON Lines candidate pool: 'text', with 'title' in front when there is one (as BEIR)."""
    import gzip
    import json

    opener = gzip.open if path.suffix == ".gz" else open
    passages: list[str] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            record = json.loads(line)
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                msg = f"{path}: line {number} has no 'text' string"
                raise ValueError(msg)
            passages.append((str(record.get("title") or "") + " " + record["text"]).strip())
    return passages


def _finetune(args: argparse.Namespace) -> int:
    from bge_integrations.training.embedder_training import finetune_embedder
    from bge_integrations.training.reranker_training import finetune_reranker
    from bge_integrations.training.settings import TrainingSettings

    settings = TrainingSettings(
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        temperature=args.temperature,
        max_steps=args.max_steps,
        negatives=args.negatives,
        warmup_ratio=args.warmup_ratio,
        seed=args.seed,
        save_steps=args.save_steps,
        max_length=args.max_length,
        progress=_show_progress(args),
    )
    if args.kind == "embedder":
        result = finetune_embedder(
            args.data,
            model=args.model,
            output=args.output,
            settings=settings,
            query_instruction=args.query_instruction,
            resume=args.resume,
            evaluation=_retrieval_data(args.eval, args.eval_query_lines) if args.eval else None,
            device=args.device,
        )
    else:
        if args.query_instruction is not None:
            msg = "--query-instruction is for embedders; a reranker reads the query as it is"
            raise ValueError(msg)
        result = finetune_reranker(
            args.data,
            model=args.model,
            output=args.output,
            settings=settings,
            resume=args.resume,
            evaluation=_reranking_data(args.eval, args.eval_query_lines) if args.eval else None,
            device=args.device,
        )
    print(f"base model  {result.base_model}")
    print(f"output      {result.output}")
    loss = "n/a" if result.train_loss is None else f"{result.train_loss:.4f}"
    print(f"steps       {result.steps} (mean training loss {loss})")
    print(f"seconds     {result.seconds:.1f}")
    if result.before is not None and result.after is not None:
        print()
        print(f"{'':<12}{'before':>9}{'after':>9}{'change':>9}")
        for metric, before in result.before.items():
            after = result.after[metric]
            print(f"{metric:<12}{before:>9.5f}{after:>9.5f}{after - before:>+9.5f}")
    return 0


def _retrieval_data(path: Path, query_lines: Any) -> RetrievalDataset:
    from bge_integrations.evaluation import load_beir

    return load_beir(path, query_lines=query_lines)


def _reranking_data(path: Path, query_lines: Any) -> RerankingSet:
    from bge_integrations.evaluation.reranking import load_reranking_set, reranking_set_from_beir

    if path.is_dir():
        return reranking_set_from_beir(_retrieval_data(path, query_lines))
    if query_lines != "all":
        msg = f"--eval-query-lines {query_lines} needs a BEIR folder for --eval, got the file {str(path)!r}"
        raise ValueError(msg)
    return load_reranking_set(path)
