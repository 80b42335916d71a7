"""Keeping secrets out of messages and logs.

A URI may carry a password in its user information (``neo4j://user:secret@host:7687``);
error lines, the start-up banner and ``repr`` show such URIs, so they go through
``redact_uri`` first.
"""

from __future__ import annotations

MASK = "***"


def redact_uri(uri: str) -> str:
    """``uri`` with the password of its user information replaced by ``***``.

    ``neo4j://user:secret@host:7687`` -> ``neo4j://user:***@host:7687``; a URI without a
    password is returned unchanged. The user information is taken to end at the last
    ``@``, not at the first ``/``, as a URL parser would: a password with an unencoded
    ``/`` or ``@`` is then hidden whole instead of in part (this also works on text that
    is no valid URI, as in the message that rejects it).
    """
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    userinfo, at, host = rest.rpartition("@")
    if not at:
        return uri
    user, colon, password = userinfo.partition(":")
    if not colon or not password:
        return uri
    return f"{scheme}://{user}:{MASK}@{host}"


def redact_in(text: str, uri: str) -> str:
    """``text`` (say, a driver's error message) with ``uri`` and its password hidden."""
    shown = redact_uri(uri)
    if shown == uri:
        return text
    text = text.replace(uri, shown)
    password = uri.partition("://")[2].rpartition("@")[0].partition(":")[2]
    # a password of a character or two would mask every such letter of the message
    return text.replace(password, MASK) if len(password) >= _SHORTEST_MASKED else text


_SHORTEST_MASKED = 3
