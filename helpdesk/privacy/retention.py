"""Retention periods: the owner's settings in ``data/shop.toml`` [retention].

The shop's privacy policy (section 10) promises to keep personal data only "as long as we
need it to provide services to you"; it names no periods. The periods are the owner's
decision, written in ``data/shop.toml`` and read here at each use (edits apply at once).
``helpdesk.privacy.purge`` applies them.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path


class RetentionError(ValueError):
    """The [retention] table of data/shop.toml is missing a period or holds a bad one."""


@dataclass(frozen=True, slots=True)
class Retention:
    photos_after_close_days: int
    tickets_anonymized_after_days: int
    inbound_raw_days: int
    faq_queries_days: int
    outbox_sent_days: int
    export_link_days: int


def load_retention(path: Path) -> Retention:
    """Read ``[retention]`` of ``path``; raises ``RetentionError`` naming the bad key."""
    with path.open("rb") as file:
        table = tomllib.load(file).get("retention")
    if not isinstance(table, dict):
        raise RetentionError(f"{path}: [retention] is missing")
    values: dict[str, int] = {}
    for item in fields(Retention):
        value = table.get(item.name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise RetentionError(
                f"{path}: retention.{item.name} must be a whole number of days >= 1"
            )
        values[item.name] = value
    return Retention(**values)
