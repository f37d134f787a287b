"""Where the product's files are, and every environment variable the package reads.

One module, so that the dbt profile, make, the gate, publish, the semantic layer and the
(coming) API cannot disagree about which database is meant. Nothing here runs at
import: every value is read when it is asked for, so a test or a caller may change the
environment in between, and the dbt plugin (retail_xsell.pseudonyms) can import it.

Paths from environment variables keep profiles.yml's meaning: dbt hands them to DuckDB,
which resolves a relative path against the current folder, so they are relative to
the current folder here too (``base`` overrides that). The project's own files
(slos.yml, target/, contract_changes.yml, dbt_project.yml) are under
:func:`project_dir`.

| variable | read by | meaning |
| --- | --- | --- |
| RETAIL_XSELL_TARGET | :func:`dbt_target` | dbt target: dev, ci or published |
| RETAIL_XSELL_DUCKDB_PATH | :func:`database_path` | the working database |
| RETAIL_XSELL_PUBLISHED_PATH | :func:`published_path` | the database consumers read |
| RETAIL_XSELL_KEEP_PUBLICATIONS | :func:`keep_publications` | publications kept |
| RETAIL_XSELL_SLO_FILE | :func:`slo_file` | the SLO declarations |
| RETAIL_XSELL_PII_KEY | :func:`pii_key_text` | the pseudonymisation key |
| RETAIL_XSELL_API_SECRET | :func:`api_secret_text` | the API's token signing secret |
| RETAIL_XSELL_ENV | :func:`is_production` | ``production`` refuses development secrets |
| RETAIL_XSELL_POLICIES | :func:`policies_path` | the API's policy file |
| RETAIL_XSELL_AUDIT_LOG | :func:`audit_log_path` | the API's audit trail |
| PORT | :func:`api_port` | the API's port (make serve) |
| RETAIL_XSELL_TOKEN | :func:`api_token` | a bearer token for ``retail-xsell query`` |
| RETAIL_XSELL_MEMORY_LIMIT | :func:`duckdb_memory_limit` | DuckDB's memory limit |
| RETAIL_XSELL_TEMP_DIR | :func:`duckdb_temp_dir` | where DuckDB spills beyond it |

(profiles.yml reads the last two itself, with the same defaults, for dbt's DuckDB; the
functions serve the DuckDB connections the package opens for heavy work, such as the
lean reference pipeline of the build benchmark.)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

TARGET_ENV = "RETAIL_XSELL_TARGET"
DATABASE_ENV = "RETAIL_XSELL_DUCKDB_PATH"
PUBLISHED_ENV = "RETAIL_XSELL_PUBLISHED_PATH"
KEEP_ENV = "RETAIL_XSELL_KEEP_PUBLICATIONS"
SLO_FILE_ENV = "RETAIL_XSELL_SLO_FILE"
PII_KEY_ENV = "RETAIL_XSELL_PII_KEY"
API_SECRET_ENV = "RETAIL_XSELL_API_SECRET"
MODE_ENV = "RETAIL_XSELL_ENV"
POLICIES_ENV = "RETAIL_XSELL_POLICIES"
AUDIT_LOG_ENV = "RETAIL_XSELL_AUDIT_LOG"
PORT_ENV = "PORT"
TOKEN_ENV = "RETAIL_XSELL_TOKEN"
MEMORY_LIMIT_ENV = "RETAIL_XSELL_MEMORY_LIMIT"
TEMP_DIR_ENV = "RETAIL_XSELL_TEMP_DIR"

DEFAULT_TARGET = "dev"
#: The working database of each building target, as in profiles.yml.
DEFAULT_DATABASE_PATHS = {"dev": "build/retail_xsell.duckdb", "ci": "build/ci.duckdb"}
#: Where consumers read the product, as in profiles.yml's published target.
DEFAULT_PUBLISHED_PATH = "build/published/retail_xsell.duckdb"
DEFAULT_KEEP_PUBLICATIONS = 5
#: DuckDB's memory limit and spill folder when the variables are unset, as in profiles.yml.
DEFAULT_MEMORY_LIMIT = "50%"
DEFAULT_TEMP_DIR = "build/duckdb_tmp"
SLO_FILE_NAME = "slos.yml"
PROJECT_FILE = "dbt_project.yml"

#: The checkout this package is installed from (make installs it editable).
_CHECKOUT = Path(__file__).resolve().parents[2]


def _environ(environ: Mapping[str, str] | None) -> Mapping[str, str]:
    return os.environ if environ is None else environ


def _resolve(path: str | Path, base: Path | None) -> Path:
    path = Path(path)
    return path if path.is_absolute() else (base or Path.cwd()) / path


def project_dir() -> Path:
    """The dbt project: the current folder when it is one (make, CI and dbt itself run
    there), else the checkout this package is installed from, else the current folder."""
    cwd = Path.cwd()
    if (cwd / PROJECT_FILE).is_file():
        return cwd
    return _CHECKOUT if (_CHECKOUT / PROJECT_FILE).is_file() else cwd


def target_path(project: Path | None = None) -> Path:
    """dbt's artifacts folder: ``target/`` of the project (where ``mf`` looks, too)."""
    return (project or project_dir()) / "target"


def seeds_dir(project: Path | None = None) -> Path:
    """The committed sample (dbt seeds) the generator reproduces."""
    return (project or project_dir()) / "seeds"


def generated_data_dir(project: Path | None = None) -> Path:
    """Where generated raw data sets are kept (git-ignored), one folder per size."""
    return (project or project_dir()) / "data" / "generated"


def docs_site_dir(project: Path | None = None) -> Path:
    """Where the docs site is staged for serving (never target/ itself)."""
    return (project or project_dir()) / "build" / "docs-site"


