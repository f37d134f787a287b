"""Policies as code: every rule of retail_xsell.delivery.policies, on small files
written here and checked against the sample publication's catalog, and the repository's
policies.yml kept in step with the sample's semantic manifest."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
import yaml

from retail_xsell.delivery.catalog import Catalog
from retail_xsell.delivery.policies import (
    HARD_MAX_ROWS,
    EffectivePolicy,
    Mask,
    PolicyError,
    Scope,
    load_policies,
    parse_policies,
)
from retail_xsell.delivery.serving import open_publication
from retail_xsell.filters import Filter, Operator

from .attack_support import PRINCIPALS, catalog_document, semantic_manifest
from .conftest import POLICIES


@pytest.fixture(scope="module")
def catalog(sample_publication) -> Iterator[Catalog]:
    served = open_publication(sample_publication.published, POLICIES)
    try:
        yield served.catalog
    finally:
        served.close()


@pytest.fixture(scope="module")
def tagged(sample_publication) -> dict[str, set[str]]:
    """Metric names by tag, read straight from the publication's catalog.json."""
    by_tag: dict[str, set[str]] = {}
    for name, info in catalog_document(sample_publication.published)["metrics"].items():
        for tag in info["tags"]:
            by_tag.setdefault(tag, set()).add(name)
    return by_tag


def policy_text(groups: str, principals: str, attributes: str = "") -> str:
    """A policy file from its three sections, written as YAML blocks in the tests."""
    attributes = attributes or "region: {description: the customer region}"
    return (
        "version: 1\n"
        f"attributes:\n{textwrap.indent(textwrap.dedent(attributes).strip(), '  ')}\n"
        f"groups:\n{textwrap.indent(textwrap.dedent(groups).strip(), '  ')}\n"
        f"principals:\n{textwrap.indent(textwrap.dedent(principals).strip(), '  ')}\n"
    )


def effective(text: str, catalog: Catalog, principal: str = "p") -> EffectivePolicy:
    policies = parse_policies(text, catalog)
    found = policies.principal(principal)
    assert found is not None
    return policies.effective(found, catalog)


def refused(text: str, catalog: Catalog) -> str:
    with pytest.raises(PolicyError) as caught:
        parse_policies(text, catalog)
    return str(caught.value)


ONE_GROUP = """
    analysts:
      description: analysts
      scopes: [metadata, metrics]
      metrics: [clv]
      dimensions: [customer__region]
"""


# --- deny by default


def test_a_principal_without_groups_may_do_nothing(catalog):
    policy = effective(policy_text(ONE_GROUP, "p: {kind: person, groups: []}"), catalog)
    assert policy.scopes == frozenset()
    assert policy.metrics == frozenset()
    assert policy.dimensions == frozenset()
    assert dict(policy.masks) == {}
    assert policy.max_rows == 0
    assert not policy.may_group_by("customer__region")


def test_a_group_grants_only_what_it_lists(catalog):
    policy = effective(policy_text(ONE_GROUP, "p: {kind: person, groups: [analysts]}"), catalog)
    assert policy.scopes == {Scope.METADATA, Scope.METRICS}
    assert policy.metrics == {"clv"}
    assert policy.dimensions == {"customer__region"}
    assert not policy.may_group_by("customer__country")
    assert policy.row_filters == ()
    # The defaults of a group that says nothing about them.
    assert (policy.min_group_size, policy.max_rows) == (1, 1000)


def test_a_principal_not_in_the_file_is_nobody(catalog):
    policies = parse_policies(
        policy_text(ONE_GROUP, "p: {kind: person, groups: [analysts]}"), catalog
    )
    assert policies.principal("mallory") is None
    assert policies.principals == ["p"]


# --- the shape of the file: unknown keys and values, named with their path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\ngrups: {}\ngroups: {}\nprincipals: {}\n",
            "unknown key 'grups'",
        ),
        (
            policy_text("g: {description: d, metrcs: [clv]}", "p: {kind: person, groups: [g]}"),
            "unknown key 'groups.g.metrcs'",
        ),
        (
            policy_text(
                "g: {description: d}", "p: {kind: person, groups: [g], atributes: {region: x}}"
            ),
            "unknown key 'principals.p.atributes'",
        ),
        (
            policy_text(
                "g: {description: d, row_filters: "
                "[{dimension: customer__region, atribute: region}]}",
                "p: {kind: person, groups: [g]}",
            ),
            "unknown key 'groups.g.row_filters.0.atribute'",
        ),
        (
            policy_text(
                "g: {description: d}", "p: {kind: person}", "region: {description: r, typ: x}"
            ),
            "unknown key 'attributes.region.typ'",
        ),
    ],
    ids=["top-level", "group", "principal", "row-filter", "attribute"],
)
def test_an_unknown_key_is_refused_by_its_path(catalog, text, message):
    assert message in refused(text, catalog)
    assert "check its spelling" in refused(text, catalog)


