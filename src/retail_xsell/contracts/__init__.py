"""Data contracts (ODCS v3.1.0) and the data product manifest (ODPS v1.0.0).

Generated from dbt's artifacts at every publication (docs/contracts.md):

- ``odcs``: one contract per tabular port (duckdb, parquet) and the raw input contract;
- ``odps``: ``dataproduct.yaml``, linking the contracts and describing the semantic layer;
- ``breaking``: the gate's check that a publication keeps the last one's promises;
- ``documents``: writing them, byte for byte, into a publication or any folder, and
  the ``retail-xsell contracts`` subcommand (``register``).
"""

from retail_xsell.contracts.breaking import (
    AcceptedChange,
    BreakingChange,
    ContractChangesError,
    breaking_change_measurement,
    breaking_changes,
    load_accepted_changes,
    load_contracts,
)
from retail_xsell.contracts.documents import (
    contract_path,
    dump_yaml,
    main_contracts,
    register,
    write_publication_documents,
)
from retail_xsell.contracts.odcs import ContractGenerationError, build_contracts
from retail_xsell.contracts.odps import build_data_product

__all__ = [
    "AcceptedChange",
    "BreakingChange",
    "ContractChangesError",
    "ContractGenerationError",
    "breaking_change_measurement",
    "breaking_changes",
    "build_contracts",
    "build_data_product",
    "contract_path",
    "dump_yaml",
    "load_accepted_changes",
    "load_contracts",
    "main_contracts",
    "register",
    "write_publication_documents",
]
