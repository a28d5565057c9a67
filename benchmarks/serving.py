"""``bge-integrations serve`` under load: texts/s over HTTP against one in-process call, and memory.

``python -m benchmarks.serving [--shape small|base|shallow] [--documents 1024] [--clients 64] [--repeats 2] [--apps 4]``

Two measurements, in one run:

* **Throughput.** The server runs as its own process (``bge-integrations serve`` on 127.0.0.1 and
  a free port, so server and clients never share a GIL), with a random-weight model in the real
  bge-small-en-v1.5 shape (``--shape base``: bge-base's; ``--shape shallow``: 1 layer, 32 wide, a
  near-free model that shows the HTTP path's own cost) and, unless ``--reranker none``, a
  reranker. ``--clients`` concurrent HTTP clients (one ``httpx.AsyncClient`` each, one connection
  each, in this process) send the SciFact documents as requests of 1 to ``--max-request`` texts
  (``POST /v1/embeddings``, ``input_type: "document"``), each client waiting for its answer before
  it sends its next request. Beside it: the same texts in ONE batched call,
  ``BGEEmbedder(path).embed_documents(texts)``, in this process. Reranking likewise: the TF-IDF
  candidates of a few SciFact claims sent to ``POST /rerank`` (TEI) in chunks, against one
  ``BGEReranker.score_pairs`` call. Both sides run ``--threads`` torch threads (the server through
  ``OMP_NUM_THREADS``), the same batch size and device. Every setup runs ``--repeats`` times,
  round-robin; the table shows medians and ratios to the in-process call. The HTTP results are
  checked against the in-process ones (cosine of every vector, every score).
* **Memory.** ``--apps`` application processes that each load their own ``BGEEmbedder`` against
  the same number of application processes that are HTTP clients of one server (the openai SDK
  when installed, else httpx; they never import torch: checked). Each process embeds a few texts,
  then its RSS and PSS (``/proc/<pid>/smaps_rollup``: shared pages split between the processes
  that share them) are read. The table shows the totals and the model copies (processes holding a
  loaded model).

This module imports only the standard library at the top: it is also the client process of the
memory measurement (``--role``), which must not pay for torch.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEALTH_TIMEOUT = 600.0
READY_TIMEOUT = 600.0
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"  # as benchmarks.workloads
SHAPES = {"small": "bge-small", "base": "bge-base", "shallow": "shallow"}
RERANKERS = ("minilm-reranker", "bge-reranker-base", "none")


# --- the server -----------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cli_command() -> list[str]:
    """The ``bge-integrations`` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "bge-integrations"
    if script.exists():
        return [str(script)]
    found = shutil.which("bge-integrations")
    if found:
        return [found]
    return [sys.executable, "-c", "from bge_integrations.cli import main; raise SystemExit(main())"]


def thread_env(threads: int) -> dict[str, str]:
    """The environment with torch (OpenMP, MKL) held to ``threads`` threads, offline."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), HF_HUB_OFFLINE="1")
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    return env


@contextlib.contextmanager
def serve(model: str | None, reranker: str | None, *, threads: int, batch_size: int) -> Iterator[tuple[str, int]]:
    """``bge-integrations serve`` in a subprocess while the block runs; yields (base URL, pid)."""
    import httpx

    port = free_port()
    command = [*cli_command(), "serve", "--host", "127.0.0.1", "--port", str(port), "--device", "cpu"]
    command += ["--batch-size", str(batch_size), "--reranker", reranker or "none"]
    if model is not None:
        command += ["--model", model]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=thread_env(threads))
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + HEALTH_TIMEOUT
            while True:
                if process.poll() is not None:
                    log.seek(0)
                    msg = f"the server exited with {process.returncode} before it was up:\n{log.read()[-4000:]}"
                    raise RuntimeError(msg)
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{url}/health", timeout=5).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    msg = f"the server did not answer /health within {HEALTH_TIMEOUT:.0f} s"
                    raise RuntimeError(msg)
                time.sleep(0.2)
            yield url, process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far, all its threads (from /proc; 0 without it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def model_calls(url: str, model: str) -> tuple[float, float]:
    """(model calls so far, items in them) from the server's ``/metrics`` for ``model``."""
    import httpx

    count = total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith(f'bge_model_batch_items_count{{model="{model}"}}'):
            count = float(line.split()[-1])
        elif line.startswith(f'bge_model_batch_items_sum{{model="{model}"}}'):
            total = float(line.split()[-1])
    return count, total