def dbt_target(environ: Mapping[str, str] | None = None) -> str:
    """RETAIL_XSELL_TARGET: the dbt target profiles.yml selects (dev when unset)."""
    return _environ(environ).get(TARGET_ENV, DEFAULT_TARGET)


def database_path(base: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The working database: the DuckDB file dbt builds into, as profiles.yml resolves it.

    RETAIL_XSELL_DUCKDB_PATH wins; otherwise the default of the target named by
    RETAIL_XSELL_TARGET. Only building targets have a working database: ValueError
    otherwise. A relative path is relative to ``base`` (default: the current folder).
    """
    environ = _environ(environ)
    target = dbt_target(environ)
    if target not in DEFAULT_DATABASE_PATHS:
        raise ValueError(
            f"{TARGET_ENV} must be one of {', '.join(DEFAULT_DATABASE_PATHS)}; got {target!r}"
        )
    return _resolve(environ.get(DATABASE_ENV, DEFAULT_DATABASE_PATHS[target]), base)


def published_path(base: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The published database consumers read: RETAIL_XSELL_PUBLISHED_PATH, or the
    documented default. A relative path is relative to ``base`` (default: the current
    folder)."""
    return _resolve(_environ(environ).get(PUBLISHED_ENV, DEFAULT_PUBLISHED_PATH), base)


def keep_publications(environ: Mapping[str, str] | None = None) -> int:
    """RETAIL_XSELL_KEEP_PUBLICATIONS: how many publications to keep (at least 1)."""
    raw = _environ(environ).get(KEEP_ENV, str(DEFAULT_KEEP_PUBLICATIONS))
    try:
        keep = int(raw)
    except ValueError:
        keep = 0
    if keep < 1:
        raise ValueError(f"{KEEP_ENV} must be a whole number >= 1; got {raw!r}")
    return keep


def slo_file(project: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """The SLO declarations the gate evaluates: RETAIL_XSELL_SLO_FILE (relative to the
    current folder), or the project's slos.yml."""
    value = _environ(environ).get(SLO_FILE_ENV)
    return _resolve(value, None) if value else (project or project_dir()) / SLO_FILE_NAME


#: A build writes <working>.building, which then replaces the working database (build.py).
BUILDING_SUFFIX = ".building"


def building_path(working: Path) -> Path:
    """The file a build writes before it becomes the working database. A daily load
    works on the working database under this name too, so that dbt sees the same
    profile as in the last build and parses only what changed."""
    return working.with_name(working.name + BUILDING_SUFFIX)


def wal_path(database: Path) -> Path:
    """DuckDB's write-ahead log of ``database``: present while a writer has the file open,
    or after one was killed."""
    return database.with_name(database.name + ".wal")


def report_dir(database: Path) -> Path:
    """Where the gate writes its report and history: beside the working database, one
    folder per database file (``build/slo/<database stem>/``)."""
    return database.parent / "slo" / database.stem


def pii_key_text(environ: Mapping[str, str] | None = None) -> str:
    """RETAIL_XSELL_PII_KEY, surrounding whitespace removed ('' when unset); what it
    means is retail_xsell.pseudonyms' business."""
    return _environ(environ).get(PII_KEY_ENV, "").strip()


def api_secret_text(environ: Mapping[str, str] | None = None) -> str:
    """RETAIL_XSELL_API_SECRET, stripped ('' when unset); retail_xsell.delivery.auth
    decides what it may be."""
    return _environ(environ).get(API_SECRET_ENV, "").strip()


def is_production(environ: Mapping[str, str] | None = None) -> bool:
    """RETAIL_XSELL_ENV=production: development defaults are refused."""
    return _environ(environ).get(MODE_ENV, "").strip().lower() == "production"


def policies_path(environ: Mapping[str, str] | None = None) -> Path:
    """The API's policy file: RETAIL_XSELL_POLICIES, or policies.yml in the current
    folder (the project's, under make)."""
    value = _environ(environ).get(POLICIES_ENV, "").strip()
    return _resolve(value or "policies.yml", None)


def audit_log_path(environ: Mapping[str, str] | None = None) -> Path:
    """The API's audit trail: RETAIL_XSELL_AUDIT_LOG, or build/audit/access.jsonl in the
    current folder; absolute, so a later chdir cannot split one log into two."""
    value = _environ(environ).get(AUDIT_LOG_ENV, "").strip()
    return _resolve(Path(value).expanduser() if value else "build/audit/access.jsonl", None)


def api_port(environ: Mapping[str, str] | None = None) -> str:
    """PORT, or 8000 (checked by the serve command)."""
    return _environ(environ).get(PORT_ENV, "").strip() or "8000"


def api_token(environ: Mapping[str, str] | None = None) -> str:
    """RETAIL_XSELL_TOKEN ('' when unset): the token ``retail-xsell query`` sends."""
    return _environ(environ).get(TOKEN_ENV, "").strip()


def duckdb_memory_limit(environ: Mapping[str, str] | None = None) -> str:
    """RETAIL_XSELL_MEMORY_LIMIT: DuckDB's memory limit, a size (16GB) or a share of RAM
    (50%, the default, as in profiles.yml)."""
    return _environ(environ).get(MEMORY_LIMIT_ENV, "").strip() or DEFAULT_MEMORY_LIMIT


def duckdb_temp_dir(base: Path | None = None, environ: Mapping[str, str] | None = None) -> Path:
    """RETAIL_XSELL_TEMP_DIR: where DuckDB spills beyond its memory limit (default
    build/duckdb_tmp, as in profiles.yml), relative to ``base`` (default: the current
    folder, as DuckDB resolves it for dbt)."""
    value = _environ(environ).get(TEMP_DIR_ENV, "").strip()
    return _resolve(value or DEFAULT_TEMP_DIR, base)
