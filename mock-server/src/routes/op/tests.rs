//! The route table: unknown paths and wrong methods are the gateway's 404.

use crate::test_support::*;

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_gateway_404() {
    let h = Harness::new();
    assert_err(&h.call("GET", "/v1/unknown", &[], None).await, 404, "APIGW.0101");
    assert_err(
        &h.call("PUT", "/v1/private-certificates", &[], None).await,
        404,
        "APIGW.0101",
    );
    assert_err(
        &h.call("GET", "/v1/private-certificates/csr", &[], None).await,
        404,
        "APIGW.0101",
    );
    let ca = format!("/v1/private-certificate-authorities/{CA_ID}");
    assert_err(&h.call("PATCH", &ca, &[], None).await, 404, "APIGW.0101");
    let r = h.call("GET", "/", &[], None).await;
    assert_eq!(r.json["request_id"], r.headers["x-request-id"].to_str().unwrap());
}
