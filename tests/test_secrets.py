"""Secret masking rules: by name, by value (token families, URL passwords), argv, redaction."""

from __future__ import annotations

import base64
import doctest
import time
from typing import NamedTuple

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import amux_tmux.secrets
from amux_tmux.secrets import (
    MASK,
    SECRET_PHRASES,
    SECRET_SUFFIXES,
    SECRET_WORDS,
    Redactor,
    argv_secret_values,
    has_secret_value,
    is_secret,
    is_secret_name,
    mask_argv,
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
    "AZURE_STORAGE_SAS",
    "MASTERKEY",
    "DBCONNSTR",
    "AZURECONNECTIONSTRING",
    "SLACKWEBHOOKURL",
    # phrases: neither word is secret alone
    "DB_CONNECTION_STRING",
    "connectionStr",
    "SQL_CONN_STRING",
    "CONN_STR",
    "DISCORD_WEBHOOK_URL",
    "SLACK_HOOK_URL",
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
    pairs = {pair for name in SECRET_NAMES for pair in zip(name_words(name), name_words(name)[1:])}
    assert set(SECRET_PHRASES) - pairs == set()


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


# --- names: the wider rules, table-driven ------------------------------------------------


class NameCase(NamedTuple):
    test_id: str
    name: str
    secret: bool


NAME_CASES = [
    # secret: names whose words (or word pairs) say so
    NameCase("masterkey-glued", "MASTERKEY", True),
    NameCase("master-key", "MASTER_KEY", True),
    NameCase("cosmos-masterkey", "COSMOS_DB_MASTERKEY", True),
    NameCase("connection-string", "AZURE_STORAGE_CONNECTION_STRING", True),
    NameCase("connectionstring-glued", "SERVICEBUS_CONNECTIONSTRING", True),
    NameCase("connection-string-camel", "connectionString", True),
    NameCase("conn-str", "SQL_CONN_STR", True),
    NameCase("connstr-glued", "CONNSTR", True),
    NameCase("dsn", "SENTRY_DSN", True),
    NameCase("sas", "AZURE_STORAGE_SAS", True),
    NameCase("sas-token", "SAS_TOKEN", True),
    NameCase("private-key", "JWT_PRIVATE_KEY", True),
    NameCase("client-secret", "AZURE_CLIENT_SECRET", True),
    NameCase("slack-webhook-url", "SLACK_WEBHOOK_URL", True),
    NameCase("webhook-url-camel", "webhookUrl", True),
    NameCase("webhookurl-glued", "DISCORDWEBHOOKURL", True),
    NameCase("cookie", "COOKIE", True),
    NameCase("session-token", "AWS_SESSION_TOKEN", True),
    NameCase("vault-secret-id", "VAULT_SECRET_ID", True),  # ID is no reference word
    NameCase("refresh-token", "REFRESH_TOKEN", True),
    NameCase("encryption-key", "ENCRYPTION_KEY", True),
    NameCase("webhook-url-file-is-a-path", "SLACK_WEBHOOK_URL_FILE", False),
    # public: everyday names
    NameCase("path", "PATH", False),
    NameCase("home", "HOME", False),
    NameCase("term", "TERM", False),
    NameCase("shell", "SHELL", False),
    NameCase("editor", "EDITOR", False),
    NameCase("lang", "LANG", False),
    NameCase("lc-all", "LC_ALL", False),
    NameCase("tmux", "TMUX", False),
    NameCase("tmux-pane", "TMUX_PANE", False),
    NameCase("ssh-auth-sock", "SSH_AUTH_SOCK", False),
    NameCase("gpg-tty", "GPG_TTY", False),
    NameCase("keytimeout", "KEYTIMEOUT", False),
    NameCase("xdg-session-id", "XDG_SESSION_ID", False),  # SESSION ID, not SESSIONID
    NameCase("xdg-session-type", "XDG_SESSION_TYPE", False),
    NameCase("xdg-runtime-dir", "XDG_RUNTIME_DIR", False),
    NameCase("display", "DISPLAY", False),
    NameCase("colorterm", "COLORTERM", False),
    NameCase("tokenizers-parallelism", "TOKENIZERS_PARALLELISM", False),
    NameCase("claude-max-output-tokens", "CLAUDE_CODE_MAX_OUTPUT_TOKENS", False),
    NameCase("max-thinking-tokens", "MAX_THINKING_TOKENS", False),
    NameCase("node-env", "NODE_ENV", False),
    NameCase("debug", "DEBUG", False),
    NameCase("pythonpath", "PYTHONPATH", False),
    NameCase("virtual-env", "VIRTUAL_ENV", False),
    NameCase("conda-prefix", "CONDA_PREFIX", False),
    NameCase("amux-root", "AMUX_ROOT", False),
    NameCase("amux-session-id", "AMUX_SESSION_ID", False),
    NameCase("amux-tmux-socket", "AMUX_TMUX_SOCKET", False),
    NameCase("histfile", "HISTFILE", False),
    NameCase("pager", "PAGER", False),
    NameCase("lesskey", "LESSKEY", False),  # less's key bindings file: KEY only glued
    NameCase("keyboard-layout", "KEYBOARD_LAYOUT", False),
    NameCase("public-key-path", "PUBLIC_KEY_PATH", False),
    NameCase("anthropic-base-url", "ANTHROPIC_BASE_URL", False),
    NameCase("openai-base-url", "OPENAI_BASE_URL", False),
    NameCase("anthropic-model", "ANTHROPIC_MODEL", False),
    NameCase("git-author-name", "GIT_AUTHOR_NAME", False),
    NameCase("ssh-connection", "SSH_CONNECTION", False),  # CONNECTION without STRING
    NameCase("connection-timeout", "DB_CONNECTION_TIMEOUT", False),
    NameCase("dbus-address", "DBUS_SESSION_BUS_ADDRESS", False),
    NameCase("git-askpass", "GIT_ASKPASS", False),
    NameCase("webhook-port", "WEBHOOK_PORT", False),
    # public: the name points at a secret or describes it, it does not hold it
    NameCase("ssh-key-path", "SSH_KEY_PATH", False),
    NameCase("password-file", "POSTGRES_PASSWORD_FILE", False),
    NameCase("token-file", "KUBE_TOKEN_FILE", False),
    NameCase("os-auth-url", "OS_AUTH_URL", False),
    NameCase("jwt-algorithm", "JWT_ALGORITHM", False),
    NameCase("token-ttl", "ACCESS_TOKEN_TTL", False),
    NameCase("cookie-name", "SESSION_COOKIE_NAME", False),
    NameCase("key-type", "SSH_KEY_TYPE", False),
    NameCase("password-store-dir", "PASSWORD_STORE_DIR", False),
]


@pytest.mark.parametrize("case", NAME_CASES, ids=[c.test_id for c in NAME_CASES])
def test_name_rules(case: NameCase) -> None:
    """Secret names mask any value; ordinary names keep an ordinary one."""
    assert is_secret_name(case.name) is case.secret
    assert mask_value(case.name, "/usr/bin") == (MASK if case.secret else "/usr/bin")


# --- values: the token families, table-driven --------------------------------------------


class ValueCase(NamedTuple):
    test_id: str
    value: str


# Built by concatenation: this file holds no string a secret scanner takes for a token.
_B64 = base64.b64encode(b"me:correct horse").decode()
TOKEN_CASES = [
    ValueCase("huggingface", "hf_" + "AbCdEfGhIj" * 3 + "Klmn"),
    ValueCase("huggingface-org", "api_org_" + "AbCdEfGhIj" * 3 + "Klmn"),
    ValueCase("npm", "npm_" + "a1B2c3" * 6),
    ValueCase("pypi", "pypi-AgEIcHlwaS5vcmc" + "CJDk1Zjg4" * 8),
    ValueCase("testpypi", "pypi-AgENdGVzdC5weXBpLm9yZw" + "CJDk1Zjg4" * 8),
    ValueCase("gitlab-pat", "glpat-" + "Ab1_" * 5),
    ValueCase("gitlab-deploy", "gldt-" + "Ab1-" * 5),
    ValueCase("gitlab-runner", "glrt-" + "Ab1_" * 5),
    ValueCase("gitlab-trigger", "glptt-" + "0f" * 20),
    ValueCase("gitlab-runner-registration", "GR1348941" + "Ab1_" * 5),
    ValueCase("stripe-live", "sk_live_" + "4eC39HqLyjWD" * 2),
    ValueCase("stripe-test", "sk_test_" + "4eC39HqLyjWD" * 2),
    ValueCase("stripe-restricted-live", "rk_live_" + "4eC39HqLyjWD" * 2),
    ValueCase("stripe-webhook", "whsec_" + "4eC39HqLyjWD" * 3),
    ValueCase("google-api", "AIza" + "SyD-9tSrke72_" * 3),
    ValueCase("google-oauth-secret", "GOCSPX-" + "Ab1_" * 7),
    ValueCase("google-oauth-access", "ya29." + "a0Ab1_" * 6),
    ValueCase("openai-project", "sk-proj-" + "Ab1_-" * 10),
    ValueCase("openai-service", "sk-svcacct-" + "Ab1_-" * 10),
    ValueCase("openai-admin", "sk-admin-" + "Ab1_-" * 10),
    ValueCase("anthropic-api", "sk-ant-api03-" + "Ab1_-" * 18 + "AA"),
    ValueCase("anthropic-admin", "sk-ant-admin01-" + "Ab1_-" * 18 + "AA"),
    ValueCase("anthropic-oauth", "sk-ant-oat01-" + "Ab1_-" * 18 + "AA"),
    ValueCase("slack-bot", "xoxb-" + "1234567890-" * 2 + "AbCdEf" * 4),
    ValueCase("slack-user", "xoxp-" + "1234567890-" * 3 + "abcdef" * 5),
    ValueCase("slack-workspace", "xoxa-2-" + "AbCdEf" * 4),
    ValueCase("slack-refresh", "xoxr-" + "AbCdEf" * 4),
    ValueCase("slack-legacy", "xoxs-" + "1234567890-" * 3 + "abcdef"),
    ValueCase("slack-app", "xapp-1-A0" + "B1C2D3" * 3 + "-1234567890-" + "ab12" * 8),
    ValueCase(
        "slack-webhook", "https://hooks.slack.com/services/T0" + "A1B2" * 3 + "/B0X/" + "x" * 24
    ),
    ValueCase("discord-webhook", "https://discord.com/api/webhooks/123456789012/" + "Ab_-" * 10),
    ValueCase("teams-webhook", "https://acme.webhook.office.com/webhookb2/" + "0a1b-" * 8),
    ValueCase("github-user-to-server", "ghu_" + "A1b2C3d4E5" * 4),
    ValueCase("github-server-to-server", "ghs_" + "A1b2C3d4E5" * 4),
    ValueCase("github-refresh", "ghr_" + "A1b2C3d4E5" * 4),
    ValueCase("aws-abia", "ABIA" + "Y34FZKBOKMUTVV7A"),
    ValueCase("aws-acca", "ACCA" + "Y34FZKBOKMUTVV7A"),
    ValueCase("bearer", "Bearer " + "Ab1_-" * 6),
    ValueCase("bearer-lower", "bearer " + "0a1b2c3d" * 4),
    ValueCase("bearer-upper", "BEARER " + "AbCdEfGhIjKl"),
    ValueCase("basic", "Basic " + _B64),
    ValueCase("basic-lower", "basic " + _B64),
    ValueCase("authorization-header", "Authorization: token " + "abcdefgh"),
    ValueCase("sendgrid", "SG." + "Ab1_-" * 5 + "." + "Cd2_-" * 9),
    ValueCase("digitalocean", "dop_v1_" + "0a" * 32),
    ValueCase("doppler", "dp.pt." + "Ab1" * 15),
    ValueCase("shopify", "shpat_" + "0aF1" * 8),
    ValueCase("groq", "gsk_" + "Ab1" * 17),
    ValueCase("replicate", "r8_" + "Ab1" * 13),
    ValueCase("xai", "xai-" + "Ab1" * 27),
    ValueCase("perplexity", "pplx-" + "Ab1" * 16),
    ValueCase("vault", "hvs." + "Ab1_-" * 20),
    ValueCase("linear", "lin_api_" + "Ab1" * 14),
    ValueCase("notion", "ntn_" + "1" * 11 + "Ab1" * 12),
    ValueCase("notion-legacy", "secret_" + "Ab1" * 14 + "x"),
    ValueCase("supabase", "sbp_" + "0a" * 20),
    ValueCase("sentry-org", "sntrys_" + "eyJpYXQiOjE3" * 6),
    ValueCase("sentry-user", "sntryu_" + "0a" * 32),
    ValueCase("postman", "PMAK-" + "0a" * 12 + "-" + "0a" * 17),
    ValueCase("databricks", "dapi" + "0a" * 16),
    ValueCase("atlassian", "ATATT3" + "xFfGF0" * 31),
    ValueCase("telegram", "123456789:AA" + "Ab1_-" * 7),
    ValueCase("telegram-url", "https://api.telegram.org/bot123456789:AA" + "Ab1_-" * 7 + "/getMe"),
    ValueCase("rubygems", "rubygems_" + "0a" * 24),
    ValueCase("azure-sas-url", "https://acct.blob.core.windows.net/c?sv=2022&sig=" + "Ab1%2B" * 8),
    ValueCase("ado-connection-string", "Server=db;Database=app;User Id=app;Password=hunter2;"),
    ValueCase(
        "azure-connection-string", "DefaultEndpointsProtocol=https;AccountKey=" + "Ab1+" * 8
    ),
    ValueCase("json-api-key", '{"model": "opus", "api_key": "hunter2"}'),
    ValueCase("query-access-token", "https://example.com/cb?access_token=abc123&state=x"),
    ValueCase("java-property", "-Djavax.net.ssl.trustStorePassword=changeit"),
    ValueCase("libpq-dsn", "host=db password=hunter2 dbname=app"),
]


@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c.test_id for c in TOKEN_CASES])
def test_more_token_values_are_masked(case: ValueCase) -> None:
    """Each token family masks the whole value, alone or inside a longer text."""
    assert has_secret_value(case.value)
    assert mask_value("NODE_ENV", case.value) == MASK
    for wrapped in (f"x {case.value} y", f"--flag={case.value}", f"a,{case.value},b"):
        assert mask_value("ARGS", wrapped) == MASK


