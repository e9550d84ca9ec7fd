"""Which camera sources the API may accept, and how a source is shown without its secrets.

A camera source is an address the server will open on an operator's behalf: a file path makes
it read local files (and show them to viewers as snapshots), a URL makes it connect somewhere
every few seconds. `SourcePolicy` (`crowdsight.config.sources`) bounds both, from the server's
configuration file, which only whoever administers the host can change:

- URLs: only the listed ``schemes``; hosts that are (or resolve to) loopback, link-local,
  unspecified, multicast or reserved addresses are refused unless listed in ``allow_hosts``
  (``deny_hosts`` refuses more). Private LAN addresses (10.x, 192.168.x) are allowed: that is
  where cameras live.
- Local files and folders: only inside a ``media_roots`` folder (symlinks resolved first);
  none are listed by default. The check never looks at the file system beyond resolving the
  path, so its answer does not tell whether a path exists.
- Webcam indices ("0"): allowed unless ``webcams`` is off.

`redact_source` hides the user name and password of a URL (``rtsp://***@host/...``) for every
place a source is shown or logged.

Example:
    >>> policy = SourcePolicy()
    >>> check_source("rtsp://10.0.0.5/stream1", policy)
    >>> check_source("http://127.0.0.1:8080/x", policy)
    Traceback (most recent call last):
    ...
    crowdsight.core.errors.InputError: source host '127.0.0.1' is a loopback, link-local or \
reserved address; an admin can allow it in server.sources.allow_hosts
    >>> redact_source("rtsp://user:pw@10.0.0.5/s")
    'rtsp://***@10.0.0.5/s'
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

from crowdsight.config.sources import SourcePolicy
from crowdsight.core.errors import InputError

_CREDENTIALS = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def redact_source(source: str) -> str:
    """``source`` with any ``user:password@`` of a URL replaced by ``***@`` (anywhere in it).

    Works on free text too (error messages, log lines that quote the URL).
    """
    return _CREDENTIALS.sub(r"\g<scheme>***@", source)


def has_credentials(source: str) -> bool:
    """Whether ``source`` holds a ``user[:password]@`` part."""
    return _CREDENTIALS.search(source) is not None


def _matches(host: str, addresses: list[IpAddress], entries: list[str]) -> bool:
    for entry in entries:
        if entry.lower() == host.lower():
            return True
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if any(a in network for a in addresses):
            return True
    return False


def _addresses(host: str) -> list[IpAddress]:
    """The host's IP addresses (an IP literal, or what the resolver answers; [] if none)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        return []
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _internal(address: IpAddress) -> bool:
    return (
        address.is_loopback
        or address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )


def _check_url(source: str, policy: SourcePolicy) -> None:
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    allowed = [s.lower() for s in policy.schemes]
    if scheme not in allowed:
        raise InputError(
            f"source scheme {scheme!r} is not allowed (allowed: {', '.join(allowed) or 'none'}; "
            "an admin can change server.sources.schemes)"
        )
    try:
        host = parts.hostname
    except ValueError:
        host = None
    if not host:
        raise InputError("source URL has no host")
    addresses = _addresses(host)
    if _matches(host, addresses, policy.deny_hosts):
        raise InputError(f"source host {host!r} is denied by server.sources.deny_hosts")
    if _matches(host, addresses, policy.allow_hosts):
        return
    if host.lower() == "localhost" or any(_internal(a) for a in addresses):
        raise InputError(
            f"source host {host!r} is a loopback, link-local or reserved address; "
            "an admin can allow it in server.sources.allow_hosts"
        )


def _check_path(source: str, policy: SourcePolicy) -> None:
    refusal = InputError(
        "local files and folders are only allowed inside the media roots "
        "(an admin can list them in server.sources.media_roots)"
    )
    if not policy.media_roots:
        raise refusal
    real = Path(os.path.realpath(os.path.expanduser(source)))
    for root in policy.media_roots:
        if real.is_relative_to(os.path.realpath(root.expanduser())):
            return
    raise refusal


def check_source(source: str, policy: SourcePolicy) -> None:
    """Raise when ``policy`` does not allow ``source`` as a camera source.

    Raises:
        InputError: one line saying which rule refused it and which setting widens it; it
            never says whether a local path exists.
    """
    text = source.strip()
    if text.isdigit():
        if not policy.webcams:
            raise InputError("webcam sources are not allowed (server.sources.webcams)")
        return
    if "://" in text:
        _check_url(text, policy)
        return
    _check_path(text, policy)
