"""What ``/authorize`` answers with: the response types (code, implicit and hybrid) and the
response modes that carry the answer to the application (issue 9, item 6).

A response type is a set of ``code``, ``token`` and ``id_token``, written in any order
(``id_token token`` and ``token id_token`` are the same type: discovery of real tenants
spells ``token id_token``, the implicit reference ``id_token token``). The response mode
says how the parameters travel: in the callback's query, in its fragment, in an
auto-submitting form (``form_post``), or posted to the opener or parent window
(``web_message``, what auth0-spa-js uses for silent authentication).

Pure: the adapter renders the mode the decision names; it decides nothing.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "ADVERTISED_MODES",
    "CODE",
    "ID_TOKEN",
    "RESPONSE_TYPES",
    "TOKEN",
    "ResponseMode",
    "carries_tokens",
    "default_mode",
    "parse_response_mode",
    "parse_response_type",
    "wire_response_type",
]

CODE = "code"
TOKEN = "token"
ID_TOKEN = "id_token"


class ResponseMode(StrEnum):
    """How ``/authorize`` returns its parameters (OAuth 2.0 Multiple Response Type Encoding
    Practices, OAuth 2.0 Form Post Response Mode, and Auth0's ``web_message``)."""

    QUERY = "query"
    FRAGMENT = "fragment"
    FORM_POST = "form_post"
    WEB_MESSAGE = "web_message"


# Every response type Auth0 decides, as sets (facts-issue9 I1: discovery of real tenants).
RESPONSE_TYPES: tuple[frozenset[str], ...] = (
    frozenset({CODE}),
    frozenset({TOKEN}),
    frozenset({ID_TOKEN}),
    frozenset({CODE, TOKEN}),
    frozenset({CODE, ID_TOKEN}),
    frozenset({TOKEN, ID_TOKEN}),
    frozenset({CODE, TOKEN, ID_TOKEN}),
)
# What discovery publishes: web_message is accepted but not advertised (facts-issue9 I1).
ADVERTISED_MODES = (ResponseMode.QUERY, ResponseMode.FRAGMENT, ResponseMode.FORM_POST)
_ORDER = (CODE, TOKEN, ID_TOKEN)


def parse_response_type(value: str) -> frozenset[str] | None:
    """The response type ``value`` names, whatever the order of its words; ``None`` for any
    other value (an unknown word, a repeated one, or no word at all)."""
    words = value.split()
    kind = frozenset(words)
    if len(kind) != len(words) or kind not in RESPONSE_TYPES:
        return None
    return kind


def wire_response_type(kind: frozenset[str]) -> str:
    """A response type as discovery spells it: ``code``, then ``token``, then ``id_token``."""
    return " ".join(word for word in _ORDER if word in kind)


def carries_tokens(kind: frozenset[str]) -> bool:
    """Whether the response carries a token (access or ID) rather than a code alone."""
    return TOKEN in kind or ID_TOKEN in kind


def default_mode(kind: frozenset[str] | None) -> ResponseMode:
    """The mode when none is asked for: ``query`` for ``code`` (and for a response type that
    could not be read), ``fragment`` for any type that carries a token (OAuth 2.0 Multiple
    Response Type Encoding Practices, section 5)."""
    return ResponseMode.FRAGMENT if kind is not None and carries_tokens(kind) else ResponseMode.QUERY


def parse_response_mode(value: str) -> ResponseMode | None:
    """The response mode ``value`` names, or ``None`` for an unknown one."""
    try:
        return ResponseMode(value)
    except ValueError:
        return None
