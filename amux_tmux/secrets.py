"""Which values are secret, and how they are masked.

A value is secret when its variable NAME says so (``*_API_KEY``, ``DB_PASSWORD``,
``githubToken``, ``AZURE_CONNECTION_STRING``...) or when the VALUE looks like a credential
whatever its name (``sk-ant-...``, ``ghp_...``, ``Bearer ...``, a JWT, a PEM private key,
``password=...``, the password of a URL). Secret values are stored as ``"***"``; a URL keeps
everything but its password. :func:`mask_argv` applies the same rules to a command line,
where a secret also hides behind a flag (``--api-key VALUE``).

Every pattern scans its input in linear time: each starts at a distinctive prefix (most
not glued to a letter or digit), and an unbounded repeat that can still fail after it
never overlaps the next place the pattern could start (see the comments).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

MASK = "***"

#: Name words (after splitting on ``_ - .`` and camelCase) that mark a secret.
SECRET_WORDS = frozenset(
    {
        "KEY", "KEYS", "APIKEY", "TOKEN", "TOKENS", "SECRET", "SECRETS", "PASSWORD",
        "PASSWORDS", "PASSWD", "PWD", "PASS", "PASSPHRASE", "CREDENTIAL", "CREDENTIALS",
        "CREDS", "AUTH", "AUTHORIZATION", "PRIVATE", "COOKIE", "COOKIES", "DSN",
        "SIGNATURE", "SALT", "BEARER", "JWT", "OTP", "SESSIONID", "CLIENTSECRET", "PAT",
        # Azure shared access signature (AZURE_STORAGE_SAS): a bearer credential.
        "SAS",
    }
)  # fmt: skip
#: Glued words such as ``GITHUBTOKEN`` or ``MYAPIKEY`` end with one of these.
SECRET_SUFFIXES = (
    "TOKEN", "SECRET", "PASSWORD", "PASSWD", "APIKEY", "ACCESSKEY", "SECRETKEY",
    "PRIVATEKEY", "CREDENTIAL", "CREDENTIALS", "PASSPHRASE", "MASTERKEY",
    "CONNECTIONSTRING", "CONNSTR", "WEBHOOKURL",
)  # fmt: skip
#: Consecutive words that mark a secret together though neither does alone: a connection
#: string carries its password, and a webhook URL is the only credential its hook has.
SECRET_PHRASES = frozenset(
    {
        ("CONNECTION", "STRING"), ("CONNECTION", "STR"), ("CONN", "STRING"),
        ("CONN", "STR"), ("WEBHOOK", "URL"), ("HOOK", "URL"),
    }
)  # fmt: skip
#: A name with one of these words is public by declaration (``NEXT_PUBLIC_API_KEY``).
#: Not ``PUB``: it also abbreviates pub.dev and Pub/Sub, whose tokens are real secrets.
PUBLIC_WORDS = frozenset({"PUBLIC"})
#: Beside one of these, ``TOKEN(S)`` counts LLM tokens (``CLAUDE_CODE_MAX_OUTPUT_TOKENS``).
QUANTITY_WORDS = frozenset({"MAX", "MIN", "LIMIT", "LIMITS", "COUNT", "NUM", "BUDGET"})
_COUNTABLE_WORDS = frozenset({"TOKEN", "TOKENS"})
#: As the LAST word these make the name say where a secret is or what it is like, not
#: what it is (``SSH_KEY_PATH``, ``POSTGRES_PASSWORD_FILE``, ``OS_AUTH_URL``,
#: ``--password-stdin``, ``JWT_ALGORITHM``). Not ``ID``: Vault's ``SECRET_ID`` is a secret.
REFERENCE_WORDS = frozenset(
    {
        "FILE", "FILES", "FILENAME", "PATH", "DIR", "ENV", "VAR", "STDIN", "FD", "CMD",
        "COMMAND", "HELPER", "URL", "URI", "ENDPOINT", "HOST", "PORT", "DOMAIN", "SOCK",
        "SOCKET", "TYPE", "NAME", "SIZE", "LENGTH", "BITS", "TTL", "TIMEOUT", "EXPIRY",
        "ALGORITHM", "MODE", "METHOD", "PROVIDER", "FORMAT", "PROMPT",
    }
)  # fmt: skip
#: A command-line flag whose FIRST word is one of these is a switch about a secret
#: (``--no-auth``, ``--show-token``, ``gh auth login --with-token``), not one that takes it.
SWITCH_WORDS = frozenset(
    {
        "NO", "SHOW", "ASK", "PROMPT", "PRINT", "SKIP", "USE", "WITH", "WITHOUT",
        "REQUIRE", "DISABLE", "ENABLE", "ALLOW", "IGNORE", "GENERATE",
    }
)  # fmt: skip
#: Names that look secret by their words but never are.
ALLOWED_NAMES = frozenset(
    {
        "PATH", "HOME", "TERM", "TMUX", "TMUX_PANE", "TMUX_TMPDIR", "AMUX_SESSION_ID",
        "AMUX_ROOT", "AMUX_TMUX_SOCKET", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME",
        "LANG", "SSH_AUTH_SOCK", "GPG_AGENT_INFO", "XAUTHORITY", "KEYTIMEOUT",
    }
)  # fmt: skip


class _Lazy:
    """A regular expression compiled on first use: most commands never mask anything,
    and compiling these at import cost every command ~5 ms."""

    __slots__ = ("_make", "_pattern")

    def __init__(self, make: Callable[[], re.Pattern[str]]) -> None:
        self._make = make
        self._pattern: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._pattern is None:
            self._pattern = self._make()
        return self._pattern

    def search(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.search(text, pos)

    def match(self, text: str, pos: int = 0) -> re.Match[str] | None:
        return self.compiled.match(text, pos)

    def fullmatch(self, text: str) -> re.Match[str] | None:
        return self.compiled.fullmatch(text)

    def finditer(self, text: str) -> Iterator[re.Match[str]]:
        return self.compiled.finditer(text)

    def findall(self, text: str) -> list[Any]:
        return self.compiled.findall(text)

    def split(self, text: str) -> list[str]:
        return self.compiled.split(text)

    def sub(self, repl: Callable[[re.Match[str]], str] | str, text: str) -> str:
        return self.compiled.sub(repl, text)


_WORD_RE = _Lazy(lambda: re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|[0-9]+"))
_SPLIT_RE = _Lazy(lambda: re.compile(r"[_\-.\s]+"))

# base64url/token68 characters, of which a bearer or basic credential is made.
_T68 = r"[A-Za-z0-9\-._~+/]"
#: Credential shapes. Each starts with a literal character, or is ``(first characters,
#: rest, may be glued)``: the engine then skips in C every position no token starts at.
_TOKEN_PATTERNS: tuple[str | tuple[str, str, bool], ...] = (
    # --- AI providers
    r"sk-ant-[A-Za-z0-9_\-]{8,}",  # Anthropic: sk-ant-api03-, -admin01-, -oat01-
    r"sk-[A-Za-z0-9_\-]{16,}",  # OpenAI (sk-proj-, sk-svcacct-, sk-admin-), OpenRouter...
    r"xai-[A-Za-z0-9]{20,}",  # xAI
    r"gsk_[A-Za-z0-9]{20,}",  # Groq
    r"r8_[A-Za-z0-9]{20,}",  # Replicate
    r"pplx-[A-Za-z0-9]{20,}",  # Perplexity
    r"hf_[A-Za-z0-9]{30,}",  # Hugging Face
    r"api_org_[A-Za-z0-9]{30,}",  # Hugging Face organisations
    # --- code hosting and package registries
    r"gh[pousr]_[A-Za-z0-9]{20,}",  # GitHub classic tokens
    r"github_pat_[A-Za-z0-9_]{20,}",  # GitHub fine-grained tokens
    r"gl(?:pat|dt|rt|ptt|cbt|ft|imt|soat|oas|agent|ffct)-[A-Za-z0-9_\-]{20,}",  # GitLab
    r"GR1348941[A-Za-z0-9_\-]{20,}",  # GitLab runner registration tokens
    r"npm_[A-Za-z0-9]{36,}",  # npm
    r"pypi-AgE[A-Za-z0-9_\-]{50,}",  # PyPI and TestPyPI (a macaroon naming its index)
    r"rubygems_[a-f0-9]{48}",  # RubyGems
    # --- clouds and platforms
    r"A(?:3T[A-Z0-9]|KIA|SIA|BIA|CCA)[A-Z0-9]{16}",  # AWS access key ids
    r"AIza[0-9A-Za-z_\-]{30,}",  # Google API keys
    r"GOCSPX-[A-Za-z0-9_\-]{20,}",  # Google OAuth client secrets
    r"ya29\.[A-Za-z0-9_\-]{20,}",  # Google OAuth access tokens
    r"do[opr]_v1_[a-f0-9]{64}",  # DigitalOcean
    r"dp\.(?:pt|st|sa|ct|scim|audit)\.[A-Za-z0-9]{40,}",  # Doppler
    r"hv[sbr]\.[A-Za-z0-9_\-]{24,}",  # HashiCorp Vault service, batch, recovery tokens
    r"dapi[a-f0-9]{32}",  # Databricks
    r"ATATT[A-Za-z0-9_\-=]{50,}",  # Atlassian API tokens
    r"sbp_[a-f0-9]{40}",  # Supabase personal tokens
    r"sb_secret_[A-Za-z0-9_\-]{20,}",  # Supabase secret keys
    r"sntry[su]_[A-Za-z0-9+/=_]{40,}",  # Sentry org and user tokens
    r"PMAK-[a-f0-9]{24}-[a-f0-9]{34}",  # Postman
    r"lin_(?:api|oauth)_[A-Za-z0-9]{40,}",  # Linear
    r"ntn_[A-Za-z0-9]{40,}",  # Notion
    # Notion's legacy tokens: exactly 43 letters and digits, so secret_key_base is none.
    r"secret_[A-Za-z0-9]{43}(?![A-Za-z0-9_])",
    r"shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}",  # Shopify
    r"sk_(?:live|test|prod)_[A-Za-z0-9]{16,}",  # Stripe secret keys (test ones too)
    r"rk_(?:live|test|prod)_[A-Za-z0-9]{16,}",  # Stripe restricted keys
    r"whsec_[A-Za-z0-9]{24,}",  # Stripe webhook signing secrets
    r"SG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",  # SendGrid
    r"xkeysib-[a-f0-9]{64}-[A-Za-z0-9]{16}",  # Brevo (Sendinblue)
    # Telegram bots, also inside a bot API URL (".../bot123456:AA...").
    r"bot[0-9]{5,16}:AA[A-Za-z0-9_\-]{30,}",
    ("0123456789", r"[0-9]{4,15}:AA[A-Za-z0-9_\-]{30,}", False),
    r"sig=[A-Za-z0-9%+/=]{20,}",  # Azure shared access signatures in a URL
    # --- chat
    r"xox[abposre]-[A-Za-z0-9\-]{10,}",  # Slack bot, user, workspace, refresh tokens
    r"xapp-[0-9]-[A-Za-z0-9\-]{10,}",  # Slack app-level tokens
    r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9+/_\-]{16,}",
    r"discord(?:app)?\.com/api/webhooks/[0-9]{5,}/[A-Za-z0-9_\-]{20,}",
    r"webhook\.office\.com/webhookb2/[A-Za-z0-9@/_\-]{20,}",  # Microsoft Teams
    # --- formats
    # JWT. Not after "-" or "_" either: else each "eyJ" of "eyJ-eyJ-eyJ-..." would rescan
    # the rest of the run.
    ("e", r"(?<![_\-].)yJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", False),
    # PEM private keys, through the END line -- or to the end of a truncated text, since
    # the base64 body is the secret and the BEGIN line alone is not. Labels are bounded:
    # "PRIVATE KEY PRIVATE KEY ..." must not be retried at every occurrence.
    r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY[A-Z ]{0,40}-----"
    r"(?s:.*?-----END[A-Z ]{0,40}PRIVATE KEY[A-Z ]{0,40}-----|.*)",
    # An (also Proxy-) Authorization header's value, scheme and credential, even glued to
    # what precedes it (curl -HAuthorization:...). Atomic: once the scheme is taken, a
    # masked "Bearer ***" cannot be re-read with "Bearer" as the secret.
    (
        "Aa",
        r"(?i:uthorization)[ \t]*[:=][ \t]*(?>(?:[A-Za-z][A-Za-z0-9\-]*[ \t]+)?)"
        r"(?!\*\*\*(?![^\s'\"]))[^\s'\"]+",
        True,
    ),
    # "Bearer <token>", "Basic <base64>" with any case of the scheme. The credential needs
    # a digit, an inner capital or "=" padding: prose ("basic usage") has none.
    (
        "Bb",
        rf"(?i:earer|asic)[ \t]+(?={_T68}*(?:[0-9]|[a-z][A-Z]|=))[A-Za-z0-9]{_T68}{{7,}}=*",
        False,
    ),
)  # fmt: skip


def _token_regex(
    patterns: Iterable[str | tuple[str, str, bool]], *, any_glue: bool = False
) -> re.Pattern[str]:
    by_first: dict[tuple[str, bool], list[str]] = {}
    for pattern in patterns:
        firsts, rest, glued = (
            (pattern[0], pattern[1:], False) if isinstance(pattern, str) else pattern
        )
        for first in firsts:
            assert first.isalnum() or first == "-", pattern  # a literal, not regex syntax
            by_first.setdefault((first, glued or any_glue), []).append(rest)
    # The look-behind runs after the first character (hence ".") and keeps a token from
    # being glued to a letter or digit: "task-scheduler-worker-pool" holds no OpenAI key.
    return re.compile(
        "|".join(
            f"{re.escape(first)}{'' if glued else '(?<![A-Za-z0-9].)'}(?:{'|'.join(rests)})"
            for (first, glued), rests in by_first.items()
        )
    )


_TOKEN_RE = _Lazy(lambda: _token_regex(_TOKEN_PATTERNS))
# A token right after another one ("dapi<32 hex>ghp_...") is glued to it only until the
# first is masked: the Redactor takes both at once, so redacting twice changes nothing.
_NEXT_TOKEN_RE = _Lazy(lambda: _token_regex(_TOKEN_PATTERNS, any_glue=True))
# scheme://user:PASSWORD@host -- only the password part is secret. It runs to the last
# "@" of the authority (as urllib splits it), so a raw "@" in it cannot leak the rest.
# The look-behind anchors the scheme at its start, so a long run of letters is scanned
# once, not once per starting position.
_URL_PASSWORD_RE = _Lazy(
    lambda: re.compile(
        r"(?P<head>(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*://[^/\s:@]*:)(?P<pw>[^\s/]+)@"
    )
)
# KEY=VALUE, "KEY": VALUE and "KEY"=VALUE in free text (connection strings, query strings,
# JSON, -Djava.props), judged by the name rules. The key is the whole run of name
# characters (possessive, and after no name character), so each run is tried once; it has
# three characters at least, as every secret word has. Only
# the key and "=" are matched: a value is read (by _VALUE_RE) only behind a secret key, so
# "url=https://h/?token=x" still finds the token and "a=a=a=..." is not read quadratically.
_ASSIGNMENT_RE = _Lazy(
    lambda: re.compile(
        r"(?P<key>[A-Za-z0-9_.\-\"'](?<![A-Za-z0-9_.\-].)[A-Za-z0-9_.\-]{2,256}+[\"']?)"
        r"(?:(?<=[\"'])[ \t]*:|[ \t]*=)[ \t]*(?=[^\s,;&}\]])"
    )
)
_VALUE_RE = _Lazy(lambda: re.compile(r"\"[^\"]*\"?|'[^']*'?|[^\s,;&'\"}\]]+"))


def _secret_roots() -> str:
    roots = set(SECRET_WORDS) | set(SECRET_SUFFIXES) | {w for p in SECRET_PHRASES for w in p}
    return "|".join(sorted(roots, key=len, reverse=True))


# Every secret name holds one of these as a substring: a cheap first test for is_secret_name.
_SECRET_ROOTS_RE = _Lazy(lambda: re.compile(_secret_roots()))  # on the upper-cased name
# An argv element that is a flag: -name, --name, --name=VALUE.
_FLAG_RE = _Lazy(lambda: re.compile(r"--?(?P<name>[A-Za-z0-9][A-Za-z0-9_.\-]*+)(?P<eq>=?)"))
# An argv element that is an assignment (env NAME=VALUE, make, codex -c key=value).
_ASSIGN_ARG_RE = _Lazy(lambda: re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*+)="))
# An argv element that is an HTTP header (curl -H "Authorization: Bearer ...").
_HEADER_ARG_RE = _Lazy(lambda: re.compile(r"(?P<name>[A-Za-z][A-Za-z0-9_\-]*+):[ \t]*"))
# After a flag that takes a secret, the next element is its value unless it is an option:
# "--x", "--", or one short option "-x" ("-" alone is stdin: a value, nothing to hide).
_OPTION_ARG_RE = _Lazy(lambda: re.compile(r"--.*|-[A-Za-z]", re.DOTALL))
#: Known values shorter than this are not searched for inside longer text.
_MIN_KNOWN = 4


def _mask_url_passwords(text: str) -> str:
    if "://" not in text:  # the common case, without entering the regex engine
        return text
    return _URL_PASSWORD_RE.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def name_words(name: str) -> list[str]:
    """Split a variable name into upper-case words on ``_ - .`` and camelCase.

    Examples
    --------
    >>> name_words("AWS_SECRET_ACCESS_KEY")
    ['AWS', 'SECRET', 'ACCESS', 'KEY']
    >>> name_words("githubToken2")
    ['GITHUB', 'TOKEN', '2']
    """
    words: list[str] = []
    for chunk in _SPLIT_RE.split(name):
        words.extend(word.upper() for word in _WORD_RE.findall(chunk))
    return words


def _phrase_end(words: list[str]) -> int:
    """Return the index of the last word that ends a secret phrase, or -1."""
    end = -1
    for i in range(1, len(words)):
        if (words[i - 1], words[i]) in SECRET_PHRASES:
            end = i
    return end


def is_secret_name(name: str) -> bool:
    """Return whether a variable called ``name`` holds a secret by its name alone.

    Parameters
    ----------
    name : str
        A variable name, header name or flag name (without its dashes).

    Returns
    -------
    bool
        True for names like ``API_KEY``, ``PGPASSWORD``, ``AZURE_CONNECTION_STRING``;
        False for allowed names (``PATH``, ``SSH_AUTH_SOCK``), names declared public
        (``NEXT_PUBLIC_API_KEY``), token quantities (``MAX_TOKENS``) and names that point
        at a secret rather than hold it (``SSH_KEY_PATH``, ``TOKEN_FILE``).

    Examples
    --------
    >>> is_secret_name("DB_CONNECTION_STRING"), is_secret_name("CLAUDE_CODE_MAX_OUTPUT_TOKENS")
    (True, False)
    >>> is_secret_name("SLACK_WEBHOOK_URL"), is_secret_name("OS_AUTH_URL")
    (True, False)
    """
    upper = name.upper()
    if upper in ALLOWED_NAMES or _SECRET_ROOTS_RE.search(upper) is None:
        return False
    words = name_words(name)
    if not words or any(word in PUBLIC_WORDS for word in words):
        return False
    phrase_end = _phrase_end(words)
    if words[-1] in REFERENCE_WORDS and phrase_end != len(words) - 1:
        return False
    if phrase_end >= 0:
        return True
    flagged = {word for word in words if word in SECRET_WORDS or word.endswith(SECRET_SUFFIXES)}
    if not flagged:
        return False
    # A token budget is a number the user wants to see; any other secret word still wins.
    return not (flagged <= _COUNTABLE_WORDS and any(word in QUANTITY_WORDS for word in words))


def _is_secret_flag(name: str) -> bool:
    """Return whether the flag ``--name`` (dashes stripped) takes a secret value."""
    if len(name) < 2:  # short options (-p is Claude Code's print mode, -k curl's insecure)
        return False
    if len(name) > _CACHED_NAME_LENGTH:
        return _flag_rule(name)
    return _cached_flag_rule(name)


def _flag_rule(name: str) -> bool:
    if not is_secret_name(name):
        return False
    words = name_words(name)
    # "--private" alone is a visibility switch (gh repo create --private NAME).
    return words[0] not in SWITCH_WORDS and words != ["PRIVATE"]


def _cached_name_rule(name: str) -> bool:
    return (_cached_secret_name if len(name) <= _CACHED_NAME_LENGTH else is_secret_name)(name)


# An argv or a text repeats the same few names; long ones are not kept alive by a cache.
_CACHED_NAME_LENGTH = 256
_cached_flag_rule = functools.lru_cache(maxsize=1024)(_flag_rule)
_cached_secret_name = functools.lru_cache(maxsize=1024)(is_secret_name)


def _is_secret_key(key: str) -> bool:
    return _cached_name_rule(key.strip("\"'").lstrip("-."))


def _secret_assignments(text: str) -> Iterator[tuple[int, int]]:
    """Yield the span of each value assigned to a secret name in ``text`` (quotes excluded)."""
    pos = 0
    verdicts: dict[str, bool] = {}  # hostile text repeats a key many times: judge it once
    while (m := _ASSIGNMENT_RE.search(text, pos)) is not None:
        pos = m.end()
        key = m.group("key")
        secret = verdicts.get(key)
        if secret is None:
            secret = verdicts[key] = _is_secret_key(key)
        value = _VALUE_RE.match(text, pos) if secret else None
        if value is None:
            continue
        start, end = value.span()
        after = end
        quote = text[start]
        if quote in {'"', "'"}:
            start += 1
            if end > start and text[end - 1] == quote:
                end -= 1
        # Masked, a value is "***": the next key is looked for right after it, as it will
        # be then (its closing quote may open that key). An empty or masked value is not
        # skipped, for the same reason; such values are short, so nothing is rescanned.
        if end > start and text[start:end] != MASK:
            pos = after
            yield start, end


def _has_secret_assignment(text: str) -> bool:
    if "=" not in text and ":" not in text:
        return False
    return next(_secret_assignments(text), None) is not None


def _mask_tokens(text: str) -> str:
    parts: list[str] = []
    done = 0
    while (token := _TOKEN_RE.search(text, done)) is not None:
        end = token.end()
        while (glued := _NEXT_TOKEN_RE.match(text, end)) is not None and glued.end() > end:
            end = glued.end()
        parts += [text[done : token.start()], MASK]
        done = end
    parts.append(text[done:])
    return "".join(parts)


def _mask_assignments(text: str) -> str:
    parts: list[str] = []
    done = 0
    for start, end in _secret_assignments(text):
        parts += [text[done:start], MASK]
        done = end
    parts.append(text[done:])
    return "".join(parts)


def _has_credential(text: str) -> bool:
    """Return whether ``text`` holds a token or a secret assignment (URL passwords aside)."""
    return _TOKEN_RE.search(text) is not None or _has_secret_assignment(text)


def has_secret_value(value: str) -> bool:
    """Return whether ``value`` holds a credential.

    A credential is a token (``ghp_...``, ``Bearer ...``), a URL password, or a value
    assigned to a secret name (``Password=...;``, ``"api_key": "..."``).

    Examples
    --------
    >>> has_secret_value("hf_" + "x" * 34), has_secret_value("pk_live_" + "x" * 24)
    (True, False)
    >>> has_secret_value("Server=db;Password=hunter2"), has_secret_value("max_tokens=100")
    (True, False)
    """
    return _has_credential(value) or _has_url_password(value)


def _has_url_password(value: str) -> bool:
    if "://" not in value:
        return False
    return any(m.group("pw") != MASK for m in _URL_PASSWORD_RE.finditer(value))


def _url_passwords(value: str) -> list[str]:
    return [m.group("pw") for m in _URL_PASSWORD_RE.finditer(value) if m.group("pw") != MASK]


def is_secret(name: str, value: str) -> bool:
    """Return whether the pair must never reach disk, argv, tmux, logs or output."""
    return is_secret_name(name) or has_secret_value(value)


def mask_value(name: str, value: str) -> str:
    """Return what may be stored or shown for ``name=value``.

    A secret name or a credential masks the whole value; a URL with a password keeps
    everything but the password. Masking a masked value changes nothing.

    Examples
    --------
    >>> mask_value("DATABASE_URL", "postgres://app:hunter2@db/app")
    'postgres://app:***@db/app'
    >>> mask_value("EXTRA", "Bearer abc123def456")
    '***'
    """
    if value == MASK or is_secret_name(name):
        return MASK
    # Passwords first, so a token that is only a URL's password (a git remote with a
    # PAT) leaves the URL readable; a token anywhere else still masks it all.
    masked = _mask_url_passwords(value)
    if _has_credential(masked):
        return MASK
    return masked


def mask_environment(
    environment: Mapping[str, str], forced: Collection[str] = ()
) -> dict[str, str]:
    """Return a copy of ``environment`` with every secret value masked.

    Parameters
    ----------
    environment : Mapping[str, str]
        Variable names to values; not modified.
    forced : Collection[str]
        Names that are secret whatever the rules say (``start --secret NAME``).

    Returns
    -------
    dict[str, str]
        The same names, each value as :func:`mask_value` (or ``MASK`` if forced) has it.
    """
    known = _forced_values(environment, forced)
    return {
        name: MASK if name in forced or value in known else mask_value(name, value)
        for name, value in environment.items()
    }


def _forced_values(environment: Mapping[str, str], forced: Collection[str]) -> frozenset[str]:
    """The values of forced names: the same value under another name is as secret."""
    return frozenset(v for n, v in environment.items() if n in forced and len(v) >= _MIN_KNOWN)


def split_environment(
    environment: Mapping[str, str], forced: Collection[str] = ()
) -> tuple[dict[str, str], dict[str, str]]:
    """Split ``environment`` into ``(public, secret)`` by :func:`is_secret`.

    Parameters
    ----------
    environment : Mapping[str, str]
        Variable names to their real values.
    forced : Collection[str]
        Names that go to ``secret`` whatever the rules say (``start --secret NAME``).

    Returns
    -------
    tuple[dict[str, str], dict[str, str]]
        ``(public, secret)``, both with real values.
    """
    public: dict[str, str] = {}
    secret: dict[str, str] = {}
    known = _forced_values(environment, forced)
    for name, value in environment.items():
        is_forced = name in forced or value in known
        (secret if is_forced or is_secret(name, value) else public)[name] = value
    return public, secret


class _ArgvMasker:
    """Masks argv elements one by one, remembering the raw values it hid."""

    def __init__(self, forced: Iterable[str]) -> None:
        self.exact = frozenset(v for v in forced if v and v != MASK)
        # A floor, so a one-letter value does not mask every element holding that letter.
        self.inner = tuple(v for v in self.exact if len(v) >= _MIN_KNOWN and MASK not in v)
        self.hidden: list[str] = []

    def _masked(self, value: str) -> tuple[str, list[str]]:
        """Return ``(value as mask_value has it for a public name, the raw parts hidden)``."""
        if not value or value == MASK:
            return value, []
        if value in self.exact or any(v in value for v in self.inner):
            return MASK, [value]
        masked = _mask_url_passwords(value)
        if _has_credential(masked):
            return MASK, [value]
        return masked, _url_passwords(value) if masked != value else []

    def _value(self, value: str, secret: bool = False) -> str:
        if secret and value not in {"", MASK}:
            self.hidden.append(value)
            return MASK
        masked, hidden = self._masked(value)
        self.hidden.extend(hidden)
        return masked

    def _split(self, arg: str, cut: int, secret: bool) -> str:
        """Mask ``arg[cut:]`` (a flag's or name's value); all of ``arg`` if the rest leaks."""
        prefix = arg[:cut]
        if self._masked(prefix)[0] == prefix:
            hidden = len(self.hidden)
            result = prefix + self._value(arg[cut:], secret)
            # A token or a known value may span the cut ("sig=...", "--api-keyA=B").
            if self._masked(result)[0] == result:
                return result
            del self.hidden[hidden:]
        return self._value(arg, secret=True)

    def element(self, arg: str, takes_value: bool) -> tuple[str, bool]:
        """Return ``(masked arg, whether the next element is a secret flag's value)``."""
        if arg in self.exact:
            return self._value(arg, secret=True), False
        if takes_value and _OPTION_ARG_RE.fullmatch(arg) is None:
            return (arg if arg == "-" else self._value(arg, secret=True)), False
        if arg.startswith("-"):
            flag = _FLAG_RE.match(arg)
            if flag is not None:
                secret = _is_secret_flag(flag.group("name"))
                if flag.end() == len(arg):  # "--flag" alone ("--flag=" has an empty value)
                    return self._value(arg), secret and not flag.group("eq")
                if flag.group("eq"):
                    return self._split(arg, flag.end(), secret), False
            return self._value(arg), False
        assign = _ASSIGN_ARG_RE.match(arg)
        if assign is not None:
            return self._split(arg, assign.end(), _cached_name_rule(assign.group("name"))), False
        header = _HEADER_ARG_RE.match(arg)
        if header is not None and _cached_name_rule(header.group("name")):
            return self._split(arg, header.end(), True), False
        return self._value(arg), False

    def argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        out: list[str] = []
        takes_value = False
        for arg in argv:
            masked, takes_value = self.element(arg, takes_value)
            out.append(masked)
        return tuple(out)


def mask_argv(argv: Sequence[str], forced: Collection[str] = ()) -> tuple[str, ...]:
    """Return ``argv`` with every secret value replaced by ``MASK``.

    Parameters
    ----------
    argv : Sequence[str]
        A command line, program first (``claude --api-key sk-ant-...``).
    forced : Collection[str]
        Values that are secret wherever they appear: as a whole element, as the value of
        ``--flag=VALUE`` or ``NAME=VALUE``, or (4 characters or more) inside any element,
        which is then masked whole (``start --secret NAME=VALUE`` passes its values).

    Returns
    -------
    tuple[str, ...]
        As long as ``argv``; masking it again changes nothing.

    Notes
    -----
    Hidden are: the value of a flag named like a secret (``--api-key X``,
    ``--api-key=X``, ``-token X``); the value of ``NAME=VALUE`` and of a header
    ``Name: value`` whose name is secret; the password of a URL (the rest stays); and
    all of any other element holding a token or a secret ``key=value``.

    A flag's separate value is the next element unless that is ``--...``, ``--`` or a
    one-letter option ``-x`` (parsers such as commander and click take ``-abc`` as a
    value, so a key starting with "-" is still hidden); ``-`` (stdin) and ``""`` stay.
    One-letter flags (``-p``, ``-k``), counts (``--max-tokens``), references
    (``--password-file``, ``--password-stdin``) and switches (``--no-auth``,
    ``--show-token``, ``--with-token``, ``--private``) take no secret.

    Examples
    --------
    >>> mask_argv(["claude", "--api-key", "hunter2", "-p", "hello"])
    ('claude', '--api-key', '***', '-p', 'hello')
    >>> mask_argv(["env", "DB_PASSWORD=x1", "git", "clone", "https://me:pw@host/r.git"])
    ('env', 'DB_PASSWORD=***', 'git', 'clone', 'https://me:***@host/r.git')
    """
    return _ArgvMasker(forced).argv(argv)


def argv_secret_values(argv: Sequence[str], forced: Collection[str] = ()) -> list[str]:
    """Return the raw values :func:`mask_argv` hides, each once, in argv order.

    Give them to a :class:`Redactor` so an error message that quotes the command line
    cannot show them.

    Examples
    --------
    >>> argv_secret_values(["aider", "--openai-api-key=hunter2", "https://u:pw42@h/x"])
    ['hunter2', 'pw42']
    """
    masker = _ArgvMasker(forced)
    masker.argv(argv)
    return list(dict.fromkeys(v for v in masker.hidden if v and v != MASK))


class Redactor:
    """Scrubs known secret values and credential patterns out of text.

    Parameters
    ----------
    values : Iterable[str]
        Secret values known to the caller (e.g. the ``-e`` values of a ``start``, or
        :func:`argv_secret_values` of its command); they are removed even where no
        pattern would recognise them.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._values = sorted({v for v in values if len(v) >= _MIN_KNOWN}, key=len, reverse=True)

    def add(self, value: str) -> None:
        """Remember one more secret value."""
        if len(value) >= _MIN_KNOWN and value not in self._values:
            self._values.append(value)
            self._values.sort(key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """Return ``text`` with every known value and credential pattern masked."""
        for value in self._values:
            text = text.replace(value, MASK)
        text = _mask_tokens(text)
        text = _mask_assignments(text)
        return _mask_url_passwords(text)


def scrub_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """Return ``environ`` without any secret pair, for processes that must not see them.

    Used for the tmux client we spawn: a tmux server inherits the environment of the
    client that starts it and shows it in ``show-environment -g`` for its whole life.
    """
    return {name: value for name, value in environ.items() if not is_secret(name, value)}
