"""The effect journal: external effects that outlive the process that caused them.

A step declared with ``recover=`` is *journaled*. Before its operation runs,
the engine writes the step's intent (an ``EffectRecord``, state ``pending``)
under a key that is stable across retries of the same client request, and the
operation passes that key (``ctx.effect_key()``) to the external system as its
idempotency key. The run's own transaction settles the entry, so the entry is
``settled`` exactly when the run's data is committed. A run that fails
compensates its journaled steps at once; a run that dies (SIGKILL, OOM killer,
worker timeout) leaves its entries ``pending`` and ``recover_effects`` undoes
them once their lease has expired.

The rules, each with the failure it prevents:

1. The intent is committed, and waits for the disk, before the call goes out.
   A crash of the process or of the database server cannot leave an effect
   without an entry. (``ORCHESTRATION["JOURNAL_SYNCHRONOUS_COMMIT"] = False``
   trades that for an fsync less per call: a database crash within a moment of
   the call can then lose the intent.)
2. An entry leaves ``pending`` durably before anyone undoes its effect: the run
   that compensates, and recovery, first move it to ``compensating``; whoever
   cannot write that does not undo anything. So a ``pending`` entry's effect was
   never undone, and only a ``pending`` entry's key is ever used again (by a
   retry of a dead run's request, which gets the live effect back). A refunded
   charge can never be replayed as a new one.
3. An undo that was started but not recorded as done (``compensating`` past its
   lease) is found by recovery, which runs it again: compensations are
   idempotent under the effect's key.
4. A commit whose outcome is unknown (the connection broke during ``COMMIT``)
   is decided by the journal: ``settled`` means the run's transaction committed,
   and nothing of it is undone.

On PostgreSQL the journal writes on a connection of its own, outside the run's
transaction, so that an intent survives the run's process. SQLite allows one
writer: while the run's transaction holds the write lock no other connection
can write, so on SQLite the intent is written in the run's transaction and does
not survive a crash (the compensation of a failed run still does).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import (
    DEFAULT_DB_ALIAS,
    DatabaseError,
    InterfaceError,
    OperationalError,
    connections,
)
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from orchestration.batch import Statement
from orchestration.conf import get_config
from orchestration.errors import Conflict

PENDING = "pending"
SETTLED = "settled"
#: An undo is under way (or was interrupted): the key is never used again.
COMPENSATING = "compensating"
#: The run failed, undid the effect itself and told its client: the key may be used again.
ROLLED_BACK = "rolled_back"
#: The run died; recovery undid the effect. A retry of the request is refused.
COMPENSATED = "compensated"
ROLLBACK_INCOMPLETE = "rollback_incomplete"
UNSETTLED = (PENDING, COMPENSATING, ROLLBACK_INCOMPLETE)

#: Compensation retries wait RETRY_BACKOFF * 2**(attempts - 1) seconds, at most RETRY_MAX_BACKOFF.
RETRY_BACKOFF = 30.0
RETRY_MAX_BACKOFF = 3600.0

TABLE = "orchestration_effectrecord"


@dataclass(frozen=True, slots=True)
class Effect:
    """What a ``recover`` function knows of an effect: its key, and whose it was.

    ``attempts`` counts the compensations of this effect that failed so far.
    """

    key: str
    orchestrator: str
    step: str
    request_id: str = ""
    attempts: int = 0


class EffectInProgress(Conflict):
    code = "effect_in_progress"
    default_message = (
        "A request with the same idempotency key is still being processed; retry shortly "
        "to receive its response."
    )


class RequestRolledBack(Conflict):
    code = "request_rolled_back"
    default_message = (
        "A request with this idempotency key was interrupted and rolled back: its external "
        "effects (a payment, for example) were undone. Send it again with a new key."
    )


class EffectAlreadySettled(Conflict):
    code = "effect_already_settled"
    default_message = "A request with this idempotency key has already completed."


def effect_scope(user: Any, idempotency_key: str | None) -> str | None:
    """What a run's effect keys derive from: the user and the client's key.

    None without a client key: the run's own id is used then, so that only the
    retries of a step within the run share its key.
    """
    if idempotency_key is None:
        return None
    return f"user:{getattr(user, 'pk', None)}:{idempotency_key}"


def effect_key(scope: str, orchestrator: str, step: str, attempt: int = 0) -> str:
    """The idempotency key of one step's external call (64 hex characters).

    ``attempt`` counts the earlier runs of the same request that failed and
    rolled their effect back: a new attempt must not get the refunded charge back.
    """
    seed = f"{orchestrator}\x1f{step}\x1f{scope}\x1f{attempt}"
    return hashlib.sha256(seed.encode()).hexdigest()


def lease() -> timedelta:
    return timedelta(seconds=get_config()["EFFECT_LEASE"])


def retry_delay(attempts: int) -> timedelta:
    """How long a failed compensation waits before its attempt number ``attempts + 1``."""
    return timedelta(seconds=min(RETRY_MAX_BACKOFF, RETRY_BACKOFF * 2 ** max(0, attempts - 1)))


# -- the journal's connection ------------------------------------------------------

_private = threading.local()


def _own_connection(using: str) -> tuple[BaseDatabaseWrapper, bool]:
    """The connection the journal writes on (its own on PostgreSQL, the run's
    elsewhere), and whether it was opened just now."""
    shared = connections[using]
    if shared.vendor != "postgresql":
        return shared, False
    per_alias: dict[str, BaseDatabaseWrapper] = _private.__dict__.setdefault("connections", {})
    own = per_alias.get(using)
    if own is None:
        own = per_alias[using] = shared.copy()
        # A broken connection is closed after its error (below), not probed before each use.
        own.settings_dict["CONN_HEALTH_CHECKS"] = False
    # As Django does for its own connections at each request: honour CONN_MAX_AGE.
    own.close_if_unusable_or_obsolete()
    if own.connection is not None:
        return own, False
    own.ensure_connection()
    if not get_config()["JOURNAL_SYNCHRONOUS_COMMIT"]:
        with own.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO off")
    return own, True


def close_connections() -> None:
    """Close this thread's journal connections (before a test database is dropped)."""
    for own in _private.__dict__.get("connections", {}).values():
        own.close()


