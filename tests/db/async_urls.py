from asgiref.sync import sync_to_async
from django.http import HttpRequest, JsonResponse
from django.urls import path
from shop.models import Product


def _names() -> list[tuple[str, str]]:
    return [(p.name, p.category.name) for p in Product.objects.order_by("id")]


async def async_n_plus_one(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"products": await sync_to_async(_names)()})


urlpatterns = [path("db/async-n-plus-one/", async_n_plus_one)]
