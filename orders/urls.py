"""Mounted under /api/ by config/urls.py."""

from django.urls import path

from orders import views

app_name = "orders"

urlpatterns = [
    path("orders/", views.OrderListCreateView.as_view(), name="order-list"),
    path("orders/quote/", views.QuoteView.as_view(), name="order-quote"),
    path("orders/quote/async/", views.quote_async, name="order-quote-async"),
    path("orders/<int:pk>/", views.OrderDetailView.as_view(), name="order-detail"),
    path("orders/<int:pk>/cancel/", views.CancelOrderView.as_view(), name="order-cancel"),
    path("products/", views.ProductListView.as_view(), name="product-list"),
    path("products/<int:pk>/", views.ProductDetailView.as_view(), name="product-detail"),
]
