"""CoreComponent: the settings, core engine and (de)serialization that the Haystack components share."""

from __future__ import annotations

import asyncio
import copy
import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar, TypeVar

from haystack import default_from_dict, default_to_dict
from haystack.utils import ComponentDevice, Secret
from haystack.utils.hf import deserialize_hf_model_kwargs, serialize_hf_model_kwargs

from bge_integrations.core.configs import SettingNames, passed_through
from bge_integrations.core.handle import ModelHandle
from bge_integrations.core.remote import RemoteEmbedder, RemoteReranker, remote_arguments
from bge_integrations.haystack._common import (
    check_model,
    check_serialized,
    component_device,
    default_token,
    plain,
    resolve_token,
    serializable,
    torch_device,
)

T = TypeVar("T")


def init_parameter_names(cls: type[CoreComponent]) -> tuple[str, ...]:
    """The keyword-only ``__init__`` parameters of cls, in order: the settings ``to_dict`` saves."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    return tuple(param.name for param in parameters if param.kind is inspect.Parameter.KEYWORD_ONLY)


class CoreComponent:
    """Base of the BGE components: settings are attributes, the core engine is built from them.

    ``__init__`` stores each parameter in the attribute of the same name, then builds the core
    once so that bad settings fail there. Afterwards the core is built from the current
    attributes on each use and reused while they are unchanged (building one is cheap: weights
    live in the core registry). An attribute changed after ``__init__`` therefore reaches the
    model, and ``to_dict`` saves exactly the settings in use.

    ``token`` is a Haystack ``Secret``, resolved when the core is built: ``to_dict`` saves the
    environment variables' names (a ``Secret.from_token`` refuses to be saved). ``from_dict``
    refuses settings that switch ``trust_remote_code`` on, outside
    :func:`~bge_integrations.core.loading.allow_remote_code`.

    Numpy scalars are taken wherever a number is (``batch_size=np.int64(8)``) and saved as Python
    numbers; ``model_kwargs`` is saved as Haystack's SentenceTransformers components save it
    (a ``torch.dtype`` as its name).
    """

    SETTINGS: ClassVar[tuple[SettingNames, ...]]
    """The core engine's settings table (``EMBEDDER_SETTINGS`` or ``RERANKER_SETTINGS``)."""

    model: str
    device: ComponentDevice | None
    batch_size: int
    use_fp16: bool | None
    max_length: int | None
    revision: str | None
    trust_remote_code: bool
    token: Secret | None
    model_kwargs: dict[str, Any] | None
    tokenizer_kwargs: dict[str, Any] | None
    config_kwargs: dict[str, Any] | None

    def _core(self) -> ModelHandle | RemoteEmbedder | RemoteReranker:
        """The core engine built from the current settings."""
        raise NotImplementedError

    def _remote_settings(
        self, engine: Callable[..., Any], *, client_side: Collection[str], default_model: str
    ) -> dict[str, Any]:
        """The remote client's arguments (``base_url`` set); settings that only the server honours are refused.

        Raises:
            ValueError: If a setting the server owns (``device``, ``max_length``...) is not its
                default, naming each.

        """
        settings = self._core_settings()
        settings.pop("token")  # resolved from the environment: compared as the Secret instead
        names = {core: name for name, core in passed_through(self.SETTINGS, "haystack").items()}
        names.update(self._remote_names())
        token = ["token=<a Secret>"] if self.token is not None and self.token != default_token() else []
        return remote_arguments(
            type(self).__name__,
            getattr(self, "base_url", None),
            resolve_token(getattr(self, "api_key", None)),
            settings,
            engine,
            default_model=default_model,
            client_side=client_side,
            names=names,
            owned=token,
        )

    def _remote_names(self) -> dict[str, str]:
        """Core argument -> this component's name, where the settings table's name is not it."""
        return {"model_name": "model"}

    def _overrides(self) -> Mapping[str, Any]:
        """Values by this component's setting names that win over its attributes (none here)."""
        return {}

    def _core_settings(self) -> dict[str, Any]:
        """The core engine's settings: the table's as they are, and those every component translates.

        Subclasses add their own translations. Checked here under this component's names
        (``model``, not the core's ``model_name``), because an attribute set after ``__init__`` is
        checked when it is next used.
        """
        given = self._overrides()
        settings = {
            core: plain(given[name] if name in given else getattr(self, name))
            for name, core in passed_through(self.SETTINGS, "haystack").items()
        }
        settings.update(
            model_name=check_model(self.model),
            device=torch_device(component_device(self.device)),
            max_length=self._max_length(),
            token=resolve_token(self.token),
        )
        return settings

    def _max_length(self) -> int | None:
        """``max_length``, or else ``tokenizer_kwargs["model_max_length"]`` (as SentenceTransformers* read it).

        Raises:
            ValueError: If both are given and differ, naming both.

        """
        max_length = plain(self.max_length)
        options = self.tokenizer_kwargs
        from_tokenizer = plain(options.get("model_max_length")) if isinstance(options, Mapping) else None
        if max_length is None or not from_tokenizer or from_tokenizer == max_length:
            return from_tokenizer or max_length  # type: ignore[no-any-return]
        msg = (
            f"max_length={max_length!r} and tokenizer_kwargs['model_max_length']={from_tokenizer!r} both set "
            "the tokens read per text: pass one of them"
        )
        raise ValueError(msg)

    def to_dict(self) -> dict[str, Any]:
        """Serialize every ``__init__`` parameter; ``device`` becomes Haystack's device dict (None stays None).

        Numpy values become Python ones and a ``torch.dtype`` in ``model_kwargs`` its name, as
        Haystack's SentenceTransformers components save it; the component itself is unchanged.
        """
        init_parameters = {name: getattr(self, name) for name in init_parameter_names(type(self))}
        init_parameters["device"] = component_device(self.device)
        for name, value in init_parameters.items():
            if name not in ("device", "token"):
                init_parameters[name] = serializable(value)  # new containers: self is unchanged
        if isinstance(init_parameters.get("model_kwargs"), dict):
            serialize_hf_model_kwargs(init_parameters["model_kwargs"])
        return default_to_dict(self, **init_parameters)

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any]) -> T:
        """Rebuild the component from :meth:`to_dict`'s output.

        Raises:
            ValueError: If the data switch ``trust_remote_code`` on (see the class docstring).

        """
        check_serialized(cls.__name__, data)
        init_parameters = data.get("init_parameters")
        if isinstance(init_parameters, dict) and isinstance(init_parameters.get("model_kwargs"), dict):
            model_kwargs = copy.deepcopy(init_parameters["model_kwargs"])
            deserialize_hf_model_kwargs(model_kwargs)  # "torch.float16" -> torch.float16, as Haystack's own
            data = {**data, "init_parameters": {**init_parameters, "model_kwargs": model_kwargs}}
        return default_from_dict(cls, data)

    def warm_up(self) -> None:
        """Load the model unless it is in memory already (cheap to call on every run)."""
        self._core().warm_up()

    async def warm_up_async(self) -> None:
        """Async :meth:`warm_up` (used by ``Pipeline.run_async``): loads in a worker thread."""
        await asyncio.to_thread(self._core().warm_up)

    def release(self) -> bool:
        """Free the model, shared by every component configured alike; True if it was loaded."""
        return self._core().release()


__all__ = ["CoreComponent", "init_parameter_names"]
