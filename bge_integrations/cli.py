"""The ``bge-integrations`` command: demo, eval, eval-rerank, reproduce, embed, serve, mine and finetune.

Examples::

    bge-integrations demo
    bge-integrations eval ../shared/data/scifact --model BAAI/bge-small-en-v1.5
    bge-integrations eval-rerank cmedqa-v2.jsonl.gz --rerank-model BAAI/bge-reranker-base
    bge-integrations embed corpus.jsonl.gz vectors/ --model BAAI/bge-small-en-v1.5

Long work (embedding a corpus, searching, reranking) draws progress bars on standard error when
it is a terminal; ``--progress`` / ``--no-progress`` force them on or off. Standard output
(tables, JSON) is the same either way.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from bge_integrations.core.backends import Backend, BackendPrecision
from bge_integrations.core.embedder import BGEEmbedder
from bge_integrations.core.notices import TruncationWarning
from bge_integrations.core.presets import DEFAULT_EMBEDDER, DEFAULT_RERANKER
from bge_integrations.core.reranker import BGEReranker
from bge_integrations.core.validation import check_texts

if TYPE_CHECKING:
    from bge_integrations.bulk import Engine

NO_RERANKER = "none"
_PACKAGE = Path(__file__).resolve().parent


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    previous = warnings.formatwarning
    warnings.formatwarning = _OneLineWarnings(previous)
    try:
        status: int = args.run(args)
    except (ValueError, TypeError, FileNotFoundError, OSError, ImportError) as exc:
        print(f"bge-integrations {args.command}: error: {_explain(exc)}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = previous
    return status


class _OneLineWarnings:
    """Formats this package's warnings as one line for standard error; others as before."""

    def __init__(self, others: Any) -> None:
        self.others = others

    def __call__(
        self, message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
    ) -> str:
        ours = category.__module__.startswith(_PACKAGE.name) or Path(filename).resolve().is_relative_to(_PACKAGE)
        if not ours:
            text: str = self.others(message, category, filename, lineno, line)
            return text
        text = str(message).strip()
        if issubclass(category, TruncationWarning):
            # The rest points library users at an attribute; the count is what a command line needs.
            text = text.split(" This warning is shown once", 1)[0]
        return f"bge-integrations: warning: {text.splitlines()[0] if text else category.__name__}\n"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """Keeps descriptions as written and shows an option's default where it has a value worth showing."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool) or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


class _CommandParser(argparse.ArgumentParser):
    """The parser of each command: its --help shows defaults."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _explain(exc: BaseException) -> str:
    """One line for the user; the hub's multi-line offline message becomes a fix to apply."""
    text = str(exc).strip()
    if isinstance(exc, OSError) and ("huggingface.co" in text or "offline" in text.lower()):
        return (
            "the model is not on this machine and the Hugging Face hub cannot be reached; "
            "pass local model folders: --model PATH (and --reranker PATH, or --reranker none)"
        )
    return text.splitlines()[0] if text else type(exc).__name__


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bge-integrations", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_CommandParser)

    demo = commands.add_parser("demo", help="retrieve and rerank on a small built-in corpus")
    _model_options(demo)
    demo.add_argument("--query", action="append", help="a question to ask (repeatable); default: three examples")
    demo.add_argument("--candidates", type=_positive_int, default=5, help="passages retrieved per query, then reranked")
    demo.add_argument("--top-n", type=_positive_int, default=3, help="passages shown per query")
    demo.set_defaults(run=_demo)

    evaluate = commands.add_parser("eval", help="nDCG@10 and Recall@100 on a BEIR-layout collection")
    evaluate.add_argument("data", type=Path, help="folder with corpus.jsonl(.gz), queries.jsonl, qrels/test.tsv")
    _model_options(evaluate, reranker_default=NO_RERANKER)
    evaluate.add_argument(
        "--framework",
        choices=("core", "langchain", "llama-index", "haystack"),
        default="core",
        help="retrieve through the core's exact search or a framework's own vector store (default: core)",
    )
    evaluate.add_argument("--rerank-top-k", type=_positive_int, default=100, help="candidates the reranker reads")
    _query_lines_option(evaluate)
    _llm_reranker_options(evaluate)
    _retrieval_options(evaluate)
    evaluate.add_argument("--expect-ndcg", type=float, help="exit 1 unless nDCG@10 is within --tolerance of this")
    evaluate.add_argument("--tolerance", type=float, default=0.0005)
    evaluate.add_argument(
        "--output", type=Path, metavar="PATH", help="also write the report (JSON, per-query nDCG) here"
    )
    evaluate.add_argument(
        "--json",
        nargs="?",
        const=True,
        metavar="PATH",
        help="print the report as JSON instead of a table (as eval-rerank does); --json PATH, the older "
        "spelling of --output PATH, still writes it there",
    )
    _progress_option(evaluate)
    evaluate.set_defaults(run=_eval)

    _eval_rerank_parser(commands)
    from bge_integrations.cli_training import add_training_commands

    add_training_commands(commands)

    reproduce = commands.add_parser(
        "reproduce", help="eval through every path on every collection, next to MTEB's published nDCG@10"
    )
    reproduce.add_argument("data", type=Path, help="folder holding the collections (e.g. ../shared/data)")
    reproduce.add_argument("--model", required=True, help="embedder hub id or path")
    reproduce.add_argument(
        "--published-as", required=True, help="the model's name in the published table, e.g. all-MiniLM-L6-v2"
    )
    reproduce.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"])
    reproduce.add_argument("--frameworks", nargs="+", default=["core", "langchain", "llama-index", "haystack"])
    reproduce.add_argument("--tolerance", type=float, default=0.0005)
    reproduce.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    reproduce.add_argument("--batch-size", type=int, default=32, help="texts (or pairs) per forward pass")
    _progress_option(reproduce)
    reproduce.set_defaults(run=_reproduce)

    embed = commands.add_parser(
        "embed",
        help="embed a JSON Lines or Parquet corpus into Parquet parts (id, embedding); a rerun resumes",
        description=EMBED_HELP,
        epilog=EMBED_EXAMPLES,
    )
    embed.add_argument("input", type=Path, help="*.jsonl, *.ndjson or *.json (optionally .gz), or *.parquet")
    embed.add_argument("output", type=Path, help="output folder: part-00000.parquet, ... and _manifest.json")
    embed.add_argument("--id-field", default="id", help="the field holding each row's id (default: id)")
    embed.add_argument("--text-field", default="text", help="the field holding the text (default: text)")
    embed.add_argument("--queries", action="store_true", help="embed as queries (with the query instruction)")
    embed.add_argument(
        "--outputs",
        type=_embed_outputs,
        default=("dense",),
        metavar="OUTPUTS",
        help="comma-separated, any of dense,sparse,colbert (default: dense); sparse and colbert need a bge-m3 "
        "with its heads and add the columns sparse_indices, sparse_values and colbert, all from one forward pass",
    )
    embed.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="this process, or Ray actors (default: local)"
    )
    embed.add_argument("--num-actors", type=int, help="with --engine ray: actors, one model each (default: 1)")
    embed.add_argument(
        "--num-gpus-per-actor", type=float, help="with --engine ray: GPUs per actor (default: 0, CPU actors)"
    )
    embed.add_argument("--part-size", type=int, default=10_000, help="rows per output part (default: 10000)")
    embed.add_argument(
        "--on-bad-rows",
        choices=("raise", "report"),
        default="raise",
        help="a missing or non-string text: stop naming it (raise, the default), or keep the row with a "
        "null embedding and the reason in an error column (report)",
    )
    embed.add_argument(
        "--max-line-chars",
        type=_positive_int,
        metavar="N",
        help="a JSON Lines line longer than N characters stops the run, named, before any model runs "
        "(exit status 2; default: 67108864)",
    )
    _model_options(embed, reranker=False)
    _progress_option(embed)
    embed.set_defaults(run=_embed)
    return parser


