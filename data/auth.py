"""Users, passwords, bearer tokens.

Passwords are hashed with argon2id.  Tokens are 256-bit random strings, so a
plain SHA-256 of them is stored (a slow hash adds nothing against a guess of
2^256); the token itself is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine, func, select, update

from data.models import ROLES, ApiToken, Enterprise, User

_hasher = PasswordHasher()

# A revoked token or a changed role is honoured within this many seconds in
# every web process; the cache saves one SQL round trip per API request.
TOKEN_CACHE_S = 10.0


@dataclass(frozen=True, slots=True)
class Principal:
    user_id: int
    username: str
    role: str
    streets: tuple[str, ...] = field(default_factory=tuple)
    grids: tuple[str, ...] = field(default_factory=tuple)
    display_name: str | None = None
    inspector_id: str | None = None
    enterprise_id: str | None = None  # role enterprise: the one enterprise it is bound to

    def sees_area(self, street_id: str | None, grid_id: str | None) -> bool:
        """Officers see only their own streets/grids; an enterprise account sees no
        area (only its own enterprise: ``sees_enterprise``); other roles see the city."""
        if self.role == "enterprise":
            return False
        if self.role != "officer":
            return True
        if self.grids:
            return grid_id in self.grids
        return street_id in self.streets

    def sees_enterprise(self, enterprise_id: str, street_id: str | None, grid_id: str | None) -> bool:
        """An enterprise account sees its own enterprise only; the others by area."""
        if self.role == "enterprise":
            return enterprise_id is not None and enterprise_id == self.enterprise_id
        return self.sees_area(street_id, grid_id)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _principal(u) -> Principal:
    """From a row of the users table."""
    return Principal(u.id, u.username, u.role, tuple(u.streets or ()), tuple(u.grids or ()), u.display_name,
                     u.inspector_id, u.enterprise_id)


def get_user(engine: Engine, username: str) -> Principal | None:
    with engine.connect() as conn:
        u = conn.execute(select(User.__table__).where(User.username == username)).first()
    return None if u is None else _principal(u)


def display_names(engine: Engine) -> dict[str, str]:
    """username -> display name, of every account that has one (a history names people)."""
    with engine.connect() as conn:
        return {u: n for u, n in conn.execute(select(User.username, User.display_name)) if n}


def active_user(engine: Engine, uid: int) -> Principal | None:
    """The user with id ``uid``, if that account exists and is active (a login session's user)."""
    with engine.connect() as conn:
        u = conn.execute(select(User.__table__).where(User.id == uid, User.active.is_(True))).first()
    return None if u is None else _principal(u)


def enterprise_exists(engine: Engine, enterprise_id: str) -> bool:
    """Whether an enterprise account may be bound to `enterprise_id` (`user create --enterprise`)."""
    with engine.connect() as conn:
        return conn.execute(select(Enterprise.id).where(Enterprise.id == enterprise_id)).first() is not None


def create_user(engine: Engine, username: str, password: str | None, role: str, *,
                streets=(), grids=(), display_name: str | None = None, inspector_id: str | None = None,
                enterprise_id: str | None = None) -> Principal:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if (role == "enterprise") != (enterprise_id is not None):
        raise ValueError("an enterprise account is bound to exactly one enterprise (enterprise_id), "
                         "and only an enterprise account is")
    with engine.begin() as conn:
        existing = conn.execute(select(User.id).where(User.username == username)).first()
        values = dict(username=username, role=role, streets=list(streets), grids=list(grids),
                      display_name=display_name, inspector_id=inspector_id, enterprise_id=enterprise_id,
                      password_hash=hash_password(password) if password else None, active=True)
        if existing:
            conn.execute(User.__table__.update().where(User.username == username).values(**values))
        else:
            conn.execute(User.__table__.insert().values(**values))
        u = conn.execute(select(User.__table__).where(User.username == username)).one()
    return _principal(u)


def check_password(engine: Engine, username: str, password: str) -> Principal | None:
    with engine.connect() as conn:
        u = conn.execute(select(User.__table__).where(User.username == username, User.active.is_(True))).first()
    if u is None or not u.password_hash:
        # Same cost as a real check, so timing does not reveal which usernames exist.
        try:
            _hasher.verify(_DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            pass
        return None
    try:
        _hasher.verify(u.password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    return _principal(u)


_DUMMY_HASH = _hasher.hash("not a password")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, role: str, username: str | None = None) -> tuple[str, Principal]:
    """Create a bearer token for ``username`` (a service account per role if None)."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if username is None:
        with engine.connect() as conn:
            n = conn.execute(select(func.count()).select_from(User).where(User.role == role)).scalar_one()
        username = f"api-{role}-{n + 1}"
        principal = create_user(engine, username, None, role)
    else:
        principal = get_user(engine, username)
        if principal is None:
            raise ValueError(f"no user {username!r}")
    token = "aj_" + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(ApiToken.__table__.insert().values(token_hash=_token_hash(token), user_id=principal.user_id,
                                                        created_at=time.time(), revoked=False))
    return token, principal


def list_tokens(engine: Engine, username: str | None = None) -> list[dict]:
    """Every token (of ``username``): its id, user, role, creation time and whether it is
    revoked; never the token, which the server does not keep."""
    q = (select(ApiToken.id, ApiToken.created_at, ApiToken.revoked, User.username, User.role, User.active)
         .join(User, User.id == ApiToken.user_id).order_by(ApiToken.id))
    if username is not None:
        q = q.where(User.username == username)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(q)]


def revoke_tokens(engine: Engine, *, token_id: int | None = None, username: str | None = None) -> list[dict]:
    """Revoke one token (``token_id``) or every token of ``username``; the tokens that were
    live and are revoked now.  ValueError when neither names anything.  Refused from the
    next request on, after TOKEN_CACHE_S at most (each web process's cache)."""
    if (token_id is None) == (username is None):
        raise ValueError("name one token id or one user")
    found = [t for t in list_tokens(engine, username) if token_id is None or t["id"] == token_id]
    if not found:
        raise ValueError(f"no token {token_id}" if token_id is not None else f"no token of user {username!r}")
    live = [t for t in found if not t["revoked"]]
    if live:
        with engine.begin() as conn:
            conn.execute(update(ApiToken).where(ApiToken.id.in_([t["id"] for t in live])).values(revoked=True))
    return live


def set_active(engine: Engine, username: str, active: bool) -> Principal | None:
    """Let a user in again or keep them out (``active``): a deactivated user's login
    sessions and tokens are refused within TOKEN_CACHE_S; their history stays."""
    with engine.begin() as conn:
        n = conn.execute(update(User).where(User.username == username).values(active=active)).rowcount
    if n != 1:
        raise ValueError(f"no user {username!r}")
    return get_user(engine, username)


class TokenAuthenticator:
    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def authenticate(self, token: str) -> Principal | None:
        h = _token_hash(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(h)
        if hit and now - hit[0] < TOKEN_CACHE_S:
            return hit[1]
        with self.engine.connect() as conn:
            u = conn.execute(
                select(User.__table__)
                .join(ApiToken, ApiToken.user_id == User.id)
                .where(ApiToken.token_hash == h, ApiToken.revoked.is_(False), User.active.is_(True))
            ).first()
        p = None if u is None else _principal(u)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[h] = (now, p)
        return p
