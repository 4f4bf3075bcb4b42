"""TLS and authentication against a real rune-server (issue 7 §3; protocol.md §3, §8, §10).

* TLS, seen by clients independent of ours: ``openssl s_client`` for every TLS 1.2
  cipher and TLS 1.3 suite this OpenSSL knows, and a hand-built ClientHello for the
  code points OpenSSL 3 no longer implements (RC4, 3DES, EXPORT, DES, IDEA, SEED…) and
  for SSL 3.0 / TLS 1.0 / TLS 1.1. The accepted set is printed and must be exactly the
  forward-secret AEAD suites that docs/security.md lists.
* LOGIN: the replies for a registered address with a wrong key and for an unknown
  address are byte-identical, and their timing distributions show no clear
  difference (medians, Mann-Whitney and Kolmogorov-Smirnov statistics, printed).
* Isolation: no user can list, read or delete another's messages, whatever the id.

``tests/server/test_tls.py`` already checks the greeting over TLS 1.2 and 1.3, that
``-tls1``/``-tls1_1`` get no greeting, and that a plaintext NOOP gets none either.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import sqlite3
import ssl
import statistics
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rune_proto import status
from rune_proto.address import Address, random_address
from rune_proto.encoding import b64decode, b64encode
from rune_proto.envelope import Content
from rune_proto.events import Authenticated, Listing, ListMessages, Registered, Roger
from rune_proto.handshake import login_proof
from rune_proto.keys import Identity
from rune_proto.server.config import DataDir
from rune_proto.server.datadir import tls_context
from tests.server.wire_client import WireClient, client_context
from tests.server_process import RuneServerProcess, server_factory

OPENSSL = shutil.which("openssl")
if OPENSSL is None and os.environ.get("RUNE_REQUIRE_OPENSSL") == "1":
    raise RuntimeError("openssl is required (RUNE_REQUIRE_OPENSSL=1) but not installed")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")

# What docs/security.md promises for TLS 1.2 with the server's P-256 certificate:
# forward secrecy (ECDHE) and AEAD only. IANA code points.
EXPECTED_TLS12 = {
    0xC02B: "ECDHE-ECDSA-AES128-GCM-SHA256",
    0xC02C: "ECDHE-ECDSA-AES256-GCM-SHA384",
    0xCCA9: "ECDHE-ECDSA-CHACHA20-POLY1305",
}
EXPECTED_TLS13 = {
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
}
TLS13_SUITES = [
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_128_CCM_SHA256",
    "TLS_AES_128_CCM_8_SHA256",
]
# Weak families by IANA code point, offered by the hand-built ClientHello (most are not
# even compiled into OpenSSL 3, so s_client could not offer them).
WEAK_FAMILIES: dict[str, list[int]] = {
    "NULL encryption": [0x0000, 0x0001, 0x0002, 0x003B, 0xC001, 0xC006, 0xC010, 0xC015],
    "EXPORT (40/56-bit)": [0x0003, 0x0006, 0x0008, 0x000B, 0x000E, 0x0011, 0x0014, 0x0017,
                           0x0019, 0x0062, 0x0063, 0x0064, 0x0065],
    "RC4": [0x0004, 0x0005, 0x0018, 0x0020, 0x0024, 0x008A, 0xC002, 0xC007, 0xC00C, 0xC011,
            0xC016],
    "DES and 3DES": [0x0009, 0x000A, 0x000C, 0x000D, 0x000F, 0x0010, 0x0012, 0x0013, 0x0015,
                     0x0016, 0x001A, 0x001B, 0x001F, 0x008B, 0xC003, 0xC008, 0xC00D, 0xC012,
                     0xC017],
    "IDEA and SEED": [0x0007, 0x0021, 0x0096, 0x0097, 0x0098, 0x0099, 0x009A, 0x009B],
    "anonymous (aNULL)": [0x0018, 0x001B, 0x0034, 0x003A, 0x006C, 0x006D, 0x00A6, 0x00A7,
                          0xC018, 0xC019],
    "RSA key exchange (no forward secrecy)": [0x002F, 0x0035, 0x003C, 0x003D, 0x009C, 0x009D],
    "CBC with SHA-1": [0xC009, 0xC00A, 0xC013, 0xC014, 0x0033, 0x0039],
    "CBC with SHA-2": [0xC023, 0xC024, 0xC027, 0xC028, 0x0067, 0x006B],
    "CCM, ARIA, Camellia": [0xC0AC, 0xC0AD, 0xC0AE, 0xC0AF, 0xC05C, 0xC05D, 0xC072, 0xC073],
}  # fmt: skip
# Every TLS 1.2 code point worth trying one by one: the assigned ranges.
ALL_TLS12_CODES = [
    *range(0x0000, 0x0100),
    *range(0xC001, 0xC100),
    *range(0xCCA8, 0xCCAF),
    *range(0xD001, 0xD006),
    0xFEFE,
    0xFEFF,
    0xFFE0,
    0xFFE1,
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuneServerProcess]:
    with server_factory(tmp_path_factory.mktemp("tls-auth")) as factory:
        yield factory(throttle_delay=0)  # the timing test measures the server, not the throttle


# --- TLS: the configured context -----------------------------------------------------


def test_tls_context_allows_only_forward_secret_aead_suites(server: RuneServerProcess) -> None:
    """The server's own SSLContext, independent of which certificate is loaded."""
    passphrase = server.passphrase_file.read_text().splitlines()[0]
    context = tls_context(DataDir(server.data_dir), passphrase)
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    suites = context.get_ciphers()
    tls12 = [c for c in suites if c["protocol"] == "TLSv1.2"]
    print("configured TLS 1.2 suites:", ", ".join(c["name"] for c in tls12))
    assert tls12, "no TLS 1.2 suites at all"
    for cipher in suites:
        assert cipher["aead"], cipher["name"]
        if cipher["protocol"] == "TLSv1.2":
            assert cipher["kea"] == "kx-ecdhe", cipher["name"]
    assert context.options & ssl.OP_NO_COMPRESSION
    assert context.options & ssl.OP_NO_RENEGOTIATION