# --- throughput ------------------------------------------------------------------------------------


@dataclass
class Setup:
    """One way to run the texts, with its timings and the server's model calls."""

    name: str
    task: str
    items: int
    seconds: list[float] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)
    called_items: list[float] = field(default_factory=list)
    cpu: list[tuple[float, float]] = field(default_factory=list)
    """CPU seconds of each repeat: (server process, this process)."""

    @property
    def rate(self) -> float:
        """Items per second, from the median repeat."""
        return self.items / statistics.median(self.seconds)

    @property
    def best(self) -> float:
        """Items per second, from the fastest repeat (the steadier figure on a shared machine)."""
        return self.items / min(self.seconds)


def split_requests(count: int, clients: int, largest: int, seed: int) -> list[list[list[int]]]:
    """Indices 0..count-1 cut into requests of 1..largest (seeded), dealt round-robin to clients."""
    rng = random.Random(seed)
    requests: list[list[int]] = []
    start = 0
    while start < count:
        size = rng.randint(1, largest)
        requests.append(list(range(start, min(start + size, count))))
        start += size
    shares: list[list[list[int]]] = [[] for _ in range(clients)]
    for number, request in enumerate(requests):
        shares[number % clients].append(request)
    return [share for share in shares if share]


async def run_clients(url: str, shares: list[list[Any]], send: Any) -> tuple[float, list[Any]]:
    """Seconds for every client to send its share, one request at a time; the answers, per client.

    The clients connect (one keep-alive connection each) before the clock starts.
    """
    import httpx

    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    clients = [httpx.AsyncClient(base_url=url, timeout=3600, limits=limits) for _ in shares]
    try:
        await asyncio.gather(*(client.get("/health") for client in clients))

        async def one(client: httpx.AsyncClient, share: list[Any]) -> list[Any]:
            return [await send(client, request) for request in share]

        start = time.perf_counter()
        answers = await asyncio.gather(*(one(client, share) for client, share in zip(clients, shares, strict=True)))
        return time.perf_counter() - start, answers
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))


async def send_embeddings(client: Any, texts: list[str]) -> list[list[float]]:
    """One OpenAI embeddings request for documents; the vectors in input order."""
    response = await client.post("/v1/embeddings", json={"input": texts, "input_type": "document"})
    response.raise_for_status()
    return [item["embedding"] for item in sorted(response.json()["data"], key=lambda item: item["index"])]


async def send_rerank(client: Any, request: tuple[str, list[str]]) -> list[float]:
    """One TEI rerank request; the (sigmoid) scores in input order."""
    query, texts = request
    response = await client.post("/rerank", json={"query": query, "texts": texts})
    response.raise_for_status()
    scores = [0.0] * len(texts)
    for item in response.json():
        scores[item["index"]] = item["score"]
    return scores


def min_cosine(left: list[list[float]], right: list[list[float]]) -> float:
    """The smallest cosine between paired vectors."""

    def cosine(a: list[float], b: list[float]) -> float:
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)) or 1.0)

    return min(cosine(a, b) for a, b in zip(left, right, strict=True))


