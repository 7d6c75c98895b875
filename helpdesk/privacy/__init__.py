"""Personal data under control (issue 12), one concept per module:

- ``inventory``: every place personal data lives, and how each is exported, erased or kept;
- ``masking``: identifiers masked in logs, query logs and what customers type;
- ``audit``: the privacy audit log (ids, hashes and counts only);
- ``erasure``: erasing a customer, as a persisted, resumable task;
- ``export``: a customer's copy (a ZIP of JSON and photos);
- ``requests``: customers' requests, confirmed by a signed link, and agents' actions;
- ``retention``: the retention periods of ``data/shop.toml`` and ``purge``.
"""

from __future__ import annotations

from helpdesk.privacy.masking import mask_personal_data

__all__ = ["mask_personal_data"]
