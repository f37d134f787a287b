"""Bearer tokens: signed JWTs naming a principal of policies.yml.

The API verifies every token's signature (HS256 with ``RETAIL_XSELL_API_SECRET``), its
issuer, audience, expiry and issue time, and that its subject is a principal of the
policy file; anything else is a 401. Only HS256 is accepted (``alg: none`` and key
confusion are refused by construction).

The secret has a documented development default, public in this repository, so the
sample runs out of the box. With ``RETAIL_XSELL_ENV=production`` the service refuses to
start on the default, or on a secret shorter than :data:`MIN_SECRET_BYTES`.
``retail-xsell token PRINCIPAL`` issues development tokens.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import jwt

from retail_xsell import settings

SECRET_ENV = settings.API_SECRET_ENV
MODE_ENV = settings.MODE_ENV
#: Public, in the repository: for the sample and tests only.
DEVELOPMENT_SECRET = "retail-xsell-DEVELOPMENT-ONLY-api-secret-never-use-in-production"
MIN_SECRET_BYTES = 32
ISSUER = "retail-xsell"
AUDIENCE = "retail-xsell-api"
ALGORITHM = "HS256"
#: A token lives at most this long (issued tokens default to 8 hours).
MAX_TOKEN_HOURS = 24 * 30
LEEWAY_SECONDS = 30


class AuthConfigError(RuntimeError):
    """The API secret is unusable for the mode the service runs in."""


class InvalidTokenError(Exception):
    """No, a malformed, forged, expired or otherwise unacceptable token."""


@dataclass(frozen=True)
class ApiSecret:
    value: bytes
    is_development: bool

    def __repr__(self) -> str:  # never print the secret
        return f"ApiSecret(development={self.is_development})"


def is_production(environ: Mapping[str, str] | None = None) -> bool:
    return settings.is_production(environ)


def load_secret(environ: Mapping[str, str] | None = None) -> ApiSecret:
    """The signing secret, refusing the development default in production mode."""
    text = settings.api_secret_text(environ)
    production = is_production(environ)
    if not text:
        if production:
            raise AuthConfigError(
                f"{MODE_ENV}=production and {SECRET_ENV} is not set: set it to at least "
                f"{MIN_SECRET_BYTES} random bytes (openssl rand -hex 32); the development "
                "default is public and refused in production"
            )
        return ApiSecret(DEVELOPMENT_SECRET.encode(), is_development=True)
    if text == DEVELOPMENT_SECRET and production:
        raise AuthConfigError(
            f"{SECRET_ENV} is the public development default; refused with {MODE_ENV}=production"
        )
    if len(text.encode()) < MIN_SECRET_BYTES:
        raise AuthConfigError(
            f"{SECRET_ENV} is {len(text.encode())} bytes; use at least {MIN_SECRET_BYTES}"
        )
    return ApiSecret(text.encode(), is_development=text == DEVELOPMENT_SECRET)


def issue_token(
    secret: ApiSecret, principal: str, hours: float = 8.0, now: dt.datetime | None = None
) -> str:
    if not 0 < hours <= MAX_TOKEN_HOURS:
        raise ValueError(f"hours must be above 0 and at most {MAX_TOKEN_HOURS}; got {hours}")
    now = now or dt.datetime.now(dt.UTC)
    claims = {
        "sub": principal,
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(now.timestamp()),
        "nbf": int(now.timestamp()),
        "exp": int((now + dt.timedelta(hours=hours)).timestamp()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, secret.value, algorithm=ALGORITHM)


def verify_token(secret: ApiSecret, authorization: str | None) -> str:
    """The principal named by a valid ``Authorization: Bearer <jwt>`` header."""
    if not authorization:
        raise InvalidTokenError("no bearer token: send Authorization: Bearer <token>")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise InvalidTokenError("the Authorization header must be 'Bearer <token>'")
    try:
        claims = jwt.decode(
            token.strip(),
            secret.value,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            leeway=LEEWAY_SECONDS,
            options={"require": ["sub", "exp", "iat", "iss", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidTokenError("the token has expired") from None
    except jwt.InvalidTokenError:
        raise InvalidTokenError(
            "the token is not valid (signature, issuer, audience or form)"
        ) from None
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise InvalidTokenError("the token names no principal")
    issued, expires = claims.get("iat"), claims.get("exp")
    if not isinstance(issued, int | float) or issued > dt.datetime.now(dt.UTC).timestamp() + 60:
        raise InvalidTokenError("the token's issue time is in the future")
    if not isinstance(expires, int | float) or expires - issued > MAX_TOKEN_HOURS * 3600:
        raise InvalidTokenError(f"the token lives longer than {MAX_TOKEN_HOURS} hours")
    return subject
