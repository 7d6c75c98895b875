"""What every page shares (favicon, description) and the FAQ categories' order (issue 8)."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import soup

PAGES = ["/", "/faq", "/faq/ask", "/contact", "/returns/new", "/privacy"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_has_a_favicon_and_a_description(
    client: httpx.AsyncClient, path: str
) -> None:
    page = soup(await client.get(path))
    icon = page.select_one("link[rel=icon]")["href"]
    served = await client.get(icon)
    assert served.status_code == 200 and served.headers["content-type"].startswith("image/svg")
    description = page.select_one("meta[name=description]")["content"]
    assert len(description) >= 20
    assert "返品" in description or "お問い合わせ" in description


async def test_faq_categories_come_in_the_shops_order(client: httpx.AsyncClient) -> None:
    page = soup(await client.get("/faq"))
    summaries = [s.get_text() for s in page.select(".categories details > summary")]
    # The shop's pages: セール商品, 発送/お届け, 決済方法, その他 (privacy questions before その他).
    assert summaries == ["セール商品", "発送/お届け", "決済方法", "個人情報の取り扱い", "その他"]
