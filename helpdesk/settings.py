"""Settings, read from ``HELPDESK_*`` environment variables and ``.env``.

Every setting has an embedded default so that ``python main.py serve`` runs on a fresh
clone: a SQLite file and folders under ``var/``. Secrets are never defaulted to a fixed
value: the secret key is generated into ``var/`` on first start when unset.
"""

from __future__ import annotations

import ipaddress
import secrets
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """Typed settings; build one explicitly in tests: ``Settings(var_dir=tmp_path)``."""

    model_config = SettingsConfigDict(env_prefix="HELPDESK_", env_file=".env", extra="ignore")

    #: Folder for everything the app writes: database, media, mail, secret key.
    var_dir: Path = ROOT / "var"
    #: Plain URL: ``sqlite:///var/helpdesk.db`` or ``postgresql://user@host/db``.
    database_url: str | None = None
    #: Where the knowledge base (``faq/*.toml``) and the shop policy (``shop.toml``) live.
    data_dir: Path = ROOT / "data"
    #: Public base URL, used for links in mails and API answers.
    base_url: str = "http://127.0.0.1:8000"
    #: Signs tokens; generated into ``var/secret_key`` when unset.
    secret_key: str | None = None
    #: Longest FAQ query accepted by the HTTP API, in characters.
    faq_max_query_length: int = 200
    #: Customers' photos, stored outside the web root (default ``var/media``).
    media_dir: Path | None = None
    #: Largest photo accepted, in megabytes.
    max_photo_mb: int = 10
    #: Submissions (forms, API, messages) allowed per client IP: "N/10m", "N/hour", "N/30s".
    submission_rate: str = "10/10m"
    #: The shop's From address and the agents' inbox (default: the shop policy's address).
    support_address: str | None = None
    #: Outgoing mail; with no host, mail is written to ``var/mail/`` as .eml files.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    #: none, starttls or tls
    smtp_security: str = "starttls"
    #: Display name in From (default: the shop's name from the policy).
    mail_from_name: str | None = None
    #: Failed sends are retried with exponential backoff (1 min, 2, 4... capped at 1 hour);
    #: after this many attempts (about 6 hours) the mail is dead and agents see it.
    outbox_max_attempts: int = 12
    #: ``serve`` sends queued mail itself; set false when a cron job runs ``mail send-queued``.
    send_mail_in_process: bool = True
    #: When set, ``serve`` receives mail by SMTP on 127.0.0.1 at this port.
    inbound_smtp_port: int | None = None
    #: Automatic mails (confirmations, status changes) to one address per hour, at most,
    #: counted per origin (each web or API client, inbound mail, the agents): nobody can use
    #: up the confirmations of someone else's own submissions.
    automatic_mail_limit: int = 10
    #: Automatic mails to one address per hour from all origins together (against a flood
    #: from many clients at once).
    automatic_mail_address_limit: int = 50
    #: Reverse proxies whose ``X-Forwarded-For`` is believed: comma-separated addresses or
    #: networks ("127.0.0.1, 10.0.0.0/8"). Empty (the default): the TCP peer is the client.
    trusted_proxies: str = ""
    #: Keys for integrations calling ``POST /api/tickets`` (comma-separated; sent as
    #: ``Authorization: Bearer KEY`` or ``X-API-Key``). When set, the API needs one.
    api_keys: str = Field(default="", repr=False)
    #: Starlette debug mode (tracebacks in responses): never in production.
    debug: bool = False

    @field_validator("smtp_security")
    @classmethod
    def _security(cls, value: str) -> str:
        if value not in ("none", "starttls", "tls"):
            raise ValueError("HELPDESK_SMTP_SECURITY must be none, starttls or tls")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        for item in _items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(
                    f"HELPDESK_TRUSTED_PROXIES: {item!r} is not an IP address or network"
                ) from None
        return value

    @property
    def trusted_proxy_list(self) -> tuple[str, ...]:
        return _items(self.trusted_proxies)

    @property
    def api_key_list(self) -> tuple[str, ...]:
        return _items(self.api_keys)

    @field_validator("var_dir", "data_dir", "media_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is None or value.is_absolute():
            return value
        return (Path.cwd() / value).resolve()

    @property
    def resolved_media_dir(self) -> Path:
        return self.media_dir or self.var_dir / "media"

    @property
    def mail_dir(self) -> Path:
        return self.var_dir / "mail"

    @property
    def max_photo_bytes(self) -> int:
        return self.max_photo_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        """Largest request body: two photos and the form around them."""
        return 2 * self.max_photo_bytes + 1024 * 1024

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``var_dir``."""
        return self.database_url or f"sqlite:///{self.var_dir / 'helpdesk.db'}"

    def ensure_secret_key(self) -> str:
        """Return the secret key, generating and keeping one under ``var_dir`` if unset."""
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / "secret_key"
        if not path.exists():
            self.var_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        self.secret_key = path.read_text().strip()
        return self.secret_key


def _items(value: str) -> tuple[str, ...]:
    """The items of a comma-separated setting, trimmed, empty ones dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())
