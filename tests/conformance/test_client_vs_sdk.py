"""ccm-issuer's PCA client side by side with the official Python SDK (huaweicloudsdkccm 3.1.219).

The SDK is the judge of client-visible behaviour: the same error body must give ccm-issuer the
code, message, request id and encoded authorization message the SDK reads; the account id must be
discovered at the same IAM endpoint (never at an overridden PCA endpoint); and a CA the SDK's model
reports as issued from a CSR must be refused by ``ccm-issuer pca describe-ca``.

``ccm-issuer`` is ``CCM_ISSUER_BIN`` (default ``target/debug/ccm-issuer``). Every server and
process a test starts is stopped when it ends, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkccm.v1 import (
    CcmClient,
    CreateCertificateByCsrRequest,
    CreateCertificateByCsrRequestBody,
    ShowCertificateAuthorityRequest,
    Validity,
)
from huaweicloudsdkccm.v1.region.ccm_region import CcmRegion

from mockproc import REPO_ROOT, MockServer, running_mock

ISSUER_BIN = Path(os.environ.get("CCM_ISSUER_BIN", REPO_ROOT / "target" / "debug" / "ccm-issuer"))

# Accounts of their own: the SDK caches discovered account ids per AK for the whole process.
AK = "CLIENTCONFORMANCE001"
SK = "client-conformance-secret-key-00000000001"
DOMAIN = "aabbccddeeff00112233445566778899"
CA_ID = "0d3a1c52-5a0c-4f6e-9d61-2b7c0f1e8a44"


def sdk_env_cleared() -> dict[str, str]:
    """This process's environment without the SDKs' variables (the tests set their own)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("HUAWEICLOUD_SDK_") and k.lower() != "https_proxy"}


