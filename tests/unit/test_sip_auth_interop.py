"""Digest against real peers on loopback: Kamailio as server, SIPp as client.

Kamailio (auth module, ``pv_www_authenticate``) challenges REGISTER/MESSAGE sent as raw
SIP text and answered by our :class:`DigestClient`; SIPp's ``[authentication]`` keyword
answers challenges issued by our :class:`DigestServer` from a tiny UDP server.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from telephony.sip.auth import (
    DigestAuthorization,
    DigestClient,
    DigestCredentials,
    DigestServer,
    VerifyResult,
)

pytestmark = pytest.mark.interop

KAMAILIO_MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{binary} is required in CI (scripts/system-deps.sh installs it)")
        pytest.skip(f"{binary} not installed")
    return path


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the process group we started (start_new_session made its id the pid)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


# --- Kamailio as the server ----------------------------------------------------------------

KAMAILIO_CFG = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
mpath="{modules}"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "auth.so"
modparam("auth", "algorithm", "{algorithm}")
request_route {{
    if (!pv_www_authenticate("$td", "{password}", "0")) {{
        www_challenge("$td", "{flags}");
        exit;
    }}
    sl_send_reply("200", "OK");
}}
"""


class RawSipClient:
    """A UDP socket sending hand-written requests and returning the status and headers."""

    def __init__(self, port: int) -> None:
        self.server = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.5)
        self.local_port = int(self.sock.getsockname()[1])
        self.cseq = 0

    def request(
        self, method: str, uri: str, *, auth: str | None = None, body: bytes = b""
    ) -> tuple[int, list[tuple[str, str]]]:
        self.cseq += 1
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.local_port};branch=z9hG4bK-dt-{self.cseq}",
            "Max-Forwards: 70",
            "From: <sip:alice@127.0.0.1>;tag=dt1",
            "To: <sip:alice@127.0.0.1>",
            "Call-ID: auth-interop@127.0.0.1",
            f"CSeq: {self.cseq} {method}",
            f"Contact: <sip:alice@127.0.0.1:{self.local_port}>",
        ]
        if auth is not None:
            lines.append(f"Authorization: {auth}")
        if body:
            lines.append("Content-Type: text/plain")
        lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
        for _ in range(8):  # UDP: retransmit until the server is up and answers
            self.sock.sendto(data, self.server)
            try:
                reply, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head = reply.split(b"\r\n\r\n", 1)[0].decode()
            status_line, *header_lines = head.split("\r\n")
            headers = [
                (n.strip().lower(), v.strip())
                for n, _, v in (h.partition(":") for h in header_lines)
            ]
            return int(status_line.split(" ")[1]), headers
        raise AssertionError(f"no answer from kamailio to {method}")

    def close(self) -> None:
        self.sock.close()


