"""Which environment values are secret, and how they are masked.

A value is secret when its variable NAME says so (``*_API_KEY``, ``DB_PASSWORD``,
``githubToken``...) or when the VALUE looks like a credential whatever its name
(``sk-ant-...``, ``ghp_...``, a JWT, a PEM private key, the password of a URL).
Secret values are stored as ``"***"``; a URL keeps everything but its password.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

MASK = "***"

#: Name words (after splitting on ``_ - .`` and camelCase) that mark a secret.
SECRET_WORDS = frozenset(
    {
        "KEY", "KEYS", "APIKEY", "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD",
        "PASSWORDS", "PASSWD", "PWD", "PASS", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS",
        "CREDS", "AUTH", "AUTHORIZATION", "PRIVATE", "COOKIE", "COOKIES", "DSN",
        "SIGNATURE", "SALT", "BEARER", "JWT", "OTP", "SESSIONID", "CLIENTSECRET", "PAT",
    }
)  # fmt: skip
#: Glued words such as ``GITHUBTOKEN`` or ``MYAPIKEY`` end with one of these.
SECRET_SUFFIXES = (
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "ACCESSKEY", "SECRETKEY",
    "PRIVATEKEY", "CREDENTIAL", "CREDENTIALS", "PASSPHRASE",
)  # fmt: skip
#: A name with one of these words is public by declaration (``NEXT_PUBLIC_API_KEY``).
#: Not ``PUB``: it also abbreviates pub.dev and Pub/Sub, whose tokens are real secrets.
PUBLIC_WORDS = frozenset({"PUBLIC"})
#: Beside one of these, ``TOKEN(S)`` counts LLM tokens (``CLAUDE_CODE_MAX_OUTPUT_TOKENS``).
QUANTITY_WORDS = frozenset({"MAX", "MIN", "LIMIT", "LIMITS", "COUNT", "NUM", "BUDGET"})
_COUNTABLE_WORDS = frozenset({"TOKEN", "TOKENS"})
#: Names that look secret by their words but never are.
ALLOWED_NAMES = frozenset(
    {
        "PATH", "HOME", "TERM", "TMUX", "TMUX_PANE", "TMUX_TMPDIR", "AMUX_SESSION_ID",
        "AMUX_ROOT", "AMUX_TMUX_SOCKET", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME",
        "LANG", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "XAUTHORITY", "KEYTIMEOUT",
    }
)  # fmt: skip

_WORD_RE = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+")
_SPLIT_RE = re.compile(r"[_\-.\s]+")

_TOKEN_PATTERNS = (
    r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic
    r"sk-[A-Za-z0-9_\-]{16,}",  # OpenAI and look-alikes (sk-proj-...)
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub classic tokens
    r"github_pat_[A-Za-z0-9_]{20,}",  # GitHub fine-grained tokens
    r"(?:AKIA|ASIA)[A-Z0-9]{16}",  # AWS access key ids
    r"xox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack
    r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",  # JWT
    # PEM private keys, through the END line -- or to the end of a truncated text, since
    # the base64 body is the secret and the BEGIN line alone is not.
    r"-----BEGIN[A-Z ]*PRIVATE KEY[A-Z ]*-----(?s:.*?-----END[A-Z ]*PRIVATE KEY[A-Z ]*-----|.*)",
    r"AIza[0-9A-Za-z_\-]{30,}",  # Google API keys
    r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",  # Stripe (test keys open an account too)
    r"glpat-[A-Za-z0-9_\-]{20,}",  # GitLab
)
# Not glued to a letter or digit: "task-scheduler-worker-pool" holds no OpenAI key.
_TOKEN_RE = re.compile("(?<![A-Za-z0-9])(?:" + "|".join(f"(?:{p})" for p in _TOKEN_PATTERNS) + ")")
# scheme://user:PASSWORD@host -- only the password part is secret. It runs to the last
# "@" of the authority (as urllib splits it), so a raw "@" in it cannot leak the rest.
# The look-behind anchors the scheme at its start, so a long run of letters is scanned
# once, not once per starting position.
_URL_PASSWORD_RE = re.compile(
    r"(?P<head>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^\s/]+)@"
)


def _mask_url_passwords(text: str) -> str:
    return _URL_PASSWORD_RE.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def name_words(name: str) -> list[str]:
    """Split a variable name into upper-case words on ``_ - .`` and camelCase."""
    words: list[str] = []
    for chunk in _SPLIT_RE.split(name):
        words.extend(word.upper() for word in _WORD_RE.findall(chunk))
    return words


def is_secret_name(name: str) -> bool:
    """Return whether a variable called ``name`` holds a secret by its name alone."""
    if name.upper() in ALLOWED_NAMES:
        return False
    words = name_words(name)
    if any(word in PUBLIC_WORDS for word in words):
        return False
    flagged = {word for word in words if word in SECRET_WORDS or word.endswith(SECRET_SUFFIXES)}
    if not flagged:
        return False
    # A token budget is a number the user wants to see; any other secret word still wins.
    return not (flagged <= _COUNTABLE_WORDS and any(word in QUANTITY_WORDS for word in words))


def has_secret_value(value: str) -> bool:
    """Return whether ``value`` contains a credential-looking token or URL password."""
    return _TOKEN_RE.search(value) is not None or _has_url_password(value)


def _has_url_password(value: str) -> bool:
    return any(m.group("pw") != MASK for m in _URL_PASSWORD_RE.finditer(value))


def is_secret(name: str, value: str) -> bool:
    """Return whether the pair must never reach disk, argv, tmux, logs or output."""
    return is_secret_name(name) or has_secret_value(value)


def mask_value(name: str, value: str) -> str:
    """Return what may be stored or shown for ``name=value``.

    A secret name or a credential token masks the whole value; a URL with a password
    keeps everything but the password. Masking a masked value changes nothing.
    """
    if value == MASK or is_secret_name(name):
        return MASK
    # Passwords first, so a token that is only a URL's password (a git remote with a
    # PAT) leaves the URL readable; a token anywhere else still masks it all.
    masked = _mask_url_passwords(value)
    if _TOKEN_RE.search(masked) is not None:
        return MASK
    return masked


def mask_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """Return a copy of ``environment`` with every secret value masked."""
    return {name: mask_value(name, value) for name, value in environment.items()}


def split_environment(environment: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Split ``environment`` into ``(public, secret)`` by :func:`is_secret`."""
    public: dict[str, str] = {}
    secret: dict[str, str] = {}
    for name, value in environment.items():
        (secret if is_secret(name, value) else public)[name] = value
    return public, secret


class Redactor:
    """Scrubs known secret values and credential patterns out of text.

    Parameters
    ----------
    values : Iterable[str]
        Secret values known to the caller (e.g. the ``-e`` values of a ``start``);
        they are removed even where no pattern would recognise them.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._values = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)

    def add(self, value: str) -> None:
        """Remember one more secret value."""
        if len(value) >= 4 and value not in self._values:
            self._values.append(value)
            self._values.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every known value and credential pattern masked."""
        for value in self._values:
            text = text.replace(value, MASK)
        text = _TOKEN_RE.sub(MASK, text)
        return _mask_url_passwords(text)


def scrub_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Return ``environ`` without any secret pair, for processes that must not see them.

    Used for the tmux client we spawn: a tmux server inherits the environment of the
    client that starts it and shows it in ``show-environment -g`` for its whole life.
    """
    return {name: value for name, value in environ.items() if not is_secret(name, value)}
