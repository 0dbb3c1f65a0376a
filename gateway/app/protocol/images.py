"""Uploaded images decoded off the event loop, on a bounded pool.

Decoding is the one CPU-heavy step of a request (a large photo costs tens to hundreds of
milliseconds, a 16-megapixel PNG about a second): on the event loop it would stall every other
request, /healthz included. Here it runs on ``threads`` worker threads (Pillow and numpy release the
GIL for most of it); at most ``queue`` more uploads wait for one, and past that an upload is refused
at once (503 ``decoder_busy``) rather than queued without bound. The file's size and pixel count are
checked before any pixel is decoded (mnist_serving/image.py).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from gateway.app.core.errors import APIError
from mnist_serving.image import decode_image


class ImageDecoder:
    def __init__(self, threads: int, queue: int):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="image-decode")
        self._capacity = threads + queue
        self.pending = 0

    async def decode(self, data: bytes, max_pixels: int) -> np.ndarray:
        if self.pending >= self._capacity:
            error = APIError(503, "decoder_busy", f"{self.pending} images are being decoded; retry later")
            error.headers = {"Retry-After": "1"}
            raise error
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, decode_image, data, max_pixels)
        finally:
            self.pending -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