@pytest.mark.parametrize("case", TOKEN_CASES, ids=[c.test_id for c in TOKEN_CASES])
def test_redactor_scrubs_every_family(case: ValueCase) -> None:
    """The Redactor removes each family from free text, and its output is stable."""
    redact = Redactor()
    out = redact(f"error: request with {case.value} failed")
    assert not has_secret_value(out), out
    assert out.startswith("error: request with ")
    assert redact(out) == out


NOT_TOKEN_CASES = [
    ValueCase("stripe-publishable", "pk_live_" + "4eC39HqLyjWD" * 2),
    ValueCase("stripe-publishable-test", "pk_test_" + "4eC39HqLyjWD" * 2),
    ValueCase("hf-short", "hf_hub_download"),
    ValueCase("npm-word", "npm_config_cache"),
    ValueCase("xai-package", "xai-sdk-python"),
    ValueCase("dapi-word", "dapi-client"),
    ValueCase("secret-key-base", "secret_key_base"),
    ValueCase("notion-too-short", "secret_" + "a" * 20),
    ValueCase("basic-prose", "Basic usage of the tool"),
    ValueCase("bearer-prose", "the bearer of bad news"),
    ValueCase("bearer-word", "Bearer token"),
    ValueCase("authorization-prose", "authorization failed"),
    ValueCase("slack-hooks-host", "https://hooks.slack.com/"),
    ValueCase("gitlab-short", "glpat-short"),
    ValueCase("telegram-not", "123456:not-a-bot-token"),
    ValueCase("sig-short", "?sig=abc"),
    ValueCase("pypi-word", "pypi-AgE"),
    ValueCase("quantity", "max_tokens=100"),
    ValueCase("quantity-flag", "--max-output-tokens=32000"),
    ValueCase("key-path", "SSH_KEY_PATH=/home/me/.ssh/id_ed25519"),
    ValueCase("session-id", "--session-id=0f8e-42"),
    ValueCase("ls-colors", "rs=0:di=01;34:ln=01;36:*.tar=01;31"),
    ValueCase("query", "https://example.com/search?q=token&page=2"),
    ValueCase("masked-assignment", "password=***"),
    ValueCase("masked-json", '{"api_key": "***"}'),
    ValueCase("masked-header", "Authorization: Bearer ***"),
    ValueCase("empty-assignment", "PASSWORD="),
    ValueCase("unicode", "clé=🔑 résumé"),
]


