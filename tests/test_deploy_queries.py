"""Every GraphQL document ``deploy run`` sends is valid against the Dagster webserver's schema
of the pinned version (a renamed field or type fails here, not in a deploy)."""

import pytest
from dagster_graphql.schema import create_schema
from graphql import parse, validate

from ocr_deploy import queries

DOCUMENTS = {n: v for n, v in vars(queries).items() if n.isupper() and isinstance(v, str)}


def test_every_document_is_checked():
    assert {"RELOAD", "LAUNCH", "PROGRESS", "FAILURES", "CANCEL", "TERMINATE"} <= set(DOCUMENTS)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_document_is_valid_against_the_schema(name):
    assert validate(create_schema().graphql_schema, parse(DOCUMENTS[name])) == []
