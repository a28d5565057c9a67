from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.sentence_transformer.data_collator import SentenceTransformerDataCollator
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
from transformers import PreTrainedTokenizerBase
from transformers.trainer_callback import CallbackHandler

from bge_integrations import BGEEmbedder
from bge_integrations.core.checkpoints import read_local_checkpoint
from bge_integrations.core.instructions import EN_QUERY_INSTRUCTION
from bge_integrations.core.presets import find_preset
from bge_integrations.evaluation.beir import RetrievalDataset
from bge_integrations.evaluation.retrieval import evaluate_retrieval
from bge_integrations.training.embedder_training import contrastive_loss_module, finetune_embedder
from bge_integrations.training.examples import TrainingExample
from bge_integrations.training.settings import TrainingSettings, sample_groups

FAST = TrainingSettings(max_steps=2, batch_size=2, negatives=2, learning_rate=1e-3, save_steps=2, progress=False)


def make_examples(count: int = 6) -> list[TrainingExample]:
    return [
        TrainingExample(
            f"query number {i} about topic {i}",
            [f"passage {i} relevant answer", f"passage {i} second answer"],
            [f"unrelated text {i} alpha", f"unrelated text {i} beta", f"unrelated text {i} gamma"],
        )
        for i in range(count)
    ]


def weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.fixture
def tokenized_texts(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every text a tokenizer is called on while the trainer's data collator makes a training batch."""
    seen: list[str] = []
    collating = [False]
    original = PreTrainedTokenizerBase.__call__
    original_collate = SentenceTransformerDataCollator.__call__

    def record(self: Any, *args: Any, **kwargs: Any) -> Any:
        text = kwargs.get("text", args[0] if args else None)
        if collating[0] and isinstance(text, str):
            seen.append(text)
        elif collating[0] and isinstance(text, (list, tuple)):
            seen.extend(t for t in text if isinstance(t, str))
        return original(self, *args, **kwargs)

    def collate(self: Any, features: Any) -> Any:
        collating[0] = True
        try:
            return original_collate(self, features)
        finally:
            collating[0] = False

    monkeypatch.setattr(PreTrainedTokenizerBase, "__call__", record)
    monkeypatch.setattr(SentenceTransformerDataCollator, "__call__", collate)
    return seen


class TestSettings:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("epochs", 0),
            ("learning_rate", -1.0),
            ("batch_size", 0),
            ("temperature", 0),
            ("max_steps", 0),
            ("negatives", -1),
            ("warmup_ratio", 1.0),
            ("seed", -3),
            ("save_steps", 2.5),
            ("save_total_limit", 0),
            ("max_length", True),
            ("progress", "yes"),
            ("fp16", "auto"),
        ],
    )
    def test_bad_value_is_named(self, name: str, value: Any) -> None:
        with pytest.raises(ValueError, match=rf"{name} must .*got {value!r}"):
            TrainingSettings(**{name: value})

    def test_defaults_are_flagembeddings_recipe(self) -> None:
        settings = TrainingSettings()
        assert (settings.temperature, settings.learning_rate, settings.negatives) == (0.02, 1e-5, 7)