@pytest.mark.parametrize(
    ("group", "where", "value"),
    [
        ("scopes: [metric]", "groups.g.scopes.0: Input should be", "(got 'metric')"),
        (
            "masked_dimensions: {customer__gender: blur}",
            "groups.g.masked_dimensions.customer__gender: Input should be 'hash' or 'redact'",
            "(got 'blur')",
        ),
        ("min_group_size: 0", "groups.g.min_group_size", "(got 0)"),
        (f"max_rows: {HARD_MAX_ROWS + 1}", "groups.g.max_rows", f"(got {HARD_MAX_ROWS + 1})"),
        ("max_rows: 0", "groups.g.max_rows", "(got 0)"),
    ],
    ids=["scope", "mask", "min-group-size", "max-rows-too-high", "max-rows-zero"],
)
def test_an_invalid_value_is_refused_by_its_path_and_value(catalog, group, where, value):
    text = policy_text(f"g:\n  description: d\n  {group}", "p: {kind: person, groups: [g]}")
    (line,) = refused(text, catalog).splitlines()
    assert line.startswith(f"policies.yml: {where}")
    assert line.endswith(value)


def test_a_principal_kind_outside_person_and_service_is_refused(catalog):
    text = policy_text("g: {description: d}", "p: {kind: robot, groups: [g]}")
    assert "principals.p.kind" in refused(text, catalog)


def test_only_version_1_is_read(catalog):
    assert "version" in refused("version: 2\ngroups: {}\nprincipals: {}\n", catalog)


def test_yaml_errors_and_non_mappings_are_refused(catalog):
    assert "not valid YAML" in refused("groups: [\n", catalog)
    assert "must be a mapping" in refused("- a\n- b\n", catalog)
    assert "must be a mapping" in refused("", catalog)


def test_names_must_be_lower_snake_case(catalog):
    problem = refused(policy_text("Sales-Team: {description: d}", "p: {kind: person}"), catalog)
    assert "Sales-Team" in problem


# --- every name checked against the publication, with a suggestion


@pytest.mark.parametrize(
    ("group", "message", "suggestion"),
    [
        ("metrics: [clvv]", "groups.g.metrics: unknown metric 'clvv'", "Did you mean 'clv'?"),
        (
            "metrics: ['tag:use_case:cros_sell']",
            "groups.g.metrics: no metric carries the tag 'use_case:cros_sell'",
            "Did you mean 'use_case:cross_sell'?",
        ),
        (
            "dimensions: [customer__regoin]",
            "groups.g.dimensions: unknown dimension 'customer__regoin'",
            "Did you mean 'customer__region'?",
        ),
        (
            "masked_dimensions: {customer__gendr: hash}",
            "groups.g.masked_dimensions: unknown dimension 'customer__gendr'",
            "Did you mean 'customer__gender'?",
        ),
        (
            "row_filters: [{dimension: customer__regin, values: [Europe]}]",
            "groups.g.row_filters: unknown dimension 'customer__regin'",
            "Did you mean 'customer__region'?",
        ),
        (
            "row_filters: [{dimension: customer__region, attribute: regoin}]",
            "groups.g.row_filters[0].attribute: unknown attribute 'regoin'",
            "Did you mean 'region'?",
        ),
    ],
    ids=["metric", "tag", "dimension", "masked-dimension", "row-filter-dimension", "attribute"],
)
def test_an_unknown_name_is_refused_with_its_path_value_and_a_suggestion(
    catalog, group, message, suggestion
):
    text = policy_text(
        f"g:\n  description: d\n  {group}",
        "p: {kind: person, groups: [g], attributes: {region: Europe}}",
    )
    problem = refused(text, catalog)
    line = next((line for line in problem.splitlines() if message in line), None)
    assert line is not None, problem
    assert line.startswith("policies.yml: ")
    assert line.endswith(suggestion)


