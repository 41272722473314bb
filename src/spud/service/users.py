"""Organisations, users (argon2 passwords), API keys shown once, and browser logins."""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from datetime import datetime, timedelta
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import BaseModel
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import sessionmaker

from spud.core.errors import ConfigError, SpudError
from spud.service.tables import ApiKeyRow, LoginRow, OrgRow, UserRow
from spud.store.models import utcnow
from spud.store.sql import SqlStore

Role = Literal["admin", "member", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "member", "viewer")
KEY_PREFIX = "spud_"
LOGIN_DAYS = 7
# API keys looked up are remembered this long: a key revoked through this process is refused
# at once, one revoked by another process (a second server on the same database) within this.
KEY_CACHE_S = 5.0
KEY_CACHE_SIZE = 10_000
SIGN_IN_LINK_S = 60  # a one-time sign-in token is good this long
ONCE = "once:"  # hashed before a one-time token, so it never matches a login cookie
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}$")
_hasher = PasswordHasher()


class Principal(BaseModel):
    """Who is asking: a user, their organisation and their role there."""

    user_id: str
    username: str
    org_id: str
    org: str
    role: Role

    @property
    def can_write(self) -> bool:
        return self.role != "viewer"

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class KeyInfo(BaseModel):
    """An API key without its secret."""

    id: str
    name: str
    prefix: str
    created_at: datetime
    revoked: bool


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_name(kind: str, name: str) -> str:
    """Names of users and organisations: letters, digits and _ . @ -, at most 100."""
    if not NAME.match(name):
        raise ConfigError(
            f"{kind} name {name!r} is not allowed: use letters, digits, _ . @ - (at most 100)"
        )
    return name


