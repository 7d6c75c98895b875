"""Settings, read from ``HELPDESK_*`` environment variables and ``.env``.

Every setting has an embedded default so that ``python main.py serve`` runs on a fresh
clone: a SQLite file and folders under ``var/``. Secrets are never defaulted to a fixed
value: the secret key is generated into ``var/`` on first start when unset.
"""

from __future__ import annotations

import ipaddress
import secrets
import shutil
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from helpdesk.files import SECRET_MODE, private_dir, tighten, write_private_file

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
    #: How often each worker checks whether the knowledge base changed (files, or an edit
    #: in the console by any worker), in seconds: a stat of the files and a one-row query.
    faq_reload_seconds: float = 1.0
    #: Customers' photos, stored outside the web root (default ``var/media``).
    media_dir: Path | None = None
    #: Largest photo accepted, in megabytes.
    max_photo_mb: int = 10
    #: Memory that photos being decoded may use at once, in megabytes. Each photo reserves
    #: its estimate (from its header: size, mode, bit depth, format) before it is decoded;
    #: a photo whose estimate alone is larger is refused. 224 lets two 12-megapixel phone
    #: photos be cleaned at once, takes a 24-megapixel iPhone HEIC, and keeps the server
    #: within 300 MB of idle (bench/photo_bench.py).
    photo_memory_mb: int = 224
    #: Photos no ticket or unsent mail refers to are deleted after this many hours (uploads
    #: of refused or abandoned forms); ``serve`` sweeps every ``photo_sweep_interval_minutes``.
    photo_sweep_grace_hours: float = 24.0
    #: 0 turns the sweep in ``serve`` off (run ``main.py photos sweep`` from cron instead).
    photo_sweep_interval_minutes: float = 60.0
    #: Submissions (forms, API, messages) allowed per client IP: "N/10m", "N/hour", "N/30s".
    submission_rate: str = "10/10m"
    #: The shop's From address and the agents' inbox (default: the shop policy's address).
    support_address: str | None = None
    #: Outgoing mail; with no host, mail is written to ``var/mail/`` as .eml files.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_security: Literal["none", "starttls", "tls"] = "starttls"
    #: Display name in From (default: the shop's name from the policy).
    mail_from_name: str | None = None
    #: Failed sends are retried with exponential backoff (1 min, 2, 4... capped at 1 hour);
    #: after this many attempts (about 6 hours) the mail is dead and agents see it.
    outbox_max_attempts: int = 12
    #: ``serve`` sends queued mail itself; set false when a cron job runs ``mail send-queued``.
    send_mail_in_process: bool = True
    #: When set, ``serve`` receives mail by SMTP on 127.0.0.1 at this port.
    inbound_smtp_port: int | None = None
    #: Largest inbound mail, in megabytes: larger ones are refused with 552 and not stored.
    inbound_max_mail_mb: int = 30
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
    #: Whether this process may run the background work (outbox sender, SMTP receiver,
    #: inbound retries, photo sweep, daily jobs). One process of the deployment runs it, the
    #: leader (``helpdesk.leader``); false keeps a process (a web-only machine) out.
    background_work: bool = True
    #: ``text`` (readable, for a terminal) or ``json`` (one object a line, with the request
    #: id, for journald and log collectors).
    log_format: Literal["text", "json"] = "text"
    #: Besides loopback, addresses or networks allowed to read ``/metrics`` (comma-separated,
    #: e.g. the Prometheus server "10.0.0.5"). The client address is the one
    #: ``HELPDESK_TRUSTED_PROXIES`` decides.
    metrics_allow: str = ""
    #: Accepted for older .env files and ignored: no response ever shows a traceback
    #: (errors get the Japanese error page; tracebacks go to the log).
    debug: bool = False

    @field_validator("photo_memory_mb")
    @classmethod
    def _photo_memory(cls, value: int) -> int:
        if value < 16:
            raise ValueError("HELPDESK_PHOTO_MEMORY_MB must be at least 16")
        return value

    @field_validator("photo_sweep_grace_hours")
    @classmethod
    def _grace(cls, value: float) -> float:
        # Shorter than an hour would delete the photos of a form someone is still filling in.
        if value < 1:
            raise ValueError("HELPDESK_PHOTO_SWEEP_GRACE_HOURS must be at least 1")
        return value

    @field_validator("trusted_proxies", "metrics_allow")
    @classmethod
    def _networks(cls, value: str, info: ValidationInfo) -> str:
        for item in _items(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                name = f"HELPDESK_{(info.field_name or '').upper()}"
                raise ValueError(f"{name}: {item!r} is not an IP address or network") from None
        return value

    @field_validator("submission_rate")
    @classmethod
    def _rate(cls, value: str) -> str:
        from helpdesk.security import parse_rate

        parse_rate(value)  # raises ValueError with the accepted forms
        return value

    @field_validator("smtp_port", "inbound_smtp_port")
    @classmethod
    def _port(cls, value: int | None) -> int | None:
        if value is not None and not 0 < value < 65536:
            raise ValueError(f"a port must be 1-65535, got {value}")
        return value

    @property
    def metrics_allow_list(self) -> tuple[str, ...]:
        return _items(self.metrics_allow)

    @property
    def is_postgresql(self) -> bool:
        return self.resolved_database_url.startswith(("postgresql:", "postgres:"))

    def production_problems(self) -> list[str]:
        """Why ``serve`` must not start with these settings (empty when it may).

        On PostgreSQL (several workers, maybe several machines) the secret key must be the
        same everywhere and links in mails must name the public address: a key generated
        into one machine's ``var/`` or a guessed base URL would break both silently.
        """
        if not self.is_postgresql:
            return []
        problems = []
        if not self.secret_key:
            problems.append(
                "HELPDESK_SECRET_KEY is not set: on PostgreSQL every worker and machine needs"
                " the same key (generate one: python3 -c 'import secrets;"
                " print(secrets.token_urlsafe(48))')"
            )
        if "base_url" not in self.model_fields_set:
            problems.append(
                "HELPDESK_BASE_URL is not set: on PostgreSQL links in mails must name the"
                " public address (e.g. https://help.example.jp)"
            )
        return problems

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
    def exports_dir(self) -> Path:
        """Customers' copies of their data (ZIPs) waiting to be downloaded."""
        return self.var_dir / "exports"

    @property
    def max_photo_bytes(self) -> int:
        return self.max_photo_mb * 1024 * 1024

    @property
    def inbound_max_mail_bytes(self) -> int:
        return self.inbound_max_mail_mb * 1024 * 1024

    @property
    def photo_memory_bytes(self) -> int:
        return self.photo_memory_mb * 1024 * 1024

    @property
    def max_request_bytes(self) -> int:
        """Largest request body: two photos and the form around them."""
        return 2 * self.max_photo_bytes + 1024 * 1024

    @property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file under ``var_dir``."""
        return self.database_url or f"sqlite:///{self.var_dir / 'helpdesk.db'}"

    def ensure_var_dir(self) -> Path:
        """Create ``var_dir`` (0750, whatever the umask) if it does not exist; return it."""
        return private_dir(self.var_dir)

    def prepare_metrics_dir(self) -> Path:
        """An empty ``var/metrics`` for prometheus-client's multiprocess mode (``serve``
        calls this before starting workers, and before anything imports prometheus-client:
        it chooses where to keep counts when imported; files of an earlier run would be
        counted again)."""
        folder = self.var_dir / "metrics"
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True, mode=0o750)
        return folder

    def ensure_secret_key(self) -> str:
        """Return the secret key, generating and keeping one under ``var_dir`` if unset."""
        if self.secret_key:
            return self.secret_key
        path = self.var_dir / "secret_key"
        if not path.exists():
            secret = secrets.token_urlsafe(48).encode()
            write_private_file(path, secret, mode=SECRET_MODE, exclusive=True)
        tighten(path)
        self.secret_key = path.read_text().strip()
        return self.secret_key


def _items(value: str) -> tuple[str, ...]:
    """The items of a comma-separated setting, trimmed, empty ones dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())
