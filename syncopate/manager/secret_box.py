"""Project secrets encrypted at rest (DESIGN section 11).

The key is `<data-dir>/secrets.key` (mode 0600), a file apart from the database: a copy of
`syncopate.db` alone reveals no secret. Values are sealed with `cryptography`'s Fernet
(AES-128-CBC with an HMAC-SHA256), authenticated encryption we should not write ourselves.

The database keeps a sealed known text (`secrets-check` in its meta table), so a manager started
with a missing or different key file says so at start, naming the file, instead of failing
later on the first project that has secrets.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken

from syncopate.errors import ConfigError
from syncopate.paths import write_private

KEY_FILE = "secrets.key"
CHECK_KEY = "secrets-check"  # meta key: a known text sealed with the key
_CHECK_TEXT = b"syncopate secrets key"
MASK = "***"  # what every answer shows instead of a secret value


class SecretBox:
    """Seals and opens a project's secrets with the manager's key."""

    def __init__(self, key: bytes, path: Path) -> None:
        self.path = path
        self._key = key
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError):
            raise ConfigError(
                f"{path} is not a secrets key (a Fernet key: 44 url-safe base64 characters); "
                "restore the file this manager's database was used with"
            ) from None

    def derived(self, purpose: bytes) -> str:
        """A secret for `purpose` that only holders of this key can make (HMAC-SHA256)."""
        return hmac.new(self._key, purpose, hashlib.sha256).hexdigest()

    def seal(self, secrets: dict[str, str]) -> str:
        """The secrets as one token to store (empty text for none: nothing to hide)."""
        if not secrets:
            return ""
        return self.seal_text(json.dumps(secrets))

    def open(self, token: str) -> dict[str, str]:
        """The secrets a `seal` token holds; ConfigError when this key did not seal it."""
        if not token:
            return {}
        value: dict[str, str] = json.loads(self.open_text(token))
        return value

    def seal_text(self, text: str) -> str:
        return self._fernet.encrypt(text.encode()).decode("ascii")

    def open_text(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken:
            raise self._wrong_key() from None

    def check(self, sealed: str) -> None:
        """Raise ConfigError unless `sealed` is the check text sealed with this key."""
        try:
            ok = self._fernet.decrypt(sealed.encode("ascii")) == _CHECK_TEXT
        except InvalidToken:
            ok = False
        if not ok:
            raise self._wrong_key()

    def sealed_check(self) -> str:
        return self._fernet.encrypt(_CHECK_TEXT).decode("ascii")

    def _wrong_key(self) -> ConfigError:
        return ConfigError(
            f"{self.path} is not the key this manager's secrets were sealed with; restore the "
            "right file (without it the projects' secrets cannot be read)"
        )


def load_or_create(data_dir: Path, sealed_check: str | None) -> SecretBox:
    """The data dir's secret box; its key file is made (0600) on first start.

    `sealed_check` is the database's check text, None for a database that never had a key:
    a database that had one and a key file that is missing is an error, not a new key, because
    a new key could not open the secrets already stored.
    """
    path = data_dir / KEY_FILE
    try:
        key = path.read_bytes().strip()
    except FileNotFoundError:
        if sealed_check is not None:
            raise ConfigError(
                f"{path} is missing: the database holds secrets sealed with it; restore the "
                "file (a new key could not read them)"
            ) from None
        key = Fernet.generate_key()
        write_private(path, key.decode("ascii") + "\n")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    box = SecretBox(key, path)
    if sealed_check is not None:
        box.check(sealed_check)
    return box


MIN_MASKED = 4  # the shortest secret value masked in output (mask_in)


def masked(secrets: dict[str, str]) -> dict[str, str]:
    """The secrets as answers show them: names, each value `***`."""
    return dict.fromkeys(sorted(secrets), MASK)


# Asked at every write and every answer of a project: as many entries as the fleet has project
# URLs (an LRU smaller than that misses on every call when reports come round-robin). Only for
# the URLs of projects the manager holds: a URL someone sent goes through the uncached
# `password_of`/`mask_any_url`, so nobody can fill the caches with URLs of their own.
URL_CACHE_SIZE = 1 << 16


def password_of(url: str) -> str | None:
    """The password in a git URL (`https://user:pass@host/x.git`), None when it has none."""
    if "://" not in url:
        return None
    try:
        return urlsplit(url).password or None
    except ValueError:
        return None


def mask_any_url(url: str) -> str:
    """The URL as answers show it: a password in it replaced by `***`."""
    password = password_of(url)
    if password is None:
        return url
    scheme, rest = url.split("://", 1)
    netloc = urlsplit(url).netloc
    # As urlsplit reads it: the host follows the last '@' (a password may hold one).
    userinfo, _, host = netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{MASK}@{host}{rest[len(netloc) :]}"


# The same, cached: for the URL of a project the manager holds.
url_password = lru_cache(maxsize=URL_CACHE_SIZE)(password_of)
mask_url = lru_cache(maxsize=URL_CACHE_SIZE)(mask_any_url)


def mask_in(text: str, url: str, secrets: Mapping[str, str] | None = None) -> str:
    """`text` with the password of `url` (if it has one) and the values of `secrets` replaced
    by `***` wherever they occur: a node's reason or output line may quote the URL it fetched,
    and a program may print its own secret (every role, viewers too, reads the output).

    A value shorter than MIN_MASKED is left: masking every `1` or `on` would garble the output
    and hide little.
    """
    password = url_password(url)
    if password:
        text = text.replace(password, MASK)
    if secrets:
        for value in sorted(secrets.values(), key=len, reverse=True):
            if len(value) >= MIN_MASKED and value in text:
                text = text.replace(value, MASK)
    return text
