"""Keyed pseudonyms for personal data: HMAC-SHA-256 with a key that never enters SQL.

A salted SHA-256 whose salt is written into the SQL text leaks the salt into every
artifact dbt writes (compiled SQL, manifest.json, run_results.json, the partial-parse
cache, dbt.log) and into the docs site, and with the public default salt the customers
mart was reversed from a list of addresses in a hundredth of a second. So the key lives
only here, in the memory of the process that builds:

- ``Plugin`` is a dbt-duckdb plugin (profiles.yml ``plugins: [{module:
  retail_xsell.pseudonyms}]``). It reads the key from the environment variable
  ``RETAIL_XSELL_PII_KEY`` and registers three DuckDB functions on dbt's connection:
  ``pii_hmac(varchar) -> varchar`` (hex HMAC-SHA-256, 64 characters; null stays null),
  ``pii_key_is_development() -> boolean`` and ``pii_key_fingerprint() -> varchar``.
  The macro ``hmac_sha256`` (macros/pii.sql) emits only ``pii_hmac(<expression>)``, so
  the SQL that dbt compiles, logs and stores names a function, never the key.
- ``public_schemes`` are the public keys the gate's check (slos.yml,
  ``development_pseudonym_key`` in :mod:`retail_xsell.quality.measurements`) tries on
  a sample of the built pseudonyms, so that real (non-sample) data pseudonymised with
  one is never published. It reads the built data, not a flag, so it cannot be fooled
  by a stale record.

Key format: the value of RETAIL_XSELL_PII_KEY, surrounding whitespace removed, is used
as UTF-8 text; ``hex:<digits>`` gives the raw bytes instead. It must be at least
MIN_KEY_BYTES long (``openssl rand -hex 32`` prints a good one). Unset or empty means
the development key below, which is public.

Nothing downstream of the build needs the key: publication copies values, and the
semantic layer and the API never compute a pseudonym. A model that calls ``pii_hmac``
must be materialised as a table: a view would call a function that exists only on a
build connection.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from retail_xsell import settings

if TYPE_CHECKING:  # pragma: no cover
    import duckdb
    import pyarrow as pa

KEY_ENV = settings.PII_KEY_ENV
#: PUBLIC. For development and the committed sample only: anyone can recompute every
#: pseudonym made with it. Building real data with it warns, and the gate's
#: `pseudonym_key_not_development` objective blocks its publication.
DEVELOPMENT_KEY = "retail-xsell-DEVELOPMENT-ONLY-public-pseudonym-key-never-use-on-real-data"
MIN_KEY_BYTES = 32
#: The fingerprint is the HMAC of this fixed label: it tells keys apart in logs and
#: reports and reveals nothing about the key (or about any pseudonym).
FINGERPRINT_LABEL = b"retail_xsell pseudonym key fingerprint v1"
#: The scheme before HMAC (sha256(salt || value)) with its public default salt: the gate
#: treats a build that still carries it like one made with the development key.
LEGACY_DEVELOPMENT_SALT = "retail-xsell-development-salt"


class PseudonymKeyError(ValueError):
    """RETAIL_XSELL_PII_KEY is set but unusable (too short, or bad hex)."""


@dataclass(frozen=True)
class PseudonymKey:
    """The pseudonymisation key. Its repr never shows the secret."""

    secret: bytes = field(repr=False)
    is_development: bool

    @property
    def fingerprint(self) -> str:
        return hmac.new(self.secret, FINGERPRINT_LABEL, hashlib.sha256).hexdigest()[:16]

    def pseudonym(self, value: str | None) -> str | None:
        """What ``pii_hmac(value)`` returns: hex HMAC-SHA-256 of the UTF-8 value."""
        return None if value is None else self.digest(value)

    def digest(self, value: str) -> str:
        """Hex HMAC-SHA-256 of the UTF-8 ``value`` under this key."""
        return hmac.new(self.secret, value.encode(), hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        kind = "development" if self.is_development else "secret"
        return f"PseudonymKey({kind}, fingerprint={self.fingerprint})"


def parse_key(text: str) -> bytes:
    """The key bytes of a RETAIL_XSELL_PII_KEY value (UTF-8 text, or ``hex:<digits>``)."""
    text = text.strip()
    if text.lower().startswith("hex:"):
        try:
            secret = bytes.fromhex(text[4:])
        except ValueError:
            raise PseudonymKeyError(f"{KEY_ENV}: 'hex:' is not followed by hex digits") from None
    else:
        secret = text.encode()
    if len(secret) < MIN_KEY_BYTES:
        # Never echo the value: this message reaches dbt's log.
        raise PseudonymKeyError(
            f"{KEY_ENV} is {len(secret)} bytes; use at least {MIN_KEY_BYTES} random bytes "
            "(e.g. the output of `openssl rand -hex 32`)"
        )
    return secret


def load_key(environ: Mapping[str, str] | None = None) -> PseudonymKey:
    """The key from the environment; unset or empty gives the public development key."""
    value = settings.pii_key_text(environ)
    development = DEVELOPMENT_KEY.encode()
    if not value:
        return PseudonymKey(development, is_development=True)
    secret = parse_key(value)
    return PseudonymKey(secret, is_development=hmac.compare_digest(secret, development))


# --- the DuckDB functions ----------------------------------------------------------


def hmac_arrow(key: PseudonymKey) -> Callable[[pa.Array], pa.Array]:
    """A vectorised ``pii_hmac``: one call per DuckDB chunk, hex HMAC per value.

    HMAC as RFC 2104 builds it, with the inner and outer SHA-256 states keyed once; each
    value then costs two copies, updates and digests in C (the stdlib's hmac.new pays a
    key schedule per value, twice as slow), and the hex strings are written as one
    buffer. tests/python/test_pseudonyms.py checks it against hmac.new.
    """
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    block = key.secret if len(key.secret) <= 64 else hashlib.sha256(key.secret).digest()
    block = block.ljust(64, b"\0")
    inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
    empty = bytes(32)

    # No annotations on the functions handed to DuckDB: it evaluates them at
    # registration, where pyarrow's names are not in this module's globals.
    def pii_hmac(values):
        if isinstance(values, pa.ChunkedArray):
            values = values.combine_chunks()
        inner_copy, outer_copy = inner.copy, outer.copy
        digests: list[bytes] = []
        append = digests.append
        for value in values.cast(pa.large_binary()).to_pylist():
            if value is None:
                append(empty)
                continue
            state = inner_copy()
            state.update(value)
            final = outer_copy()
            final.update(state.digest())
            append(final.digest())
        count = len(digests)
        offsets = np.arange(0, 64 * (count + 1), 64, dtype=np.int32)
        hexed = b"".join(digests).hex().encode()
        result = pa.StringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(hexed))
        if values.null_count:
            result = pc.if_else(values.is_valid(), result, pa.scalar(None, pa.string()))
        return result

    return pii_hmac


def _refusing(error: Exception) -> tuple[Callable[..., Any], ...]:
    """The three functions for an unusable key: each raises the key's error."""

    # No annotations: DuckDB reads them at registration.
    def pii_hmac(value):
        raise error

    def no_argument():
        raise error

    return pii_hmac, no_argument, no_argument