EMBED_HELP = """\
Embed every text of a corpus file into a folder of Parquet parts (columns id and embedding),
with bge_integrations.bulk.embed_file. Each part is written whole (temporary file, then renamed)
and recorded in _manifest.json: rerun the same command after an interruption and it skips the
finished parts. The model and its settings are in each part's Parquet metadata. Needs pyarrow,
and Ray for --engine ray: pip install "bge-integrations[ray]"."""

EMBED_EXAMPLES = """\
examples:
  bge-integrations embed corpus.jsonl.gz vectors/ --model BAAI/bge-base-en-v1.5
  bge-integrations embed queries.parquet query-vectors/ --queries --id-field qid
  bge-integrations embed corpus.jsonl vectors/ --engine ray --num-actors 4 --num-gpus-per-actor 1
  bge-integrations embed corpus.jsonl m3-vectors/ --model BAAI/bge-m3 --outputs dense,sparse,colbert"""

SERVE_HELP = """\
Serve BGE models over HTTP in the APIs that LangChain, LlamaIndex and Haystack clients already speak:
OpenAI POST /v1/embeddings (input_type "query" gives the query instruction; /query/v1/embeddings embeds
queries for clients that cannot send it), TEI POST /embed, /embed_sparse (bge-m3), /rerank, GET /info,
/health, Cohere-style POST /v1/rerank, and GET /metrics (Prometheus). Every app process then shares one
copy of the model. Binds to 127.0.0.1 unless --host says otherwise."""

SERVE_EXAMPLES = """\
examples:
  bge-integrations serve --model BAAI/bge-small-en-v1.5 --reranker BAAI/bge-reranker-base
  bge-integrations serve --model BAAI/bge-m3 --host 0.0.0.0 --port 8080 --api-key "$KEY"
  bge-integrations serve --model BAAI/bge-base-en-v1.5 --engine ray --replicas 4 --num-gpus-per-replica 1"""