def throughput(args: argparse.Namespace, model: str, reranker: str | None) -> tuple[list[Setup], dict[str, Any]]:
    """Round-robin: in-process batched call, then the same texts from concurrent HTTP clients."""
    import torch

    from benchmarks.workloads import load_workload
    from bge_integrations import BGEEmbedder, BGEReranker

    torch.set_num_threads(args.threads)
    workload = load_workload(
        args.data,
        documents=args.documents,
        queries=args.rerank_queries,
        rerank_queries=args.rerank_queries if reranker else 0,
        candidates=args.candidates,
        seed=args.seed,
    )
    texts = workload.documents
    pairs = [(query, doc) for query, docs in zip(workload.queries, workload.candidates, strict=False) for doc in docs]
    embed_shares = [
        [[texts[i] for i in request] for request in share]
        for share in split_requests(len(texts), args.clients, args.max_request, args.seed)
    ]
    rerank_shares: list[list[tuple[str, list[str]]]] = []
    for share in split_requests(len(pairs), args.clients, args.max_request, args.seed + 1):
        requests: list[tuple[str, list[str]]] = []
        for request in share:  # a chunk never mixes queries: cut it where the query changes
            chunk: list[int] = []
            for i in request:
                if chunk and pairs[i][0] != pairs[chunk[0]][0]:
                    requests.append((pairs[chunk[0]][0], [pairs[j][1] for j in chunk]))
                    chunk = []
                chunk.append(i)
            requests.append((pairs[chunk[0]][0], [pairs[j][1] for j in chunk]))
        rerank_shares.append(requests)
    embed_requests = sum(len(share) for share in embed_shares)
    rerank_requests = sum(len(share) for share in rerank_shares)
    clients = len(embed_shares)
    setups = [
        Setup("in-process, one batched call (`embed_documents`)", "embed", len(texts)),
        Setup(f"HTTP `/v1/embeddings`, {clients} clients ({embed_requests} requests)", "embed", len(texts)),
    ]
    if pairs:
        setups += [
            Setup("in-process, one batched call (`score_pairs`)", "rerank", len(pairs)),
            Setup(f"HTTP `/rerank`, {len(rerank_shares)} clients ({rerank_requests} requests)", "rerank", len(pairs)),
        ]
    embedder = BGEEmbedder(model, device="cpu", batch_size=args.batch_size)
    embedder.embed_documents(texts[:2])  # loads the model
    scorer = BGEReranker(reranker, device="cpu", batch_size=args.batch_size) if reranker and pairs else None
    if scorer is not None:
        scorer.score_pairs(pairs[:2])
    checks: dict[str, Any] = {}
    with serve(model, reranker if pairs else None, threads=args.threads, batch_size=args.batch_size) as (url, server):
        asyncio.run(run_clients(url, [[texts[:2]]], send_embeddings))  # first request: warm
        if pairs:
            asyncio.run(run_clients(url, [[(pairs[0][0], [pairs[0][1]])]], send_rerank))
        for repeat in range(args.repeats):
            for setup in setups:
                in_process = setup.name.startswith("in-process")
                name = "embedder" if setup.task == "embed" else "reranker"
                before = (0.0, 0.0) if in_process else model_calls(url, name)
                cpu_before = (cpu_seconds(server), cpu_seconds(os.getpid()))
                if setup.task == "embed" and in_process:
                    start = time.perf_counter()
                    local_vectors = embedder.embed_documents(texts)
                    seconds = time.perf_counter() - start
                elif setup.task == "embed":
                    seconds, answers = asyncio.run(run_clients(url, embed_shares, send_embeddings))
                elif in_process:
                    assert scorer is not None  # pairs imply a reranker
                    start = time.perf_counter()
                    local_scores = scorer.score_pairs(pairs, normalize=True)
                    seconds = time.perf_counter() - start
                else:
                    seconds, answers = asyncio.run(run_clients(url, rerank_shares, send_rerank))
                setup.seconds.append(seconds)
                setup.cpu.append((cpu_seconds(server) - cpu_before[0], cpu_seconds(os.getpid()) - cpu_before[1]))
                if setup.task == "embed" and not in_process:
                    checks["embed_min_cosine"] = min_cosine(_by_text(texts, embed_shares, answers), local_vectors)
                elif not in_process:
                    served_scores = [s for share in answers for request in share for s in request]
                    sent = [(q, d) for share in rerank_shares for q, docs in share for d in docs]
                    expected = dict(zip(pairs, local_scores, strict=True))
                    checks["rerank_max_score_diff"] = max(
                        abs(score - expected[pair]) for pair, score in zip(sent, served_scores, strict=True)
                    )
                if not in_process:
                    after = model_calls(url, name)
                    setup.calls.append(after[0] - before[0])
                    setup.called_items.append(after[1] - before[1])
                rate = setup.items / seconds
                print(f"  repeat {repeat + 1}: {setup.name}: {seconds:.1f} s, {rate:.1f} /s", flush=True)
    if checks.get("embed_min_cosine", 1.0) < 0.999:
        msg = f"HTTP vectors differ from the in-process ones: min cosine {checks['embed_min_cosine']}"
        raise RuntimeError(msg)
    if checks.get("rerank_max_score_diff", 0.0) > 1e-3:
        msg = f"HTTP scores differ from the in-process ones by up to {checks['rerank_max_score_diff']}"
        raise RuntimeError(msg)
    return setups, checks


