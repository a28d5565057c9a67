"""langchain-huggingface's ``*_kwargs`` arguments, translated onto the adapter's settings.

``HuggingFaceEmbeddings`` (and the older ``HuggingFaceBgeEmbeddings``) hand ``model_kwargs`` to
``SentenceTransformer(...)`` and ``encode_kwargs``/``query_encode_kwargs`` to ``encode(...)``;
``HuggingFaceCrossEncoder`` hands ``model_kwargs`` to ``CrossEncoder(...)``. Here each key those
calls take is either translated onto a setting of ours, accepted without effect (it changes
nothing in what LangChain gets back from the peer either), or refused with an error that names
it. A key may not contradict a field given explicitly, nor another key that sets the same thing.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from bge_integrations.core.hf_options import check_options

Rule = str | Callable[["Translation", str, str, Any], None]
"""A setting's name, or ``rule(translation, key, where, value)`` that sets what the key means."""


class Translation:
    """The settings an adapter object gives its core, with ``*_kwargs`` keys merged in.

    Args:
        owner: The adapter object; its explicitly given fields (``model_fields_set``) win over
            nothing: a key that disagrees with one is an error.
        settings: The settings the keys may set, with their current values.

    Example:
        >>> from bge_integrations.langchain import BGEEmbeddings
        >>> owner = BGEEmbeddings(device="cpu")
        >>> translation = Translation(owner, {"device": "cpu", "batch_size": 32})
        >>> translation.merge({"batch_size": 8}, {"batch_size": "batch_size"}, "encode_kwargs")
        >>> translation.values["batch_size"]
        8
        >>> translation.merge({"device": "cuda"}, {"device": "device"}, "model_kwargs")
        Traceback (most recent call last):
        ...
        ValueError: model_kwargs['device']='cuda' contradicts device='cpu'; give one

    """

    def __init__(self, owner: BaseModel, settings: Mapping[str, Any]) -> None:
        self.owner = type(owner).__name__
        self.values: dict[str, Any] = dict(settings)
        self.origin = {name: name for name in settings if name in owner.model_fields_set}

    def set(self, setting: str, value: Any, where: str) -> None:
        """Set one setting from ``where`` (a key's spelling), unless something else set it otherwise."""
        if setting in self.origin and self.values.get(setting) != value:
            if _is_secret(where) or _is_secret(self.origin[setting]):
                msg = f"{where} contradicts {self.origin[setting]} (values not shown); give one"
            else:
                msg = f"{where}={value!r} contradicts {self.origin[setting]}={self.values.get(setting)!r}; give one"
            raise ValueError(msg)
        self.values[setting] = value
        self.origin.setdefault(setting, where)

    def update(self, setting: str, entries: Any, where: str) -> None:
        """Merge a mapping into a mapping setting (transformers' ``model_kwargs``...), key by key."""
        if not isinstance(entries, Mapping):
            msg = f"{where} must be a mapping of keyword arguments, got {type(entries).__name__}: {entries!r:.80}"
            raise ValueError(msg)  # pydantic reports ValueErrors as validation errors
        merged = dict(self.values.get(setting) or {})
        for key, value in entries.items():
            self.set(f"{setting}[{key!r}]", value, f"{where}[{key!r}]")
            merged[key] = value
        self.values[setting] = merged

    def merge(
        self,
        given: Mapping[str, Any],
        rules: Mapping[str, Rule],
        what: str,
        *,
        hints: Mapping[str, str] | None = None,
    ) -> None:
        """Apply each key of ``given`` (the argument named ``what``) by its rule; refuse unknown keys."""
        unknown = sorted(set(given) - set(rules))
        if unknown:
            advice = "; ".join(f"{key}: {hints[key]}" for key in unknown if hints and key in hints)
            msg = (
                f"{what} keys {unknown} cannot be honoured by {self.owner}; it understands {sorted(rules)} "
                f"(other settings are fields of {self.owner}){'. ' + advice if advice else ''}"
            )
            raise ValueError(msg)
        for key, value in given.items():
            rule = rules[key]
            where = f"{what}[{key!r}]"
            if isinstance(rule, str):
                self.set(rule, value, where)
            else:
                rule(self, key, where, value)


def no_effect(translation: Translation, key: str, where: str, value: Any) -> None:
    """A key that changes nothing in LangChain's output (the peer converts it away too)."""


def into(setting: str) -> Rule:
    """The rule of a key whose value, a mapping, is merged into the mapping setting ``setting``."""

    def rule(translation: Translation, key: str, where: str, value: Any) -> None:
        if value is not None:
            translation.update(setting, value, where)  # a mapping, or a ValueError naming where
            # The core checks the merged mapping too, but names it by its own setting: name the user's key here.
            check_options(value, name=where, allow_dtype=setting == "transformers_model_kwargs")

    return rule


def model_option(translation: Translation, key: str, where: str, value: Any) -> None:
    """``HuggingFaceBgeEmbeddings``' top-level ``model_kwargs`` keys that go to transformers' model."""
    translation.set(f"transformers_model_kwargs[{key!r}]", value, where)
    options = dict(translation.values.get("transformers_model_kwargs") or {})
    options[key] = value
    translation.values["transformers_model_kwargs"] = options