RERANK_HELP = """\
Score a reranking set and report MAP and MRR@10 as MTEB's (v1) RerankingEvaluator and C-MTEB
compute them; the BGE model cards report these on T2Reranking, MMarcoReranking, CMedQAv1/v2.

DATA is JSON Lines (.jsonl or .jsonl.gz), one sample per line:
  {"query": "...", "positive": ["relevant passage", ...], "negative": ["irrelevant passage", ...]}
or, with --from-beir, a BEIR collection folder (corpus.jsonl(.gz), queries.jsonl, qrels/test.tsv)
from which one sample per judged query is derived: positives are the documents judged relevant,
negatives the best BM25 matches among the others (--negatives random|judged to change).

Each sample's passages are scored against its query by a reranker (--rerank-model: a cross-encoder,
raw query and passage, raw logits; or an LLM reranker such as BAAI/bge-reranker-v2-gemma, raw
scores as FlagEmbedding's compute_score gives them, with its --prompt, --cutoff-layers,
--compress-ratio, --compress-layers) or an embedder (--model: the query with its instruction, passages
without, cosine).
MAP: mean average precision (scikit-learn's average_precision_score per sample; tied scores
form one step). MRR@10: mean 1/rank of the first positive in the top 10 (ties keep the sample's
order, positives first; the report counts samples where a positive and a negative tie).
Samples without a positive or without a negative are skipped, counted and listed."""

RERANK_EXAMPLES = """\
examples:
  bge-integrations eval-rerank t2reranking-dev.jsonl.gz --rerank-model BAAI/bge-reranker-base
  bge-integrations eval-rerank cmedqa-v2.jsonl --model BAAI/bge-small-zh-v1.5 --output result.json
  bge-integrations eval-rerank cmedqa-v2.jsonl --rerank-model BAAI/bge-reranker-v2-minicpm-layerwise --cutoff-layers 28
  bge-integrations eval-rerank ../shared/data/scifact --from-beir --max-samples 50 --model PATH --json"""


def _eval_rerank_parser(commands: argparse._SubParsersAction[_CommandParser]) -> None:
    from bge_integrations.evaluation.reranking import NEGATIVE_SOURCES

    serve = commands.add_parser(
        "serve",
        help="an HTTP server (OpenAI, TEI and Cohere APIs) that framework clients use in place of a local model",
        description=SERVE_HELP,
        epilog=SERVE_EXAMPLES,
    )
    serve.add_argument("--model", "--embed-model", dest="model", metavar="M", help="embedder hub id or path")
    serve.add_argument(
        "--reranker", "--rerank-model", dest="reranker", metavar="R", help="reranker hub id or path (or none)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 opens it to the network)")
    serve.add_argument("--port", type=_positive_int, default=8080, help="port to listen on")
    serve.add_argument(
        "--api-key",
        default=os.environ.get("BGE_API_KEY"),
        help="require 'Authorization: Bearer KEY' (default: $BGE_API_KEY; none when unset)",
    )
    serve.add_argument("--served-model-name", metavar="NAME", help="the model name reported to clients")
    serve.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    serve.add_argument("--batch-size", type=_positive_int, metavar="N", help="texts or pairs per forward pass")
    limits = serve.add_argument_group("limits")
    limits.add_argument("--max-items", type=_positive_int, default=2048, help="texts or documents per request")
    limits.add_argument("--max-chars", type=_positive_int, default=100_000, help="characters per text")
    limits.add_argument("--max-request-bytes", type=_positive_int, default=32 * 1024 * 1024, help="request body size")
    limits.add_argument(
        "--max-queue-items",
        type=_positive_int,
        default=16_384,
        help="texts or documents waiting across requests; past it, requests get 429 with Retry-After",
    )
    limits.add_argument(
        "--graceful-timeout",
        type=float,
        default=30.0,
        help="seconds to finish requests in flight after SIGTERM/Ctrl-C (local engine)",
    )
    scale = serve.add_argument_group("scale-out")
    scale.add_argument(
        "--engine", choices=("local", "ray"), default="local", help="local: one process; ray: replicas on Ray Serve"
    )
    scale.add_argument("--replicas", type=_positive_int, metavar="N", help="Ray Serve replicas (default: 1)")
    scale.add_argument("--num-gpus-per-replica", type=float, metavar="G", help="GPUs per replica (default: 0)")
    scale.add_argument("--num-cpus-per-replica", type=float, metavar="C", help="CPUs per replica (default: 1)")
    _backend_options(serve)
    _llm_reranker_options(serve)
    serve.set_defaults(run=_serve)

    rerank = commands.add_parser(
        "eval-rerank",
        help="MAP and MRR@10 on a reranking set (query, positive and negative passages), as C-MTEB",
        description=RERANK_HELP,
        epilog=RERANK_EXAMPLES,
    )
    rerank.add_argument(
        "data", type=Path, help="reranking set (.jsonl or .jsonl.gz), or a BEIR folder with --from-beir"
    )
    model = rerank.add_mutually_exclusive_group(required=True)
    model.add_argument(
        "--rerank-model",
        "--reranker",
        dest="reranker",
        metavar="R",
        help="reranker hub id or path: a cross-encoder or an LLM reranker (bge-reranker-v2-gemma, ...)",
    )
    model.add_argument(
        "--model", "--embed-model", dest="model", metavar="M", help="embedder hub id or path (cosine similarity)"
    )
    rerank.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    rerank.add_argument("--batch-size", type=int, default=32, metavar="N", help="pairs or texts per forward pass")
    rerank.add_argument("--max-samples", type=int, metavar="N", help="read only the first N samples (judged queries)")
    _llm_reranker_options(rerank)
    beir = rerank.add_argument_group("deriving a set from a BEIR collection")
    beir.add_argument("--from-beir", action="store_true", help="DATA is a BEIR folder: derive one sample per query")
    beir.add_argument(
        "--negatives",
        choices=NEGATIVE_SOURCES,
        help="where negatives come from: bm25 (best BM25 matches not judged relevant; default), "
        "random (uniform, --seed), judged (documents judged 0)",
    )
    beir.add_argument("--num-negatives", type=int, metavar="N", help="negatives per query at most (default: 20)")
    beir.add_argument("--min-grade", type=int, metavar="G", help="lowest grade that makes a positive (default: 1)")
    beir.add_argument("--seed", type=int, help="seed for --negatives random (default: 0)")
    _query_lines_option(beir, default=None)
    rerank.add_argument(
        "--save-set", type=Path, metavar="PATH", help="also write the samples read (JSON Lines; .gz compresses)"
    )
    rerank.add_argument("--output", type=Path, metavar="PATH", help="also write the report (JSON) here")
    rerank.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    _progress_option(rerank)
    rerank.set_defaults(run=_eval_rerank)


