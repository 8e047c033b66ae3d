"""Where a saved token lives: written by `heroctl login`, read when no token is given."""

from __future__ import annotations

import json
import os
from pathlib import Path


class CredentialsError(Exception):
    """The credentials file exists but cannot be used."""


def credentials_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "heroctl" / "credentials.json"


def read_saved_token(path: Path | None = None) -> str | None:
    """The saved token, or None when there is no credentials file."""
    path = path or credentials_path()
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CredentialsError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise CredentialsError(f"{path} is not valid JSON: {e}") from None
    token = data.get("token") if isinstance(data, dict) else None
    if token is None:
        return None
    if not isinstance(token, str):
        raise CredentialsError(f'{path}: "token" must be a string')
    return token or None
