"""Userinfo in URLs (``http://user:pass@host``) never reaches a message, a log line or a manifest."""

from __future__ import annotations

import logging
import re

#: ``scheme://userinfo@``: the userinfo part ends at the last ``@`` before the host, and holds no ``/``, space or
#: quote (a password may hold ``@`` or ``:`` only percent-encoded, as RFC 3986 requires).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<userinfo>[^/\s@'\"<>]+)@")

MASKED_USERINFO = "***"


def mask_userinfo(text: str) -> str:
    """``text`` with the userinfo of every URL in it replaced by ``***`` (``http://***@host:8080/…``)."""
    if "@" not in text or "://" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m['scheme']}{MASKED_USERINFO}@", text)


class MaskUserinfoFilter(logging.Filter):
    """A logging filter that masks URL userinfo in the formatted message (and drops it from the arguments)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_userinfo(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True