def _serve(args: argparse.Namespace) -> int:
    """``serve``: the HTTP server on uvicorn (one process) or on Ray Serve replicas."""
    from bge_integrations.serving import ServerSettings

    reranker = None if args.reranker is None or args.reranker.lower() == NO_RERANKER else args.reranker
    backend = _backend_settings(args)
    if backend and not args.model:
        msg = f"{_options(backend)}: settings of the embedder, which needs --model"
        raise ValueError(msg)
    shared = {key: value for key, value in (("device", args.device), ("batch_size", args.batch_size)) if value}
    settings = ServerSettings(
        model=args.model,
        reranker=reranker,
        api_key=args.api_key or None,
        served_model_name=args.served_model_name,
        max_items=args.max_items,
        max_chars=args.max_chars,
        max_request_bytes=args.max_request_bytes,
        max_queue_items=args.max_queue_items,
        embedder_settings={**shared, **backend} if args.model else {},
        reranker_settings={**shared, **_llm_settings(args)} if reranker else {},
    )
    ray_options = {
        "--replicas": args.replicas,
        "--num-gpus-per-replica": args.num_gpus_per_replica,
        "--num-cpus-per-replica": args.num_cpus_per_replica,
    }
    if args.engine == "local":
        given = [option for option, value in ray_options.items() if value is not None]
        if given:
            msg = f"{' and '.join(given)}: Ray Serve options, for --engine ray only"
            raise ValueError(msg)
        from bge_integrations.serving import run_server

        print(f"Serving {settings.served_name} on http://{args.host}:{args.port} (Ctrl-C stops)", flush=True)
        run_server(settings, host=args.host, port=args.port, graceful_timeout=args.graceful_timeout)
        return 0
    from bge_integrations.serving.ray_serve import run_ray_server

    run_ray_server(
        settings,
        host=args.host,
        port=args.port,
        replicas=args.replicas or 1,
        gpus_per_replica=args.num_gpus_per_replica or 0,
        cpus_per_replica=args.num_cpus_per_replica,
    )
    return 0


def _count(number: int, noun: str) -> str:
    """'1 part', '3 parts'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _positive_int(text: str) -> int:
    """An argparse type: an int > 0 (a count of passages), refused naming the value otherwise."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        msg = f"must be an int > 0, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def _embed_outputs(text: str) -> tuple[str, ...]:
    """An argparse type: embed's --outputs, e.g. 'dense,sparse', in the canonical order."""
    from bge_integrations.core.m3_types import check_outputs

    try:
        return check_outputs(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _query_lines_option(parser: argparse._ActionsContainer, default: str | None = "all") -> None:
    parser.add_argument(
        "--query-lines",
        choices=("all", "odd", "even"),
        default=default,
        help="only the queries on odd or even lines of queries.jsonl: two disjoint halves, to fine-tune on "
        "one and evaluate on the other when a collection has no train split (default: all)",
    )


def _progress_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on standard error (default: on when standard error is a terminal)",
    )


def _show_progress(args: argparse.Namespace) -> bool:
    chosen: bool | None = getattr(args, "progress", None)
    return sys.stderr.isatty() if chosen is None else chosen


def _layers(text: str) -> tuple[int, ...]:
    """An argparse type: a comma list of layer numbers, e.g. '28,40'."""
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        msg = f"must be layer numbers separated by commas, e.g. 28,40, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None


