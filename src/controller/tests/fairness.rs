//! One slow issuer cannot hold the shared workers: its requests beyond the per-issuer limit are
//! put back without a PCA call, and another issuer's request goes through meanwhile.

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use kube::runtime::{controller::Action, reflector::ObjectRef};

use crate::controller::certificate_request::reconcile;

/// An endpoint that accepts connections and never answers.
async fn tarpit() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, task)
}

/// A world with a second issuer, `tarpit`, whose endpoint accepts connections and never
/// answers; the task serving it is returned so the test can stop it.
async fn world_with_tarpit(
    max_concurrent_per_issuer: u16,
    pca_timeout: Duration,
) -> (World, tokio::task::JoinHandle<()>) {
    let config = Config {
        max_concurrent_per_issuer,
        pca_timeout,
        ..Config::default()
    };
    let w = world(config).await;
    let (tarpit_url, tarpit_task) = tarpit().await;
    let mut slow = issuer_json(&w.mock, NS, true);
    slow["metadata"]["name"] = json!("tarpit");
    slow["spec"]["endpoint"] = json!(tarpit_url);
    w.api.put(slow);
    (w, tarpit_task)
}

/// An approved request named `name` for the tarpit issuer.
fn tarpit_request(name: &str) -> Value {
    let c = csr(false, &["slow.example"]);
    let mut cr = request_json(&c, false, approved(), "CCMIssuer");
    cr["metadata"]["name"] = json!(name);
    cr["spec"]["issuerRef"]["name"] = json!("tarpit");
    cr
}

#[tokio::test]
async fn a_tarpit_issuer_holds_at_most_its_slots() {
    let (w, tarpit_task) = world_with_tarpit(2, Duration::from_secs(5)).await;
    let mut stuck = Vec::new();
    for i in 0..5 {
        let stored = w.api.put(tarpit_request(&format!("slow-{i}")));
        let cr: CertificateRequest = serde_json::from_value(stored).expect("decode");
        stuck.push(tokio::spawn(reconcile(Arc::new(cr), w.ctx.clone())));
    }
    // The healthy issuer's request is served while the tarpit's calls hang.
    let c = csr(false, &["fast.example"]);
    w.api.put(request_json(&c, false, approved(), "CCMIssuer"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    w.reconcile().await;
    assert_eq!(w.ready().1, "Issued", "{}", w.ready().2);
    let finished = stuck.iter().filter(|t| t.is_finished()).count();
    assert_eq!(
        finished, 3,
        "three tarpit requests were put back at once, two still hold their slots"
    );
    let metrics = w.ctx.metrics.encode();
    assert!(
        metrics.contains(r#"ccm_issuer_reconciles_total{controller="certificaterequest",result="later"} 3"#),
        "{metrics}"
    );
    for t in stuck {
        t.await.expect("join").expect("reconcile");
    }
    tarpit_task.abort();
}

/// The delay of a requeue, from `Action`'s `Debug` (its field is private).
fn requeue_after(action: &Action) -> Option<Duration> {
    let text = format!("{action:?}");
    let secs = text.split("Some(").nth(1)?.split("s)").next()?;
    secs.parse::<f64>().ok().map(Duration::from_secs_f64)
}

#[tokio::test]
async fn a_request_without_a_slot_waits_to_be_woken_instead_of_polling() {
    let (w, tarpit_task) = world_with_tarpit(1, Duration::from_secs(2)).await;
    let (wake_tx, mut woken) = tokio::sync::mpsc::unbounded_channel();
    w.ctx.slots.wake_with(wake_tx);
    let mut requests = Vec::new();
    for i in 0..2 {
        let cr: CertificateRequest =
            serde_json::from_value(w.api.put(tarpit_request(&format!("slow-{i}")))).expect("decode");
        requests.push(Arc::new(cr));
    }
    let holder = tokio::spawn(reconcile(requests[0].clone(), w.ctx.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let action = reconcile(requests[1].clone(), w.ctx.clone()).await.expect("reconcile");
    let delay = requeue_after(&action).expect("a requeue");
    assert!(
        delay >= Duration::from_secs(10),
        "a waiting request comes back by itself only as a fallback, not every few seconds: {delay:?}"
    );
    assert!(woken.try_recv().is_err(), "nothing is woken while the slot is held");
    holder.await.expect("join").expect("reconcile");
    assert_eq!(
        woken.try_recv().ok(),
        Some(ObjectRef::from(&*requests[1])),
        "releasing the slot wakes the waiting request"
    );
    tarpit_task.abort();
}

/// A request put back for want of a slot comes back every 10–20 s while it waits (thousands
/// of them in a backlog): it must not check its CSR (a signature verification) each time. Its
/// CSR is checked once it holds a slot — here a broken CSR, so the order is visible: refused
/// only after the slot is free, without any write before.
#[tokio::test]
async fn a_request_waiting_for_a_slot_does_not_check_its_csr() {
    let (w, tarpit_task) = world_with_tarpit(1, Duration::from_secs(2)).await;
    let holder: CertificateRequest = serde_json::from_value(w.api.put(tarpit_request("holder"))).expect("decode");
    let mut broken = tarpit_request("broken");
    broken["spec"]["request"] = json!(b64(
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    ));
    let broken: CertificateRequest = serde_json::from_value(w.api.put(broken)).expect("decode");
    let path = format!("/apis/cert-manager.io/v1/namespaces/{NS}/certificaterequests/broken");
    let holding = tokio::spawn(reconcile(Arc::new(holder), w.ctx.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let action = reconcile(Arc::new(broken.clone()), w.ctx.clone())
        .await
        .expect("reconcile");
    assert!(requeue_after(&action).is_some(), "put back to wait: {action:?}");
    let waiting = w.api.get(&path).expect("request");
    assert!(
        waiting["status"]["conditions"]
            .as_array()
            .is_some_and(|c| c.iter().all(|c| c["type"] != "Ready")),
        "nothing is decided (or written) while the request waits for a slot: {waiting}"
    );
    holding.await.expect("join").expect("reconcile");
    reconcile(Arc::new(broken), w.ctx.clone()).await.expect("reconcile");
    let refused = w.api.get(&path).expect("request");
    let ready = refused["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or_default();
    assert_eq!(
        ready["reason"], "Failed",
        "a broken CSR is refused once the request holds a slot: {refused}"
    );
    tarpit_task.abort();
}
