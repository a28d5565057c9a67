"""Errors as each API's clients expect them: OpenAI's, TEI's and Cohere's JSON shapes."""

from __future__ import annotations

from typing import Literal

from starlette.responses import JSONResponse

ApiFamily = Literal["openai", "tei", "cohere"]

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
}
_TEI_TYPES = {401: "Unauthorized", 413: "Validation", 422: "Validation", 429: "Overloaded", 503: "Unhealthy"}


class ApiError(Exception):
    """A request the server answers with an error status and a message naming the bad value.

    Args:
        status: HTTP status.
        message: What was wrong, naming the field and value.
        param: The request field at fault, if one is.
        retry_after: Seconds for ``Retry-After`` (429/503).

    Example:
        >>> error = ApiError(400, "input must not be empty", param="input")
        >>> error.response("openai").status_code
        400

    """

    def __init__(self, status: int, message: str, *, param: str | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after

    def response(self, family: ApiFamily) -> JSONResponse:
        """The error as a JSON response in the shape of ``family``'s API."""
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        if family == "tei":
            body: dict[str, object] = {"error": self.message, "error_type": _TEI_TYPES.get(self.status, "Backend")}
        else:
            kind = _OPENAI_TYPES.get(self.status, "rate_limit_error" if self.status == 429 else "server_error")
            body = {
                "error": {"message": self.message, "type": kind, "param": self.param, "code": self.status},
                **({"message": self.message} if family == "cohere" else {}),
            }
        return JSONResponse(body, status_code=self.status, headers=headers)


def family_of(path: str) -> ApiFamily:
    """Which API a path belongs to (``/rerank`` is shared: TEI's error shape unless the body said otherwise)."""
    if path.startswith(("/v1/rerank",)):
        return "cohere"
    if path.startswith(("/v1/", "/query/v1/", "/embeddings")):
        return "openai"
    return "tei"


__all__ = ["ApiError", "ApiFamily", "family_of"]