def _llm_reranker_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "LLM rerankers (bge-reranker-v2-gemma, -v2-minicpm-layerwise, -v2.5-gemma2-lightweight)",
        "FlagEmbedding's settings, passed to the core BGEReranker; one its model does not read is an error",
    )
    group.add_argument(
        "--prompt", metavar="TEXT", help="the instruction after the passage (default: the model family's)"
    )
    group.add_argument(
        "--cutoff-layers",
        type=_layers,
        metavar="L[,L...]",
        help="layerwise and lightweight: the layers that score; the deepest listed ranks (default: the last)",
    )
    group.add_argument(
        "--compress-ratio",
        type=int,
        metavar="N",
        help="lightweight: passage tokens merged into one, 1, 2, 4 or 8 (default: FlagEmbedding's)",
    )
    group.add_argument(
        "--compress-layers",
        type=_layers,
        metavar="L[,L...]",
        help="lightweight: the layers before which passage tokens are merged (default: FlagEmbedding's)",
    )


def _llm_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The LLM-reranker settings given on the command line, under BGEReranker's names; refused without a reranker."""
    from bge_integrations.core.configs import LLM_SETTINGS

    given = {name: getattr(args, name) for name in LLM_SETTINGS if getattr(args, name, None) is not None}
    reranker: str | None = args.reranker
    if given and (reranker is None or reranker.lower() == NO_RERANKER):
        got = reranker or "not given"
        msg = f"{_options(given)}: settings of an LLM reranker (--rerank-model), got --rerank-model {got}"
        raise ValueError(msg)
    return given


def _options(names: Iterable[str]) -> str:
    """Settings named as their command-line options: ``backend_precision`` -> ``--backend-precision``."""
    return ", ".join(f"--{name.replace('_', '-')}" for name in names)


def _model_options(
    parser: argparse.ArgumentParser, *, reranker: bool = True, reranker_default: str = DEFAULT_RERANKER
) -> None:
    parser.add_argument(
        "--model",
        "--embed-model",
        dest="model",
        default=DEFAULT_EMBEDDER,
        help=f"embedder hub id or path (default: {DEFAULT_EMBEDDER})",
    )
    if reranker:
        parser.add_argument(
            "--reranker",
            "--rerank-model",
            dest="reranker",
            default=reranker_default,
            help=f"reranker hub id or path, or '{NO_RERANKER}'",
        )
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--batch-size", type=int, default=32, help="texts (or pairs) per forward pass")
    _backend_options(parser)


def _backend_options(parser: argparse._ActionsContainer) -> None:
    """``--backend`` and ``--backend-precision``: the embedder's engine (``BGEEmbedder(backend=...)``)."""
    group = parser.add_argument_group("embedding engine (see docs/configuration.md)")
    group.add_argument(
        "--backend",
        choices=get_args(Backend),
        help="torch (the default), onnx or openvino (exported on first use, needs the extra of that name), "
        "or auto: OpenVINO's exact graph on a CPU where it is installed, else torch",
    )
    group.add_argument(
        "--backend-precision",
        choices=get_args(BackendPrecision),
        help="with --backend onnx or openvino: fp32 (the default: torch's vectors), bf16 or int8",
    )


