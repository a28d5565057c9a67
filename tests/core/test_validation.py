"""check_items: the adapters' "sequence of X, item i must be X" check, messages to the letter."""

from __future__ import annotations

from typing import Any

import pytest

from bge_integrations.core.validation import check_items


def _check(value: Any, **kwargs: Any) -> Any:
    return check_items(value, int, name="ids", sequence="a sequence of ints", item="an int", **kwargs)


class TestCheckItems:
    @pytest.mark.parametrize("value", [[], [1, 2], (1, 2), range(3)])
    def test_gives_back_the_sequence_itself(self, value: Any) -> None:
        assert _check(value) is value

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            (None, "ids must be a sequence of ints, got NoneType: None"),
            ("12", "ids must be a sequence of ints, got str: '12'"),
            (b"12", "ids must be a sequence of ints, got bytes: b'12'"),
            ({1, 2}, "ids must be a sequence of ints, got set: {1, 2}"),
            ({"a": 1}, "ids must be a sequence of ints, got dict: {'a': 1}"),
            (5, "ids must be a sequence of ints, got int: 5"),
            ("x" * 200, f"ids must be a sequence of ints, got str: '{'x' * 79}"),
        ],
    )
    def test_rejects_what_is_not_a_sequence(self, value: Any, message: str) -> None:
        with pytest.raises(TypeError) as error:
            _check(value)
        assert str(error.value) == message

    def test_names_the_first_bad_item_by_index(self) -> None:
        with pytest.raises(TypeError) as error:
            _check([1, "2", None])
        assert str(error.value) == "ids[1] must be an int, got str: '2'"

    def test_cuts_the_bad_item_to_80_characters(self) -> None:
        with pytest.raises(TypeError) as error:
            _check([0, "y" * 200])
        assert str(error.value) == f"ids[1] must be an int, got str: '{'y' * 79}"

    def test_adds_the_hint_for_the_bad_item(self) -> None:
        def hint(item: Any) -> str:
            return " (parse it first)" if isinstance(item, str) else ""

        with pytest.raises(TypeError) as error:
            _check([1, "2"], hint=hint)
        assert str(error.value) == "ids[1] must be an int, got str: '2' (parse it first)"
        with pytest.raises(TypeError) as error:
            _check([1, 2.5], hint=hint)
        assert str(error.value) == "ids[1] must be an int, got float: 2.5"

    def test_takes_subclasses_and_abstract_kinds(self) -> None:
        from collections.abc import Hashable

        assert check_items([True, 1], int, name="ids", sequence="s", item="i") == [True, 1]
        assert check_items([1, "a"], Hashable, name="keys", sequence="s", item="i") == [1, "a"]