def register(connection: duckdb.DuckDBPyConnection, key: PseudonymKey | Exception) -> None:
    """Register pii_hmac, pii_key_is_development and pii_key_fingerprint.

    Given an unusable key (the exception it raised), the functions still exist but fail
    when called, so commands that never pseudonymise (docs, the semantic layer) work
    and a build stops at its first pseudonym with the reason.
    """
    from duckdb.func import ARROW, NATIVE, SPECIAL
    from duckdb.sqltypes import BOOLEAN, VARCHAR

    if isinstance(key, Exception):
        hashing, is_development, fingerprint = _refusing(key)
        kind = NATIVE
    else:
        hashing = hmac_arrow(key)
        flag, mark = key.is_development, key.fingerprint

        # No annotations: DuckDB reads them at registration.
        def is_development():
            return flag

        def fingerprint():
            return mark

        kind = ARROW
    connection.create_function(
        "pii_hmac", hashing, [VARCHAR], VARCHAR, type=kind, null_handling=SPECIAL
    )
    connection.create_function("pii_key_is_development", is_development, [], BOOLEAN)
    connection.create_function("pii_key_fingerprint", fingerprint, [], VARCHAR)


def _plugin_class() -> type:
    from dbt.adapters.duckdb.plugins import BasePlugin

    class Plugin(BasePlugin):
        """dbt-duckdb plugin: the pseudonym functions on every connection dbt opens."""

        def initialize(self, plugin_config: dict[str, Any]) -> None:
            try:
                self.key: PseudonymKey | Exception = load_key()
            except PseudonymKeyError as error:
                self.key = error

        def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
            register(conn, self.key)

    return Plugin


def __getattr__(name: str) -> Any:
    # The plugin class is built on first use, so that the gate, which imports this
    # module for its measurement, does not import dbt's adapter machinery.
    if name == "Plugin":
        globals()["Plugin"] = plugin = _plugin_class()
        return plugin
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# --- what the gate checks against ---------------------------------------------------


def _legacy_pseudonym(value: str) -> str:
    return hashlib.sha256((LEGACY_DEVELOPMENT_SALT + value).encode()).hexdigest()


def public_schemes() -> dict[str, Callable[[str], str]]:
    """Every public way a pseudonym may have been made, by name: the development key and
    the old scheme's default salt. A build whose pseudonyms match one of them can be
    reversed by anyone (the gate's ``development_pseudonym_key`` measurement)."""
    development = PseudonymKey(DEVELOPMENT_KEY.encode(), is_development=True)
    return {
        "the development key": development.digest,
        f"the old public salt '{LEGACY_DEVELOPMENT_SALT}'": _legacy_pseudonym,
    }