def _backend_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The embedder's ``backend``/``backend_precision`` arguments that were given (none: the core's defaults)."""
    names = ("backend", "backend_precision")
    given = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if "backend_precision" in given and given.get("backend") not in ("onnx", "openvino"):
        msg = (
            f"--backend-precision {given['backend_precision']}: needs --backend onnx or openvino, "
            f"got --backend {given.get('backend', 'not given')}"
        )
        raise ValueError(msg)
    return given


def _embedder(args: argparse.Namespace) -> BGEEmbedder:
    return BGEEmbedder(
        args.model,
        device=args.device,
        batch_size=args.batch_size,
        show_progress_bar=_show_progress(args),
        cache_dir=getattr(args, "cache_dir", None),
        **_backend_settings(args),
    )


def _reranker(args: argparse.Namespace) -> BGEReranker | None:
    settings = _llm_settings(args)
    if args.reranker.lower() == NO_RERANKER:
        return None
    return BGEReranker(args.reranker, device=args.device, batch_size=args.batch_size, **settings)


def _demo(args: argparse.Namespace) -> int:
    import numpy as np

    from bge_integrations.demo_corpus import PASSAGES, QUERIES

    embedder, reranker = _embedder(args), _reranker(args)
    queries = check_texts(args.query, name="--query") if args.query else list(QUERIES)  # printable: no lone surrogates
    print(f"embedder: {embedder.model_name}   reranker: {reranker.model_name if reranker else 'none'}")
    doc_vectors = np.array(embedder.embed_documents(list(PASSAGES)))
    query_vectors = np.array(embedder.embed_queries(queries))
    for query, query_vector in zip(queries, query_vectors, strict=True):
        similarities = doc_vectors @ query_vector
        candidates = [int(i) for i in np.argsort(-similarities, kind="stable")[: args.candidates]]
        print(f"\nQ: {query}")
        if reranker is None:
            for i in candidates[: args.top_n]:
                print(f"  cosine {similarities[i]:.3f}  {PASSAGES[i]}")
            continue
        for item in reranker.rank(query, [PASSAGES[i] for i in candidates], top_n=args.top_n):
            i = candidates[item.index]
            print(f"  rerank {item.score:.3f}  cosine {similarities[i]:.3f}  {PASSAGES[i]}")
    return 0


def _retrieval_options(parser: argparse.ArgumentParser) -> None:
    from bge_integrations.evaluation.hybrid import FUSIONS, LEXICALS, RETRIEVALS

    group = parser.add_argument_group("sparse and hybrid retrieval (see docs/evaluation.md)")
    group.add_argument(
        "--retrieval",
        choices=RETRIEVALS,
        default="dense",
        help="dense (the embedder), sparse (a lexical signal alone) or hybrid (both fused)",
    )
    group.add_argument(
        "--lexical",
        choices=LEXICALS,
        help="the lexical signal: m3 (the bge-m3 model's lexical weights; default) or bm25 (for models "
        "without a sparse head)",
    )
    group.add_argument(
        "--fusion",
        choices=FUSIONS,
        help="hybrid: weighted (raw weighted sum, FlagEmbedding's sparse+dense; default for m3), minmax "
        "(the same after per-query min-max scaling; default for bm25) or rrf (reciprocal rank fusion)",
    )
    group.add_argument("--dense-weight", type=float, help="hybrid weight of dense (default: 0.4)")
    group.add_argument("--sparse-weight", type=float, help="hybrid weight of the lexical signal (default: 0.2)")
    group.add_argument("--rrf-k", type=float, help="the constant k of --fusion rrf (default: 60)")
    parser.add_argument(
        "--cache-dir", metavar="PATH", help="persistent embedding cache: a rerun reads vectors back (core path)"
    )


def _hybrid_settings(args: argparse.Namespace) -> Any:
    """The HybridSettings the options ask for, or None for dense; options that cannot apply are refused."""
    from bge_integrations.evaluation.hybrid import HybridSettings

    given = {
        "--lexical": args.lexical,
        "--fusion": args.fusion,
        "--dense-weight": args.dense_weight,
        "--sparse-weight": args.sparse_weight,
        "--rrf-k": args.rrf_k,
    }
    misplaced = [name for name, value in given.items() if value is not None]
    if args.retrieval == "dense":
        if misplaced:
            msg = f"{', '.join(misplaced)}: for --retrieval sparse or hybrid, got --retrieval dense"
            raise ValueError(msg)
        return None
    if args.retrieval == "sparse":
        misplaced = [name for name in misplaced if name != "--lexical"]
        if misplaced:
            msg = f"{', '.join(misplaced)}: fusion options, for --retrieval hybrid only, got --retrieval sparse"
            raise ValueError(msg)
    fusion: Any = args.fusion or ("weighted" if (args.lexical or "m3") == "m3" else "minmax")
    weights = [name for name in ("--dense-weight", "--sparse-weight") if given[name] is not None]
    if (fusion == "rrf" and weights) or (fusion != "rrf" and args.rrf_k is not None):
        wrong = ", ".join(weights) if fusion == "rrf" else "--rrf-k"
        msg = f"{wrong} does not apply to --fusion {fusion}"
        raise ValueError(msg)
    options = {key: getattr(args, key) for key in ("dense_weight", "sparse_weight", "rrf_k")}
    return HybridSettings(
        args.lexical or "m3", fusion, **{key: value for key, value in options.items() if value is not None}
    )


def _eval(args: argparse.Namespace) -> int:
    from bge_integrations.evaluation import evaluate_retrieval, load_beir
    from bge_integrations.evaluation.frameworks import evaluate_through

    hybrid = _hybrid_settings(args)
    backend = _backend_settings(args)
    if args.framework != "core" and backend:
        msg = (
            f"{_options(backend)}: for --framework core only, got --framework {args.framework} "
            "(in code, each adapter takes backend=...)"
        )
        raise ValueError(msg)
    dataset = load_beir(args.data, query_lines=args.query_lines)
    embedder, reranker = _embedder(args), _reranker(args)
    if hybrid is not None:
        from bge_integrations.evaluation.hybrid import evaluate_hybrid

        if hybrid.lexical == "m3":
            from bge_integrations.core.m3_embedder import BGEM3Embedder

            embedder = BGEM3Embedder(
                args.model,
                device=args.device,
                batch_size=args.batch_size,
                show_progress_bar=_show_progress(args),
                cache_dir=args.cache_dir,
                **backend,
            )
        report = evaluate_hybrid(
            dataset,
            model=embedder,
            retrieval=args.retrieval,
            settings=hybrid,
            framework=args.framework,
            rerank=reranker.score if reranker else None,
            rerank_top_k=args.rerank_top_k,
            progress=_show_progress(args),
        )
    elif args.framework == "core":
        report = evaluate_retrieval(
            dataset,
            embedder.embed_queries,
            embedder.embed_documents,
            rerank=reranker.score if reranker else None,
            rerank_top_k=args.rerank_top_k,
            progress=_show_progress(args),
        )
    else:
        report = evaluate_through(
            args.framework,
            dataset,
            model=args.model,
            device=args.device,
            batch_size=args.batch_size,
            reranker=reranker.model_name if reranker else None,
            reranker_settings=_llm_settings(args),
            rerank_top_k=args.rerank_top_k,
            progress=_show_progress(args),
        )
    uses_embedder = hybrid is None or args.retrieval == "hybrid" or hybrid.lexical == "m3"
    payload = {
        "dataset": dataset.name,
        "framework": args.framework,
        "retrieval": args.retrieval,
        **({"hybrid": hybrid.to_dict()} if hybrid is not None else {}),
        "embedder": embedder.config.to_dict() if uses_embedder else None,
        "reranker": reranker.config.to_dict() if reranker else None,
        "ndcg@10": report.ndcg_at_10,
        "recall@100": report.recall_at_100,
        "mrr@10": report.mrr_at_10,
        "seconds": report.seconds,
        "per_query_ndcg@10": report.per_query_ndcg,
    }
    output, print_json = _json_options(args)
    if output is not None:
        output.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    matches = args.expect_ndcg is None or abs(report.ndcg_at_10 - args.expect_ndcg) <= args.tolerance
    if print_json:
        print(json.dumps(payload, indent=2))
        return 0 if matches else 1
    print(f"dataset     {dataset.name} ({len(dataset.doc_ids)} documents, {len(dataset.queries)} queries)")
    print(f"framework   {args.framework}")
    if hybrid is not None:
        print(f"retrieval   {args.retrieval}: {hybrid.describe() if args.retrieval == 'hybrid' else hybrid.lexical}")
    print(f"embedder    {embedder.model_name if uses_embedder else 'none'}")
    print(f"reranker    {reranker.model_name if reranker else 'none'}")
    print(f"nDCG@10     {report.ndcg_at_10:.5f}")
    print(f"Recall@100  {report.recall_at_100:.5f}")
    print(f"MRR@10      {report.mrr_at_10:.5f}")
    print(f"seconds     {report.seconds:.1f}")
    if args.expect_ndcg is not None:
        print(f"expected    {args.expect_ndcg:.5f} ± {args.tolerance}: {'OK' if matches else 'MISMATCH'}")
    return 0 if matches else 1


def _json_options(args: argparse.Namespace) -> tuple[Path | None, bool]:
    """The eval report's file (or None) and whether to print it as JSON; --json PATH is --output PATH."""
    if isinstance(args.json, str):
        warnings.warn(
            f"--json {args.json} writes the report there, as --output does; use --output PATH for that "
            "(--json alone prints the report as JSON)",
            FutureWarning,
            stacklevel=2,
        )
        return Path(args.json), False
    return args.output, args.json is True