def test_an_unknown_group_or_attribute_of_a_principal_is_refused(catalog):
    text = policy_text(
        "sales_rep: {description: d}",
        "p: {kind: person, groups: [sales_repp], attributes: {regoin: Europe}}",
    )
    problem = refused(text, catalog)
    assert "principals.p.groups: unknown group 'sales_repp'. Did you mean 'sales_rep'?" in problem
    assert "principals.p.attributes: unknown attribute 'regoin'. Did you mean 'region'?" in problem


def test_every_problem_is_listed_at_once(catalog):
    text = policy_text(
        "g: {description: d, metrics: [clvv, total_spendd], dimensions: [customer__regoin]}",
        "p: {kind: person, groups: [g, h]}",
    )
    problem = refused(text, catalog)
    for value in ("'clvv'", "'total_spendd'", "'customer__regoin'", "unknown group 'h'"):
        assert value in problem
    assert len(problem.splitlines()) == 4


def test_a_principal_without_the_attribute_its_row_filter_needs_is_refused(catalog):
    text = policy_text(
        """
        sales_rep:
          description: d
          row_filters: [{dimension: customer__region, attribute: region}]
        """,
        """
        erik: {kind: person, groups: [sales_rep], attributes: {region: Europe}}
        nobody: {kind: person, groups: [sales_rep]}
        """,
    )
    problem = refused(text, catalog)
    assert (
        "principals.nobody: group 'sales_rep' filters rows by the attribute 'region', "
        "which this principal does not have"
    ) in problem
    assert "principals.erik" not in problem


@pytest.mark.parametrize(
    ("row_filter", "message"),
    [
        ("{dimension: customer__region}", "give exactly one of attribute and values"),
        (
            "{dimension: customer__region, attribute: region, values: [Europe]}",
            "give exactly one of attribute and values",
        ),
        ("{dimension: order__channel, values: [web]}", "row filters bind customer dimensions"),
    ],
    ids=["neither", "both", "not-a-customer-dimension"],
)
def test_a_row_filter_must_bind_one_customer_dimension_to_one_source(catalog, row_filter, message):
    text = policy_text(
        f"g: {{description: d, row_filters: [{row_filter}]}}",
        "p: {kind: person, groups: [g], attributes: {region: Europe}}",
    )
    assert "groups.g.row_filters[0]" in refused(text, catalog)
    assert message in refused(text, catalog)


def test_a_dimension_both_clear_and_masked_in_one_group_is_refused(catalog):
    text = policy_text(
        """
        g:
          description: d
          dimensions: [customer__gender]
          masked_dimensions: {customer__gender: hash}
        """,
        "p: {kind: person, groups: [g]}",
    )
    assert "groups.g: 'customer__gender' is both granted in clear" in refused(text, catalog)


@pytest.mark.parametrize(
    ("row_filter", "attributes"),
    [
        ("{dimension: customer__region, operator: in, values: []}", "{}"),
        ("{dimension: customer__region, attribute: region}", "{region: []}"),
    ],
    ids=["no-values", "empty-attribute"],
)
def test_a_row_filter_that_cannot_be_built_is_refused_at_load(catalog, row_filter, attributes):
    text = policy_text(
        f"g: {{description: d, scopes: [metrics], metrics: [clv], row_filters: [{row_filter}]}}",
        f"p: {{kind: person, groups: [g], attributes: {attributes}}}",
    )
    with pytest.raises(PolicyError):
        parse_policies(text, catalog)


@pytest.mark.parametrize(
    ("row_filter", "attributes"),
    [
        ("{dimension: customer__region, operator: ne, values: [Europe, Asia Pacific]}", "{}"),
        (
            "{dimension: customer__region, operator: ne, attribute: region}",
            "{region: [Europe, Asia Pacific]}",
        ),
    ],
    ids=["ne-two-values", "ne-two-attribute-values"],
)
def test_ne_with_several_values_excludes_them_all(catalog, row_filter, attributes):
    text = policy_text(
        f"g: {{description: d, scopes: [metrics], metrics: [clv], row_filters: [{row_filter}]}}",
        f"p: {{kind: person, groups: [g], attributes: {attributes}}}",
    )
    policies = parse_policies(text, catalog)
    principal = policies.principal("p")
    assert principal is not None
    (condition,) = policies.effective(principal, catalog).row_filters
    assert condition.operator.value == "not_in"
    assert set(condition.values) == {"Europe", "Asia Pacific"}