# www_challenge flags: "1" offers qop=auth, "0" no qop (RFC 2069 style).  Not auth-int:
# Kamailio 5.6 never hashes the body for auth-int (api.c passes an unset H(entity)).
@pytest.fixture(
    params=[("MD5", "1"), ("SHA-256", "1"), ("MD5", "0")],
    ids=["md5-auth", "sha256-auth", "md5-no-qop"],
)
def kamailio(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[RawSipClient, str, bool]]:
    binary = need("kamailio")
    if not KAMAILIO_MODULES.is_dir():
        pytest.skip(f"kamailio modules not found in {KAMAILIO_MODULES}")
    algorithm, flags = request.param
    port = free_udp_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(
        KAMAILIO_CFG.format(
            port=port, modules=KAMAILIO_MODULES, algorithm=algorithm, password="s3cret", flags=flags
        )
    )
    log = (tmp_path / "kamailio.log").open("wb")
    proc = subprocess.Popen(
        [binary, "-f", str(cfg), "-DD", "-E", "-Y", str(tmp_path), "-w", str(tmp_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    client = RawSipClient(port)
    try:
        yield client, algorithm, flags == "1"
    finally:
        client.close()
        stop(proc)
        log.close()


def challenges(headers: list[tuple[str, str]]) -> list[str]:
    return [value for name, value in headers if name == "www-authenticate"]


def test_register_against_kamailio(kamailio: tuple[RawSipClient, str, bool]) -> None:
    sip, algorithm, with_qop = kamailio
    uri = f"sip:127.0.0.1:{sip.server[1]}"
    body = b"hello digest"
    status, headers = sip.request("MESSAGE", uri, body=body)
    assert status == 401
    offered = challenges(headers)
    assert offered and f"algorithm={algorithm}" in offered[0]

    client = DigestClient(DigestCredentials("alice", "s3cret"))
    value = client.authorize(offered, method="MESSAGE", uri=uri, body=body)
    creds = DigestAuthorization.parse(value)
    assert creds.algorithm == algorithm
    assert (creds.qop, creds.nc) == (("auth", 1) if with_qop else (None, None))
    status, _ = sip.request("MESSAGE", uri, auth=value, body=body)
    assert status == 200

    # the next request reuses the nonce with nc=2 (pre-emptive credentials)
    again = client.authorize_again(method="REGISTER", uri=uri)
    assert again is not None
    assert DigestAuthorization.parse(again).nc == (2 if with_qop else None)
    status, _ = sip.request("REGISTER", uri, auth=again)
    assert status == 200

    # the wrong password is refused by kamailio
    wrong = DigestClient(DigestCredentials("alice", "not-it")).authorize(
        offered, method="REGISTER", uri=uri
    )
    status, _ = sip.request("REGISTER", uri, auth=wrong)
    assert status == 401


# --- SIPp as the client against our DigestServer ------------------------------------------

SIPP_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:alice@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 1 REGISTER
      Contact: <sip:alice@[local_ip]:[local_port]>
      Max-Forwards: 70
      Expires: 60
      Content-Length: 0

    ]]>
  </send>
  <recv response="401" auth="true"/>
  <send retrans="500">
    <![CDATA[
      REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:alice@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:alice@[remote_ip]>
      Call-ID: [call_id]
      CSeq: 2 REGISTER
      Contact: <sip:alice@[local_ip]:[local_port]>
      [authentication username=alice password={password}]
      Max-Forwards: 70
      Expires: 60
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


class DigestUdpServer:
    """Answers every request: 401 with our challenges, then 200 or 403 from verify()."""

    def __init__(self, server: DigestServer) -> None:
        self.digest = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self.results: list[VerifyResult] = []
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            head = data.split(b"\r\n\r\n", 1)[0].decode()
            request_line, *lines = head.split("\r\n")
            method, uri, _ = request_line.split(" ")
            headers = [
                (n.strip().lower(), v.strip()) for n, _, v in (h.partition(":") for h in lines)
            ]
            copied = [
                f"{n}: {v}" for n, v in headers if n in ("via", "from", "to", "call-id", "cseq")
            ]
            auth = [v for n, v in headers if n == "authorization"]
            now = time.monotonic()
            if not auth:
                status = "401 Unauthorized"
                extra = [f"WWW-Authenticate: {c}" for c in self.digest.challenge(now=now)]
            else:
                result = self.digest.verify(auth[0], method=method, uri=uri, now=now)
                self.results.append(result)
                status = "200 OK" if result.ok else "403 Forbidden"
                extra = []
            reply = "\r\n".join([f"SIP/2.0 {status}", *copied, *extra, "Content-Length: 0"])
            self.sock.sendto((reply + "\r\n\r\n").encode(), addr)

    def close(self) -> None:
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()


@pytest.mark.parametrize(("password", "expect_ok"), [("s3cret", True), ("wrong", False)])
def test_sipp_client_against_our_server(tmp_path: Path, password: str, expect_ok: bool) -> None:
    binary = need("sipp")
    # SIPp 3.6 computes MD5 digests only (no SHA-256 support).
    server = DigestUdpServer(
        DigestServer(
            "127.0.0.1", {"alice": "s3cret"}.get, nonce_secret=os.urandom(32), algorithms=("MD5",)
        )
    )
    scenario = tmp_path / "register.xml"
    scenario.write_text(SIPP_SCENARIO.format(password=password))
    try:
        proc = subprocess.run(
            [
                binary,
                "-sf",
                str(scenario),
                f"127.0.0.1:{server.port}",
                "-i",
                "127.0.0.1",
                "-p",
                str(free_udp_port()),
                "-m",
                "1",
                "-nostdin",
                "-timeout",
                "10s",
                "-timeout_error",
                "-trace_err",
                "-error_file",
                str(tmp_path / "err.log"),
            ],
            check=False,
            capture_output=True,
            timeout=20,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
        )
    finally:
        server.close()
    assert len(server.results) >= 1
    result = server.results[0]
    assert result.username == "alice"
    assert result.ok is expect_ok, result.reason
    if expect_ok:
        assert proc.returncode == 0, (tmp_path / "err.log").read_text(errors="replace")
    else:
        assert result.reason == "wrong response"
        assert proc.returncode != 0