def _reproduce(args: argparse.Namespace) -> int:
    from bge_integrations.evaluation import load_beir
    from bge_integrations.evaluation.frameworks import evaluate_through
    from bge_integrations.evaluation.published import PUBLISHED_NDCG_AT_10

    published = PUBLISHED_NDCG_AT_10.get(args.published_as)
    if published is None:
        msg = f"--published-as must be one of {sorted(PUBLISHED_NDCG_AT_10)}, got {args.published_as!r}"
        raise ValueError(msg)
    unknown = [name for name in args.datasets if name not in published]
    if unknown:  # checked before hours of evaluation, not after
        msg = (
            f"--datasets: no published nDCG@10 for {', '.join(map(repr, unknown))} "
            f"(--published-as {args.published_as!r} has {', '.join(sorted(published))})"
        )
        raise ValueError(msg)
    print(f"{'collection':<10} {'path':<12} {'nDCG@10':>8} {'published':>9} {'gap':>8} {'seconds':>8}  verdict")
    failures = 0
    for name in args.datasets:
        dataset = load_beir(args.data / name)
        for framework in args.frameworks:
            report = evaluate_through(
                framework,
                dataset,
                model=args.model,
                device=args.device,
                batch_size=args.batch_size,
                progress=_show_progress(args),
            )
            gap = report.ndcg_at_10 - published[name]
            ok = abs(gap) <= args.tolerance
            failures += not ok
            print(
                f"{name:<10} {framework:<12} {report.ndcg_at_10:>8.5f} {published[name]:>9.5f} {gap:>+8.5f} "
                f"{report.seconds:>8.1f}  {'OK' if ok else 'MISMATCH'}",
                flush=True,
            )
    return 1 if failures else 0


