//! Helpers shared by the end-to-end tests and the demo: polling until a condition holds,
//! cert-manager Certificates and their conditions, and a tiny HTTPS server standing in for an
//! ingress gateway.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use kube::{
    Api, Client,
    api::{ApiResource, DynamicObject, GroupVersionKind},
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Polls `check` until it yields a value, or fails after `timeout` with `what` and the last
/// error or "not yet".
pub async fn eventually<T>(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<Option<T>>,
) -> Result<T> {
    let deadline = Instant::now() + timeout;
    let mut last;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => last = "not yet".into(),
            Err(e) => last = format!("{e:#}"),
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what} (last: {last})");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The cert-manager Certificate API.
pub fn certificates(client: &Client, namespace: &str) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("cert-manager.io", "v1", "Certificate"));
    Api::namespaced_with(client.clone(), namespace, &ar)
}

/// A condition of a dynamic object: `(status, reason, message)`.
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<(String, String, String)> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("reason"), s("message"))
        })
}

/// Waits (up to `timeout`) for a Certificate to be Ready=True.
pub async fn certificate_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> Result<DynamicObject> {
    let api = certificates(client, namespace);
    eventually(&format!("Certificate {namespace}/{name} Ready"), timeout, async || {
        let cert = api.get(name).await?;
        Ok(condition(&cert, "Ready").filter(|c| c.0 == "True").map(|_| cert))
    })
    .await
}

/// Serves HTTPS on 127.0.0.1 with `chain` and `key` (PEM), answering every request with
/// `body`, until the returned task is aborted. Returns the port.
pub async fn https_server(chain: &str, key: &str, body: &'static str) -> Result<(u16, tokio::task::JoinHandle<()>)> {
    let certs = CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes())?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(mut tls) = acceptor.accept(tcp).await {
                    let mut buf = [0u8; 2048];
                    let _ = tls.read(&mut buf).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    Ok((port, task))
}
