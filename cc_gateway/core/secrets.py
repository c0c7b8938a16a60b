"""THE rules for secrets, in one place: which names hold secrets, which values are placeholders or
weak keys, how a secret is masked on screen and redacted in logs, and which addresses are local.

Every command and the running gateway ask these functions; none keeps a rule of its own.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Callable, Mapping

#: A variable whose value must never be shown or logged.
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|CREDENTIAL|SALT")

#: Values that mean "not filled in yet".
PLACEHOLDER = re.compile(r"^(|changeme|change-me|your[-_].*|<.*>|\.\.\.|xxx+|todo|sk-your.*|sk-\.\.\.)$", re.I)

#: Keys every tutorial prints: anyone can guess them.
WELL_KNOWN_KEYS = frozenset({"sk-1234", "sk-12345", "sk-123456", "sk-test", "sk-admin", "sk-password"})
_WELL_KNOWN_SHAPE = re.compile(r"^sk-(\d{1,8}|test|admin|password|secret|changeme|master|litellm)$", re.I)

#: The shortest gateway key accepted (cc-gateway generates sk- + 32 random bytes, 46 characters).
MIN_KEY_LENGTH = 20


def is_placeholder(value: str | None) -> bool:
    """Tell whether a value is empty or still a placeholder (unset, for every purpose)."""
    return value is None or bool(PLACEHOLDER.match(value.strip()))


def is_well_known_key(value: str) -> bool:
    """Tell whether a key is one of the guessable ones (sk-1234 and friends)."""
    return value in WELL_KNOWN_KEYS or bool(_WELL_KNOWN_SHAPE.match(value))


def is_weak_key(value: str | None) -> bool:
    """Tell whether a gateway key (master key, salt) is unfit: unset, placeholder, guessable, short or not sk-."""
    if is_placeholder(value):
        return True
    assert value is not None
    return is_well_known_key(value) or not value.startswith("sk-") or len(value) < MIN_KEY_LENGTH


def is_secret_name(name: str) -> bool:
    """Tell whether a variable's name says it holds a secret."""
    return bool(SECRET_NAME.search(name.upper()))


def secret_values(environ: Mapping[str, str]) -> list[str]:
    """Collect every value that must never be logged: keys, tokens, secrets and salts (comma lists split)."""
    values: list[str] = []
    for name, value in environ.items():
        if value and is_secret_name(name):
            values += [v.strip() for v in value.split(",") if v.strip()]
    return values


def mask(value: str) -> str:
    """Show a secret's first characters only, so a user can tell keys apart."""
    return value[:6] + "…" if len(value) > 8 else "…"


# What mask_secrets finds in text cc-gateway prints (diffs of .env, config.yaml and settings.json, both sides):
# NAME=value lines, "NAME": "value" JSON members and `name: value` YAML keys whose name says secret, the
# value of key headers, and anything shaped like a provider key wherever it appears.
_ENV_LINE = re.compile(r"^([+\- ]?[ \t]*(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*)(\S.*?)([ \t]*)$", re.M)
_JSON_MEMBER = re.compile(r'("((?:[^"\\]|\\.)*)"[ \t]*:[ \t]*")((?:[^"\\]|\\.)+)(")')
_YAML_MEMBER = re.compile(
    r"^([+\- ]?[ \t]*(?:-[ \t]+)?([A-Za-z_][\w\-]*):[ \t]+)(['\"]?)([^'\"\s#][^'\"\n#]*?)(\3[ \t]*(?:#.*)?)$", re.M
)
_HEADER_VALUE = re.compile(
    r"((?:x-litellm-api-key|x-api-key|authorization)[ \t]*:[ \t]*(?:bearer[ \t]+)?)([^\s\"',…]{6,})(?!…)", re.I
)
_KEY_SHAPE = re.compile(
    r"(?<![\w-])((?:sk|pk|rk|ghp|gho|ghs|gsk|xox[abprs])[-_][A-Za-z0-9_\-]{8,}|AIza[A-Za-z0-9_\-]{20,})(?!…)"
)
_VARIABLE_NAME = re.compile(r"[A-Z][A-Z0-9_]*")


def _secret_value(value: str) -> bool:
    """Whether a value under a secret-sounding name is one (not a number, flag, reference or variable name)."""
    value = value.strip().strip("'\"")
    if not value or value.isdigit() or value.lower() in ("true", "false", "null", "none", "~"):
        return False
    return not (value.startswith("os.environ/") or _VARIABLE_NAME.fullmatch(value) or value.endswith("…"))


def _mask_named(name: int, value: int) -> Callable[[re.Match[str]], str]:
    def sub(match: re.Match[str]) -> str:
        if not (is_secret_name(match.group(name)) and _secret_value(match.group(value))):
            return match.group(0)
        start, end = match.start(value) - match.start(0), match.end(value) - match.start(0)
        return match.group(0)[:start] + mask(match.group(value)) + match.group(0)[end:]

    return sub


def mask_secrets(text: str) -> str:
    """Hide every secret-looking value in text shown to a user (.env, YAML, JSON, diffs of them: both sides)."""
    text = _ENV_LINE.sub(_mask_named(2, 3), text)
    text = _JSON_MEMBER.sub(_mask_named(2, 3), text)
    text = _YAML_MEMBER.sub(_mask_named(2, 4), text)
    text = _HEADER_VALUE.sub(lambda m: m.group(1) + mask(m.group(2)), text)
    return _KEY_SHAPE.sub(lambda m: mask(m.group(1)), text)


class RedactingFilter(logging.Filter):
    """Remove every configured secret (and anything shaped like a key) from log records."""

    _SHAPES = re.compile(r"(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-]{6,}|((?i:bearer)\s+)[A-Za-z0-9._~+/=\-]{8,}")

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """Return text with secrets masked."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return self._SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + "[redacted]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        """Scrub the fully formatted message (args included) and any traceback."""
        message = record.getMessage()
        if record.exc_info:
            import traceback

            message += "\n" + "".join(traceback.format_exception(*record.exc_info))
            record.exc_info = None
            record.exc_text = None
        record.msg = self.scrub(message)
        record.args = None
        return True


def is_loopback(host: str) -> bool:
    """Tell whether a bind address (or URL host) only accepts local connections."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
