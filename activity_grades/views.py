"""HTTP views of the app: the metrics endpoint (``include("activity_grades.urls")``).

``metrics_view`` answers ``GET .../metrics`` (Prometheus text exposition 0.0.4, or
OpenMetrics when the ``Accept`` header asks for it; needs the ``[prometheus]`` extra,
prometheus_client) and ``GET .../metrics?format=json`` (always). Access: a staff user
with the ``view_partition`` permission (session login), or ``Authorization: Bearer
<ACTIVITY_GRADES["METRICS_TOKEN"]>`` when that setting is set.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from .core.settings import app_settings
from .reporting.metrics import collect, public

_exposition: Callable[[dict[str, Any], str], tuple[bytes, str]] | None
try:
    from .reporting import prometheus

    _exposition = prometheus.exposition
except ImportError:  # the [prometheus] extra (prometheus_client) is not installed
    _exposition = None

__all__ = ["VIEW_PERMISSION", "metrics_view"]

VIEW_PERMISSION = "activity_grades.view_partition"


def _allowed(request: HttpRequest) -> bool:
    token = app_settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer "):
        return hmac.compare_digest(header[len("Bearer ") :].strip().encode(), str(token).encode())
    user = getattr(request, "user", None)
    return bool(user and user.is_active and user.is_staff and user.has_perm(VIEW_PERMISSION))


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        response = HttpResponse("forbidden\n", status=403, content_type="text/plain")
        user = getattr(request, "user", None)
        anonymous = user is None or not user.is_authenticated
        if anonymous and not request.headers.get("Authorization"):
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="activity_grades"'
        return response
    if request.GET.get("format") == "json":
        return JsonResponse(public(collect()), json_dumps_params={"indent": 1})
    if _exposition is None:
        return HttpResponse(
            "The Prometheus format needs prometheus_client: pip install "
            "'django-activity-grades[prometheus]'. ?format=json works without it.\n",
            status=501,
            content_type="text/plain",
        )
    body, content_type = _exposition(collect(), request.headers.get("Accept", ""))
    return HttpResponse(body, content_type=content_type)
