"""Replies helped along: saved replies (テンプレート) and their placeholders.

- ``placeholders``: {お客様名} {受付番号} {注文番号} {返品期限} {発送予定日}, checked on save and
  filled in from a ticket and the shop policy; markers where a value is unknown.
- ``saved``: ``SavedReplies``, the admins' changes (audited) and rendering for a ticket.

Replies that wait for an admin's approval are part of the ticket command core
(``helpdesk.tickets.service``: ``apply`` holds them, ``approve`` and ``reject`` decide).
"""

from __future__ import annotations
