"""The demo's URLs and ``pid/``: which worker process served the request.

``?sleep=S`` holds the worker for S seconds (at most 1), so that concurrent requests reach
every worker of a server rather than the first one free.
"""

import os
import time

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def pid(request: HttpRequest) -> HttpResponse:
    time.sleep(min(float(request.GET.get("sleep", "0")), 1.0))
    return HttpResponse(str(os.getpid()), content_type="text/plain")


urlpatterns = [
    path("pid/", pid),
    path("", include("demo.urls")),
]
