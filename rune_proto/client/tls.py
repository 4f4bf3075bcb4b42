"""Opening the client's TLS stream and checking the server's certificate pin.

Unless a CA file is given, no CA validates the server: the SPKI pin, checked right
after the handshake, is the trust, so the context deliberately verifies nothing.
"""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from ..tlspin import pins_match, spki_fingerprint
from .channel import READ_CHUNK
from .errors import ConnectionFailed, TLSPinMismatch

# What OpenSSL says when the other end answers a TLS hello with plain text (a web page,
# an SMTP banner, an HTTP 400): the port is open, but no Rune server listens on it.
_NOT_TLS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "PACKET_LENGTH_TOO_LONG",
        "HTTP_REQUEST",
        "HTTPS_PROXY_REQUEST",
        "UNKNOWN_PROTOCOL",
    }
)


def _tls_context(ca_path: Path | None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_path is not None:
        context.load_verify_locations(cafile=str(ca_path))
    else:  # the pin, checked right after the handshake, replaces CA validation
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


async def open_pinned(
    host: str, port: int, expected: str | None, ca_path: Path | None, timeout: float
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, str]:
    """A TLS stream to ``host:port`` and its certificate's pin, which must be ``expected``.

    With ``expected=None`` any certificate is accepted (trust on first use, or a CA).
    Whatever fails, the connection is not left open.
    """
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=_tls_context(ca_path), server_hostname=host, limit=READ_CHUNK
            ),
            timeout,
        )
    except TimeoutError as exc:
        raise ConnectionFailed(f"no answer from {host}:{port} within {timeout:g} s") from exc
    except ssl.SSLError as exc:
        if exc.reason in _NOT_TLS:
            raise ConnectionFailed(
                f"{host}:{port} answered, but not with TLS: this is not a Rune server "
                "(is the port right? Rune servers usually listen on 7117)"
            ) from exc
        raise ConnectionFailed(f"TLS handshake with {host}:{port} failed: {exc.reason}") from exc
    except OSError as exc:
        raise ConnectionFailed(f"cannot reach {host}:{port}: {exc.strerror or exc}") from exc
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        if not der:
            raise ConnectionFailed("the server presented no certificate")
        actual = spki_fingerprint(der)
        if expected is not None and not pins_match(expected, actual):
            raise TLSPinMismatch(expected, actual)
    except BaseException:
        writer.close()
        raise
    return reader, writer, actual