@pytest.mark.parametrize("case", NOT_TOKEN_CASES, ids=[c.test_id for c in NOT_TOKEN_CASES])
def test_near_misses_are_kept(case: ValueCase) -> None:
    """Look-alikes of tokens, prose and already masked text are not credentials."""
    assert not has_secret_value(case.value)
    assert mask_value("NODE_ENV", case.value) == case.value
    assert Redactor()(case.value) == case.value


@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Password=hunter2;Server=db", "Password=***;Server=db"),
        ('{"api_key": "k1", "n": 1}', '{"api_key": "***", "n": 1}'),
        ("PGPASSWORD=pw psql", "PGPASSWORD=*** psql"),
        ("url=https://h/?token=abc&x=1", "url=https://h/?token=***&x=1"),
        ("-H Authorization: Bearer abc x", "-H *** x"),
        ("password='two words' ok", "password='***' ok"),
        ('password="unterminated', 'password="***'),
        # glued to the token before it: one mask, so a second pass finds nothing new
        ("hf_" + "x" * 30 + "-----BEGIN PRIVATE KEY-----", MASK),
        ("dapi" + "0a" * 16 + "ghp_" + "a1" * 18 + " tail", "*** tail"),
    ],
)
def test_redactor_masks_assigned_values_only(text: str, redacted: str) -> None:
    """A value assigned to a secret name is replaced; its name and the rest stay."""
    redact = Redactor()
    assert redact(text) == redacted
    assert redact(redacted) == redacted