def _by_text(
    texts: list[str], shares: list[list[list[str]]], answers: list[list[list[list[float]]]]
) -> list[list[float]]:
    """The served vectors in the order of texts (texts are matched by content: duplicates agree)."""
    vectors: dict[str, list[float]] = {}
    for share, got in zip(shares, answers, strict=True):
        for request, request_vectors in zip(share, got, strict=True):
            vectors.update(zip(request, request_vectors, strict=True))
    return [vectors[text] for text in texts]


def throughput_table(setups: list[Setup], threads: int) -> str:
    """Markdown: rate, ratio to the in-process call of the same task, the server's model calls."""
    lines = [
        "| task | setup | items/s (median) | x in-process | items/s (best) | x in-process | CPU s: server + "
        "this process | server model calls |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    reference: dict[str, tuple[float, float]] = {}
    for setup in setups:
        reference.setdefault(setup.task, (setup.rate, setup.best))
        unit = "texts" if setup.task == "embed" else "pairs"
        if setup.calls:
            calls = statistics.median(setup.calls)
            mean = statistics.median(setup.called_items) / calls if calls else 0.0
            served = f"{calls:.0f}, {mean:.1f} items each"
        else:
            served = f"1 call, batches of the batch size, {threads} torch threads"
        median, best = reference[setup.task]
        server_cpu = statistics.median(cpu[0] for cpu in setup.cpu)
        own_cpu = statistics.median(cpu[1] for cpu in setup.cpu)
        lines.append(
            f"| {setup.task} | {setup.name} | {setup.rate:.2f} {unit}/s | {setup.rate / median:.2f} | "
            f"{setup.best:.2f} {unit}/s | {setup.best / best:.2f} | {server_cpu:.1f} + {own_cpu:.1f} | {served} |"
        )
    return "\n".join(lines)


# --- memory ----------------------------------------------------------------------------------------


def memory_of(pid: int) -> tuple[float, float]:
    """(RSS, PSS) of a process in MiB: psutil if installed, else /proc (PSS: 0 where unknown)."""
    try:
        import psutil  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        fields: dict[str, float] = {}
        for name in (f"/proc/{pid}/status", f"/proc/{pid}/smaps_rollup"):
            with contextlib.suppress(OSError), open(name) as handle:
                for line in handle:
                    key, _, value = line.partition(":")
                    if key in {"VmRSS", "Pss"}:
                        fields[key] = float(value.split()[0]) / 1024
        return fields.get("VmRSS", 0.0), fields.get("Pss", 0.0)
    info = psutil.Process(pid).memory_full_info()
    return info.rss / 2**20, getattr(info, "pss", 0.0) / 2**20


@dataclass
class MemorySetup:
    """One way to give K apps embeddings, with every process's memory."""

    name: str
    processes: list[tuple[str, float, float]] = field(default_factory=list)
    model_copies: int = 0
    clients_import_torch: bool = False

    def total(self, column: int) -> float:
        """Sum over the processes of RSS (column 1) or PSS (column 2), MiB."""
        return sum(float(process[column]) for process in self.processes)


def start_apps(count: int, role: str, target: str, texts_file: Path, threads: int) -> list[subprocess.Popen[str]]:
    """``count`` app processes of this module (``--role``), each embedding the texts, then waiting."""
    command = [sys.executable, "-m", "benchmarks.serving", "--role", role, "--target", target]
    command += ["--texts-file", str(texts_file)]
    root = str(Path(__file__).resolve().parents[1])
    env = thread_env(threads)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    return [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=root)
        for _ in range(count)
    ]


