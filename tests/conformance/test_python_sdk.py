"""Conformance of ccm-mock-pca with the official Huawei Cloud Python SDK (huaweicloudsdkccm).

The fixture starts the mock binary itself (``CCM_MOCK_PCA_BIN``, default
``target/debug/ccm-mock-pca`` under the repository root) with ``--tls`` and points the SDK at
it through ``with_endpoints`` (and a ``Region`` for IAM domain-id discovery), trusting the
mock's CA through ``HttpConfig.ssl_ca_cert``. The process is always terminated, also when a
test fails.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from huaweicloudsdkcore.auth.credentials import GlobalCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.http.http_config import HttpConfig
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkccm.v1 import (
    CcmClient,
    CreateCertificateAuthorityRequest,
    CreateCertificateAuthorityRequestBody,
    DistinguishedName,
    CreateCertificateByCsrRequest,
    CreateCertificateByCsrRequestBody,
    DeleteCertificateRequest,
    ExportCertificateAuthorityCertificateRequest,
    ExportCertificateRequest,
    ExportCertificateRequestBody,
    ListCertificateAuthorityRequest,
    ListCertificateRequest,
    RevokeCertificateRequest,
    RevokeCertificateRequestBody,
    ShowCertificateAuthorityQuotaRequest,
    ShowCertificateAuthorityRequest,
    ShowCertificateQuotaRequest,
    ShowCertificateRequest,
    Validity,
)

from mockproc import MockServer, running_mock


AK = "CONFORMANCEAK00000001"
SK = "conformance-secret-key-0000000000000001"
DOMAIN = "0123456789abcdef0123456789abcdef"
# A second account used without a domain id, to exercise IAM discovery.
AK2 = "CONFORMANCEAK00000002"
SK2 = "conformance-secret-key-0000000000000002"
DOMAIN2 = "fedcba9876543210fedcba9876543210"
CA_ID = "6434f74f-2d13-4e6a-89eb-93ee313f1a43"

UUID_RE = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
PY_TYPES = {"str": str, "int": int, "bool": bool}


def _start_mock(tmp_path_factory, extra: list[str], lines: int = 1):
    with running_mock(tmp_path_factory.mktemp("ccm-mock"), extra, lines) as server:
        yield server


@pytest.fixture(scope="module")
def mock(tmp_path_factory) -> MockServer:
    yield from _start_mock(
        tmp_path_factory,
        ["--credential", f"{AK}:{SK}:{DOMAIN}", "--credential", f"{AK2}:{SK2}:{DOMAIN2}", "--ca", CA_ID],
    )


# A second mock: IAM/STS on their own listener, IAM listing no domain, and CAs that look
# ACTIVED but cannot issue.
CSR_CA_ID = "22222222-3333-4444-8555-666666666666"
# Its own account: the SDK caches discovered domain ids per AK across clients.
AK3 = "CONFORMANCEAK00000003"
SK3 = "conformance-secret-key-0000000000000003"
DOMAIN3 = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
FROZEN_CA_ID = "33333333-4444-4555-8666-777777777777"


@pytest.fixture(scope="module")
def split_mock(tmp_path_factory) -> MockServer:
    yield from _start_mock(
        tmp_path_factory,
        [
            "--credential", f"{AK}:{SK}:{DOMAIN}", "--credential", f"{AK3}:{SK3}:{DOMAIN3}",
            "--ca", CA_ID, "--csr-ca", CSR_CA_ID, "--frozen-ca", FROZEN_CA_ID,
            "--iam-listen", "127.0.0.1:0", "--iam-no-domain",
        ],
        lines=2,
    )


def http_config(mock: MockServer) -> HttpConfig:
    cfg = HttpConfig.get_default_config()
    cfg.ssl_ca_cert = str(mock.ca_pem)
    cfg.timeout = (5, 30)
    return cfg


def sdk_client(mock: MockServer, ak: str = AK, sk: str = SK, domain_id: str | None = DOMAIN) -> CcmClient:
    return (
        CcmClient.new_builder()
        .with_http_config(http_config(mock))
        .with_credentials(GlobalCredentials(ak, sk, domain_id))
        .with_endpoints([mock.url])
        .build()
    )


@pytest.fixture(scope="module")
def client(mock) -> CcmClient:
    return sdk_client(mock)


# ------------------------------------------------------------------------------------------
# helpers


def assert_wire_types(raw: bytes, model_cls) -> dict:
    """Every key the SDK model knows must have the JSON type the model declares."""
    data = json.loads(raw)
    check_types(data, model_cls)
    return data


def check_types(data: dict, model_cls) -> None:
    import huaweicloudsdkccm.v1.model as models

    for attr, typ in model_cls.openapi_types.items():
        key = model_cls.attribute_map[attr]
        if key not in data or data[key] is None:
            continue
        value = data[key]
        if typ in PY_TYPES:
            expected = PY_TYPES[typ]
            ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
            assert ok, f"{model_cls.__name__}.{key}: expected {typ}, got {type(value).__name__} ({value!r})"
        elif typ.startswith("list["):
            assert isinstance(value, list), f"{model_cls.__name__}.{key} must be a list"
            inner = typ[5:-1]
            if hasattr(models, inner):
                for item in value:
                    check_types(item, getattr(models, inner))
        elif hasattr(models, typ):
            assert isinstance(value, dict), f"{model_cls.__name__}.{key} must be an object"
            check_types(value, getattr(models, typ))


def pem_blocks(pem: str) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(pem.encode())


def assert_crlf_pem(pem: str) -> None:
    assert pem.startswith("-----BEGIN CERTIFICATE-----\r\n"), pem[:40]
    assert pem.endswith("-----END CERTIFICATE-----\r\n")
    assert "\n" not in pem.replace("\r\n", ""), "bare LF in PEM"


def make_csr(cn: str, dns: list[str], server_auth: bool = True) -> tuple[str, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in dns]), critical=False)
    )
    if server_auth:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False
        )
    csr = builder.sign(key, hashes.SHA256())
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return csr.public_bytes(serialization.Encoding.PEM).decode(), spki


def issue(client: CcmClient, cn: str, **body_kwargs):
    csr_pem, spki = make_csr(cn, [cn])
    body = CreateCertificateByCsrRequestBody(
        issuer_id=CA_ID,
        csr=csr_pem,
        validity=body_kwargs.pop("validity", Validity(type="DAY", value=30)),
        type=body_kwargs.pop("type", "ENTITY_CERT"),
        **body_kwargs,
    )
    resp = client.create_certificate_by_csr(CreateCertificateByCsrRequest(body=body))
    assert resp.status_code == 200
    assert_wire_types(resp.raw_content, type(resp))
    assert isinstance(resp.certificate_id, str) and UUID_RE.match(resp.certificate_id), resp.certificate_id
    return resp.certificate_id, spki


def unique_cn(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}.conformance.example"


# ------------------------------------------------------------------------------------------
# tests


def test_show_ca(client):
    resp = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
    data = assert_wire_types(resp.raw_content, type(resp))
    assert resp.ca_id == CA_ID
    assert resp.type == "SUBORDINATE"
    assert resp.status == "ACTIVED"
    assert resp.path_length == 1
    assert UUID_RE.match(resp.issuer_id)
    assert resp.issuer_name and isinstance(resp.issuer_name, str)
    assert resp.key_algorithm == "EC256"
    assert resp.signature_algorithm == "SHA384"
    assert resp.gen_mode == "GENERATE"
    assert resp.freeze_flag == 0
    assert re.fullmatch(r"[0-9a-f]+", resp.serial_number)
    for ts in ("create_time", "not_before", "not_after"):
        assert isinstance(data[ts], int) and data[ts] > 1_600_000_000_000, ts
    assert resp.not_after > resp.not_before
    dn = resp.distinguished_name
    assert dn.common_name and dn.country == "CN" and dn.organization
    assert resp.crl_configuration.enabled is False
    assert resp.domain_id == DOMAIN
    assert resp.enterprise_project_id == "0"


def test_export_ca_chain_order_and_crlf(client):
    resp = client.export_certificate_authority_certificate(ExportCertificateAuthorityCertificateRequest(ca_id=CA_ID))
    assert_wire_types(resp.raw_content, type(resp))
    assert_crlf_pem(resp.certificate)
    assert_crlf_pem(resp.certificate_chain)
    (sub,) = pem_blocks(resp.certificate)
    chain = pem_blocks(resp.certificate_chain)
    assert len(chain) == 1, "a CA directly under the root exports a one-element chain (the root)"
    root = chain[0]
    sub.verify_directly_issued_by(root)
    assert root.subject == root.issuer
    bc = sub.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 1
    # The root itself exports an empty chain (mock's documented choice).
    show = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
    root_export = client.export_certificate_authority_certificate(
        ExportCertificateAuthorityCertificateRequest(ca_id=show.issuer_id)
    )
    assert root_export.certificate_chain == ""
    assert pem_blocks(root_export.certificate)[0] == root


def test_issue_export_show_list_revoke(client):
    cn = unique_cn("leaf")
    cert_id, spki = issue(client, cn, validity=Validity(type="DAY", value=30))

    exp = client.export_certificate(
        ExportCertificateRequest(certificate_id=cert_id, body=ExportCertificateRequestBody(is_compressed="false", type="OTHER"))
    )
    assert exp.status_code == 200
    assert_wire_types(exp.raw_content, type(exp))
    assert exp.private_key is None
    assert_crlf_pem(exp.certificate)
    assert_crlf_pem(exp.certificate_chain)
    (leaf,) = pem_blocks(exp.certificate)
    chain = pem_blocks(exp.certificate_chain)
    assert len(chain) == 2, "chain is issuer -> root"
    leaf.verify_directly_issued_by(chain[0])
    chain[0].verify_directly_issued_by(chain[1])
    ca_export = client.export_certificate_authority_certificate(ExportCertificateAuthorityCertificateRequest(ca_id=CA_ID))
    assert pem_blocks(ca_export.certificate)[0] == chain[0]

    assert leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == spki
    assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == cn
    assert leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName) == [cn]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku and ExtendedKeyUsageOID.CLIENT_AUTH in eku
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert leaf.signature_hash_algorithm.name == "sha384"
    lifetime = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert lifetime == datetime.timedelta(days=30)

    show = client.show_certificate(ShowCertificateRequest(certificate_id=cert_id))
    data = assert_wire_types(show.raw_content, type(show))
    assert show.certificate_id == cert_id
    assert show.status == "ISSUED"
    assert show.issuer_id == CA_ID
    assert show.gen_mode == "CSR"
    assert show.key_algorithm == "EC256"
    assert show.signature_algorithm == "SHA384"
    assert show.distinguished_name.common_name == cn
    assert int(show.serial_number, 16) == leaf.serial_number
    assert data["not_before"] == int(leaf.not_valid_before_utc.timestamp()) * 1000
    assert data["not_after"] == int(leaf.not_valid_after_utc.timestamp()) * 1000
    assert isinstance(data["create_time"], int)

    listed = client.list_certificate(
        ListCertificateRequest(name=cn, status="ISSUED", limit=10, offset=0, sort_key="create_time", sort_dir="DESC")
    )
    assert_wire_types(listed.raw_content, type(listed))
    assert listed.total == 1
    assert [c.certificate_id for c in listed.certificates] == [cert_id]
    assert listed.certificates[0].distinguished_name.common_name == cn

    rev = client.revoke_certificate(
        RevokeCertificateRequest(certificate_id=cert_id, body=RevokeCertificateRequestBody(reason="KEY_COMPROMISE"))
    )
    assert rev.status_code == 204
    assert client.show_certificate(ShowCertificateRequest(certificate_id=cert_id)).status == "REVOKED"
    assert client.list_certificate(ListCertificateRequest(name=cn, status="ISSUED")).total == 0
    assert client.list_certificate(ListCertificateRequest(name=cn, status="REVOKED")).total == 1
    with pytest.raises(ClientRequestException) as e:
        client.export_certificate(
            ExportCertificateRequest(certificate_id=cert_id, body=ExportCertificateRequestBody(is_compressed="false", type="OTHER"))
        )
    assert e.value.status_code == 400 and e.value.error_code.startswith("PCA.")


def test_revoke_without_reason_sends_empty_object_and_delete(client):
    cert_id, _ = issue(client, unique_cn("noreason"))
    rev = client.revoke_certificate(RevokeCertificateRequest(certificate_id=cert_id, body=RevokeCertificateRequestBody()))
    assert rev.status_code == 204
    deleted = client.delete_certificate(DeleteCertificateRequest(certificate_id=cert_id))
    assert deleted.status_code == 204
    with pytest.raises(ClientRequestException) as e:
        client.show_certificate(ShowCertificateRequest(certificate_id=cert_id))
    assert e.value.status_code == 400
    assert e.value.error_code == "PCA.10010002"
    assert e.value.request_id


def test_start_from_and_hour_validity(client):
    start = int(time.time() * 1000) + 60_000
    cert_id, _ = issue(client, unique_cn("hour"), validity=Validity(type="HOUR", value=5, start_from=start))
    show = client.show_certificate(ShowCertificateRequest(certificate_id=cert_id))
    assert show.not_before == start // 1000 * 1000
    assert show.not_after - show.not_before == 5 * 3600 * 1000


def test_list_with_paging_and_sort(client):
    prefix = f"page-{uuid.uuid4().hex[:8]}"
    ids = [issue(client, f"{prefix}-{i}.conformance.example")[0] for i in range(3)]
    page1 = client.list_certificate(ListCertificateRequest(name=prefix, limit=2, offset=0, sort_key="common_name", sort_dir="ASC"))
    page2 = client.list_certificate(ListCertificateRequest(name=prefix, limit=2, offset=2, sort_key="common_name", sort_dir="ASC"))
    assert page1.total == page2.total == 3
    assert [c.certificate_id for c in page1.certificates + page2.certificates] == ids


def test_list_cas_with_filters(client):
    resp = client.list_certificate_authority(
        ListCertificateAuthorityRequest(type="SUBORDINATE", status="ACTIVED", name="Sub CA", limit=100, offset=0)
    )
    assert_wire_types(resp.raw_content, type(resp))
    assert resp.total >= 1
    assert CA_ID in [c.ca_id for c in resp.certificate_authorities]
    assert all(c.type == "SUBORDINATE" and c.status == "ACTIVED" for c in resp.certificate_authorities)
    roots = client.list_certificate_authority(ListCertificateAuthorityRequest(type="ROOT"))
    assert roots.total >= 1 and all(c.path_length == 7 for c in roots.certificate_authorities)
    assert all(c.issuer_id is None for c in roots.certificate_authorities)


def test_intermediate_ca_visibility(client):
    cert_id, _ = issue(client, unique_cn("intermediate"), type="INTERMEDIATE_CA", path_length=0)
    show = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=cert_id))
    assert show.ca_id == cert_id and show.gen_mode == "CSR" and show.type == "SUBORDINATE" and show.path_length == 0
    exp = client.export_certificate_authority_certificate(ExportCertificateAuthorityCertificateRequest(ca_id=cert_id))
    (cert,) = pem_blocks(exp.certificate)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca and bc.path_length == 0
    assert len(pem_blocks(exp.certificate_chain)) == 2
    listed = client.list_certificate_authority(ListCertificateAuthorityRequest(limit=1000))
    assert cert_id not in [c.ca_id for c in listed.certificate_authorities]
    with pytest.raises(ClientRequestException) as e:
        client.show_certificate(ShowCertificateRequest(certificate_id=cert_id))
    assert e.value.error_code == "PCA.10010002"


def test_quotas(client):
    for req in (ShowCertificateAuthorityQuotaRequest(), ShowCertificateQuotaRequest()):
        fn = client.show_certificate_authority_quota if isinstance(req, ShowCertificateAuthorityQuotaRequest) else client.show_certificate_quota
        resp = fn(req)
        assert_wire_types(resp.raw_content, type(resp))
        (res,) = resp.quotas.resources
        assert res.type in ("CERTIFICATE_AUTHORITY", "CERTIFICATE")
        assert isinstance(res.used, int) and isinstance(res.quota, int) and res.used <= res.quota
    ca_q = client.show_certificate_authority_quota(ShowCertificateAuthorityQuotaRequest()).quotas.resources[0]
    assert (ca_q.type, ca_q.quota) == ("CERTIFICATE_AUTHORITY", 100)
    cert_q = client.show_certificate_quota(ShowCertificateQuotaRequest()).quotas.resources[0]
    assert (cert_q.type, cert_q.quota) == ("CERTIFICATE", 100000) and cert_q.used >= 1


def test_iam_domain_id_discovery(mock):
    creds = GlobalCredentials(AK2, SK2).with_iam_endpoint(mock.url)
    assert creds.domain_id is None
    client = (
        CcmClient.new_builder()
        .with_http_config(http_config(mock))
        .with_credentials(creds)
        .with_region(Region("ap-southeast-3", mock.url))
        .build()
    )
    # build() asked the mock's /v3/auth/domains for the account id.
    assert creds.domain_id == DOMAIN2
    resp = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
    assert resp.ca_id == CA_ID


def test_wrong_sk_is_apigw_0301(mock):
    bad = sdk_client(mock, sk="definitely-not-the-secret")
    with pytest.raises(ClientRequestException) as e:
        bad.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
    assert e.value.status_code == 401
    assert e.value.error_code == "APIGW.0301"
    assert "verify aksk signature fail" in e.value.error_msg
    assert re.fullmatch(r"[0-9a-f]{32}", e.value.request_id)


def test_wrong_domain_id_is_rejected(mock):
    other = sdk_client(mock, domain_id="00000000000000000000000000000000")
    with pytest.raises(ClientRequestException) as e:
        other.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
    assert e.value.status_code == 401 and e.value.error_code == "APIGW.0301"


def test_refusals_surface_as_pca_errors(client):
    with pytest.raises(ClientRequestException) as e:
        client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id="not-a-ca-id"))
    assert (e.value.status_code, e.value.error_code) == (400, "PCA.00020201")
    with pytest.raises(ClientRequestException) as e:
        client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=str(uuid.uuid4())))
    assert (e.value.status_code, e.value.error_code) == (400, "PCA.10010002")
    csr_pem, _ = make_csr(unique_cn("toolong"), ["x.example"])
    body = CreateCertificateByCsrRequestBody(issuer_id=CA_ID, csr=csr_pem, validity=Validity(type="YEAR", value=11))
    with pytest.raises(ClientRequestException) as e:
        client.create_certificate_by_csr(CreateCertificateByCsrRequest(body=body))
    assert (e.value.status_code, e.value.error_code) == (400, "PCA.00020109")


def test_mock_stats_count_one_certificate_per_csr_key(mock, client):
    """`/_mock/stats` keys issued certificates by SHA-256 of the SPKI DER."""
    import requests

    _, spki = issue(client, unique_cn("stats"))
    stats = requests.get(f"{mock.url}/_mock/stats", verify=str(mock.ca_pem), timeout=10).json()
    assert stats["issued"]["by_public_key"][hashlib.sha256(spki).hexdigest()] == 1
    op = stats["operations"]["CreateCertificateByCsr"]
    assert op["by_status"]["200"] >= 1 and op["total"] >= op["by_status"]["200"]


# ------------------------------------------------------------------------------------------
# fidelity, round 2: algorithms, CAs that cannot issue, null fields, IAM on its own address

HASHES = {"SHA256": "sha256", "SHA384": "sha384", "SHA512": "sha512"}


def create_ca(client: CcmClient, **body) -> str:
    dn = DistinguishedName(
        common_name=f"conf {uuid.uuid4().hex[:8]}", country="CN", state="GD", locality="SZ",
        organization="conformance", organizational_unit="pca",
    )
    resp = client.create_certificate_authority(
        CreateCertificateAuthorityRequest(body=CreateCertificateAuthorityRequestBody(distinguished_name=dn, **body))
    )
    assert resp.status_code == 200
    assert_wire_types(resp.raw_content, type(resp))
    return resp.ca_id


def exported_ca(client: CcmClient, ca_id: str) -> x509.Certificate:
    resp = client.export_certificate_authority_certificate(ExportCertificateAuthorityCertificateRequest(ca_id=ca_id))
    return pem_blocks(resp.certificate)[0]


@pytest.mark.parametrize("key", ["EC256", "EC384", "RSA2048"])
@pytest.mark.parametrize("sig", ["SHA256", "SHA384", "SHA512"])
def test_create_ca_with_each_algorithm(client, key, sig):
    root_id = create_ca(client, type="ROOT", key_algorithm=key, signature_algorithm=sig,
                        validity=Validity(type="YEAR", value=2))
    sub_id = create_ca(client, type="SUBORDINATE", key_algorithm=key, signature_algorithm=sig, issuer_id=root_id,
                       path_length=0, validity=Validity(type="YEAR", value=1))
    root, sub = exported_ca(client, root_id), exported_ca(client, sub_id)
    for ca_id, cert in ((root_id, root), (sub_id, sub)):
        show = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=ca_id))
        assert_wire_types(show.raw_content, type(show))
        assert (show.key_algorithm, show.signature_algorithm, show.status) == (key, sig, "ACTIVED")
        assert cert.signature_hash_algorithm.name == HASHES[sig]
    root.verify_directly_issued_by(root)
    sub.verify_directly_issued_by(root)
    expected_key = ec.EllipticCurvePublicKey if key.startswith("EC") else type(sub.public_key())
    assert isinstance(sub.public_key(), expected_key)


def test_sm2_ca_is_refused_with_the_key_algorithm_code(client):
    with pytest.raises(ClientRequestException) as e:
        create_ca(client, type="ROOT", key_algorithm="SM2", signature_algorithm="SM3",
                  validity=Validity(type="YEAR", value=1))
    assert (e.value.status_code, e.value.error_code) == (400, "PCA.00020102")


def every_model_field_present(raw: bytes, model_cls) -> None:
    data = json.loads(raw)
    missing = [model_cls.attribute_map[a] for a in model_cls.openapi_types if model_cls.attribute_map[a] not in data]
    assert not missing, f"{model_cls.__name__} lacks {missing}"


@pytest.mark.parametrize(("ca_id", "gen_mode", "freeze_flag"), [(CSR_CA_ID, "CSR", 0), (FROZEN_CA_ID, "GENERATE", 1)])
def test_cas_that_look_actived_but_cannot_issue(split_mock, ca_id, gen_mode, freeze_flag):
    client = sdk_client(split_mock)
    show = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=ca_id))
    assert_wire_types(show.raw_content, type(show))
    every_model_field_present(show.raw_content, type(show))
    assert (show.status, show.gen_mode, show.freeze_flag) == ("ACTIVED", gen_mode, freeze_flag)
    listed = client.list_certificate_authority(ListCertificateAuthorityRequest(limit=100))
    assert_wire_types(listed.raw_content, type(listed))
    assert [c.gen_mode for c in listed.certificate_authorities if c.ca_id == ca_id] == [gen_mode]
    csr_pem, _ = make_csr(unique_cn("cannot"), ["x.example"])
    body = CreateCertificateByCsrRequestBody(issuer_id=ca_id, csr=csr_pem, validity=Validity(type="DAY", value=1))
    with pytest.raises(ClientRequestException) as e:
        client.create_certificate_by_csr(CreateCertificateByCsrRequest(body=body))
    assert (e.value.status_code, e.value.error_code) == (400, "PCA.10010003")


def test_null_in_every_field_decodes_in_the_sdk_models(mock, client):
    import requests

    cert_id, _ = issue(client, unique_cn("nulls"))
    plan = {"null_fields": {"fields": ["*"], "operations": [
        "ShowCertificateAuthority", "ListCertificateAuthority", "ShowCertificate", "ListCertificate"]}}
    url = f"{mock.url}/_mock/faults"
    assert requests.post(url, json=plan, verify=str(mock.ca_pem), timeout=10).status_code == 200
    try:
        show = client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID))
        assert show.status_code == 200
        assert all(getattr(show, a) is None for a in ("ca_id", "status", "type", "not_after", "issuer_id"))
        assert show.distinguished_name.common_name is None
        cas = client.list_certificate_authority(ListCertificateAuthorityRequest())
        assert cas.total is None and cas.certificate_authorities and cas.certificate_authorities[0].status is None
        cert = client.show_certificate(ShowCertificateRequest(certificate_id=cert_id))
        assert cert.status is None and cert.distinguished_name.common_name is None
        certs = client.list_certificate(ListCertificateRequest())
        assert certs.total is None and certs.certificates[0].certificate_id is None
    finally:
        requests.delete(url, verify=str(mock.ca_pem), timeout=10)


def test_iam_on_its_own_address_with_sts_fallback(split_mock, monkeypatch):
    """IAM lists no domain, so the SDK asks STS GetCallerIdentity; both live on the IAM
    listener, and the PCA listener does not serve them."""
    import requests

    monkeypatch.setenv("HUAWEICLOUD_SDK_STS_ENDPOINT", split_mock.iam_url)
    creds = GlobalCredentials(AK3, SK3).with_iam_endpoint(split_mock.iam_url)
    client = (
        CcmClient.new_builder()
        .with_http_config(http_config(split_mock))
        .with_credentials(creds)
        .with_region(Region("ap-southeast-3", split_mock.url))
        .build()
    )
    assert creds.domain_id == DOMAIN3
    assert client.show_certificate_authority(ShowCertificateAuthorityRequest(ca_id=CA_ID)).ca_id == CA_ID
    stats = requests.get(f"{split_mock.url}/_mock/stats", verify=str(split_mock.ca_pem), timeout=10).json()
    assert stats["operations"]["KeystoneListAuthDomains"]["by_status"] == {"200": 1}
    assert stats["operations"]["GetCallerIdentity"]["by_status"] == {"200": 1}
    on_pca = requests.get(f"{split_mock.url}/v5/caller-identity", verify=str(split_mock.ca_pem), timeout=10)
    assert on_pca.status_code == 404 and on_pca.json()["error_code"] == "APIGW.0101"