def _eval_rerank(args: argparse.Namespace) -> int:
    from bge_integrations.evaluation.reranking import (
        RerankingReport,
        evaluate_reranking,
        load_reranking_set,
        reranking_set_from_beir,
        write_reranking_set,
    )

    start = time.perf_counter()
    llm_settings = _llm_settings(args)  # refused before the data is read
    options = ("negatives", "num_negatives", "min_grade", "seed", "query_lines")
    derivation = {key: getattr(args, key) for key in options if getattr(args, key) is not None}
    if args.from_beir:
        from bge_integrations.evaluation import load_beir

        collection = load_beir(args.data, query_lines=derivation.pop("query_lines", "all"))
        data = reranking_set_from_beir(collection, limit=args.max_samples, **derivation)
    else:
        given = [f"--{key.replace('_', '-')}" for key in derivation]
        if given:
            msg = f"{', '.join(given)} only apply with --from-beir (DATA is then a BEIR folder)"
            raise ValueError(msg)
        data = load_reranking_set(args.data, limit=args.max_samples)
    if args.save_set:
        write_reranking_set(data, args.save_set)
    read_seconds = time.perf_counter() - start
    progress = _show_progress(args)
    model_settings: dict[str, object]
    report: RerankingReport
    if args.reranker is not None:
        # Raw logits, as C-MTEB's compute_score: float32 sigmoids round to 1.0 above ~16.6 and would tie.
        reranker = BGEReranker(
            args.reranker, device=args.device, batch_size=args.batch_size, normalize=False, **llm_settings
        )
        report = evaluate_reranking(data, reranker=reranker, progress=progress)
        kind = _reranker_kind(reranker)
        model_settings = {"kind": kind, "scores": "raw logits", **reranker.config.to_dict()}
    else:
        embedder = BGEEmbedder(args.model, device=args.device, batch_size=args.batch_size, show_progress_bar=progress)
        report = evaluate_reranking(data, embedder=embedder, progress=progress)
        model_settings = {"kind": "embedder", "scores": "cosine", **embedder.config.to_dict()}
    payload = {
        **report.to_dict(),
        "description": data.description,
        "model": model_settings,
        "read_seconds": read_seconds,
        "score_seconds": report.seconds,
        "seconds": time.perf_counter() - start,
    }
    if args.output:
        args.output.write_text(json.dumps(payload, indent=2, ensure_ascii=False), encoding="utf-8")
    if args.json:
        print(json.dumps(payload, indent=2, ensure_ascii=False))
        return 0
    print(f"dataset     {data.description or data.name}")
    print(f"model       {model_settings['kind']} {model_settings['model_name']} ({model_settings['scores']})")
    print(f"samples     {report.samples} scored, {report.skipped} skipped")
    for skipped in report.skipped_samples[:5]:
        print(f"  skipped   sample {skipped.index} ({skipped.origin}): {skipped.reason}")
    if report.skipped > 5:
        print(f"  skipped   ... {report.skipped - 5} more (--output lists them all)")
    print(f"passages    {report.passages}")
    print(f"MAP         {report.map:.5f}")
    print(f"MRR@{report.k:<7} {report.mrr:.5f}")
    print(f"ties        {report.tied_samples} samples with a positive and a negative scored exactly equal")
    print(f"seconds     {payload['seconds']:.1f} (reading {read_seconds:.1f}, scoring {report.seconds:.1f})")
    return 0


def _reranker_kind(reranker: BGEReranker) -> str:
    """'cross-encoder', or the LLM reranker's family ('llm reranker', 'llm-layerwise reranker'...)."""
    from bge_integrations.core.llm_reranking_model import llm_family
    from bge_integrations.core.reranking_model import checkpoint_architectures

    config = reranker.config
    hub = {"revision": config.revision, "cache_dir": config.cache_folder, "local_files_only": config.local_files_only}
    family = llm_family(checkpoint_architectures(reranker.model_name, hub))
    return "cross-encoder" if family is None else f"{family} reranker"


def _embed(args: argparse.Namespace) -> int:
    from bge_integrations.bulk import embed_file

    engine = _bulk_engine(args)
    result = embed_file(
        args.input,
        args.output,
        model=args.model,
        id_field=args.id_field,
        text_field=args.text_field,
        role="query" if args.queries else "document",
        engine=engine,
        batch_size=args.batch_size,
        part_size=args.part_size,
        on_bad_rows=args.on_bad_rows,
        progress=_show_progress(args),
        **({} if args.outputs == ("dense",) else {"outputs": args.outputs}),
        **({} if args.max_line_chars is None else {"max_line_chars": args.max_line_chars}),
        **({} if args.device is None else {"device": args.device}),
        **_backend_settings(args),
    )
    shape = f"dimension {result.dimension}"
    if args.outputs != ("dense",):  # bge-m3's outputs: named, and the dense width when there is one
        shape = f"outputs {','.join(args.outputs)}" + (", " + shape if "dense" in args.outputs else "")
    print(
        f"{_count(result.rows, 'row')} in {_count(result.parts, 'part')} ({result.parts_written} written, "
        f"{result.parts_skipped} already done), {shape}: {result.output}"
    )
    if result.bad_rows:
        print(f"{len(result.bad_rows)} bad rows kept with a null embedding; first: {result.bad_rows[0].describe()}")
    return 0


def _bulk_engine(args: argparse.Namespace) -> Engine:
    """The engine object ``--engine`` names: bulk takes engines, never imports Ray; this maps the name."""
    ray_options = {"--num-actors": args.num_actors, "--num-gpus-per-actor": args.num_gpus_per_actor}
    if args.engine == "local":
        given = [option for option, value in ray_options.items() if value is not None]
        if given:
            msg = f"{' and '.join(given)}: Ray actor options, for --engine ray only"
            raise ValueError(msg)
        from bge_integrations.bulk import LocalEngine

        return LocalEngine()
    from bge_integrations.ray import RayEngine

    return RayEngine(
        num_actors=1 if args.num_actors is None else args.num_actors,
        num_gpus_per_actor=0 if args.num_gpus_per_actor is None else args.num_gpus_per_actor,
    )


if __name__ == "__main__":
    raise SystemExit(main())