def test_forced_names_are_secret_whatever_the_rules() -> None:
    """``--secret NAME`` forces masking and the secret side of the split."""
    env = {"MODE": "plain", "NODE_ENV": "production", "GITHUB_TOKEN": "t"}
    assert mask_environment(env, forced={"MODE"}) == {
        "MODE": MASK,
        "NODE_ENV": "production",
        "GITHUB_TOKEN": MASK,
    }
    public, secret = split_environment(env, forced=["MODE"])
    assert public == {"NODE_ENV": "production"}
    assert secret == {"MODE": "plain", "GITHUB_TOKEN": "t"}
    assert mask_environment(env) == {
        "MODE": "plain",
        "NODE_ENV": "production",
        "GITHUB_TOKEN": MASK,
    }


# --- argv --------------------------------------------------------------------------------

_GHP = "ghp_" + "a1B2" * 9
_ANT = "sk-ant-api03-" + "Ab1_-" * 18 + "AA"


class ArgvCase(NamedTuple):
    test_id: str
    argv: tuple[str, ...]
    masked: tuple[str, ...]
    hidden: tuple[str, ...]
    forced: tuple[str, ...] = ()


ARGV_CASES = [
    ArgvCase(
        "api-key-separate",
        ("claude", "--api-key", _ANT),
        ("claude", "--api-key", MASK),
        (_ANT,),
    ),
    ArgvCase(
        "api-key-equals",
        ("claude", "--api-key=hunter2"),
        ("claude", "--api-key=***"),
        ("hunter2",),
    ),
    ArgvCase(
        "provider-flags",
        ("aider", "--anthropic-api-key", "a-key", "--openai-api-key=o-key"),
        ("aider", "--anthropic-api-key", MASK, "--openai-api-key=***"),
        ("a-key", "o-key"),
    ),
    ArgvCase(
        "each-secret-flag",
        (
            "x",
            "--token",
            "t1",
            "--password",
            "p1",
            "--auth-token",
            "a1",
            "--secret",
            "s1",
            "--client-secret",
            "c1",
        ),
        (
            "x",
            "--token",
            MASK,
            "--password",
            MASK,
            "--auth-token",
            MASK,
            "--secret",
            MASK,
            "--client-secret",
            MASK,
        ),
        ("t1", "p1", "a1", "s1", "c1"),
    ),
    ArgvCase(
        "go-style-single-dash",
        ("x", "-token", "t1", "-password=p1"),
        ("x", "-token", MASK, "-password=***"),
        ("t1", "p1"),
    ),
    ArgvCase(
        "short-flags-are-not-secret",
        ("claude", "-p", "hello there", "-k", "x", "-c"),
        ("claude", "-p", "hello there", "-k", "x", "-c"),
        (),
    ),
    ArgvCase(
        "token-counts-stay",
        ("x", "--max-tokens", "100", "--max-output-tokens=5", "--max-thinking-tokens", "9"),
        ("x", "--max-tokens", "100", "--max-output-tokens=5", "--max-thinking-tokens", "9"),
        (),
    ),
    ArgvCase(
        "claude-flags-stay",
        (
            "claude",
            "--session-id",
            "0f8e",
            "--model",
            "opus",
            "--resume",
            "--permission-mode",
            "plan",
            "--add-dir",
            "/src",
        ),
        (
            "claude",
            "--session-id",
            "0f8e",
            "--model",
            "opus",
            "--resume",
            "--permission-mode",
            "plan",
            "--add-dir",
            "/src",
        ),
        (),
    ),
    ArgvCase(
        "switches-take-no-value",
        ("gh", "auth", "login", "--with-token", "--hostname", "h", "--show-token", "x"),
        ("gh", "auth", "login", "--with-token", "--hostname", "h", "--show-token", "x"),
        (),
    ),
    ArgvCase(
        "password-stdin-and-file",
        ("docker", "login", "--password-stdin", "reg.io", "--password-file", "/run/pw"),
        ("docker", "login", "--password-stdin", "reg.io", "--password-file", "/run/pw"),
        (),
    ),
    ArgvCase(
        "value-starting-with-dash",
        ("claude", "--api-key", "-Ab1x9"),
        ("claude", "--api-key", MASK),
        ("-Ab1x9",),
    ),
    ArgvCase(
        "next-long-option-is-no-value",
        ("claude", "--api-key", "--verbose", "--token", "--", "cmd"),
        ("claude", "--api-key", "--verbose", "--token", "--", "cmd"),
        (),
    ),
    ArgvCase(
        "next-short-option-is-no-value",
        ("claude", "--api-key", "-p", "hi"),
        ("claude", "--api-key", "-p", "hi"),
        (),
    ),
    ArgvCase(
        "stdin-dash-and-empty-values-stay",
        ("x", "--password", "-", "--token", "", "--api-key="),
        ("x", "--password", "-", "--token", "", "--api-key="),
        (),
    ),
    ArgvCase("flag-as-last-element", ("x", "--api-key"), ("x", "--api-key"), ()),
    ArgvCase(
        "authorization-header",
        ("curl", "-H", "Authorization: Bearer abc", "-H", "Accept: json"),
        ("curl", "-H", "Authorization: ***", "-H", "Accept: json"),
        ("Bearer abc",),
    ),
    ArgvCase(
        "authorization-header-glued",
        ("curl", "-HAuthorization: Bearer abc", "--header=Authorization: token abc"),
        ("curl", MASK, "--header=***"),
        ("-HAuthorization: Bearer abc", "Authorization: token abc"),
    ),
    ArgvCase(
        "api-key-header",
        ("curl", "--header", "X-Api-Key: k1"),
        ("curl", "--header", "X-Api-Key: ***"),
        ("k1",),
    ),
    ArgvCase(
        "env-assignments",
        ("env", "DB_PASSWORD=pw", "MASTERKEY=mk", "DB_CONN_STR=cs", "MODE=dev", "node"),
        ("env", "DB_PASSWORD=***", "MASTERKEY=***", "DB_CONN_STR=***", "MODE=dev", "node"),
        ("pw", "mk", "cs"),
    ),
    ArgvCase(
        "token-in-any-element",
        ("claude", "-p", f"push with {_GHP} please", f"--x={_GHP}", f"{_GHP}=y"),
        ("claude", "-p", MASK, "--x=***", MASK),
        (f"push with {_GHP} please", _GHP, f"{_GHP}=y"),
    ),
    ArgvCase(
        "url-password-only",
        ("git", "clone", "https://me:pw1@host/r.git", "--db=postgres://a:pw2@h/x"),
        ("git", "clone", "https://me:***@host/r.git", "--db=postgres://a:***@h/x"),
        ("pw1", "pw2"),
    ),
    ArgvCase(
        "codex-config-override",
        ("codex", "-c", 'model="o3"', "-c", 'mcp_servers.gh.env.GITHUB_TOKEN="t1"'),
        ("codex", "-c", 'model="o3"', "-c", "mcp_servers.gh.env.GITHUB_TOKEN=***"),
        ('"t1"',),
    ),
    ArgvCase(
        "inline-json",
        ("claude", "--mcp-config", '{"env": {"API_KEY": "k1"}}'),
        ("claude", "--mcp-config", MASK),
        ('{"env": {"API_KEY": "k1"}}',),
    ),
    ArgvCase(
        "forced-values",
        ("x", "plainvalue", "--name=plainvalue", "N=plainvalue", "say plainvalue", "other"),
        ("x", MASK, "--name=***", "N=***", MASK, "other"),
        ("plainvalue", "say plainvalue"),
        ("plainvalue",),
    ),
    ArgvCase(
        "short-forced-value-only-whole",
        ("x", "ab", "abc", "--n=ab"),
        ("x", MASK, "abc", "--n=***"),
        ("ab",),
        ("ab",),
    ),
    ArgvCase(
        "token-across-the-cut",
        ("x", "sig=" + "Ab1%2B" * 5, "--sig=" + "Ab1%2B" * 5),
        ("x", MASK, MASK),
        ("sig=" + "Ab1%2B" * 5, "--sig=" + "Ab1%2B" * 5),
    ),
    ArgvCase(
        "forced-value-across-the-cut",
        ("x", "--flag-a0=0"),
        ("x", MASK),
        ("--flag-a0=0",),
        ("a0=0",),
    ),
    ArgvCase("empty-argv", (), (), ()),
    ArgvCase(
        "unicode",
        ("x", "--clé", "v", "--api-key", "🔑-ключ", "résumé"),
        ("x", "--clé", "v", "--api-key", MASK, "résumé"),
        ("🔑-ключ",),
    ),
]


