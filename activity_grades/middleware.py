"""``ReadYourWritesMiddleware``: after a request that wrote grades, the same browser's
next requests read the primary for the rest of READ_YOUR_WRITES_SECONDS.

A write opens the window in the request's context (``replicas.note_write``); the
response carries its end in a cookie, and a request that brings it reads the primary
until then: a teacher who saves a grade and is redirected to the gradebook sees it,
however far behind the replica is.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from . import replicas

__all__ = ["COOKIE", "ReadYourWritesMiddleware"]

COOKIE = "activity_grades_primary_until"


def _until(request: HttpRequest) -> float:
    try:
        value = float(request.COOKIES.get(COOKIE, "0"))
    except ValueError:
        return 0.0
    # A cookie from the future (forged, or a clock far off) pins no longer than a window.
    return min(value, time.time() + 3600) if math.isfinite(value) else 0.0


class ReadYourWritesMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        before = _until(request)
        token = replicas.pin_primary_until(before)
        try:
            response = self.get_response(request)
            after = replicas.primary_until()
        finally:
            replicas.unpin(token)
        left = after - time.time()
        if after > before and left > 0:
            response.set_cookie(
                COOKIE, f"{after:.3f}", max_age=math.ceil(left), httponly=True, samesite="Lax"
            )
        return response