def test_certificate_names_nothing_but_rune_server(server: RuneServerProcess) -> None:
    """Under TLS 1.2 the certificate travels in the clear (protocol.md §3.1)."""
    with socket.create_connection((server.host, server.port), timeout=10) as raw:
        context = client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        with context.wrap_socket(raw) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    names = [a.value for a in cert.subject] + [a.value for a in cert.issuer]
    assert names == ["rune-server", "rune-server"]
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "rune-server"
    assert server.domain.encode() not in der
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"


# --- TLS: openssl s_client ---------------------------------------------------------


def s_client(server: RuneServerProcess, *options: str) -> tuple[bool, str]:
    """(whether the Rune greeting came, the negotiated suite as s_client reports it)."""
    assert OPENSSL is not None
    done = subprocess.run(
        [
            OPENSSL,
            "s_client",
            "-connect",
            f"{server.host}:{server.port}",
            "-brief",
            "-ign_eof",
            *options,
        ],
        input=b"QUIT\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
    suite = next(
        (ln.split(":", 1)[1].strip() for ln in err.splitlines() if "Ciphersuite" in ln), ""
    )
    return "HOWDY rune/1" in out, suite


def openssl_tls12_ciphers() -> list[str]:
    assert OPENSSL is not None
    listed = subprocess.run(
        [OPENSSL, "ciphers", "-tls1_2", "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.strip()
    return [c for c in listed.split(":") if c and not c.startswith("TLS_")]


@needs_openssl
def test_openssl_tls12_cipher_by_cipher_only_aead_with_ecdhe_is_accepted(
    server: RuneServerProcess,
) -> None:
    names = openssl_tls12_ciphers()
    assert len(names) > 50, names

    def attempt(name: str) -> tuple[str, bool, str]:
        greeted, suite = s_client(server, "-tls1_2", "-cipher", f"{name}:@SECLEVEL=0")
        return name, greeted, suite

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(attempt, names))
    accepted = sorted(name for name, greeted, _ in results if greeted)
    for name, greeted, suite in results:
        if greeted:
            assert suite == name, (name, suite)
    print(f"TLS 1.2: {len(accepted)} of {len(names)} OpenSSL ciphers accepted: {accepted}")
    assert set(accepted) == set(EXPECTED_TLS12.values())


@needs_openssl
def test_openssl_tls13_suites(server: RuneServerProcess) -> None:
    accepted = {s for s in TLS13_SUITES if s_client(server, "-tls1_3", "-ciphersuites", s)[0]}
    print("TLS 1.3 suites accepted:", sorted(accepted))
    assert accepted == EXPECTED_TLS13


@needs_openssl
def test_openssl_key_exchange_groups(server: RuneServerProcess) -> None:
    """Which groups the server agrees to (documented; none is weak)."""
    groups = ["X25519", "X448", "P-256", "P-384", "P-521", "ffdhe2048", "ffdhe3072"]
    accepted = [g for g in groups if s_client(server, "-tls1_3", "-groups", g)[0]]
    print("TLS 1.3 key exchange groups accepted:", accepted)
    assert "X25519" in accepted and "P-256" in accepted


# --- TLS: a hand-built ClientHello -----------------------------------------------------


def _extension(kind: int, data: bytes) -> bytes:
    return struct.pack(">HH", kind, len(data)) + data


def _u16_list(values: list[int]) -> bytes:
    packed = b"".join(struct.pack(">H", v) for v in values)
    return struct.pack(">H", len(packed)) + packed


def client_hello(suites: list[int], version: int = 0x0303) -> bytes:
    """A minimal TLS ClientHello (RFC 5246 §7.4.1.2) offering exactly ``suites``."""
    groups = [0x001D, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101]  # x25519, P-256/384/521, ffdhe
    signatures = [0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0201, 0x0203]
    extensions = (
        _extension(0x000A, _u16_list(groups))
        + _extension(0x000B, b"\x01\x00")  # uncompressed points
        + _extension(0x000D, _u16_list(signatures))
        + _extension(0xFF01, b"\x00")  # renegotiation_info
    )
    body = (
        struct.pack(">H", version)
        + os.urandom(32)
        + b"\x00"  # no session id
        + _u16_list(suites)
        + b"\x01\x00"  # null compression only
        + struct.pack(">H", len(extensions))
        + extensions
    )
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    record_version = min(version, 0x0301)
    return b"\x16" + struct.pack(">HH", record_version, len(handshake)) + handshake


@dataclass(frozen=True)
class HelloResult:
    accepted: bool
    version: int = 0
    suite: int = 0
    alert: int = -1  # the alert description, or -1 for a silent close


def offer(server: RuneServerProcess, suites: list[int], version: int = 0x0303) -> HelloResult:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(client_hello(suites, version))
        data = b""
        while len(data) < 5 + 4 + 2 + 32 + 1 + 32 + 2:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            data += chunk
            if data[:1] == b"\x15" and len(data) >= 7:
                break
    if data[:1] == b"\x15" and len(data) >= 7:
        return HelloResult(False, alert=data[6])
    if data[:1] != b"\x16" or data[5:6] != b"\x02":
        return HelloResult(False)
    version_seen = struct.unpack(">H", data[9:11])[0]
    session_id = data[43]
    (suite,) = struct.unpack(">H", data[44 + session_id : 46 + session_id])
    return HelloResult(True, version_seen, suite)


@pytest.mark.parametrize("version", [0x0300, 0x0301, 0x0302], ids=["SSL3.0", "TLS1.0", "TLS1.1"])
def test_raw_hello_with_an_old_protocol_version_is_refused(
    server: RuneServerProcess, version: int
) -> None:
    result = offer(server, [*EXPECTED_TLS12, 0x002F, 0x0035, 0x000A, 0x0005], version)
    assert not result.accepted, result
    print(f"version {version:#06x}: alert {result.alert}")


@pytest.mark.parametrize("family", sorted(WEAK_FAMILIES))
def test_raw_hello_offering_only_a_weak_family_is_refused(
    server: RuneServerProcess, family: str
) -> None:
    result = offer(server, WEAK_FAMILIES[family])
    assert not result.accepted, f"{family}: the server chose {result.suite:#06x}"


def test_raw_hello_prefers_aead_when_weak_suites_come_first(server: RuneServerProcess) -> None:
    weak = [code for codes in WEAK_FAMILIES.values() for code in codes]
    result = offer(server, [*weak, *EXPECTED_TLS12])
    assert result.accepted and result.suite in EXPECTED_TLS12 and result.version == 0x0303


@pytest.mark.slow
def test_raw_hello_code_point_by_code_point(server: RuneServerProcess) -> None:
    """Every assigned TLS 1.2 code point alone: exactly the three expected are chosen."""
    accepted = {}
    for code in ALL_TLS12_CODES:
        result = offer(server, [code])
        if result.accepted:
            accepted[code] = result.suite
    print(
        f"raw ClientHello: {len(ALL_TLS12_CODES)} code points tried, accepted:",
        {f"{code:#06x}": EXPECTED_TLS12.get(code, "?") for code in accepted},
    )
    assert accepted == {code: code for code in EXPECTED_TLS12}


# --- plaintext ---------------------------------------------------------------------


def _plaintext_exchange(server: RuneServerProcess, payload: bytes) -> bytes:
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(payload)
        received = b""
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline and (chunk := sock.recv(4096)):
                received += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return received


def test_plaintext_registration_is_neither_answered_nor_executed(
    server: RuneServerProcess,
) -> None:
    """Beyond test_tls.py's NOOP: a complete plaintext REGISTER (and HTTP) is refused
    with a TLS alert at most, within a bound, and creates nothing."""
    address = random_address(server.domain)
    line = f"REGISTER {address} {Identity.generate().public.token()}\r\n".encode()
    for payload in (line, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\r\n" * 3):
        received = _plaintext_exchange(server, payload)
        assert received == b"" or received[:1] == b"\x15", received[:80]  # alert record
        assert b"HOWDY" not in received and b"205" not in received
    with WireClient.to(server) as client:
        assert isinstance(client.register(address, Identity.generate()), Registered)


# --- LOGIN: byte-identical replies, indistinguishable timing ----------------------------


def _mann_whitney_auc(a: list[float], b: list[float]) -> float:
    """P(a > b) + ½P(a = b): 0.5 when neither tends to be larger."""
    ranked = sorted([(v, 0) for v in a] + [(v, 1) for v in b])
    ranks = [0.0] * len(ranked)
    i = 0
    while i < len(ranked):
        j = i
        while j + 1 < len(ranked) and ranked[j + 1][0] == ranked[i][0]:
            j += 1
        for k in range(i, j + 1):
            ranks[k] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, (_, group) in zip(ranks, ranked, strict=True) if group == 0)
    u = rank_sum - len(a) * (len(a) + 1) / 2
    return u / (len(a) * len(b))


def _ks_statistic(a: list[float], b: list[float]) -> float:
    a, b = sorted(a), sorted(b)
    i = j = 0
    worst = 0.0
    while i < len(a) and j < len(b):
        if a[i] <= b[j]:
            i += 1
        else:
            j += 1
        worst = max(worst, abs(i / len(a) - j / len(b)))
    return worst


@dataclass
class Timing:
    labels: tuple[str, str]
    samples: int
    median_a_us: float
    median_b_us: float
    auc: float
    ks: float

    @property
    def relative_difference(self) -> float:
        low = min(self.median_a_us, self.median_b_us)
        return abs(self.median_a_us - self.median_b_us) / low

    def clearly_different(self) -> bool:
        """Generous on purpose: loopback timing is noisy and the suite must not flake.
        A leak of the size that skipping the dummy verification would cause (measured
        in docs/security.md) crosses both lines by far."""
        return (abs(self.auc - 0.5) > 0.2 or self.ks > 0.35) and self.relative_difference > 0.1

    def __str__(self) -> str:
        return (
            f"{self.samples} samples each: median {self.median_a_us:.0f} µs "
            f"({self.labels[0]}) vs {self.median_b_us:.0f} µs ({self.labels[1]}); "
            f"Mann-Whitney AUC {self.auc:.3f}, KS D {self.ks:.3f}"
        )


def compare(
    registered: list[float],
    unknown: list[float],
    labels: tuple[str, str] = ("registered, wrong key", "unknown"),
) -> Timing:
    return Timing(
        labels,
        len(registered),
        statistics.median(registered) * 1e6,
        statistics.median(unknown) * 1e6,
        _mann_whitney_auc(registered, unknown),
        _ks_statistic(registered, unknown),
    )


class LineClient:
    """A persistent TLS connection sending raw lines, timing each reply line."""

    def __init__(self, server: RuneServerProcess) -> None:
        raw = socket.create_connection((server.host, server.port), timeout=10)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = client_context().wrap_socket(raw)
        self.file = self.sock.makefile("rb")
        assert self.file.readline().startswith(b"HOWDY")

    def ask(self, line: bytes) -> tuple[bytes, float]:
        started = time.perf_counter()
        self.sock.sendall(line)
        reply = self.file.readline()
        return reply, time.perf_counter() - started

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def _register(server: RuneServerProcess) -> tuple[Address, Identity]:
    address, identity = random_address(server.domain), Identity.generate()
    with WireClient.to(server) as client:
        assert isinstance(client.register(address, identity), Registered)
    return address, identity


@pytest.mark.slow
def test_login_failure_replies_are_identical_and_timing_shows_no_clear_difference(
    server: RuneServerProcess,
) -> None:
    per_arm = 300
    registered = [_register(server)[0] for _ in range(5)]
    unknown = [random_address(server.domain) for _ in range(5)]  # used as often, by symmetry
    budget = int(server.config().get("max_failures", 10))  # failures one connection may have
    wrong = Identity.generate()
    server_key = server.server_public_key
    rng = random.Random(7)
    times: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    failure_lines: set[bytes] = set()
    nonce_shapes: set[tuple[bytes, int]] = set()
    arms = [True] * per_arm + [False] * per_arm
    rng.shuffle(arms)
    warm_up = budget
    arms = [rng.random() < 0.5 for _ in range(warm_up)] + arms
    done = 0
    while done < len(arms):
        client = LineClient(server)
        try:
            block = arms[done : done + budget]
            # Addresses are drawn before the block starts: the client's own work between
            # requests must not differ by arm (a longer idle gap alone slows the reply).
            addresses = [rng.choice(registered if known else unknown) for known in block]
            for known, address in zip(block, addresses, strict=True):
                reply, t_login = client.ask(f"LOGIN {address}\r\n".encode())
                nonce_shapes.add((reply[:4], len(reply)))
                nonce = _b64(reply[4:].rstrip(b"\r\n"))
                signature = login_proof(wrong, address, server_key, nonce)
                reply, t_proof = client.ask(b"PROOF " + _b64e(signature) + b"\r\n")
                failure_lines.add(reply)
                if done >= warm_up:
                    times[known].append((t_login, t_proof))
                done += 1
        finally:
            client.close()
    assert failure_lines == {b"411 authentication failed\r\n"}
    assert nonce_shapes == {(b"220 ", len(b"220 ") + 43 + 2)}
    login = compare([t[0] for t in times[True]], [t[0] for t in times[False]])
    proof = compare([t[1] for t in times[True]], [t[1] for t in times[False]])
    total = compare([sum(t) for t in times[True]], [sum(t) for t in times[False]])
    for name, timing in (("LOGIN→220", login), ("PROOF→411", proof), ("LOGIN+PROOF", total)):
        print(f"{name}: {timing}")
    for timing in (login, proof, total):
        assert not timing.clearly_different(), str(timing)


def _b64(text: bytes) -> bytes:
    return b64decode(text.decode("ascii"))


def _b64e(data: bytes) -> bytes:
    return b64encode(data).encode("ascii")


# --- isolation ---------------------------------------------------------------------


class Prober:
    """Sends raw RETRIEVE/DELETE lines as one user, reconnecting before the failure budget."""

    def __init__(self, server: RuneServerProcess, who: tuple[Address, Identity]) -> None:
        self.server, self.who = server, who
        self.budget = int(server.config().get("max_failures", 10))
        self.client: WireClient | None = None
        self.errors = 0

    def ask(self, line: bytes) -> tuple[int, str]:
        if self.client is None or self.errors >= self.budget - 1:
            self.close()
            self.client = WireClient.to(self.server)
            reply = self.client.login(*self.who, self.server.server_public_key)
            assert isinstance(reply, Authenticated), reply
            self.errors = 0
        code, text = self.client.raw(line)
        self.errors += code >= 400
        return code, text

    def listing(self) -> list[str]:
        self.close()
        with WireClient.to(self.server) as client:
            client.login(*self.who, self.server.server_public_key)
            reply = client.request(ListMessages())
        assert isinstance(reply, Listing)
        return [i for i, _ in reply.entries]

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None


def test_no_user_can_list_read_or_delete_anothers_messages(server: RuneServerProcess) -> None:
    alice, bob, mallory = (_register(server) for _ in range(3))
    with WireClient.to(server) as client:
        client.login(*alice, server.server_public_key)
        for n in range(4):
            receiver = bob if n < 3 else mallory
            reply = client.send_message(alice[0], alice[1], receiver[0], Content(f"s{n}", "b"))
            assert isinstance(reply, Roger)
    bob_probe, mallory_probe = Prober(server, bob), Prober(server, mallory)
    bobs = bob_probe.listing()
    (mallorys,) = mallory_probe.listing()
    assert len(bobs) == 3 and mallorys not in bobs
    not_found = (status.NOT_FOUND, "not found")
    random_ids = [str(uuid.uuid4()) for _ in range(100)]
    for message_id in [*bobs, *random_ids]:
        for verb in (b"RETRIEVE", b"DELETE"):
            assert mallory_probe.ask(verb + b" " + message_id.encode() + b"\r\n") == not_found
    # Malformed and lookalike ids: a syntax error, never someone's message.
    target = bobs[0]
    lookalikes = [
        target.upper(),
        "{" + target + "}",
        target.replace("-", ""),
        target[:-1],
        target + "0",
        target[:14] + "1" + target[15:],  # version 1
        "' OR '1'='1",
        "%",
        "*",
        target[:-1] + "%",
        target[:-1] + "_",
        "../" + target,
        " " + target,
        target + " " + target,
    ]
    for bad in lookalikes:
        for verb in (b"RETRIEVE", b"DELETE"):
            code, _ = mallory_probe.ask(verb + b" " + bad.encode() + b"\r\n")
            assert code == status.SYNTAX_ERROR, (bad, code)
            code, _ = bob_probe.ask(verb + b" " + bad.encode() + b"\r\n")  # not even for bob
            assert code == status.SYNTAX_ERROR, (bad, code)
    # A deleted id is gone for its owner and looks like any other to everyone else.
    assert bob_probe.ask(f"DELETE {target}\r\n".encode()) == (260, f"deleted {target}")
    for probe in (bob_probe, mallory_probe):
        for word in ("RETRIEVE", "DELETE"):
            assert probe.ask(f"{word} {target}\r\n".encode()) == not_found
    assert sorted(bob_probe.listing()) == sorted(bobs[1:])
    assert mallory_probe.listing() == [mallorys]
    for probe in (bob_probe, mallory_probe):
        probe.close()
    # And the store agrees: every row is in its receiver's mailbox, none moved.
    copy = Path(str(server.database) + ".isolation-copy")
    with sqlite3.connect(server.database) as live, sqlite3.connect(copy) as backup:
        live.backup(backup)
    with sqlite3.connect(copy) as db:
        rows = dict(db.execute("SELECT id, receiver FROM messages").fetchall())
    copy.unlink()
    assert {i: rows[i] for i in bobs[1:]} == dict.fromkeys(bobs[1:], str(bob[0]))
    assert rows[mallorys] == str(mallory[0]) and target not in rows


@pytest.mark.slow
def test_anothers_id_and_a_random_id_take_the_same_time(server: RuneServerProcess) -> None:
    """protocol.md §10.1: the same reply, and SHOULD take the same time."""
    alice, bob = _register(server), _register(server)
    with WireClient.to(server) as client:
        client.login(*alice, server.server_public_key)
        for n in range(5):
            client.send_message(alice[0], alice[1], bob[0], Content(f"t{n}", "b"))
    bobs = Prober(server, bob).listing()
    budget = int(server.config().get("max_failures", 10))
    rng = random.Random(11)
    arms = [True] * 200 + [False] * 200
    rng.shuffle(arms)
    times: dict[bool, list[float]] = {True: [], False: []}
    replies: set[bytes] = set()
    for start in range(0, len(arms), budget):
        prober = LineClient(server)
        nonce_line, _ = prober.ask(f"LOGIN {alice[0]}\r\n".encode())
        proof = login_proof(alice[1], alice[0], server.server_public_key, _b64(nonce_line[4:-2]))
        assert prober.ask(b"PROOF " + _b64e(proof) + b"\r\n")[0].startswith(b"230")
        block = arms[start : start + budget]
        lines = [  # built before the block: equal client-side gaps for both arms
            f"RETRIEVE {rng.choice(bobs) if foreign else uuid.uuid4()}\r\n".encode()
            for foreign in block
        ]
        for foreign, line in zip(block, lines, strict=True):
            reply, elapsed = prober.ask(line)
            replies.add(reply)
            times[foreign].append(elapsed)
        prober.close()
    assert replies == {b"404 not found\r\n"}
    result = compare(times[True], times[False], ("another's id", "random id"))
    print(f"RETRIEVE: {result}")
    assert not result.clearly_different(), str(result)