class TestSampling:
    def test_one_positive_and_seeded_negatives_repeated_when_short(self) -> None:
        examples = [TrainingExample("q", ["a", "b"], ["n1", "n2"])]
        positives, groups = sample_groups(examples, 5, seed=3, require_negatives=False)
        assert positives[0] in ("a", "b")
        assert len(groups[0]) == 5
        assert set(groups[0]) == {"n1", "n2"}
        assert sample_groups(examples, 5, seed=3, require_negatives=False) == (positives, groups)

    def test_no_negatives_anywhere_trains_in_batch_only(self) -> None:
        examples = [TrainingExample("q1", ["a"]), TrainingExample("q2", ["b"])]
        assert sample_groups(examples, 7, seed=0, require_negatives=False) == (["a", "b"], [[], []])

    def test_example_without_negatives_among_others_is_named(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        examples = [*make_examples(2), TrainingExample("lonely query", ["p"])]
        with pytest.raises(ValueError, match=r"example 2 \(query 'lonely query'\) has no negatives"):
            finetune_embedder(examples, model=tiny_embedder_path, output=tmp_path / "out", settings=FAST)


class TestLoss:
    def test_loss_is_flagembeddings_in_batch_infonce(self) -> None:
        torch.manual_seed(0)
        batch, group, temperature = 3, 3, 0.05
        queries = torch.nn.functional.normalize(torch.randn(batch, 8), dim=-1)
        # FlagEmbedding's layout: passages grouped per query, positive first.
        passages = torch.nn.functional.normalize(torch.randn(batch * group, 8), dim=-1)
        scores = queries @ passages.T / temperature
        flag = torch.nn.functional.cross_entropy(scores, torch.arange(batch) * group)
        by_hand = 0.0
        for i in range(batch):
            row = [float(queries[i] @ passages[j]) / temperature for j in range(batch * group)]
            by_hand -= row[i * group] - math.log(sum(math.exp(x) for x in row))
        by_hand /= batch
        # Ours: one column per position (query, positive, negative_1, ...).
        columns = [queries, *(passages[k::group] for k in range(group))]
        loss = contrastive_loss_module(None, temperature).compute_loss_from_embeddings(columns, None)  # type: ignore[arg-type]
        assert float(loss) == pytest.approx(by_hand, rel=1e-5)
        assert float(flag) == pytest.approx(by_hand, rel=1e-5)


class TestInstructions:
    @pytest.mark.parametrize(("instruction", "expected"), [(None, EN_QUERY_INSTRUCTION), ("", "")])
    def test_instruction_goes_before_queries_only(
        self,
        tiny_embedder_path: str,
        tmp_path: Path,
        tokenized_texts: list[str],
        instruction: str | None,
        expected: str,
    ) -> None:
        examples = make_examples(4)
        settings = TrainingSettings(max_steps=2, batch_size=2, negatives=2, progress=False)
        finetune_embedder(
            examples,
            model=tiny_embedder_path,
            output=tmp_path / "out",
            settings=settings,
            query_instruction=instruction,
        )
        queries = {example.query for example in examples}
        passages = {text for example in examples for text in (*example.pos, *example.neg)}
        trained_queries = [text for text in tokenized_texts if text.removeprefix(expected) in queries]
        trained_passages = [text for text in tokenized_texts if text in passages]
        assert len(trained_queries) == 4  # two steps of two queries
        assert len(trained_passages) == 4 * 3  # each with a positive and two negatives
        assert all(text == expected + text.removeprefix(expected) for text in trained_queries)
        if expected:
            assert all(text.startswith(expected) for text in trained_queries)
        assert not any(text.startswith(EN_QUERY_INSTRUCTION) for text in trained_passages)
        if not expected:
            assert not any(EN_QUERY_INSTRUCTION in text for text in tokenized_texts)
        saved = json.loads((tmp_path / "out" / "config_sentence_transformers.json").read_text())
        assert saved["prompts"] == {"query": expected}
        # Loaded as trained: no instruction stays none, not the base preset's.
        assert BGEEmbedder(str(tmp_path / "out"), device="cpu").config.query_instruction == expected

    def test_example_prompt_replaces_the_instruction(
        self, tiny_embedder_path: str, tmp_path: Path, tokenized_texts: list[str]
    ) -> None:
        examples = [TrainingExample(f"q{i} text", [f"p{i} text"], [f"n{i} text"], prompt="Find: ") for i in range(2)]
        settings = TrainingSettings(max_steps=1, batch_size=2, negatives=1, progress=False)
        finetune_embedder(examples, model=tiny_embedder_path, output=tmp_path / "out", settings=settings)
        assert sorted(t for t in tokenized_texts if "q0" in t or "q1" in t) == ["Find: q0 text", "Find: q1 text"]


class TestOutput:
    def test_output_is_recognised_as_its_base_and_changed(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        base = tmp_path / "bge-small-en-v1.5-tiny"
        shutil.copytree(tiny_embedder_path, base)
        output = tmp_path / "my-model"
        result = finetune_embedder(make_examples(), model=str(base), output=output, settings=FAST)
        assert (result.output, result.kind, result.steps) == (output, "embedder", 2)
        assert result.train_loss is not None
        assert result.train_loss > 0
        assert read_local_checkpoint(str(output)).base_model == str(base)
        preset = find_preset(str(output), read_local_checkpoint(str(output)).base_model, kind="embedder")
        assert preset is not None
        assert preset.name == "BAAI/bge-small-en-v1.5"
        tuned = BGEEmbedder(str(output), device="cpu")
        assert tuned.config.preset == "BAAI/bge-small-en-v1.5"
        assert tuned.config.query_instruction == EN_QUERY_INSTRUCTION
        query = np.array(tuned.embed_query("what is bge"))
        np.testing.assert_allclose(query, tuned.embed_documents([EN_QUERY_INSTRUCTION + "what is bge"])[0], atol=1e-5)
        assert not np.allclose(query, tuned.embed_documents(["what is bge"])[0], atol=1e-4)
        np.testing.assert_allclose(np.linalg.norm(query), 1.0, atol=1e-5)  # still normalised
        before = np.array(BGEEmbedder(str(base), device="cpu").embed_documents(["some passage text"]))
        after = np.array(tuned.embed_documents(["some passage text"]))
        assert not np.allclose(before, after, atol=1e-4)
        assert (output / "checkpoints" / "checkpoint-2").is_dir()

    def test_model_card_and_evaluation(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        examples = make_examples()
        data = RetrievalDataset(
            name="toy",
            doc_ids=[f"d{i}" for i in range(6)],
            doc_texts=[example.pos[0] for example in examples],
            queries={f"q{i}": example.query for i, example in enumerate(examples)},
            qrels={f"q{i}": {f"d{i}": 1} for i in range(6)},
        )
        jsonl = tmp_path / "train.jsonl"
        jsonl.write_text("".join(json.dumps(example.to_dict()) + "\n" for example in examples))
        result = finetune_embedder(
            jsonl, model=tiny_embedder_path, output=tmp_path / "out", settings=FAST, evaluation=data
        )
        assert result.before is not None
        assert result.after is not None
        assert set(result.before) == set(result.after) == {"ndcg@10", "recall@100", "mrr@10"}
        for folder, metrics in ((tiny_embedder_path, result.before), (str(tmp_path / "out"), result.after)):
            embedder = BGEEmbedder(folder, device="cpu")
            report = evaluate_retrieval(data, embedder.embed_queries, embedder.embed_documents)
            assert metrics == {
                "ndcg@10": report.ndcg_at_10,
                "recall@100": report.recall_at_100,
                "mrr@10": report.mrr_at_10,
            }
        card = (tmp_path / "out" / "README.md").read_text()
        front = card.split("---")[1]
        assert f"base_model: {json.dumps(tiny_embedder_path)}" in front
        assert "- bge" in front
        assert "library_name: sentence-transformers" in front
        ndcg_row = next(line for line in card.splitlines() if line.startswith("| ndcg@10 |"))
        assert ndcg_row == (
            f"| ndcg@10 | {result.before['ndcg@10']:.4f} | {result.after['ndcg@10']:.4f} | "
            f"{result.after['ndcg@10'] - result.before['ndcg@10']:+.4f} |"
        )
        assert "| learning_rate | 0.001 |" in card


class TestResume:
    def test_interrupted_then_resumed_run_ends_where_an_uninterrupted_one_does(
        self, tiny_embedder_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = TrainingSettings(
            max_steps=4, batch_size=2, negatives=1, learning_rate=1e-3, save_steps=2, progress=False
        )
        examples = make_examples(8)
        whole = finetune_embedder(examples, model=tiny_embedder_path, output=tmp_path / "whole", settings=settings)
        assert whole.steps == 4

        original = CallbackHandler.on_save

        def crash_after_first_save(self: CallbackHandler, args: Any, state: Any, control: Any) -> Any:
            out = original(self, args, state, control)
            if state.global_step == 2:
                msg = "interrupted"
                raise KeyboardInterrupt(msg)
            return out

        monkeypatch.setattr(CallbackHandler, "on_save", crash_after_first_save)
        with pytest.raises(KeyboardInterrupt):
            finetune_embedder(examples, model=tiny_embedder_path, output=tmp_path / "split", settings=settings)
        monkeypatch.setattr(CallbackHandler, "on_save", original)
        assert (tmp_path / "split" / "checkpoints" / "checkpoint-2").is_dir()
        assert not (tmp_path / "split" / "model.safetensors").exists()
        steps_run: list[None] = []
        forward = MultipleNegativesRankingLoss.forward

        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            steps_run.append(None)
            return forward(self, *args, **kwargs)

        monkeypatch.setattr(MultipleNegativesRankingLoss, "forward", counted)
        resumed = finetune_embedder(
            examples, model=tiny_embedder_path, output=tmp_path / "split", settings=settings, resume=True
        )
        assert resumed.steps == 4
        assert len(steps_run) == 2  # steps 3 and 4 only: it went on from checkpoint-2
        expected, got = weights(tmp_path / "whole"), weights(tmp_path / "split")
        base = weights(Path(tiny_embedder_path))  # BERT's pooler is not in it: made at load, never trained
        assert set(base) <= set(expected)
        assert expected.keys() == got.keys()
        for name in base:
            torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6, msg=name)
        assert any(not torch.allclose(base[name], expected[name]) for name in base)

    def test_resume_without_checkpoint_warns_and_starts(self, tiny_embedder_path: str, tmp_path: Path) -> None:
        with pytest.warns(UserWarning, match="holds no checkpoint"):
            result = finetune_embedder(
                make_examples(), model=tiny_embedder_path, output=tmp_path / "out", settings=FAST, resume=True
            )
        assert result.steps == 2


class TestRegistry:
    def test_training_again_into_a_folder_evaluates_and_serves_the_new_weights(
        self, tiny_embedder_path: str, tmp_path: Path
    ) -> None:
        from sentence_transformers import SentenceTransformer

        from bge_integrations.core.loading import REGISTRY

        output = tmp_path / "out"
        finetune_embedder(make_examples(), model=tiny_embedder_path, output=output, settings=FAST)
        first = np.array(BGEEmbedder(str(output), device="cpu").embed_documents(["some passage text"])[0])
        again = TrainingSettings(
            max_steps=2, batch_size=2, negatives=2, learning_rate=5e-2, save_steps=2, progress=False, seed=3
        )
        data = RetrievalDataset(
            name="toy",
            doc_ids=["d0", "d1"],
            doc_texts=["passage 0 relevant answer", "unrelated text 0 alpha"],
            queries={"q0": "query number 0 about topic 0"},
            qrels={"q0": {"d0": 1}},
        )
        with pytest.raises(ValueError, match=r"earlier run \(latest: checkpoint-\d+\); resume=True"):
            finetune_embedder(make_examples(), model=tiny_embedder_path, output=output, settings=again)
        shutil.rmtree(output / "checkpoints")  # as the refusal says: start afresh into the same folder
        finetune_embedder(make_examples(), model=tiny_embedder_path, output=output, settings=again, evaluation=data)
        assert BGEEmbedder(tiny_embedder_path, device="cpu").load_key not in REGISTRY.loaded_keys()
        served = np.array(BGEEmbedder(str(output), device="cpu").embed_documents(["some passage text"])[0])
        on_disk = SentenceTransformer(str(output), device="cpu").encode(["some passage text"])[0]
        assert not np.allclose(first, on_disk, atol=1e-4)
        np.testing.assert_allclose(served, on_disk, atol=1e-5)
