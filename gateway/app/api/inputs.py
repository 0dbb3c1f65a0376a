"""Turn a request (JSON rows or an uploaded image) into rows for the data plane."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import numpy as np
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect

from gateway.app.api.incoming import Incoming
from gateway.app.core.config import Settings
from gateway.app.core.errors import APIError, bad_request, too_large, unprocessable, unsupported
from gateway.app.protocol.images import ImageDecoder
from gateway.app.protocol.rows import Instances, decode_request
from mnist_serving.image import ImageError

IMAGE_STATUS = {"unsupported": 415, "too_large": 413, "unprocessable": 422}  # ImageError.problem -> HTTP


async def json_rows(incoming: Incoming, settings: Settings, deadline: float | None = None) -> Instances:
    ctype = incoming.content_type
    if ctype and ctype != "application/json" and not ctype.endswith("+json"):
        hint = (
            ": to upload an image, POST it to /v1/predict/image (multipart, field 'file')"
            if ctype.startswith(("multipart/", "image/"))
            else " (curl: -H 'Content-Type: application/json')"
        )
        raise unsupported("unsupported_media_type", f"expected application/json, got {ctype}{hint}")
    return decode_request(await incoming.body(settings.max_body_bytes, deadline), settings.max_rows)


async def image_row(incoming: Incoming, settings: Settings, decoder: ImageDecoder) -> np.ndarray:
    """The uploaded ``file`` as a float32 [28, 28] MNIST-style image, decoded off the event loop."""
    if incoming.content_type != "multipart/form-data":
        raise unsupported("unsupported_media_type", "upload the image as multipart/form-data in the field 'file'")
    parser = MultiPartParser(incoming.headers, _stream(incoming), max_files=1, max_fields=10)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        raise bad_request("invalid_multipart", f"the multipart body cannot be read: {exc.message}") from exc
    upload = form.get("file")
    if isinstance(upload, str):
        raise unprocessable(
            "file_is_text",
            "the field 'file' holds text, not a file: send the file itself (curl: -F file=@digit.png, with the @)",
        )
    if not isinstance(upload, UploadFile):
        fields = ", ".join(repr(k) for k in form) or "none"
        raise unprocessable("missing_file", f"multipart body has no file field named 'file' (fields sent: {fields})")
    data = await upload.read(settings.max_image_bytes + 1)
    await form.close()
    if len(data) > settings.max_image_bytes:
        raise too_large("image_too_large", f"image file exceeds {settings.max_image_bytes} bytes")
    try:
        return await decoder.decode(data, settings.max_image_pixels)
    except ImageError as exc:
        raise APIError(IMAGE_STATUS[exc.problem], exc.type, exc.message) from exc


async def _stream(incoming: Incoming) -> AsyncGenerator[bytes, None]:
    while True:
        message = await incoming.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body"):
            return
