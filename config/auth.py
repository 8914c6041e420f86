"""JWT sessions that end, and authentication errors that say what is wrong.

- A refresh chain (a login and every rotation after it) carries the time of the
  login (``auth_time``); no token of the chain outlives ``JWT_SESSION_MAX_AGE``
  after it, however often it is rotated. A refresh token minted without one
  (simplejwt's ``RefreshToken.for_user``) starts its session when it was issued
  (its ``iat``), and its rotations carry that time on.
- Changing a user's password or deactivating the user blacklists every
  outstanding refresh token of theirs; access tokens carry a hash of the
  password (simplejwt's ``CHECK_REVOKE_TOKEN``), so they stop working at once.
- An expired access token is refused with the usual ``token_not_valid`` code and
  a message that says it expired; an ``Authorization`` header with another
  scheme than ``Bearer`` is refused as such instead of being ignored.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Self, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_save
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework import serializers
from rest_framework_simplejwt import serializers as jwt_serializers
from rest_framework_simplejwt.authentication import AUTH_HEADER_TYPE_BYTES
from rest_framework_simplejwt.authentication import JWTAuthentication as BaseJWTAuthentication
from rest_framework_simplejwt.exceptions import (
    AuthenticationFailed,
    ExpiredTokenError,
    InvalidToken,
    TokenError,
)
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import datetime_from_epoch, datetime_to_epoch

AUTH_TIME_CLAIM = "auth_time"


class SessionRefreshToken(RefreshToken):
    """A refresh token whose expiry never passes the session's maximum age."""

    @classmethod
    def for_user(cls, user: Any) -> Self:
        """A new session's first refresh token: its issue time starts the maximum age."""
        token = cast(Self, super().for_user(user))
        token[AUTH_TIME_CLAIM] = datetime_to_epoch(token.current_time)
        token.set_exp()
        return token

    def verify(self) -> None:
        """Refuse a token whose session is over, whatever its own expiry says.

        A token without ``auth_time`` (minted by ``RefreshToken.for_user``) began its
        session no earlier than it was issued: its ``iat`` becomes the session's start,
        and a rotation carries it on, so the maximum age applies to it as well.
        """
        super().verify()
        if AUTH_TIME_CLAIM not in self.payload:
            issued_at = self.payload.get("iat")
            if not isinstance(issued_at, int | float):
                raise TokenError("The refresh token has no issue time; sign in again.")
            self.payload[AUTH_TIME_CLAIM] = issued_at
        session_end = datetime_from_epoch(self.payload[AUTH_TIME_CLAIM]) + (
            settings.JWT_SESSION_MAX_AGE
        )
        if self.current_time >= session_end:
            raise TokenError(
                "The session has reached its maximum age; sign in again at /api/auth/token/."
            )

    def set_exp(
        self,
        claim: str = "exp",
        from_time: datetime | None = None,
        lifetime: timedelta | None = None,
    ) -> None:
        super().set_exp(claim, from_time, lifetime)
        auth_time = self.payload.get(AUTH_TIME_CLAIM)
        if claim == "exp" and auth_time is not None:
            session_end = datetime_from_epoch(auth_time) + settings.JWT_SESSION_MAX_AGE
            self.payload[claim] = min(self.payload[claim], datetime_to_epoch(session_end))


class TokenObtainPairSerializer(jwt_serializers.TokenObtainPairSerializer):
    token_class = SessionRefreshToken

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # No longer than the model allows: a longer one cannot exist, and the login
        # lockout records the username of every failed attempt.
        field = get_user_model()._meta.get_field(self.username_field)
        self.fields[self.username_field] = serializers.CharField(
            write_only=True, max_length=getattr(field, "max_length", None)
        )


class TokenRefreshSerializer(jwt_serializers.TokenRefreshSerializer):
    token_class = SessionRefreshToken


class JWTAuthentication(BaseJWTAuthentication):
    """simplejwt's authentication, with errors that tell a client what to do."""

    def get_raw_token(self, header: bytes) -> bytes | None:
        parts = header.split()
        if parts and parts[0] not in AUTH_HEADER_TYPE_BYTES:
            raise AuthenticationFailed(
                "The Authorization header must use the Bearer scheme: "
                "`Authorization: Bearer <access token>`.",
                code="bad_authorization_header",
            )
        return super().get_raw_token(header)

    def get_validated_token(self, raw_token: bytes) -> Token:
        expired = False
        for token_class in api_settings.AUTH_TOKEN_CLASSES:
            try:
                return token_class(raw_token)
            except ExpiredTokenError:
                expired = True
            except TokenError:
                pass
        if expired:
            raise InvalidToken(
                "The access token has expired; get a new one from /api/auth/token/refresh/."
            )
        raise InvalidToken("The token is not valid: malformed, forged or signed with another key.")


def revoke_refresh_tokens(user: Any) -> int:
    """Blacklist every outstanding refresh token of ``user``; how many were still valid."""
    outstanding = OutstandingToken.objects.filter(user=user, blacklistedtoken__isnull=True)
    revoked = [BlacklistedToken(token=token) for token in outstanding]
    BlacklistedToken.objects.bulk_create(revoked, ignore_conflicts=True)
    return len(revoked)


_SESSION_FIELDS = {"password", "is_active"}


def _remember_session_fields(sender: Any, instance: Any, update_fields: Any, **kwargs: Any) -> None:
    instance._session_fields_before = None
    if instance.pk is None or (
        update_fields is not None and not _SESSION_FIELDS & set(update_fields)
    ):
        return
    instance._session_fields_before = (
        sender.objects.filter(pk=instance.pk).values_list("password", "is_active").first()
    )


def _end_sessions_on_change(sender: Any, instance: Any, created: bool, **kwargs: Any) -> None:
    before = getattr(instance, "_session_fields_before", None)
    if created or before is None:
        return
    password, was_active = before
    if instance.password != password or (was_active and not instance.is_active):
        revoke_refresh_tokens(instance)


def connect_session_signals() -> None:
    user_model = get_user_model()
    pre_save.connect(_remember_session_fields, sender=user_model, dispatch_uid="jwt-session-pre")
    post_save.connect(_end_sessions_on_change, sender=user_model, dispatch_uid="jwt-session-post")


class JWTAuthenticationScheme(SimpleJWTScheme):
    """The OpenAPI security scheme of ``JWTAuthentication`` (simplejwt's, bearer JWT)."""

    target_class = "config.auth.JWTAuthentication"