def wait_ready(apps: list[subprocess.Popen[str]]) -> list[dict[str, Any]]:
    """Each app's ready report (one JSON line), once it has embedded its texts."""
    reports = []
    for app in apps:
        assert app.stdout is not None  # started with a pipe
        line = app.stdout.readline()
        if not line:
            msg = f"app process {app.pid} exited with {app.wait(timeout=READY_TIMEOUT)} before it was ready"
            raise RuntimeError(msg)
        reports.append(json.loads(line))
    return reports


def stop_apps(apps: list[subprocess.Popen[str]]) -> None:
    """Let every app exit (close its stdin), then reap it."""
    for app in apps:
        if app.stdin is not None:
            with contextlib.suppress(OSError):
                app.stdin.close()
    for app in apps:
        try:
            app.wait(timeout=60)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait()


def memory(args: argparse.Namespace, model: str, texts: list[str]) -> list[MemorySetup]:
    """K apps each with a model, then K client apps of one server: every process's RSS and PSS."""
    setups = [MemorySetup(f"{args.apps} apps, a BGEEmbedder each"), MemorySetup(f"{args.apps} client apps + 1 server")]
    with tempfile.TemporaryDirectory() as folder:
        texts_file = Path(folder) / "texts.json"
        texts_file.write_text(json.dumps(texts))
        apps = start_apps(args.apps, "local-app", model, texts_file, args.threads)
        try:
            reports = wait_ready(apps)
            for app, report in zip(apps, reports, strict=True):
                setups[0].processes.append((f"app {app.pid}", *memory_of(app.pid)))
                setups[0].model_copies += int(report["model_loaded"])
        finally:
            stop_apps(apps)
        with serve(model, None, threads=args.threads, batch_size=args.batch_size) as (url, server_pid):
            apps = start_apps(args.apps, "client-app", url, texts_file, args.threads)
            try:
                reports = wait_ready(apps)
                setups[1].processes.append((f"server {server_pid}", *memory_of(server_pid)))
                setups[1].model_copies = 1
                for app, report in zip(apps, reports, strict=True):
                    setups[1].processes.append((f"app {app.pid} ({report['library']})", *memory_of(app.pid)))
                    setups[1].model_copies += int(report["model_loaded"])
                    setups[1].clients_import_torch |= bool(report["torch_imported"])
            finally:
                stop_apps(apps)
    return setups


