"""The FAQ's daily counters: questions asked and answered, forms with suggestions.

The questions are not stored (only the unanswered ones, as gaps), so they are counted: in
memory per day (Japan) as they come, and added to ``faq_daily`` in one statement per day
by the FAQ's gap writer (``FaqService.flush_gaps``), off the request path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from helpdesk.models import FaqDaily


@dataclass(slots=True)
class DayCounts:
    asked: int = 0
    answered: int = 0
    suggested: int = 0

    def __bool__(self) -> bool:
        return bool(self.asked or self.suggested)


async def add_counts(session: AsyncSession, counts: dict[date, DayCounts]) -> None:
    """Add ``counts`` to the stored ones (a row per day, made when missing)."""
    dialect = session.get_bind().dialect.name
    insert: Any = pg_insert if dialect == "postgresql" else sqlite_insert
    table = FaqDaily.__table__  # type: ignore[attr-defined]
    for day, tally in sorted(counts.items()):
        if not tally:
            continue
        statement = insert(table).values(
            day=day, asked=tally.asked, answered=tally.answered, suggested=tally.suggested
        )
        statement = statement.on_conflict_do_update(
            index_elements=[table.c.day],
            set_={
                "asked": table.c.asked + statement.excluded.asked,
                "answered": table.c.answered + statement.excluded.answered,
                "suggested": table.c.suggested + statement.excluded.suggested,
            },
        )
        await session.execute(statement)
