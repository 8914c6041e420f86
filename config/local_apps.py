"""The project's own Django apps, in load order.

`manage.py generate service` appends new apps here; every app listed that has a
`urls` module is mounted under `/api/` by `config/urls.py`.
"""

LOCAL_APPS = [
    "orchestration",
    "orders",
]
