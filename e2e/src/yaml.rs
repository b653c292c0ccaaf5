//! Multi-document YAML → server-side apply through discovery.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail};
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};
use serde_json::Value;

use crate::control_plane::FIELD_MANAGER;

/// How long [`apply_yaml`] keeps re-running discovery for a kind it does not know yet
/// (e.g. right after its CRD was created).
const DISCOVERY_WAIT: Duration = Duration::from_secs(15);

/// Parses a multi-document YAML string into JSON values, dropping empty documents and
/// flattening `kind: List` documents into their items.
pub fn documents(text: &str) -> Result<Vec<Value>> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).context("parsing YAML")?;
    let mut out = Vec::new();
    for doc in docs {
        match doc {
            Value::Null => {}
            Value::Object(ref m) if m.is_empty() => {}
            Value::Object(ref m)
                if m.get("kind").and_then(Value::as_str) == Some("List")
                    && m.get("items").is_some_and(Value::is_array) =>
            {
                if let Some(Value::Array(items)) = m.get("items") {
                    out.extend(items.iter().cloned());
                }
            }
            Value::Object(_) => out.push(doc),
            other => bail!("a YAML document is not a mapping: {other}"),
        }
    }
    Ok(out)
}

fn gvk_of(doc: &Value) -> Result<GroupVersionKind> {
    let api_version = doc
        .get("apiVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("document without apiVersion"))?;
    let kind = doc
        .get("kind")
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow!("document without kind"))?;
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    Ok(GroupVersionKind::gvk(group, version, kind))
}

/// Server-side applies every document (field manager `ccm-e2e`, forced).
pub async fn apply_yaml(client: &Client, text: &str) -> Result<Vec<DynamicObject>> {
    let docs = documents(text)?;
    let mut discovery = Discovery::new(client.clone())
        .run_aggregated()
        .await
        .context("API discovery")?;
    let pp = PatchParams::apply(FIELD_MANAGER).force();
    let mut applied = Vec::with_capacity(docs.len());
    for doc in docs {
        let gvk = gvk_of(&doc)?;
        let name = doc
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("{} without metadata.name", gvk.kind))?
            .to_owned();
        let deadline = Instant::now() + DISCOVERY_WAIT;
        let (ar, caps) = loop {
            if let Some(found) = discovery.resolve_gvk(&gvk) {
                break found;
            }
            if Instant::now() >= deadline {
                bail!(
                    "the apiserver does not serve {}/{} {}",
                    gvk.group,
                    gvk.version,
                    gvk.kind
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
            discovery = Discovery::new(client.clone())
                .run_aggregated()
                .await
                .context("API discovery")?;
        };
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Cluster => Api::all_with(client.clone(), &ar),
            Scope::Namespaced => {
                let ns = doc
                    .pointer("/metadata/namespace")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &ar)
            }
        };
        let obj = api
            .patch(&name, &pp, &Patch::Apply(&doc))
            .await
            .with_context(|| format!("applying {} {name}", gvk.kind))?;
        applied.push(obj);
    }
    Ok(applied)
}
