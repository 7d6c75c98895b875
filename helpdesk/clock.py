"""Times in Japan: stored in UTC, shown in Asia/Tokyo (pages, mails and the command line)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from faq.policy import WEEKDAY_JA
from helpdesk.db import as_utc

TOKYO = ZoneInfo("Asia/Tokyo")


def jst(moment: datetime | None, fmt: str = "%Y年%m月%d日 %H:%M") -> str:
    """Show a stored (UTC) time in Japan; a format with the day gets the weekday: ``(火)``."""
    if moment is None:
        return ""
    local = as_utc(moment).astimezone(TOKYO)
    if "%d" in fmt:
        return f"{local.strftime(fmt)}({WEEKDAY_JA[local.weekday()]})"
    return local.strftime(fmt)
