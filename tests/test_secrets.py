"""Secret masking rules: by variable name, by value (token families, URL passwords), redaction."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from amux_tmux.secrets import (
    MASK,
    SECRET_SUFFIXES,
    SECRET_WORDS,
    Redactor,
    has_secret_value,
    is_secret,
    is_secret_name,
    mask_environment,
    mask_value,
    name_words,
    scrub_environ,
    split_environment,
)

# --- names -----------------------------------------------------------------------------

SECRET_NAMES = [
    # the everyday ones
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "GITHUB_TOKEN",
    "GH_PAT",
    "AWS_SECRET_ACCESS_KEY",
    "DB_PASSWORD",
    "MYSQL_PWD",
    "PGPASSWORD",  # glued: ends with PASSWORD
    "SENTRY_DSN",
    "SESSION_COOKIE",
    "PRIVATE_KEY",
    "clientSecret",  # camelCase
    "api-key",  # dashes
    "my.auth.token",  # dots
    "db_password",  # lower case
    "CLAUDE_CODE_OAUTH_TOKEN",
    "HF_TOKEN",
    "SLACK_BOT_TOKEN",
    # one per claimed word
    "SIGNING_KEYS",
    "X_APIKEY",
    "PYPI_TOKENS",
    "APP_SECRETS",
    "DB_PASSWORDS",
    "FTP_PASSWD",
    "SMTP_PASS",
    "GPG_PASSPHRASE",
    "AZURE_CREDENTIAL",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "DOCKER_CREDS",
    "BASIC_AUTH",
    "HTTP_AUTHORIZATION",
    "BROWSER_COOKIES",
    "WEBHOOK_SIGNATURE",
    "PASSWORD_SALT",
    "API_BEARER",
    "SUPABASE_JWT",
    "MFA_OTP",
    "DJANGO_SESSIONID",
    "OAUTH_CLIENTSECRET",
    # camelCase and glued suffixes
    "githubToken",
    "myApiKey",
    "MYAPIKEY",
    "AWSACCESSKEY",
    "STRIPE_SECRETKEY",
    "SSHPRIVATEKEY",
    "AZURECREDENTIAL",
    "SERVICECREDENTIALS",
    "KEYPASSPHRASE",
    "ROOTPASSWD",
    "APPSECRET",
    "x-api-key",
    # a quantity word does not excuse a non-countable secret word
    "MAX_TOKEN_SECRET",
    "TOKEN_LIMIT_KEY",
]

HARMLESS_NAMES = [
    "PATH",
    "HOME",
    "TERM",
    "TMUX",
    "TMUX_PANE",
    "TMUX_TMPDIR",
    "AMUX_SESSION_ID",
    "AMUX_ROOT",
    "AMUX_TMUX_SOCKET",
    "PWD",  # allow-listed although PWD is a secret word
    "OLDPWD",
    "NODE_ENV",
    "LANG",
    "SHELL",
    "USER",
    "LOGNAME",
    "EDITOR",
    "SSH_AUTH_SOCK",  # allow-listed although AUTH is a secret word
    "GPG_AGENT_INFO",
    "XAUTHORITY",
    "KEYTIMEOUT",
    "NEXT_PUBLIC_API_KEY",  # PUBLIC by declaration
    "VITE_PUBLIC_TOKEN",
    "SSH_PUBLIC_KEY",
    "CLAUDE_CODE_MAX_OUTPUT_TOKENS",  # counts LLM tokens
    "MAX_TOKENS",
    "TOKEN_COUNT",
    "TOKEN_BUDGET",
    "KEYBOARD_LAYOUT",  # KEYBOARD is not KEY
    "MONKEY",
    "TOKENIZERS_PARALLELISM",
    "PASSENGER_APP_ENV",  # PASSENGER is not PASS
    "GIT_AUTHOR_NAME",  # AUTHOR is not AUTH
    "SECRETARY_NAME",
    "session_id",
    "HOSTNAME",
    "DISPLAY",
    "COLUMNS",
    "LC_ALL",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "DEBUG",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_masked(name: str) -> None:
    """A secret name masks any value, even one that looks harmless."""
    assert is_secret_name(name)
    assert mask_value(name, "plain-value-42") == MASK
    assert mask_environment({name: "x"}) == {name: MASK}
    assert is_secret(name, "x")


@pytest.mark.parametrize("name", HARMLESS_NAMES)
def test_harmless_names_are_kept(name: str) -> None:
    """A harmless name with a harmless value is stored as is."""
    assert not is_secret_name(name)
    assert mask_value(name, "/usr/bin") == "/usr/bin"
    assert not is_secret(name, "/usr/bin")


def test_every_claimed_word_is_covered_by_the_table() -> None:
    """The name table exercises each word and suffix the rules claim to cover."""
    covered = {word for name in SECRET_NAMES for word in name_words(name)}
    assert set(SECRET_WORDS) - covered == set()
    glued = [w for w in covered if w not in SECRET_WORDS]
    for suffix in SECRET_SUFFIXES:
        assert any(w.endswith(suffix) for w in glued) or suffix in covered, suffix


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("clientSecret", ["CLIENT", "SECRET"]),
        ("my.auth.token", ["MY", "AUTH", "TOKEN"]),
        ("api-key", ["API", "KEY"]),
        ("AWS_SECRET_ACCESS_KEY", ["AWS", "SECRET", "ACCESS", "KEY"]),
        ("HTTPSProxy", ["HTTPS", "PROXY"]),
        ("githubToken2", ["GITHUB", "TOKEN", "2"]),
        ("__", []),
    ],
)
def test_name_words(name: str, words: list[str]) -> None:
    """Names split on ``_ - .`` and camelCase into upper-case words."""
    assert name_words(name) == words


# --- values ----------------------------------------------------------------------------

TOKEN_VALUES = {
    "anthropic": "sk-ant-api03-" + "Ab1" * 15,
    "openai": "sk-" + "a1B2" * 12,
    "openai-project": "sk-proj-" + "Zz9_" * 6,
    "github-classic": "ghp_" + "A1b2C3d4E5" * 4,
    "github-oauth": "gho_" + "0123456789abcdefghij",
    "github-fine-grained": "github_pat_11ABCDEFG0" + "x_Y1" * 10,
    "aws-access-key": "AKIAIOSFODNN7EXAMPLE",
    "aws-temporary-key": "ASIAY34FZKBOKMUTVV7A",
    "slack-bot": "xoxb-123456789012-1234567890123-AbCdEfGhIjKl",
    "slack-user": "xoxp-0123456789-abcdef",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "pem-rsa": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7\nabc==\n"
    "-----END RSA PRIVATE KEY-----",
    "pem-openssh-truncated": "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
    "pem-pkcs8": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEI\n-----END PRIVATE KEY-----\n",
    "google": "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"[:35],
    "stripe-live": "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
    "stripe-restricted-test": "rk_test_" + "51H8sdfLKJ23lkjsdf0a",
    "gitlab": "glpat-" + "xxxxXXXX1111_-yyyyZZ",
}


@pytest.mark.parametrize("value", TOKEN_VALUES.values(), ids=TOKEN_VALUES.keys())
def test_token_values_are_masked_under_a_harmless_name(value: str) -> None:
    """A credential-looking value is masked whole, whatever its variable is called."""
    assert has_secret_value(value)
    assert mask_value("NODE_ENV", value) == MASK
    assert is_secret("NODE_ENV", value)
    # Embedded in a longer value, after a separator, it still masks everything.
    for wrapped in (f"Bearer {value}", f"--token={value}", f"x,{value},y"):
        assert mask_value("ARGS", wrapped) == MASK


@pytest.mark.parametrize(
    "value",
    [
        "task-scheduler-worker-pool",  # holds "sk-scheduler-..." glued to a letter
        "risk-assessment-pipeline-v2",
        "/usr/bin",
        "/home/me/.cache/sk-",
        "production",
        "en_US.UTF-8",
        "xterm-256color",
        "https://example.com/path?q=1",
        "https://user@example.com/repo.git",  # a user, no password
        "mask-ghp_short",  # too short to be a GitHub token
        "eyJhbGciOiJIUzI1NiJ9",  # one JWT segment alone is not a token
        "AKIA-not-a-key",
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
        "-----END PUBLIC KEY-----",
        "",
    ],
)
def test_harmless_values_are_kept(value: str) -> None:
    """Ordinary values (even ones containing token-like fragments) are not masked."""
    assert not has_secret_value(value)
    assert mask_value("NODE_ENV", value) == value


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("postgres://user:hunter2@db/x", "postgres://user:***@db/x"),
        ("redis://:s3cr3t@cache:6379/0", "redis://:***@cache:6379/0"),
        (
            "mysql+pymysql://app:p@ss:w0rd@db.internal/app",
            "mysql+pymysql://app:***@db.internal/app",
        ),
        ("https://x:hunter2@git.example.com/o/r.git", "https://x:***@git.example.com/o/r.git"),
        (
            # a PAT that is only the URL's password leaves the URL readable
            "https://oauth2:ghp_A1b2C3d4E5A1b2C3d4E5A1b2@github.com/o/r.git",
            "https://oauth2:***@github.com/o/r.git",
        ),
        (
            "primary=postgres://a:one@h1/x replica=postgres://b:two@h2/x",
            "primary=postgres://a:***@h1/x replica=postgres://b:***@h2/x",
        ),
    ],
)
def test_url_password_only_is_masked(value: str, masked: str) -> None:
    """In a URL only the password part becomes ``***``; the rest stays readable."""
    assert has_secret_value(value)
    assert mask_value("DATABASE_URL", value) == masked
    assert not has_secret_value(masked)


def test_url_with_token_outside_the_password_masks_all() -> None:
    """A token elsewhere in a URL (e.g. a query string) masks the whole value."""
    value = "https://u:pw@h/x?key=ghp_A1b2C3d4E5A1b2C3d4E5A1b2"
    assert mask_value("HOOK", value) == MASK


@pytest.mark.parametrize(
    ("name", "value"),
    [
        *(("NODE_ENV", v) for v in TOKEN_VALUES.values()),
        ("DATABASE_URL", "postgres://user:hunter2@db/x"),
        ("API_KEY", "anything"),
        ("API_KEY", MASK),
        ("NODE_ENV", MASK),
        ("NODE_ENV", "production"),
    ],
)
def test_masking_is_idempotent(name: str, value: str) -> None:
    """Masking a masked value changes nothing."""
    once = mask_value(name, value)
    assert mask_value(name, once) == once


def test_personal_access_token_names_are_flagged() -> None:
    """``PAT`` (personal access token) is a secret word; ``PATH`` and ``PATTERN`` are not."""
    assert is_secret_name("GH_PAT")
    assert is_secret_name("AZURE_DEVOPS_PAT")
    assert not is_secret_name("PATH")
    assert not is_secret_name("LOG_PATTERN")
    assert mask_value("GH_PAT", TOKEN_VALUES["github-fine-grained"]) == MASK
    assert mask_value("GH_PAT", TOKEN_VALUES["github-classic"]) == MASK


def test_public_name_does_not_excuse_a_token_value() -> None:
    """``PUBLIC`` exempts the name only: a credential value under it is still masked."""
    assert not is_secret_name("NEXT_PUBLIC_API_KEY")
    assert is_secret("NEXT_PUBLIC_API_KEY", TOKEN_VALUES["stripe-live"])
    assert mask_value("NEXT_PUBLIC_API_KEY", TOKEN_VALUES["stripe-live"]) == MASK
    assert mask_value("MAX_TOKENS", TOKEN_VALUES["anthropic"]) == MASK


def test_mask_environment_and_split() -> None:
    """mask_environment masks per pair; split_environment partitions by is_secret."""
    env = {
        "ANTHROPIC_API_KEY": "sk-ant-whatever-1234567",
        "NODE_ENV": "production",
        "DATABASE_URL": "postgres://user:hunter2@db/x",
        "EXTRA": TOKEN_VALUES["slack-bot"],
        "NEXT_PUBLIC_API_KEY": "pk_visible",
    }
    assert mask_environment(env) == {
        "ANTHROPIC_API_KEY": MASK,
        "NODE_ENV": "production",
        "DATABASE_URL": "postgres://user:***@db/x",
        "EXTRA": MASK,
        "NEXT_PUBLIC_API_KEY": "pk_visible",
    }
    assert env["ANTHROPIC_API_KEY"] != MASK  # the input is not modified
    public, secret = split_environment(env)
    assert public == {"NODE_ENV": "production", "NEXT_PUBLIC_API_KEY": "pk_visible"}
    assert set(secret) == {"ANTHROPIC_API_KEY", "DATABASE_URL", "EXTRA"}
    assert secret["DATABASE_URL"] == env["DATABASE_URL"]  # secrets keep their real values


def test_scrub_environ_drops_secret_pairs() -> None:
    """scrub_environ removes secret names and secret values, keeps the rest untouched."""
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "TMUX_TMPDIR": "/tmp/x",
        "GITHUB_TOKEN": "abc",
        "NODE_ENV": TOKEN_VALUES["anthropic"],
        "DATABASE_URL": "postgres://user:hunter2@db/x",
        "PWD": "/work",
    }
    assert scrub_environ(environ) == {
        "PATH": "/usr/bin",
        "HOME": "/root",
        "TMUX_TMPDIR": "/tmp/x",
        "PWD": "/work",
    }


# --- Redactor --------------------------------------------------------------------------


def test_redactor_removes_known_values_and_patterns() -> None:
    """Known values, token patterns and URL passwords are all scrubbed from text."""
    redact = Redactor(["correct-horse-battery", "abc"])
    text = (
        "failed with correct-horse-battery; token "
        + TOKEN_VALUES["github-classic"]
        + " at postgres://u:hunter2@db/x, abc stays"
    )
    out = redact(text)
    assert "correct-horse-battery" not in out
    assert TOKEN_VALUES["github-classic"] not in out
    assert "hunter2" not in out
    assert "postgres://u:***@db/x" in out
    assert "abc stays" in out  # values shorter than 4 characters are ignored
    assert redact(out) == out


def test_redactor_longest_value_first_and_add() -> None:
    """A value that contains another is removed whole; add() extends the set."""
    redact = Redactor(["wxyz", "wxyz-extended"])
    assert redact("[wxyz-extended] [wxyz]") == "[***] [***]"
    assert redact("later-secret") == "later-secret"
    redact.add("later-secret")
    redact.add("later-secret")
    redact.add("no")
    assert redact("later-secret no") == "*** no"


# --- properties ------------------------------------------------------------------------

_secret_name = st.sampled_from(SECRET_NAMES)
_harmless_name = st.sampled_from(
    [n for n in HARMLESS_NAMES if n not in {"PWD", "TMUX"}] + ["MODE", "LEVEL", "X1"]
)
_pieces = st.sampled_from(
    [
        "sk-ant-",
        "sk-",
        "ghp_",
        "github_pat_",
        "AKIA",
        "xoxb-",
        "eyJ",
        ".",
        "://",
        ":",
        "@",
        "/",
        "-",
        "_",
        " ",
        "ABCDEFGHIJKLMNOP",
        "abcdefghij",
        "0123456789",
        "-----BEGIN PRIVATE KEY-----",
        MASK,
    ]
)
_value = st.lists(_pieces | st.text(max_size=12), max_size=8).map("".join)


@settings(max_examples=300, deadline=None)
@given(
    secrets=st.dictionaries(_secret_name, _value, max_size=4),
    public=st.dictionaries(_harmless_name, _value, max_size=4),
)
def test_mask_environment_never_leaks_secret_named_values(
    secrets: dict[str, str], public: dict[str, str]
) -> None:
    """No output value contains a secret-named variable's value; masking twice is a no-op."""
    long_secrets = [v for v in secrets.values() if len(v) >= 8]
    # A harmless variable that repeats a secret value is the caller's own choice.
    assume(not any(s in p for s in long_secrets for p in public.values()))
    env = {**public, **secrets}
    masked = mask_environment(env)
    assert set(masked) == set(env)
    for name in secrets:
        assert masked[name] == MASK
    for secret_value in long_secrets:
        assert all(secret_value not in out for out in masked.values())
    assert mask_environment(masked) == masked


@settings(max_examples=300, deadline=None)
@given(name=_harmless_name, value=_value)
def test_masked_values_hold_nothing_credential_like(name: str, value: str) -> None:
    """Whatever a harmless-named value holds, its masked form is clean and stable."""
    out = mask_value(name, value)
    assert not has_secret_value(out)
    assert mask_value(name, out) == out
    if not has_secret_value(value):
        assert out == value


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.text(alphabet="abcdefXYZ019-_:/@ ", min_size=4, max_size=10), max_size=4),
    filler=st.lists(_pieces | st.text(alphabet="abcdefXYZ019-_:/@ ", max_size=6), max_size=6),
)
def test_redactor_never_leaves_a_known_value(values: list[str], filler: list[str]) -> None:
    """Text built around known values holds none of them once redacted."""
    parts = [p for pair in zip(filler, values, strict=False) for p in pair] + filler + values
    text = "|".join(parts)
    out = Redactor(values)(text)
    for value in values:
        assert value not in out