def normalize_embeddings(translation: Translation, key: str, where: str, value: Any) -> None:
    """``normalize_embeddings``: True adds L2 normalisation; False removes none the model has.

    sentence-transformers normalises after the model when asked and otherwise leaves the
    model's own ``Normalize`` module in place (BGE checkpoints have one), so False keeps the
    model's own behaviour (``normalize=None``) rather than turning normalisation off.
    """
    if not isinstance(value, bool):
        msg = f"{where} must be True or False, got {value!r:.40}"
        raise ValueError(msg)  # pydantic reports ValueErrors as validation errors
    if value:
        translation.set("normalize", True, where)


def token(translation: Translation, key: str, where: str, value: Any) -> None:
    """``token``: a string, or True/None for the hub library's own (``HF_TOKEN``, a saved login).

    Errors never show the token: neither the one given here nor the one it contradicts.
    """
    if value is not None and value is not True and not isinstance(value, str):
        msg = f"{where} must be a token string, True or None (the hub library's own), got {type(value).__name__}"
        raise ValueError(msg)
    value = None if value is True else value
    if "token" in translation.origin and translation.values.get("token") != value:
        msg = f"{where} contradicts {translation.origin['token']} (tokens not shown); give one"
        raise ValueError(msg)
    translation.set("token", value, where)


def lift_token(data: Any) -> Any:
    """Move ``model_kwargs["token"]`` into the ``token`` field, which is never dumped nor shown.

    For a pydantic ``mode="before"`` model validator (which also sees assignments, with every
    field in ``data``): ``HuggingFaceEmbeddings`` users pass the token inside ``model_kwargs``,
    a plain dict that ``repr`` and ``model_dump`` would show. True (the hub library's own token)
    is dropped, as None. A value of another type, or one that disagrees with ``token``, stays
    where it is for the rule :func:`token` to refuse.
    """
    kwargs = data.get("model_kwargs") if isinstance(data, dict) else None
    if not isinstance(kwargs, Mapping):
        return data
    lifted = {key: kwargs[key] for key in ("token", "use_auth_token") if key in kwargs}
    given = data.get("token")
    secrets = {given.get_secret_value() if isinstance(given, SecretStr) else given}
    secrets |= {value for value in lifted.values() if value is not True}
    secrets.discard(None)
    if not lifted or len(secrets) > 1 or not all(isinstance(value, str) for value in secrets):
        return data
    rest = {key: value for key, value in kwargs.items() if key not in lifted}
    return {**data, "model_kwargs": rest, "token": SecretStr(secrets.pop()) if secrets else None}


def prompt_table(translation: Translation, key: str, where: str, value: Any) -> None:
    """``prompts``: names to prompt strings, read when an ``encode`` kwarg names a prompt."""
    if value is not None and (
        not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        msg = f"{where} must map prompt names to strings, got {value!r:.80}"
        raise ValueError(msg)
    translation.set("prompts", dict(value or {}), where)


def resolve_prompt(translation: Translation, given: Mapping[str, Any], what: str, *, query: bool) -> tuple[Any, str]:
    """The prompt ``encode(**given)`` would put before each text, and where it comes from.

    Returns ``(prompt, where)``; ``prompt`` is a string, None for "the checkpoint's own query
    prompt" (``prompt_name="query"`` without a ``prompts`` entry, on the query side only), or
    ``...`` when nothing names a prompt (the instruction setting stays as it is). On the query
    side, a ``prompts["query"]`` entry counts as named, as sentence-transformers' ``encode_query``
    would use it (``HuggingFaceEmbeddings`` calls ``encode``, which would not).

    Raises:
        ValueError: If a prompt name is in no ``prompts`` table this adapter can read.

    """
    if given.get("prompt") is not None:
        return given["prompt"], f"{what}['prompt']"
    name, where = given.get("prompt_name"), f"{what}['prompt_name']"
    if name is None:
        name, where = translation.values.get("default_prompt_name"), "model_kwargs['default_prompt_name']"
    prompts = translation.values.get("prompts") or {}
    if name is None:
        # The model's query prompt, which our query_instruction=None stands for (as encode_query).
        if query and "query" in prompts:
            return prompts["query"], "model_kwargs['prompts']['query']"
        return ..., ""
    if name in prompts:
        return prompts[name], where
    if query and name == "query":
        return None, where
    side = "query_instruction" if query else "embed_instruction"
    msg = (
        f"{where}={name!r} names a prompt that {translation.owner} cannot read: give it in "
        f"model_kwargs['prompts'], or set {side}="
    )
    raise ValueError(msg)


def _is_secret(where: str) -> bool:
    """Whether a setting's spelling names a token (``token``, ``model_kwargs['token']``...): never shown."""
    return re.search(r"(^|\[')(token|use_auth_token)('\])?$", where) is not None


__all__ = [
    "Rule",
    "Translation",
    "into",
    "lift_token",
    "model_option",
    "no_effect",
    "normalize_embeddings",
    "prompt_table",
    "resolve_prompt",
    "token",
]
