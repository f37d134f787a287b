"""Prove that the output ports carry no personal data in clear.

Two independent checks, both run by the quality gate on the working database (the
`published_pii` SLO blocks publication) and again by `publish` on the projection file it
is about to switch to, right before the switch:

1. **Classification.** A port column classified as personal data (``meta.pii``) must
   say how it was made safe (``meta.pii_treatment``: hashed, masked, generalised): the
   rule of :func:`retail_xsell.governance.is_pii_in_clear`.
2. **Values.** No value of a port is a raw personal value of any raw customer record
   (every version, rejected rows included), read from the data stewards' private base
   model:

   - email addresses, as entered and normalised, compared case- and space-insensitively
     with every text column;
   - phone numbers, as entered and as their digits (7 digits or more), compared with
     every text column and with the digits of every text value;
   - full names ("given family"), compared case- and space-insensitively with every
     text column. Single given or family names are not matched here: on real data they
     collide with ordinary words and brands (Rose, Jordan); a name column is caught by
     its classification instead, and the test suite checks single names on the sample;
   - birth dates: for every port with a ``customer_id`` column, no date or text column
     equals that customer's birth date on any row.

Only counts and column names are reported, never the values found.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from retail_xsell.ports import PortModel, qualified_name, quote_identifier, single_row

#: The data stewards' private model with every raw customer row parsed.
RAW_CUSTOMERS = "base_retail__customer_info"

_TEXT_TYPES = ("VARCHAR", "JSON")
_DATE_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")


@dataclass(frozen=True)
class Finding:
    port: str
    column: str
    kind: str  # classification, email, phone, name, birth_date
    rows: int

    @property
    def message(self) -> str:
        if self.kind == "classification":
            return f"{self.port}.{self.column}: classified as personal data without a treatment"
        return (
            f"{self.port}.{self.column}: {self.rows:,} value(s) equal a raw {self.kind} "
            "of a customer record"
        )


def classification_findings(ports: list[PortModel]) -> list[Finding]:
    """Port columns that hold personal data without a masking treatment."""
    return [
        Finding(port.identifier, column.name, "classification", 0)
        for port in ports
        for column in port.columns
        if column.is_pii_in_clear
    ]


def _load_raw_values(connection: duckdb.DuckDBPyConnection, raw_catalog: str) -> None:
    raw = f"{quote_identifier(raw_catalog)}.main.{RAW_CUSTOMERS}"
    connection.execute(
        f"""
        create or replace temp table pii_text as
        select distinct kind, value from (
            select 'email' as kind, lower(trim(email_as_entered)) as value from {raw}
            union all select 'email', lower(trim(email_normalised)) from {raw}
            union all select 'phone', lower(trim(phone_as_entered)) from {raw}
                where length(phone_digits) >= 7
            union all select 'name', lower(trim(first_name) || ' ' || trim(last_name))
                from {raw}
            union all select 'birth_date', trim(birth_date_as_entered) from {raw}
                where birth_date_parsed is not null
            union all select 'birth_date', cast(birth_date_parsed as varchar) from {raw}
        )
        -- Placeholders ('n/a', 'unknown') in a raw field are not personal data.
        where value is not null and (kind <> 'email' or value like '%@%')
        """
    )
    connection.execute(
        f"""
        create or replace temp table pii_phone_digits as
        select distinct phone_digits as digits from {raw}
        where length(phone_digits) >= 7
        """
    )
    connection.execute(
        f"""
        create or replace temp table pii_birth_dates as
        select distinct customer_id, birth_date_parsed as birth_date from {raw}
        where customer_id is not null and birth_date_parsed is not null
        """
    )


def value_findings(
    connection: duckdb.DuckDBPyConnection,
    ports: list[PortModel],
    ports_catalog: str,
    raw_catalog: str,
) -> list[Finding]:
    """Port columns in ``ports_catalog`` holding raw personal values from ``raw_catalog``."""
    _load_raw_values(connection, raw_catalog)
    findings = []
    for port in ports:
        relation = qualified_name(ports_catalog, port)
        columns = connection.execute(
            "select column_name, data_type from duckdb_columns()"
            " where database_name = ? and schema_name = ? and table_name = ?",
            [ports_catalog, port.schema, port.identifier],
        ).fetchall()
        names = {name for name, _ in columns}
        for name, data_type in columns:
            column = quote_identifier(name)
            if data_type in _TEXT_TYPES:
                rows = connection.execute(
                    f"""
                    with port_values as (
                        select distinct lower(trim(cast({column} as varchar))) as value
                        from {relation} where {column} is not null
                    )
                    select pii_text.kind, count(*) from port_values
                    join pii_text using (value) group by all
                    union all
                    select 'phone', count(*) from port_values
                    join pii_phone_digits
                        on regexp_replace(port_values.value, '[^0-9]', '', 'g')
                            = pii_phone_digits.digits
                    """
                ).fetchall()
                for kind, count in rows:
                    if count:
                        findings.append(Finding(port.identifier, name, kind, count))
            if (
                "customer_id" in names
                and name != "customer_id"
                and (data_type in _DATE_TYPES or data_type in _TEXT_TYPES)
            ):
                (count,) = single_row(
                    connection,
                    f"""
                    select count(*) from {relation} as port
                    join pii_birth_dates using (customer_id)
                    where try_cast(port.{column} as date) = pii_birth_dates.birth_date
                    """,
                )
                if count:
                    findings.append(Finding(port.identifier, name, "birth_date", count))
    return sorted(findings, key=lambda f: (f.port, f.column, f.kind))


def scan(
    connection: duckdb.DuckDBPyConnection,
    ports: list[PortModel],
    ports_catalog: str,
    raw_catalog: str,
) -> list[Finding]:
    """Every finding of both checks; an empty list means the ports are safe to ship."""
    return classification_findings(ports) + value_findings(
        connection, ports, ports_catalog, raw_catalog
    )
