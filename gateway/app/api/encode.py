"""JSON responses with orjson (numpy arrays serialised natively)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse

_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


class ORJSONResponse(JSONResponse):
    """A JSONResponse (so the OpenAPI document takes each route's declared model) rendered by orjson."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=_OPTIONS)