@pytest.mark.parametrize("case", ARGV_CASES, ids=[c.test_id for c in ARGV_CASES])
def test_mask_argv(case: ArgvCase) -> None:
    """Secret values are hidden, flags and everything else stay, and masking is stable."""
    masked = mask_argv(case.argv, case.forced)
    assert masked == case.masked
    assert argv_secret_values(case.argv, case.forced) == list(case.hidden)
    assert mask_argv(masked, case.forced) == masked
    assert argv_secret_values(masked, case.forced) == []


def test_argv_secret_values_feed_the_redactor() -> None:
    """An error quoting the command shows none of the values mask_argv hid."""
    argv = ["aider", "--openai-api-key", "opaque-value-1", "https://u:opaque-pw@h/x"]
    redact = Redactor(argv_secret_values(argv))
    out = redact(f"cannot run {' '.join(argv)}")
    assert "opaque-value-1" not in out
    assert "opaque-pw" not in out
    assert "--openai-api-key" in out


def test_mask_argv_does_not_modify_its_input() -> None:
    """The caller's list is left as it was."""
    argv = ["claude", "--api-key", "hunter2"]
    assert mask_argv(argv) == ("claude", "--api-key", MASK)
    assert argv == ["claude", "--api-key", "hunter2"]


_MB = 1_000_000
HOSTILE = {
    "letters": "a" * _MB,
    "spaces": " " * _MB,
    "dashes": "-" * _MB,
    "quotes": '"' * _MB,
    "equals": "=" * _MB,
    "jwt-starts": "eyJ-" * (_MB // 4),
    "pem-labels": "-----BEGIN PRIVATE KEY PRIVATE KEY " * (_MB // 35),
    "pem-begins": "-----BEGIN " * (_MB // 11),
    "url-schemes": "a://u:" * (_MB // 6),
    "assignments": "a=" * (_MB // 2),
    "distinct-keys": ",".join(f"keyboard{i}=x" for i in range(_MB // 16)),
    "json-keys": '"password":"' * (_MB // 12),
    "bearer-words": "bearer " * (_MB // 7),
    "authorization-spaces": "authorization:" + " " * _MB,
    "digits": "1" * _MB,
    "telegram-starts": "12345:" * (_MB // 6),
    "unicode": "é🔑" * (_MB // 2),
    "many-tokens": ("ghp_" + "a1" * 10 + " ") * (_MB // 25),
    "glued-tokens": ("dapi" + "0a" * 16) * (_MB // 36),
}


@pytest.mark.parametrize("text", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_megabyte_is_scanned_in_linear_time(text: str) -> None:
    """No input makes the patterns backtrack: a 1 MB argument takes well under a second."""
    # CPU time, not wall time: other processes on a busy machine do not count.
    started = time.process_time()
    mask_argv(["claude", "-p", text])
    masked_in = time.process_time() - started
    started = time.process_time()
    Redactor()(text)
    redacted_in = time.process_time() - started
    assert masked_in < 1.0
    assert redacted_in < 1.0


def test_doctests() -> None:
    """The examples in the module's docstrings hold."""
    result = doctest.testmod(amux_tmux.secrets)
    assert result.attempted > 0
    assert result.failed == 0


_arg_pieces = st.sampled_from(
    [
        "--api-key",
        "--api-key=",
        "--token",
        "--max-tokens",
        "-p",
        "-",
        "--",
        "",
        "API_KEY=",
        "MODE=",
        "Authorization: ",
        "Bearer ",
        "https://u:",
        "@h/x",
        "ghp_",
        "A1b2C3d4E5" * 2,
        "password=",
        '"api_key": "',
        "forced-secret",
        MASK,
        "=",
        " ",
    ]
)
_arg = st.lists(_arg_pieces | st.text(max_size=6), max_size=4).map("".join)


@settings(max_examples=400, deadline=None)
@given(argv=st.lists(_arg, max_size=8))
def test_mask_argv_properties(argv: list[str]) -> None:
    """Masking is idempotent, keeps the length, leaves no credential and no forced value."""
    forced = ["forced-secret"]
    masked = mask_argv(argv, forced)
    assert len(masked) == len(argv)
    assert mask_argv(masked, forced) == masked
    for out in masked:
        assert not has_secret_value(out), out
        assert "forced-secret" not in out
    hidden = argv_secret_values(argv, forced)
    assert all(h in "\0".join(argv) for h in hidden)
    assert (masked == tuple(argv)) == (not hidden)


@settings(max_examples=400, deadline=None)
@given(text=st.lists(_arg_pieces | _pieces | st.text(max_size=6), max_size=10).map("".join))
def test_redactor_is_stable_and_complete(text: str) -> None:
    """Redacted text holds no credential, and redacting it again changes nothing."""
    redact = Redactor()
    out = redact(text)
    assert not has_secret_value(out)
    assert redact(out) == out
