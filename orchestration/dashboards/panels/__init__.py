"""One builder per panel, each taking the ``Scope`` it covers.

``runs`` answers for whole runs (one orchestrator, or several split by
orchestrator), ``steps`` for the steps of runs, ``http`` for the requests and
database queries that django-prometheus counts.
"""