def run_issuer(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    if not ISSUER_BIN.exists():
        pytest.fail(f"ccm-issuer not found at {ISSUER_BIN}; run `cargo build` or set CCM_ISSUER_BIN")
    return subprocess.run([str(ISSUER_BIN), "pca", *args], env=env, capture_output=True, text=True, timeout=120)


def http_config(ca_bundle: Path | None) -> HttpConfig:
    cfg = HttpConfig.get_default_config()
    if ca_bundle:
        cfg.ssl_ca_cert = str(ca_bundle)
    cfg.timeout = (5, 30)
    return cfg


# ------------------------------------------------------------------------------------------
# error bodies


@contextlib.contextmanager
def scripted(status: int, body: str) -> Iterator[str]:
    """A plain-HTTP server on 127.0.0.1 answering every request with `status` and `body`."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            data = body.encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("x-request-id", "scripted-1")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


ERROR_SHAPES = [
    (400, {"error_code": "PCA.10010002", "error_msg": "The CA does not exist"}),
    (400, {"errorCode": "PCA.00020001", "errorMsg": "Incorrect parameter"}),
    (400, {"code": "PCA.00020201", "message": "Invalid CA ID"}),
    (401, {"error": {"code": "IAM.0001", "message": "The request you have made requires authentication.", "title": "Unauthorized"}}),
    (403, {"outer": {"inner": {"error_code": "APIGW.0302", "error_msg": "The IAM user is not authorized to access the API"}}}),
    (403, {"error_code": "PCA.10010001", "error_msg": "Policy doesn't allow pca:ca:get to be performed.", "encoded_authorization_message": "ZW5jb2RlZC1hdXRo"}),
    (403, {"error_code": "PCA.10010071", "error_msg": "The OCSP switch is already on"}),
]


@pytest.mark.parametrize("status,body", ERROR_SHAPES, ids=[json.dumps(b)[:40] for _, b in ERROR_SHAPES])
def test_error_bodies_read_like_the_sdk(status, body):
    text = json.dumps(body)
    with scripted(status, text) as url:
        sdk = (
            CcmClient.new_builder()
            .with_http_config(http_config(None))
            .with_credentials(GlobalCredentials(AK, SK, DOMAIN))
            .with_endpoints([url])
            .build()
        )
        with pytest.raises(ClientRequestException) as caught:
            sdk.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
        e = caught.value
        env = {**sdk_env_cleared(), "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_DOMAIN_ID": DOMAIN}
        out = run_issuer(["describe-ca", "--urn", CA_ID, "--endpoint", url, "--iam-endpoint", url], env)
    assert out.returncode != 0
    assert e.status_code == status and e.request_id == "scripted-1"
    expected = f"ShowCertificateAuthority failed: HTTP {status} {e.error_code}: {e.error_msg} (request id {e.request_id})"
    assert expected in out.stderr, f"SDK read {e.error_code!r}/{e.error_msg!r}; ccm-issuer said:\n{out.stderr}"
    if getattr(e, "encoded_auth_msg", None):
        assert f"encoded authorization message (decode it with IAM): {e.encoded_auth_msg}" in out.stderr, out.stderr


# ------------------------------------------------------------------------------------------
# IAM endpoint and CA kinds, against two mocks


@pytest.fixture(scope="module")
def mocks(tmp_path_factory) -> Iterator[tuple[MockServer, MockServer, Path]]:
    """A mock serving PCA and another serving IAM, sharing the account; a bundle trusting both."""
    credential = f"{AK}:{SK}:{DOMAIN}"
    with running_mock(tmp_path_factory.mktemp("pca"), ["--credential", credential, "--ca", CA_ID]) as pca, running_mock(
        tmp_path_factory.mktemp("iam"), ["--credential", credential]
    ) as iam:
        bundle = tmp_path_factory.mktemp("bundle") / "both.pem"
        bundle.write_text(pca.ca_pem.read_text() + iam.ca_pem.read_text())
        yield pca, iam, bundle


def domain_discoveries(mock: MockServer) -> int:
    stats = requests.get(f"{mock.url}/_mock/stats", verify=str(mock.ca_pem), timeout=10).json()
    return stats["operations"].get("KeystoneListAuthDomains", {}).get("total", 0)


def test_iam_is_not_moved_by_the_pca_endpoint_override(mocks, monkeypatch):
    pca, iam, bundle = mocks
    # The SDK's own variables: CCM of ap-southeast-3 at one mock, IAM at the other.
    monkeypatch.setenv("HUAWEICLOUD_SDK_REGION_CCM_AP_SOUTHEAST_3", pca.url)
    monkeypatch.setenv("HUAWEICLOUD_SDK_IAM_ENDPOINT", iam.url)
    credentials = GlobalCredentials(AK, SK)
    sdk = (
        CcmClient.new_builder()
        .with_http_config(http_config(bundle))
        .with_credentials(credentials)
        .with_region(CcmRegion.value_of("ap-southeast-3"))
        .build()
    )
    assert credentials.domain_id == DOMAIN
    assert sdk.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID)).ca_id == CA_ID
    assert (domain_discoveries(iam), domain_discoveries(pca)) == (1, 0), "the SDK asks IAM, never the CCM host"

    env = {
        **sdk_env_cleared(),
        "HUAWEICLOUD_SDK_AK": AK,
        "HUAWEICLOUD_SDK_SK": SK,
        "HUAWEICLOUD_SDK_REGION_CCM_AP_SOUTHEAST_3": pca.url,
        "HUAWEICLOUD_SDK_IAM_ENDPOINT": iam.url,
    }
    out = run_issuer(["describe-ca", "--urn", CA_ID, "--region", "ap-southeast-3", "--ca-bundle", str(bundle)], env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"account:        {DOMAIN}" in out.stdout, out.stdout
    assert (domain_discoveries(iam), domain_discoveries(pca)) == (2, 0), "ccm-issuer asks the same IAM"


def test_a_ca_the_sdk_reports_as_issued_from_a_csr_cannot_issue(mocks):
    pca, _, bundle = mocks
    sdk = (
        CcmClient.new_builder()
        .with_http_config(http_config(bundle))
        .with_credentials(GlobalCredentials(AK, SK, DOMAIN))
        .with_endpoints([pca.url])
        .build()
    )
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sub-from-csr.conformance.example")]))
        .sign(key, hashes.SHA256())
        .public_bytes(Encoding.PEM)
        .decode()
    )
    body = CreateCertificateByCsrRequestBody(
        issuer_id=CA_ID, csr=csr, validity=Validity(type="DAY", value=30), type="INTERMEDIATE_CA", path_length=0
    )
    sub_id = sdk.create_certificate_by_csr(CreateCertificateByCsrRequest(body=body)).certificate_id
    shown = sdk.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=sub_id))
    assert (shown.status, shown.gen_mode) == ("ACTIVED", "CSR")

    env = {**sdk_env_cleared(), "HUAWEICLOUD_SDK_AK": AK, "HUAWEICLOUD_SDK_SK": SK, "HUAWEICLOUD_SDK_DOMAIN_ID": DOMAIN}
    out = run_issuer(["describe-ca", "--urn", sub_id, "--endpoint", pca.url, "--ca-bundle", str(bundle)], env)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "cannot issue (CAKeyNotInPCA)" in out.stdout, out.stdout
    ok = run_issuer(["describe-ca", "--urn", CA_ID, "--endpoint", pca.url, "--ca-bundle", str(bundle)], env)
    assert ok.returncode == 0 and "OK, this CA can issue" in ok.stdout, ok.stdout + ok.stderr



# ------------------------------------------------------------------------------------------
# STS fallback, CAs that cannot sign and null fields, against a mock with IAM/STS apart

# Its own account again (the SDK's per-AK cache).
AK_STS = "CLIENTCONFORMANCE002"
SK_STS = "client-conformance-secret-key-00000000002"
CSR_CA_ID = "5b7e0c1a-2f3d-4a5b-8c6d-7e8f9a0b1c2d"
FROZEN_CA_ID = "6c8f1d2b-3a4e-4b6c-9d7e-8f9a0b1c2d3e"


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Iterator[MockServer]:
    """IAM/STS on their own listener, IAM listing no domain, and two CAs that cannot sign."""
    args = [
        "--credential", f"{AK_STS}:{SK_STS}:{DOMAIN}",
        "--ca", CA_ID, "--csr-ca", CSR_CA_ID, "--frozen-ca", FROZEN_CA_ID,
        "--iam-listen", "127.0.0.1:0", "--iam-no-domain",
    ]
    with running_mock(tmp_path_factory.mktemp("split"), args, lines=2) as server:
        yield server


def split_env(**extra: str) -> dict[str, str]:
    return {**sdk_env_cleared(), "HUAWEICLOUD_SDK_AK": AK_STS, "HUAWEICLOUD_SDK_SK": SK_STS, **extra}


def split_sdk(split: MockServer) -> CcmClient:
    """The SDK for the split mock's PCA address, account id given."""
    return (
        CcmClient.new_builder()
        .with_http_config(http_config(split.ca_pem))
        .with_credentials(GlobalCredentials(AK_STS, SK_STS, DOMAIN))
        .with_endpoints([split.url])
        .build()
    )


def stats_of(mock: MockServer) -> dict:
    return requests.get(f"{mock.url}/_mock/stats", verify=str(mock.ca_pem), timeout=10).json()


def test_sts_tells_both_the_account_when_iam_lists_none(split, monkeypatch):
    monkeypatch.setenv("HUAWEICLOUD_SDK_STS_ENDPOINT", split.iam_url)
    credentials = GlobalCredentials(AK_STS, SK_STS).with_iam_endpoint(split.iam_url)
    (
        CcmClient.new_builder()
        .with_http_config(http_config(split.ca_pem))
        .with_credentials(credentials)
        .with_region(Region("ap-southeast-3", split.url))
        .build()
    )
    assert credentials.domain_id == DOMAIN
    before = stats_of(split)["operations"]["GetCallerIdentity"]["total"]

    out = run_issuer(
        ["describe-ca", "--urn", CA_ID, "--endpoint", split.url, "--ca-bundle", str(split.ca_pem),
         "--iam-endpoint", split.iam_url, "--sts-endpoint", split.iam_url],
        split_env(),
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"account:        {DOMAIN}" in out.stdout, out.stdout
    assert stats_of(split)["operations"]["GetCallerIdentity"]["total"] == before + 1

    without_sts = run_issuer(
        ["describe-ca", "--urn", CA_ID, "--endpoint", split.url, "--ca-bundle", str(split.ca_pem),
         "--iam-endpoint", split.iam_url],
        split_env(),
    )
    assert without_sts.returncode != 0 and "set domainId" in without_sts.stderr, without_sts.stderr


@pytest.mark.parametrize(
    "ca_id,field,value,reason",
    [(CSR_CA_ID, "gen_mode", "CSR", "CAKeyNotInPCA"), (FROZEN_CA_ID, "freeze_flag", 1, "CAFrozen")],
)
def test_cas_the_sdk_reports_as_unable_to_sign_are_refused(split, ca_id, field, value, reason):
    sdk = split_sdk(split)
    shown = sdk.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=ca_id))
    assert (shown.status, getattr(shown, field)) == ("ACTIVED", value)
    out = run_issuer(
        ["describe-ca", "--urn", ca_id, "--endpoint", split.url, "--ca-bundle", str(split.ca_pem)],
        split_env(HUAWEICLOUD_SDK_DOMAIN_ID=DOMAIN),
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert f"cannot issue ({reason})" in out.stdout, out.stdout


INFORMATIVE_CA_FIELDS = [
    "ca_id", "path_length", "issuer_id", "issuer_name", "key_algorithm", "signature_algorithm",
    "freeze_flag", "gen_mode", "serial_number", "create_time", "delete_time", "not_before",
    "not_after", "common_name", "country", "state", "locality", "organization",
    "organizational_unit", "crl_configuration", "enterprise_project_id", "free_quota",
    "charging_mode", "cluster_id", "domain_id",
]


def set_null_fields(mock: MockServer, fields: list[str]) -> None:
    plan = {"null_fields": {"fields": fields, "operations": ["ShowCertificateAuthority"]}}
    r = requests.post(f"{mock.url}/_mock/faults", json=plan, verify=str(mock.ca_pem), timeout=10)
    assert r.status_code == 200, r.text


def test_null_fields_informative_ones_pass_decision_ones_are_named(split):
    sdk = split_sdk(split)
    env = split_env(HUAWEICLOUD_SDK_DOMAIN_ID=DOMAIN)
    args = ["describe-ca", "--urn", CA_ID, "--endpoint", split.url, "--ca-bundle", str(split.ca_pem)]
    try:
        set_null_fields(split, INFORMATIVE_CA_FIELDS)
        shown = sdk.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
        assert shown.status == "ACTIVED" and shown.not_after is None
        out = run_issuer(args, env)
        assert out.returncode == 0 and "OK, this CA can issue" in out.stdout, out.stdout + out.stderr

        set_null_fields(split, ["status"])
        assert sdk.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID)).status is None
        out = run_issuer(args, env)
        assert out.returncode != 0, out.stdout
        assert "unexpected response" in out.stderr and "`status`" in out.stderr, out.stderr
    finally:
        requests.delete(f"{split.url}/_mock/faults", verify=str(split.ca_pem), timeout=10)
