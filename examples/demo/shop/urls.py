from django.urls import path

from . import views

urlpatterns = [
    path("products/", views.product_list, name="product-list"),
    path("products/<int:pk>/", views.product_detail, name="product-detail"),
    path("n-plus-one/", views.n_plus_one, name="n-plus-one"),
    path("slow/", views.slow_query, name="slow-query"),
    path("cached/", views.cached, name="cached"),
    path("redis/", views.redis_view, name="redis"),
    path("sqlalchemy/", views.sqlalchemy_view, name="sqlalchemy"),
    path("async/", views.product_count_async, name="async-count"),
    path("boom/", views.boom, name="boom"),
]