# --- several groups: grants united, restrictions intersected

TWO_GROUPS = """
    a:
      description: a
      scopes: [metadata, metrics]
      metrics: [clv]
      dimensions: [customer__region, customer__gender]
      min_group_size: 5
      max_rows: 500
    b:
      description: b
      scopes: [saved_queries, export]
      metrics: [total_spend, order_count]
      dimensions: [customer__country, product__category]
      min_group_size: 20
      max_rows: 5000
"""


def test_grants_of_several_groups_are_united(catalog):
    policy = effective(policy_text(TWO_GROUPS, "p: {kind: person, groups: [a, b]}"), catalog)
    assert policy.scopes == {Scope.METADATA, Scope.METRICS, Scope.SAVED_QUERIES, Scope.EXPORT}
    assert policy.metrics == {"clv", "total_spend", "order_count"}
    assert policy.dimensions == {
        "customer__region",
        "customer__gender",
        "customer__country",
        "product__category",
    }


def test_the_largest_min_group_size_and_the_smallest_max_rows_apply(catalog):
    for groups in ("[a, b]", "[b, a]"):
        policy = effective(
            policy_text(TWO_GROUPS, f"p: {{kind: person, groups: {groups}}}"), catalog
        )
        assert (policy.min_group_size, policy.max_rows) == (20, 500)
    alone = effective(policy_text(TWO_GROUPS, "p: {kind: person, groups: [b]}"), catalog)
    assert (alone.min_group_size, alone.max_rows) == (20, 5000)


def test_row_filters_of_several_groups_all_apply(catalog):
    text = policy_text(
        """
        sales_rep:
          description: d
          scopes: [metrics]
          metrics: [clv]
          row_filters: [{dimension: customer__region, attribute: region}]
        no_unknown_country:
          description: d
          scopes: [metrics, export]
          metrics: [total_spend]
          row_filters: [{dimension: customer__country, operator: not_in, values: [Unknown]}]
        open:
          description: grants everything, restricts nothing
          scopes: [metrics]
          metrics: ["tag:domain:retail"]
        """,
        "p: {kind: person, groups: [sales_rep, no_unknown_country, open], "
        "attributes: {region: Europe}}",
    )
    policy = effective(text, catalog)
    assert set(policy.row_filters) == {
        Filter(dimension="customer__region", operator=Operator.IN, values=("Europe",)),
        Filter(dimension="customer__country", operator=Operator.NOT_IN, values=("Unknown",)),
    }


def test_a_sales_rep_who_also_markets_stays_held_to_the_region(catalog):
    """lena of policies.yml: marketing's grants, sales_rep's region filter still on."""
    policies = load_policies(POLICIES, catalog)
    lena = policies.principal("lena")
    maria = policies.principal("maria")
    erik = policies.principal("erik")
    assert lena is not None and maria is not None and erik is not None
    lena_policy = policies.effective(lena, catalog)
    maria_policy = policies.effective(maria, catalog)
    erik_policy = policies.effective(erik, catalog)
    assert lena_policy.row_filters == (
        Filter(dimension="customer__region", operator=Operator.IN, values=("Europe",)),
    )
    assert lena_policy.metrics == maria_policy.metrics | erik_policy.metrics
    assert lena_policy.metrics > erik_policy.metrics
    assert (lena_policy.min_group_size, lena_policy.max_rows) == (10, 500)
    assert lena_policy.masks == {"customer__gender": Mask.HASH}


def test_an_attribute_with_several_values_filters_by_all_of_them(catalog):
    text = policy_text(
        "g: {description: d, row_filters: "
        "[{dimension: customer__region, operator: eq, attribute: region}]}",
        "p: {kind: person, groups: [g], attributes: {region: [Europe, North America]}}",
    )
    (row_filter,) = effective(text, catalog).row_filters
    assert row_filter.operator is Operator.IN
    assert row_filter.values == ("Europe", "North America")


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("{customer__gender: hash}", "{customer__gender: redact}", Mask.REDACT),
        ("{customer__gender: redact}", "{customer__gender: hash}", Mask.REDACT),
        ("{customer__gender: hash}", "{customer__gender: hash}", Mask.HASH),
        ("{customer__gender: hash}", "{}", Mask.HASH),
    ],
    ids=["hash-then-redact", "redact-then-hash", "hash-twice", "hash-and-clear"],
)
def test_the_strictest_mask_wins(catalog, first, second, expected):
    text = policy_text(
        f"""
        one: {{description: d, masked_dimensions: {first}}}
        two: {{description: d, dimensions: [customer__country], masked_dimensions: {second}}}
        clear: {{description: d, dimensions: [customer__gender]}}
        """,
        "p: {kind: person, groups: [one, two, clear]}",
    )
    policy = effective(text, catalog)
    assert dict(policy.masks) == {"customer__gender": expected}
    # masked in one group, clear in another: masked (groupable, never in clear)
    assert "customer__gender" not in policy.dimensions
    assert policy.may_group_by("customer__gender")
    assert policy.describe()["masked_dimensions"] == {"customer__gender": expected.value}


