"""Turn a request (JSON rows or an uploaded image) into rows for the data plane."""

from __future__ import annotations

import numpy as np
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError, too_large, unprocessable, unsupported
from gateway.app.protocol.rows import Instances, decode_request
from mnist_serving.image import ImageError, decode_image

IMAGE_STATUS = {"unsupported": 415, "too_large": 413, "unprocessable": 422}  # ImageError.problem -> HTTP


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing more than ``limit`` bytes whether or not Content-Length was sent."""
    first = await request.receive()
    if first["type"] == "http.disconnect":
        raise ClientDisconnect()
    body: bytes = first.get("body", b"")
    if not first.get("more_body"):  # the usual case: one message
        if len(body) > limit:
            raise too_large("body_too_large", f"request body exceeds {limit} bytes")
        return body
    chunks, size = [body], len(body)
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large("body_too_large", f"request body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def json_rows(request: Request, settings: Settings) -> Instances:
    ctype = content_type(request)
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        raise unsupported("unsupported_media_type", f"expected application/json, got {ctype}")
    return decode_request(await read_body(request, settings.max_body_bytes), settings.max_rows)


async def image_row(request: Request, settings: Settings) -> np.ndarray:
    """The uploaded ``file`` as a float32 [28, 28] MNIST-style image."""
    if content_type(request) != "multipart/form-data":
        raise unsupported("unsupported_media_type", "upload the image as multipart/form-data in the field 'file'")
    form = await request.form(max_files=1, max_fields=10)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise unprocessable("missing_file", "multipart body has no file field named 'file'")
    data = await upload.read(settings.max_image_bytes + 1)
    await form.close()
    if len(data) > settings.max_image_bytes:
        raise too_large("image_too_large", f"image file exceeds {settings.max_image_bytes} bytes")
    try:
        return decode_image(data, settings.max_image_pixels)
    except ImageError as exc:
        raise APIError(IMAGE_STATUS[exc.problem], exc.type, exc.message) from exc
