"""What a manager answered: the JSON object, or its refusal as the error it names."""

from __future__ import annotations

import json
from typing import Any

from syncopate.errors import ProtocolError, request_error_for
from syncopate.http_client import Response

# Where an answer carries its reason: the seed's fields first, then ours.
INFO_FIELDS = ("failure-reasoning", "update-info", "request-information", "error")


def answer_of(url: str, response: Response) -> dict[str, Any]:
    """A manager's JSON answer; its refusal (status >= 400) as the RequestError it names."""
    text = response.text()
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if response.status >= 400:
            raise request_error_for(response.status, f"HTTP {response.status}: {text[:200]}")
        raise ProtocolError(f"{url} answered something that is not a JSON object")
    if response.status >= 400:
        message = next(
            (str(data[k]) for k in INFO_FIELDS if data.get(k)), f"HTTP {response.status}"
        )
        details = {k: data[k] for k in ("state", "id") if k in data}
        code = data.get("code")
        code = code if isinstance(code, int) and not isinstance(code, bool) else None
        wait = response.headers.get("retry-after")  # a 429 says when to come back
        raise request_error_for(response.status, message, code=code, retry_after=wait, **details)
    return data