class UserService:
    """Users, organisations, keys and logins in the store."""

    def __init__(self, store: SqlStore) -> None:
        self._db = sessionmaker(store.engine, expire_on_commit=False)
        self._keys: dict[str, tuple[Principal, float]] = {}  # key hash -> (who, looked up at)
        self._revocations = 0  # a lookup that saw fewer may not fill the cache

    # -- organisations and users ------------------------------------------------------

    def has_users(self) -> bool:
        with self._db() as db:
            return bool(db.scalar(select(func.count()).select_from(UserRow)))

    def org_id(self, name: str, create: bool = False) -> str:
        """The id of the organisation called name (created when asked)."""
        check_name("organisation", name)
        with self._db.begin() as db:
            row = db.scalar(select(OrgRow).where(OrgRow.name == name))
            if row is None:
                if not create:
                    raise SpudError(f"no organisation {name!r}")
                row = OrgRow(name=name)
                db.add(row)
                db.flush()
            return row.id

    def add_user(self, username: str, password: str, org: str, role: Role = "member") -> Principal:
        """Create a user in organisation org (created if new); the password is hashed."""
        check_name("user", username)
        if role not in ROLES:
            raise ConfigError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if len(password) < 8:
            raise ConfigError("the password must have at least 8 characters")
        org_id = self.org_id(org, create=True)
        with self._db.begin() as db:
            if db.scalar(select(UserRow.id).where(UserRow.username == username)):
                raise ConfigError(f"user {username!r} already exists")
            row = UserRow(
                org_id=org_id, username=username, password_hash=_hasher.hash(password), role=role
            )
            db.add(row)
        return self.principal(row.id)

    def principal(self, user_id: str) -> Principal:
        with self._db() as db:
            found = db.execute(
                select(UserRow, OrgRow.name)
                .join(OrgRow, OrgRow.id == UserRow.org_id)
                .where(UserRow.id == user_id)
            ).first()
        if found is None:
            raise SpudError(f"no user {user_id!r}")
        user, org = found
        return Principal(
            user_id=user.id, username=user.username, org_id=user.org_id, org=org, role=user.role
        )

    def by_name(self, username: str) -> Principal:
        with self._db() as db:
            user_id = db.scalar(select(UserRow.id).where(UserRow.username == username))
        if user_id is None:
            raise SpudError(f"no user {username!r} (add one with `spud users add`)")
        return self.principal(user_id)

    def users(self, org_id: str | None = None) -> list[Principal]:
        """Users of one organisation (or all), oldest first."""
        query = select(UserRow.id).order_by(UserRow.created_at, UserRow.username)
        if org_id is not None:
            query = query.where(UserRow.org_id == org_id)
        with self._db() as db:
            ids = list(db.scalars(query))
        return [self.principal(i) for i in ids]

    def authenticate(self, username: str, password: str) -> Principal | None:
        """The user if the password is right, else None (same work either way)."""
        with self._db() as db:
            row = db.scalar(select(UserRow).where(UserRow.username == username))
        if row is None:
            _hasher.hash(password)  # spend the same time as a real check
            return None
        try:
            _hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        return self.principal(row.id)

    # -- API keys ---------------------------------------------------------------------

    def create_key(self, user_id: str, name: str = "") -> tuple[KeyInfo, str]:
        """A new API key for the user: its info and the secret, which is shown only now."""
        secret = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKeyRow(
            user_id=user_id, name=name[:100], prefix=secret[:12], key_hash=_sha256(secret)
        )
        with self._db.begin() as db:
            db.add(row)
        return _key_info(row), secret

    def keys(self, user_id: str) -> list[KeyInfo]:
        query = select(ApiKeyRow).where(ApiKeyRow.user_id == user_id).order_by(ApiKeyRow.created_at)
        with self._db() as db:
            return [_key_info(r) for r in db.scalars(query)]

    def revoke_key(self, user_id: str, key_id: str) -> bool:
        """Revoke one of the user's keys; False when they have no such key."""
        change = (
            update(ApiKeyRow)
            .where(ApiKeyRow.id == key_id, ApiKeyRow.user_id == user_id)
            .values(revoked_at=utcnow())
        )
        with self._db.begin() as db:
            revoked = db.execute(change).rowcount > 0
        self._revocations += 1
        self._keys.clear()  # refused here at once; other processes within KEY_CACHE_S
        return revoked

    def cached_key(self, secret: str) -> Principal | None:
        """The key's user if it was looked up here less than KEY_CACHE_S ago, else None."""
        hit = self._keys.get(_sha256(secret))
        if hit is None or time.monotonic() - hit[1] >= KEY_CACHE_S:
            return None
        return hit[0]

    def user_for_key(self, secret: str) -> Principal | None:
        if not secret.startswith(KEY_PREFIX):
            return None
        if who := self.cached_key(secret):
            return who
        revocations, digest = self._revocations, _sha256(secret)
        query = select(ApiKeyRow.user_id).where(
            ApiKeyRow.key_hash == digest, ApiKeyRow.revoked_at.is_(None)
        )
        with self._db() as db:
            user_id = db.scalar(query)
        if not user_id:
            return None
        who = self.principal(user_id)
        if revocations == self._revocations:  # no revocation since the lookup began
            if len(self._keys) >= KEY_CACHE_SIZE:
                self._keys.clear()
            self._keys[digest] = (who, time.monotonic())
        return who

    # -- browser logins ---------------------------------------------------------------

    def login(self, user_id: str) -> str:
        """Start a browser login; returns the cookie token (only its hash is stored)."""
        return self._new_login(user_id, timedelta(days=LOGIN_DAYS))

    def _new_login(self, user_id: str, lasts: timedelta, prefix: str = "") -> str:
        token = secrets.token_urlsafe(32)
        now = utcnow()
        row = LoginRow(
            token_hash=_sha256(prefix + token),
            user_id=user_id,
            created_at=now,
            expires_at=now + lasts,
        )
        with self._db.begin() as db:
            db.add(row)
        return token

    def user_for_login(self, token: str) -> Principal | None:
        query = select(LoginRow.user_id).where(
            LoginRow.token_hash == _sha256(token), LoginRow.expires_at > utcnow()
        )
        with self._db() as db:
            user_id = db.scalar(query)
        return self.principal(user_id) if user_id else None

    def logout(self, token: str) -> None:
        with self._db.begin() as db:
            db.execute(delete(LoginRow).where(LoginRow.token_hash == _sha256(token)))

    def sign_in_link(self, user_id: str, seconds: int = SIGN_IN_LINK_S) -> str:
        """A one-time token that signs the user in once, within seconds (`spud desktop`).

        Stored as a login row under another hash, so the token itself is never a cookie.
        """
        return self._new_login(user_id, timedelta(seconds=seconds), ONCE)

    def redeem_sign_in_link(self, token: str) -> Principal | None:
        """The user a one-time token was made for, if it is unused and fresh; it is used now."""
        key = _sha256(ONCE + token)
        with self._db.begin() as db:
            row = db.execute(
                select(LoginRow.user_id, LoginRow.expires_at).where(LoginRow.token_hash == key)
            ).first()
            used = db.execute(delete(LoginRow).where(LoginRow.token_hash == key)).rowcount
        if row is None or used != 1 or row.expires_at <= utcnow():
            return None  # unknown, already used (here or by a racing request), or stale
        return self.principal(row.user_id)


def _key_info(row: ApiKeyRow) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        revoked=row.revoked_at is not None,
    )
