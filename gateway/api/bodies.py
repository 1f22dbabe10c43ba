"""JSON request bodies: strict decoding, and the problem (problem+json) of a body that
cannot be taken.

Every handler with a body decodes it as ``/v1/check`` does: 415 unless it is sent as
JSON, 413 past its size limit, 400 when it is not JSON (or not UTF-8, or nested too
deeply), 422 naming the field and the rule it breaks (:func:`field_error`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import msgspec
from litestar import Request
from litestar.connection.base import empty_receive, empty_send
from litestar.types import Receive, ReceiveMessage, Scope, Send

from gateway.problems import FieldError, Problem, invalid

_decode_any = msgspec.json.Decoder().decode

#: The rule each kind of msgspec validation message breaks (first match wins).
_RULES = (
    ("missing required field", "required"),
    ("unknown field", "unknown_field"),
    ("of length <=", "max_length"),
    ("of length >=", "min_length"),
    ("Invalid enum value", "enum"),
    ("Invalid", "format"),
    ("matching regex", "pattern"),
    (" <= ", "maximum"),
    (" >= ", "minimum"),
    ("Expected `", "type"),
)
_NAMED = re.compile(r"Object (?:missing required|contains unknown) field `([^`]*)`")


def field_error(path: str, message: str) -> FieldError:
    """msgspec's validation ``message`` at ``path`` ("" for the body itself) as the field
    it names (a missing or unknown field too) and the rule it breaks."""
    named = _NAMED.match(message)
    if named:
        path = f"{path}.{named.group(1)}" if path else named.group(1)
    rule = next((rule for marker, rule in _RULES if marker in message), None)
    return FieldError(path or "body", message, rule)


def validation_problem(text: str) -> Problem:
    """422 for msgspec's ``ValidationError`` ("Expected `str` of length <= 64 - at
    `$.uscc`")."""
    message, _, at = text.partition(" - at `")
    error = field_error(at.rstrip("`").removeprefix("$").lstrip("."), message)
    return invalid(error.field, error.message, error.rule)


def body_problem(exc: Exception, field: str = "body") -> Problem:
    """400 for a body that cannot be read as JSON at all: not JSON, not UTF-8, or nested
    deeper than the decoder goes (msgspec raises the last two as ``UnicodeDecodeError``
    — before 0.23; a ``DecodeError`` saying so since — and ``RecursionError``, which would
    otherwise be a 500)."""
    if isinstance(exc, UnicodeDecodeError):
        message, rule = f"the body is not valid UTF-8 (byte {exc.start})", "utf8"
    elif "Invalid UTF-8" in str(exc):  # msgspec >= 0.23 says so in a DecodeError
        message, rule = "the body is not valid UTF-8", "utf8"
    elif isinstance(exc, RecursionError):
        message, rule = "the body nests arrays or objects too deeply", "max_depth"
    else:
        message, rule = f"the body is not valid JSON: {exc}", "json"
    return Problem(
        400, "malformed-json", "Malformed JSON", message, [FieldError(field, message, rule)]
    )


def unsupported_media(expected: str = "application/json") -> Problem:
    return Problem(
        415,
        "unsupported-media-type",
        "Unsupported media type",
        f"send the body as {expected}",
        [FieldError("content-type", f"expected {expected}", "media_type")],
    )


def is_json_media(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json``, parameters ignored."""
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class JSONBodyRequest(Request[Any, Any, Any]):
    """The request of a handler with a JSON body (``data``), set per handler with
    ``request_class``. The body is decoded straight into the handler's type, strictly as
    ``/v1/check`` decodes its own (Litestar's conversion takes ``0`` for ``false``):
    415 unless it is sent as JSON; 400 when it is not JSON, not UTF-8 or nested too deeply
    (Litestar's own decoding lets the last two escape as a 500); 422 naming the field and
    the rule it breaks. Its body ends once ``content-length`` bytes have come
    (:func:`whole_body_receive`)."""

    def __init__(
        self, scope: Scope, receive: Receive = empty_receive, send: Send = empty_send
    ) -> None:
        super().__init__(scope, whole_body_receive(receive, content_length(scope)), send)

    async def json(self) -> Any:
        if not is_json_media(self.headers.get("content-type", "")):
            raise unsupported_media()
        data = self.route_handler.parsed_fn_signature.parameters.get("data")
        decode = _typed_decoder(data.annotation) if data is not None else _decode_any
        try:
            return decode(await self.body())
        except msgspec.ValidationError as exc:
            raise validation_problem(str(exc)) from None
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise body_problem(exc) from None


@functools.cache
def _typed_decoder(type_: Any) -> Callable[[bytes], Any]:
    return msgspec.json.Decoder(type_).decode


def body_too_large(limit: int) -> Problem:
    message = f"the body exceeds {limit} bytes"
    return Problem(
        413,
        "body-too-large",
        "Request body too large",
        message,
        [FieldError("body", message, "max_body_size")],
    )


async def read_body(receive: Receive, limit: int, length: int | None = None) -> bytes:
    """The whole body of a raw ASGI request; 413 once it passes ``limit`` bytes, or at once
    when its ``length`` (the request's ``content-length``, if it has one) says it will.

    Once ``length`` bytes have come the body is whole and no further message is awaited:
    granian hands a body over as one message saying that more may follow, then an empty
    last one, each a hand-over from its threads to the event loop (about 80 µs at rest,
    up to a turn of a busy loop). HTTP frames the body by its ``content-length`` (RFC 9112
    6.3; RFC 9113 8.1.1 makes a stream that sends other than that malformed), so nothing
    can follow."""
    if length is not None and length > limit:
        raise body_too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message: Any = await receive()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise body_too_large(limit)
        chunks.append(chunk)
        if size == length or not message.get("more_body", False):
            return b"".join(chunks)


def whole_body_receive(receive: Receive, length: int | None) -> Receive:
    """``receive``, except that the message that brings the body's ``length``-th byte says
    no more will follow: whoever reads the body (Litestar) then does not await granian's
    empty last message (see :func:`read_body`). ``receive`` itself without a length."""
    if length is None:
        return receive
    received = 0

    async def receive_whole_body() -> ReceiveMessage:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request" and message.get("more_body", False):
            received += len(message.get("body", b""))
            if received == length:
                return {"type": "http.request", "body": message["body"], "more_body": False}
        return message

    return receive_whole_body


def content_length(scope: Scope) -> int | None:
    """The ``content-length`` of a raw ASGI request, or None when it has none, one that is
    not a number (the server has refused such a request before it reaches the app), or a
    ``transfer-encoding`` too: then the chunks frame the body, not the length (RFC 9112
    6.1 forbids sending both), and the body is read to its last message."""
    length = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = int(value) if value.isdigit() else None
        elif name == b"transfer-encoding":
            return None
    return length


def is_json_scope(scope: Scope) -> bool:
    """Whether a raw ASGI request says its body is JSON (as :func:`is_json_media`)."""
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False
