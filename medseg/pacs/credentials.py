"""Credentials files for a PACS: read once, never echoed.

A credentials file is a small JSON or YAML mapping, either ``{"username": ..., "password": ...}``
(HTTP basic authentication) or ``{"token": ...}`` (an ``Authorization: Bearer`` header). Unknown keys
are errors. The file must be readable by its owner only (``chmod 600``): a password in a file others can
read is refused, as ssh refuses such a key. Errors name the file and the reason, never a value from it;
``Credentials.__repr__`` hides the secrets so they cannot reach a log by accident.
"""

from __future__ import annotations

import json
import stat
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from medseg.errors import ConfigError

_KEYS = frozenset({"username", "password", "token"})


@dataclass(frozen=True)
class Credentials:
    """What to authenticate with: basic (username, password) or a bearer token.

    Attributes:
        username, password: HTTP basic authentication (both or neither).
        token: a bearer token (instead of username/password).
    """

    username: str = ""
    password: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    def __repr__(self) -> str:
        kind = "token" if self.token else "basic" if self.username else "none"
        return f"Credentials({kind}, username={self.username!r})"


def read_credentials(path: str | Path) -> Credentials:
    """Read a credentials file (JSON or YAML, owner-only permissions).

    Raises:
        ConfigError: the file is missing, readable or writable by others, not a mapping, has unknown or
            missing keys; the message names the file and the reason (never a value from it).
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the credentials file ({error.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: the credentials file is accessible to other users (mode {stat.filemode(mode)}); "
                          f"run `chmod 600 {path}`")
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        # The parsers' messages quote the offending text, which may be the password.
        raise ConfigError(f"{path}: the credentials file is not valid JSON/YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the credentials file must hold a mapping with username/password or token")
    unknown = sorted(str(key) for key in data if key not in _KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)} (allowed: username, password, token)")
    values = {key: data.get(key) for key in _KEYS}
    if any(value is not None and not isinstance(value, str) for value in values.values()):
        raise ConfigError(f"{path}: username, password and token must be strings")
    username, password, token = (values[key] or "" for key in ("username", "password", "token"))
    if token and (username or password):
        raise ConfigError(f"{path}: give either username and password or a token, not both")
    if not token and not (username and password):
        raise ConfigError(f"{path}: give both username and password, or a token")
    return Credentials(username=username, password=password, token=token)


def read_optional_credentials(path: str | Path | None) -> Credentials | None:
    """``read_credentials(path)``, or None without a file."""
    return None if path is None else read_credentials(path)
