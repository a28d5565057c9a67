from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from sentence_transformers.cross_encoder import CrossEncoder
from transformers.trainer_callback import CallbackHandler

from bge_integrations import BGEReranker
from bge_integrations.core.checkpoints import read_local_checkpoint
from bge_integrations.evaluation.reranking import RerankingSample, RerankingSet, evaluate_reranking
from bge_integrations.training.examples import TrainingExample
from bge_integrations.training.reranker_training import GroupedSoftmaxLoss, finetune_reranker, grouped_softmax_loss
from bge_integrations.training.settings import TrainingSettings

FAST = TrainingSettings(max_steps=2, batch_size=2, negatives=2, learning_rate=1e-3, save_steps=2, progress=False)


def make_examples(count: int = 6) -> list[TrainingExample]:
    return [
        TrainingExample(
            f"query number {i} about topic {i}",
            [f"passage {i} relevant answer"],
            [f"unrelated text {i} alpha", f"unrelated text {i} beta", f"unrelated text {i} gamma"],
        )
        for i in range(count)
    ]


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: type, name: str) -> list[None]:
    """Record each call of owner.name (a list that grows by one per call)."""
    calls: list[None] = []
    original = getattr(owner, name)

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(None)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, counted)
    return calls


class TestLoss:
    def test_grouped_softmax_is_cross_entropy_with_target_zero(self) -> None:
        logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 3.0, 1.0]])
        by_hand = -sum(row[0] - math.log(sum(math.exp(x) for x in row)) for row in logits.tolist()) / 2
        assert float(grouped_softmax_loss(logits)) == pytest.approx(by_hand, rel=1e-6)
        assert float(grouped_softmax_loss(torch.zeros(4, 8))) == pytest.approx(math.log(8), rel=1e-6)

    def test_loss_groups_each_query_with_its_own_passages(self, tiny_reranker_path: str) -> None:
        model = CrossEncoder(tiny_reranker_path, num_labels=1, device="cpu")
        model.eval()
        columns = [["q one", "q two"], ["pos one", "pos two"], ["neg one a", "neg two a"], ["neg one b", "neg two b"]]
        with torch.no_grad():
            loss = GroupedSoftmaxLoss(model)(columns, None)
            # FlagEmbedding: pairs laid out per query (positive first), raw logits viewed (batch, group).
            logits = [
                [
                    float(model.predict([(columns[0][i], columns[1 + j][i])], activation_fn=torch.nn.Identity())[0])
                    for j in range(3)
                ]
                for i in range(2)
            ]
        by_hand = -sum(row[0] - math.log(sum(math.exp(x) for x in row)) for row in logits) / 2
        assert float(loss) == pytest.approx(by_hand, rel=1e-4)


class TestErrors:
    def test_negatives_zero_is_refused(self, tiny_reranker_path: str, tmp_path: Path) -> None:
        settings = TrainingSettings(negatives=0)
        with pytest.raises(ValueError, match="negatives must be at least 1, got 0"):
            finetune_reranker(make_examples(), model=tiny_reranker_path, output=tmp_path / "out", settings=settings)

    def test_example_without_negatives_is_named(self, tiny_reranker_path: str, tmp_path: Path) -> None:
        examples = [TrainingExample("only query", ["p"])]
        with pytest.raises(ValueError, match=r"example 0 \(query 'only query'\) has no negatives"):
            finetune_reranker(examples, model=tiny_reranker_path, output=tmp_path / "out", settings=FAST)

    def test_empty_data_is_refused(self, tiny_reranker_path: str, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match=r"no training example: \[\]"):
            finetune_reranker([], model=tiny_reranker_path, output=tmp_path / "out", settings=FAST)


