"""The FAQ library: normalization, SudachiPy analysis, BM25F index, ranking and the bot.

No web and no database imports: ``from faq import Entry, SearchEngine, load_entries``.
"""

from __future__ import annotations

from faq.engine import SearchEngine
from faq.kb import KnowledgeBaseError, load_entries
from faq.model import Answer, Entry, Hit
from faq.policy import PolicyError, ShopPolicy, load_policy

__all__ = [
    "Answer",
    "Entry",
    "Hit",
    "KnowledgeBaseError",
    "PolicyError",
    "SearchEngine",
    "ShopPolicy",
    "load_entries",
    "load_policy",
]