def _execute(using: str, sql: str, params: Iterable[Any]) -> Any:
    """Run one statement on the journal's connection.

    A connection that was opened earlier and is lost now (the server restarted
    since) is replaced, and the statement sent once more: every statement here is
    safe to repeat (a claim takes back an entry its own run holds; the others
    change an entry only from the state they expect).
    """
    params = list(params)
    while True:
        own, fresh = _own_connection(using)
        try:
            with own.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.rowcount, (cursor.fetchone() if cursor.description else None)
        except (OperationalError, InterfaceError):
            if own is connections[using]:
                raise
            own.close()
            if fresh:
                raise


def _timestamp(using: str, moment: datetime) -> Any:
    return connections[using].ops.adapt_datetimefield_value(moment)


# -- the run's side ---------------------------------------------------------------


def claim(
    *,
    scope: str,
    orchestrator: str,
    step: str,
    request_id: str,
    owner: str,
    using: str = DEFAULT_DB_ALIAS,
) -> Effect:
    """Record the intent of a step's effect for the run ``owner``, before its external call.

    A new key is inserted. A pending entry whose holder's lease has expired (its
    run died) is taken over: the same key reaches the external system, which
    answers with what it already did. An entry a failed run rolled back is
    skipped for the next attempt's key. Otherwise the key is not this run's to
    use and a ``Conflict`` says why.
    """
    attempt = 0
    while True:
        effect = Effect(
            key=effect_key(scope, orchestrator, step, attempt),
            orchestrator=orchestrator,
            step=step,
            request_id=request_id,
        )
        state = _claim_key(effect, owner=owner, using=using)
        if state is None:
            return effect
        if state == ROLLED_BACK:
            attempt += 1
        elif state == SETTLED:
            raise EffectAlreadySettled()
        elif state == PENDING:
            raise EffectInProgress()
        else:
            raise RequestRolledBack()


