"""HTTP views of the app: the metrics endpoint (``include("activity_grades.urls")``).

``metrics_view`` answers ``GET .../metrics`` (Prometheus text exposition 0.0.4) and
``GET .../metrics?format=json``. Access: a staff user with the ``view_partition``
permission (session login), or ``Authorization: Bearer <ACTIVITY_GRADES["METRICS_TOKEN"]>``
when that setting is set.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from .core.settings import app_settings
from .reporting.metrics import collect, prometheus_text

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
    data = collect()
    if request.GET.get("format") == "json":
        public = {k: v for k, v in data.items() if not k.startswith("_")}
        return JsonResponse(public, json_dumps_params={"indent": 1})
    return HttpResponse(
        prometheus_text(data), content_type="text/plain; version=0.0.4; charset=utf-8"
    )
