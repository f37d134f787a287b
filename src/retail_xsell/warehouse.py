"""Where the built product lives: the DuckDB file that profiles.yml points dbt at."""

from __future__ import annotations

import os
from pathlib import Path

#: Default database file per dbt target, mirroring profiles.yml.
DEFAULT_PATHS = {"dev": "build/retail_xsell.duckdb", "ci": "build/ci.duckdb"}


def database_path(project_dir: Path | None = None) -> Path:
    """The DuckDB file dbt builds into, resolved the same way profiles.yml resolves it.

    RETAIL_XSELL_DUCKDB_PATH wins; otherwise the default of the target named by
    RETAIL_XSELL_TARGET (dev when unset). Relative paths are relative to the project.
    """
    project_dir = project_dir or Path.cwd()
    target = os.environ.get("RETAIL_XSELL_TARGET", "dev")
    if target not in DEFAULT_PATHS:
        raise ValueError(
            f"RETAIL_XSELL_TARGET must be one of {', '.join(DEFAULT_PATHS)}; got {target!r}"
        )
    path = Path(os.environ.get("RETAIL_XSELL_DUCKDB_PATH", DEFAULT_PATHS[target]))
    return path if path.is_absolute() else project_dir / path