def _claim_key(effect: Effect, *, owner: str, using: str) -> str | None:
    """None when ``owner`` now holds the key; the state of the entry that holds it otherwise."""
    now = timezone.now()
    now_value, lease_value = _timestamp(using, now), _timestamp(using, now + lease())
    inserted, _ = _execute(
        using,
        f"INSERT INTO {TABLE} (key, orchestrator, step, request_id, owner, state, "
        "lease_until, attempts, last_error, created, updated) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 0, '', %s, %s) ON CONFLICT (key) DO NOTHING",
        (
            effect.key,
            effect.orchestrator,
            effect.step,
            effect.request_id[:64],
            owner,
            PENDING,
            lease_value,
            now_value,
            now_value,
        ),
    )
    if inserted == 1:
        return None
    # Only a pending entry is taken over: its effect was never undone (rule 2).
    taken, _ = _execute(
        using,
        f"UPDATE {TABLE} SET owner = %s, lease_until = %s, updated = %s "
        "WHERE key = %s AND state = %s AND (lease_until < %s OR owner = %s)",
        (owner, lease_value, now_value, effect.key, PENDING, now_value, owner),
    )
    if taken == 1:
        return None
    _, row = _execute(using, f"SELECT state FROM {TABLE} WHERE key = %s", (effect.key,))
    return row[0] if row else PENDING


def settle_statement(keys: Iterable[str], *, owner: str, using: str) -> Statement:
    """The ``UPDATE`` that marks the run's entries settled, to send in the run's own
    transaction (``orchestration.batch``); it counts the entries it settled."""
    keys = list(keys)
    marks = ", ".join(["%s"] * len(keys))
    return Statement(
        f"UPDATE {TABLE} SET state = %s, updated = %s "
        f"WHERE key IN ({marks}) AND owner = %s AND state = %s",
        [SETTLED, _timestamp(using, timezone.now()), *keys, owner, PENDING],
        counted=True,
    )


def begin_compensation(effect: Effect, *, owner: str, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Before the run ``owner`` undoes ``effect``: move its entry to ``compensating``.

    True when the run may undo the effect now. False when the entry is no longer
    the run's pending one: it was settled (the run's commit went through after
    all) or taken over. An upsert: on SQLite the entry was written in the
    transaction that just rolled back. Raises ``DatabaseError`` when the journal
    cannot be written: then nothing may be undone, and the entry stays
    ``pending`` for a retry of the request or for recovery.
    """
    now = timezone.now()
    written, _ = _execute(
        using,
        f"INSERT INTO {TABLE} AS entry (key, orchestrator, step, request_id, owner, state, "
        "lease_until, attempts, last_error, created, updated) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 0, '', %s, %s) "
        "ON CONFLICT (key) DO UPDATE SET state = excluded.state, "
        "lease_until = excluded.lease_until, updated = excluded.updated "
        "WHERE entry.owner = excluded.owner AND entry.state = %s",
        (
            effect.key,
            effect.orchestrator,
            effect.step,
            effect.request_id[:64],
            owner,
            COMPENSATING,
            _timestamp(using, now + lease()),
            _timestamp(using, now),
            _timestamp(using, now),
            PENDING,
        ),
    )
    return bool(written)


def record_compensation(
    effect: Effect, *, owner: str, error: str | None, using: str = DEFAULT_DB_ALIAS
) -> None:
    """After the run compensated ``effect`` in process: ``rolled_back``, or retried later.

    A failed compensation makes the entry ``rollback_incomplete`` and
    ``recover_effects`` tries again after a backoff. When even this write fails
    the entry stays ``compensating`` and recovery runs the compensation again
    once its lease has expired (rule 3).
    """
    now = timezone.now()
    failed = error is not None
    _execute(
        using,
        f"UPDATE {TABLE} SET state = %s, lease_until = %s, attempts = attempts + %s, "
        "last_error = %s, updated = %s WHERE key = %s AND owner = %s AND state = %s",
        (
            ROLLBACK_INCOMPLETE if failed else ROLLED_BACK,
            _timestamp(using, now + retry_delay(effect.attempts + 1) if failed else now),
            int(failed),
            error or "",
            _timestamp(using, now),
            effect.key,
            owner,
            COMPENSATING,
        ),
    )


def committed(keys: Iterable[str], *, owner: str, using: str = DEFAULT_DB_ALIAS) -> bool | None:
    """Whether the run ``owner``, whose commit failed with an unknown outcome, committed.

    Its entries are settled in its own transaction: settled means committed,
    still pending means not (rule 4). None when the journal cannot be read.
    """
    keys = list(keys)
    marks = ", ".join(["%s"] * len(keys))
    try:
        _, row = _execute(
            using,
            f"SELECT COUNT(*) FROM {TABLE} WHERE key IN ({marks}) AND owner = %s AND state = %s",
            (*keys, owner, SETTLED),
        )
    except DatabaseError:
        return None
    return bool(row[0])
