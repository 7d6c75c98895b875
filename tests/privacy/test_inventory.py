"""The privacy inventory declares every table and column of the models, and only those."""

from __future__ import annotations

from sqlmodel import SQLModel

import helpdesk.models  # noqa: F401  (registers every table)
from helpdesk.privacy.inventory import FILES, PLACES, Handling, place


def test_every_table_and_column_of_the_models_is_declared() -> None:
    tables = {
        table.name: {c.name for c in table.columns} for table in SQLModel.metadata.tables.values()
    }
    declared = {item.table: set(item.columns) for item in PLACES}
    missing_tables = sorted(set(tables) - set(declared))
    assert not missing_tables, f"tables without a privacy declaration: {missing_tables}"
    assert not sorted(set(declared) - set(tables)), "declared tables that do not exist"
    for name, columns in tables.items():
        assert columns - declared[name] == set(), f"{name}: columns without a declaration"
        assert declared[name] - columns == set(), f"{name}: declared columns that do not exist"


def test_each_table_is_declared_once() -> None:
    names = [item.table for item in PLACES]
    assert len(names) == len(set(names))


def test_the_places_the_issue_names_hold_personal_data() -> None:
    personal = {Handling.erased, Handling.deleted, Handling.masked, Handling.staff}
    for table, column in [
        ("customer", "email"),
        ("customer", "name"),
        ("ticket", "customer_name"),
        ("ticket", "order_number"),
        ("message", "body"),
        ("attachment", "digest"),
        ("outbox", "text"),
        ("inbound_mail", "raw"),
        ("ticket_event", "actor"),
        ("ticket_event", "data"),
        ("faq_feedback", "query"),
        ("faq_gap", "query"),
        ("csat_response", "comment"),
        ("agent", "email"),
    ]:
        assert place(table).columns[column] in personal, (table, column)


def test_files_and_logs_are_declared() -> None:
    assert {item.name for item in FILES} >= {"media", "mail_files", "logs", "exports"}