def memory_table(setups: list[MemorySetup]) -> str:
    """Markdown: processes, model copies, total RSS and PSS."""
    lines = [
        "| setup | processes | model copies | total RSS MiB | total PSS MiB | per process RSS MiB |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for setup in setups:
        each = ", ".join(f"{name.split()[0]} {rss:.0f}" for name, rss, _ in setup.processes)
        lines.append(
            f"| {setup.name} | {len(setup.processes)} | {setup.model_copies} | {setup.total(1):.0f} | "
            f"{setup.total(2):.0f} | {each} |"
        )
    return "\n".join(lines)


def app_role(role: str, target: str, texts_file: Path) -> int:
    """An app process: embed the texts (its own model, or the server at ``target``), report, wait."""
    texts = json.loads(texts_file.read_text())
    if role == "local-app":
        from bge_integrations import BGEEmbedder

        vectors = BGEEmbedder(target, device="cpu").embed_documents(texts)
        library = "bge_integrations"
    else:
        try:
            from openai import OpenAI
        except ImportError:
            import httpx

            response = httpx.post(f"{target}/v1/embeddings", json={"input": texts, "input_type": "document"})
            response.raise_for_status()
            vectors = [item["embedding"] for item in response.json()["data"]]
            library = "httpx"
        else:
            client = OpenAI(base_url=f"{target}/v1", api_key="unused")
            answer = client.embeddings.create(model="bge", input=texts, extra_body={"input_type": "document"})
            vectors = [item.embedding for item in answer.data]
            library = "openai"
    report = {
        "vectors": len(vectors),
        "model_loaded": role == "local-app",
        "torch_imported": "torch" in sys.modules,
        "library": library,
    }
    print(json.dumps(report), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    return 0


def shallow_path() -> Path:
    """A BERT of 1 layer x 32 with the BGE tokenizer, built on first use: its forward pass costs next to nothing."""
    from benchmarks.models import CACHE, ModelSpec, _build_embedder

    folder = CACHE / "models" / "shallow"
    if not (folder / "DONE").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        _build_embedder(ModelSpec("shallow", "embedder", hidden=32, layers=1, heads=2, intermediate=64), folder)
        (folder / "DONE").touch()
    return folder


# --- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the tables (and write JSON with ``--output``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        default="small",
        help="bge-small or bge-base shape; shallow: 1 layer x 32, a near-free model that shows the HTTP path's cost",
    )
    parser.add_argument("--model-path", help="serve this embedder instead of the random-weight BGE shape")
    parser.add_argument("--reranker", choices=RERANKERS, default="minilm-reranker", help="benchmark reranker")
    parser.add_argument("--reranker-path", help="serve this reranker instead")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a BEIR folder (default: SciFact)")
    parser.add_argument("--documents", type=int, default=1024, help="texts embedded (default: 1024)")
    parser.add_argument("--rerank-queries", type=int, default=4, help="claims reranked (default: 4)")
    parser.add_argument("--candidates", type=int, default=64, help="TF-IDF candidates per claim (default: 64)")
    parser.add_argument("--clients", type=int, default=64, help="concurrent HTTP clients (default: 64)")
    parser.add_argument("--max-request", type=int, default=8, help="texts per request at most (default: 8)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both sides")
    parser.add_argument("--batch-size", type=int, default=32, help="texts per forward pass, both sides")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setup, round-robin (default: 2)")
    parser.add_argument("--apps", type=int, default=4, help="app processes in the memory measurement (default: 4)")
    parser.add_argument("--skip-memory", action="store_true", help="throughput only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, help="also write the results here (JSON)")
    parser.add_argument("--role", choices=("local-app", "client-app"), help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    parser.add_argument("--texts-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role:
        return app_role(args.role, args.target, args.texts_file)

    from benchmarks.models import model_path

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = args.model_path or str(shallow_path() if args.shape == "shallow" else model_path(SHAPES[args.shape]))
    reranker = args.reranker_path or (None if args.reranker == "none" else str(model_path(args.reranker)))
    embedder_name = args.model_path or f"{SHAPES[args.shape]} shape (random weights)"
    reranker_name = args.reranker_path or args.reranker
    print(
        f"{args.documents} SciFact documents, {embedder_name}; reranker {reranker_name}; "
        f"{args.threads} torch threads on each side, batch size {args.batch_size}, {os.cpu_count()} cores"
    )
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    setups, checks = throughput(args, model, reranker)
    print(f"load average after throughput: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"checks: {json.dumps(checks)}\n")
    print(throughput_table(setups, args.threads) + "\n", flush=True)
    results: dict[str, Any] = {
        "model": embedder_name,
        "reranker": reranker_name,
        "threads": args.threads,
        "checks": checks,
        "throughput": [
            {
                "task": s.task,
                "setup": s.name,
                "items": s.items,
                "seconds": s.seconds,
                "rate": s.rate,
                "calls": s.calls,
                "cpu_seconds": s.cpu,
            }
            for s in setups
        ],
    }
    if not args.skip_memory:
        from benchmarks.workloads import load_workload

        few = load_workload(args.data, documents=8, queries=0, rerank_queries=0, seed=args.seed).documents
        memory_setups = memory(args, model, few)
        print(memory_table(memory_setups))
        torch_note = "yes" if memory_setups[1].clients_import_torch else "no"
        print(f"\nclient apps imported torch: {torch_note}")
        results["memory"] = [
            {"setup": s.name, "processes": s.processes, "model_copies": s.model_copies} for s in memory_setups
        ]
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