def test_a_dimension_clear_in_every_group_stays_clear(catalog):
    text = policy_text(
        """
        one: {description: d, dimensions: [customer__gender]}
        two: {description: d, dimensions: [customer__gender]}
        """,
        "p: {kind: person, groups: [one, two]}",
    )
    policy = effective(text, catalog)
    assert "customer__gender" in policy.dimensions and dict(policy.masks) == {}


# --- tags


@pytest.mark.parametrize(
    "tag", ["use_case:cross_sell", "use_case:clv", "use_case:reporting", "domain:retail"]
)
def test_a_tag_grants_exactly_the_metrics_carrying_it(catalog, tagged, tag):
    text = policy_text(
        f"g: {{description: d, metrics: ['tag:{tag}']}}", "p: {kind: person, groups: [g]}"
    )
    assert effective(text, catalog).metrics == tagged[tag]
    assert tagged[tag]


def test_tags_and_names_unite(catalog, tagged):
    text = policy_text(
        "g: {description: d, metrics: ['tag:use_case:cross_sell', clv, probability_alive]}",
        "p: {kind: person, groups: [g]}",
    )
    assert effective(text, catalog).metrics == tagged["use_case:cross_sell"] | {
        "clv",
        "probability_alive",
    }


# --- the repository's policies.yml and the sample publication


def test_the_repository_policies_load_against_the_sample(catalog):
    policies = load_policies(POLICIES, catalog)
    assert policies.principals == sorted(PRINCIPALS)


def test_every_name_in_the_repository_policies_exists_in_the_sample(sample_publication, tagged):
    """Read independently of parse_policies: the YAML against semantic_manifest.json
    (metrics, entities, dimensions) and catalog.json (tags, dimension names)."""
    document = yaml.safe_load(POLICIES.read_text())
    manifest = semantic_manifest(sample_publication.published)
    described = catalog_document(sample_publication.published)["dimensions"]
    metrics = {metric["name"] for metric in manifest["metrics"]}
    dimensions = {"metric_time"}
    for model in manifest["semantic_models"]:
        dimensions |= {entity["name"] for entity in model["entities"]}
        for entity in model["entities"]:
            if entity["type"] == "primary":
                dimensions |= {f"{entity['name']}__{d['name']}" for d in model["dimensions"]}
    attributes = set(document.get("attributes") or {})
    problems = []
    for name, group in document["groups"].items():
        for entry in group.get("metrics") or []:
            if entry.startswith("tag:"):
                if not tagged.get(entry[4:]):
                    problems.append(f"{name}: no metric tagged {entry}")
            elif entry not in metrics:
                problems.append(f"{name}: unknown metric {entry}")
        used = [
            *(group.get("dimensions") or []),
            *(group.get("masked_dimensions") or {}),
            *(f["dimension"] for f in group.get("row_filters") or []),
        ]
        for dimension in used:
            if dimension not in dimensions or dimension not in described:
                problems.append(f"{name}: unknown dimension {dimension}")
        for row_filter in group.get("row_filters") or []:
            if "attribute" in row_filter and row_filter["attribute"] not in attributes:
                problems.append(f"{name}: undeclared attribute {row_filter['attribute']}")
    for name, principal in document["principals"].items():
        for group in principal.get("groups") or []:
            if group not in document["groups"]:
                problems.append(f"{name}: unknown group {group}")
    assert problems == []
    assert set(document["principals"]) == set(PRINCIPALS)
    # the saved queries the policies are written for exist in the sample
    assert {query["name"] for query in manifest["saved_queries"]} >= {
        "executive_monthly_kpis",
        "marketing_customer_value",
        "sales_cross_sell_potential",
    }