class TestOutput:
    def test_output_loads_in_bge_reranker_with_changed_scores_and_card(
        self, tiny_reranker_path: str, tmp_path: Path
    ) -> None:
        base = tmp_path / "bge-reranker-base-tiny"
        shutil.copytree(tiny_reranker_path, base)
        output = tmp_path / "my-reranker"
        data = RerankingSet(
            "toy", [RerankingSample(e.query, e.pos, e.neg[:2]) for e in make_examples(4)], description="toy set"
        )
        result = finetune_reranker(make_examples(), model=str(base), output=output, settings=FAST, evaluation=data)
        assert (result.kind, result.steps, result.output) == ("reranker", 2, output)
        assert read_local_checkpoint(str(output)).base_model == str(base)
        tuned = BGEReranker(str(output), device="cpu", normalize=False)
        assert tuned.config.preset == "BAAI/bge-reranker-base"
        pairs = [("what is bge", "BGE is an embedding model"), ("what is bge", "pandas eat bamboo")]
        before = BGEReranker(str(base), device="cpu", normalize=False).score_pairs(pairs)
        after = tuned.score_pairs(pairs)
        assert not torch.allclose(torch.tensor(before), torch.tensor(after), atol=1e-4)
        for folder, metrics in ((str(base), result.before), (str(output), result.after)):
            report = evaluate_reranking(data, reranker=BGEReranker(folder, device="cpu", normalize=False))
            assert metrics == {"map": report.map, "mrr@10": report.mrr}
        card = (output / "README.md").read_text()
        assert card.startswith(f'---\nbase_model: "{base}"\n')
        assert "pipeline_tag: text-ranking" in card
        assert result.before is not None
        assert result.after is not None
        old, new = result.before["map"], result.after["map"]
        assert f"| map | {old:.4f} | {new:.4f} | {new - old:+.4f} |" in card.splitlines()
        assert "On `toy`." in card


class TestResume:
    def test_resumed_run_matches_an_uninterrupted_one(
        self, tiny_reranker_path: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        settings = TrainingSettings(
            max_steps=4, batch_size=2, negatives=2, learning_rate=1e-3, save_steps=2, progress=False
        )
        examples = make_examples(8)
        finetune_reranker(examples, model=tiny_reranker_path, output=tmp_path / "whole", settings=settings)
        original = CallbackHandler.on_save

        def crash_after_first_save(self: CallbackHandler, args: Any, state: Any, control: Any) -> Any:
            out = original(self, args, state, control)
            if state.global_step == 2:
                raise KeyboardInterrupt
            return out

        monkeypatch.setattr(CallbackHandler, "on_save", crash_after_first_save)
        with pytest.raises(KeyboardInterrupt):
            finetune_reranker(examples, model=tiny_reranker_path, output=tmp_path / "split", settings=settings)
        monkeypatch.undo()
        steps_run = count_calls(monkeypatch, GroupedSoftmaxLoss, "forward")
        resumed = finetune_reranker(
            examples, model=tiny_reranker_path, output=tmp_path / "split", settings=settings, resume=True
        )
        assert resumed.steps == 4
        assert len(steps_run) == 2  # steps 3 and 4 only: it went on from checkpoint-2
        expected = load_file(str(tmp_path / "whole" / "model.safetensors"))
        got = load_file(str(tmp_path / "split" / "model.safetensors"))
        assert expected.keys() == got.keys()
        for name, tensor in expected.items():
            torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


class TestRegistry:
    def test_training_again_into_a_folder_serves_the_new_weights(self, tiny_reranker_path: str, tmp_path: Path) -> None:
        from bge_integrations.core.loading import REGISTRY

        output = tmp_path / "out"
        pairs = [("what is bge", "BGE is an embedding model")]
        finetune_reranker(make_examples(), model=tiny_reranker_path, output=output, settings=FAST)
        first = BGEReranker(str(output), device="cpu", normalize=False).score_pairs(pairs)
        again = TrainingSettings(
            max_steps=2, batch_size=2, negatives=2, learning_rate=5e-2, save_steps=2, progress=False, seed=3
        )
        data = RerankingSet("toy", [RerankingSample(e.query, e.pos, e.neg[:2]) for e in make_examples(4)])
        shutil.rmtree(output / "checkpoints")  # a new run into the same folder (checkpoints left would be refused)
        finetune_reranker(make_examples(), model=tiny_reranker_path, output=output, settings=again, evaluation=data)
        assert BGEReranker(tiny_reranker_path, device="cpu", normalize=False).load_key not in REGISTRY.loaded_keys()
        served = BGEReranker(str(output), device="cpu", normalize=False).score_pairs(pairs)
        on_disk = CrossEncoder(str(output), device="cpu", activation_fn=torch.nn.Identity()).predict(pairs)
        assert not math.isclose(first[0], float(on_disk[0]), abs_tol=1e-4)
        assert math.isclose(served[0], float(on_disk[0]), abs_tol=1e-4)
