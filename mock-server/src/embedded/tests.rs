//! The embedded mock: separate IAM listener, seeds.

use super::*;
use crate::seed::SeedKind;

async fn get(url: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.trim_start_matches("http://");
    let split = rest.find('/').unwrap_or(rest.len());
    let (host, path) = (&rest[..split], &rest[split..]);
    let mut s = tokio::net::TcpStream::connect(host).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, text)
}

#[tokio::test]
async fn iam_on_its_own_listener_and_not_on_the_pca_one() {
    let e = Embedded::start(EmbeddedOptions {
        iam_listener: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let iam = e.iam_url.clone().unwrap();
    assert_ne!(iam, e.url);
    // Unsigned: 401 where IAM is served, the gateway's 404 where it is not.
    let (on_iam, _) = get(&format!("{iam}/v3/auth/domains")).await;
    let (on_pca, body) = get(&format!("{}/v3/auth/domains", e.url)).await;
    assert_eq!((on_iam, on_pca), (401, 404), "{body}");
    assert!(body.contains("APIGW.0101"));
    assert_eq!(get(&format!("{iam}/v5/caller-identity")).await.0, 401);
    assert_eq!(get(&format!("{}/v5/caller-identity", e.url)).await.0, 404);
    // PCA paths the other way round.
    assert_eq!(get(&format!("{iam}/v1/private-certificates")).await.0, 404);
    assert_eq!(get(&format!("{}/v1/private-certificates", e.url)).await.0, 401);
    // Both have the /_mock/ API.
    assert_eq!(get(&format!("{iam}/_mock/health")).await.0, 200);
}

#[tokio::test]
async fn one_listener_serves_everything_by_default_and_seeds_kinds() {
    let e = Embedded::start(EmbeddedOptions {
        seeds: vec![SeedCa {
            kind: SeedKind::Frozen,
            ..SeedCa::new("11111111-2222-4333-8444-555555555555", KeyAlgorithm::Ec256, 1)
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(e.iam_url.is_none());
    assert_eq!(get(&format!("{}/v3/auth/domains", e.url)).await.0, 401);
    let ca = e.mock.store.get_ca("11111111-2222-4333-8444-555555555555").unwrap();
    assert_eq!(ca.freeze_flag, 1);
}

#[tokio::test]
async fn pause_and_resume_every_listener() {
    let mut e = Embedded::start(EmbeddedOptions {
        iam_listener: true,
        ..Default::default()
    })
    .await
    .unwrap();
    let iam = e.iam_url.clone().unwrap();
    e.pause().await;
    let host = iam.trim_start_matches("http://").to_owned();
    assert!(
        tokio::net::TcpStream::connect(&host).await.is_err(),
        "refused while paused"
    );
    e.resume().await.unwrap();
    assert_eq!(get(&format!("{iam}/_mock/health")).await.0, 200);
}
