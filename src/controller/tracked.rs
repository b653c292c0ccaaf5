//! A CertificateRequest as last seen by one reconciliation. Every write to it is conditional on
//! the version seen (resourceVersion) and on its identity (UID), and every successful write
//! moves the view forward; a conflict means "someone else changed it: re-read and re-decide",
//! so a replica acting on an old view can never overwrite a newer decision.

use kube::{
    Api, ResourceExt,
    api::{Patch, PatchParams},
};
use serde_json::{Value, json};

use super::{FIELD_MANAGER, is_gone};
use crate::cert_manager::CertificateRequest;

/// The result of a conditional write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Write {
    /// Written; the view is the new version.
    Written,
    /// The object changed since the view was taken; nothing was written.
    Conflict,
    /// The object was deleted or replaced by another with the same name.
    Gone,
}

/// A request and the API to write it.
pub struct Tracked {
    api: Api<CertificateRequest>,
    object: CertificateRequest,
    uid: String,
    name: String,
}

impl Tracked {
    /// Starts from `object` (usually the cache's copy). `None` for objects without UID or
    /// namespace (never the case for stored requests).
    pub fn new(client: &kube::Client, object: &CertificateRequest) -> Option<Self> {
        let uid = object.uid()?;
        let namespace = object.namespace()?;
        Some(Self {
            api: Api::namespaced(client.clone(), &namespace),
            name: object.name_any(),
            object: object.clone(),
            uid,
        })
    }

    /// The view.
    pub fn object(&self) -> &CertificateRequest {
        &self.object
    }

    /// The request's UID.
    pub fn uid(&self) -> &str {
        &self.uid
    }

    /// The request's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Re-reads the request from the API server (a quorum read). `Gone` when it was deleted or
    /// replaced; the view is then unchanged.
    pub async fn refresh(&mut self) -> Result<Write, kube::Error> {
        match self.api.get(&self.name).await {
            Ok(fresh) if fresh.uid().as_deref() == Some(self.uid.as_str()) => {
                self.object = fresh;
                Ok(Write::Written)
            }
            Ok(_) => Ok(Write::Gone),
            Err(e) if is_gone(&e) => Ok(Write::Gone),
            Err(e) => Err(e),
        }
    }

    /// Sets (`Some`) or removes (`None`) annotations, conditional on the view's version.
    pub async fn annotate(&mut self, changes: &[(&str, Option<String>)]) -> Result<Write, kube::Error> {
        let annotations: serde_json::Map<String, Value> = changes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone().map_or(Value::Null, Value::String)))
            .collect();
        let patch = json!({"metadata": {
            "uid": self.uid,
            "resourceVersion": self.object.resource_version(),
            "annotations": annotations,
        }});
        let result = self
            .api
            .patch(&self.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
        self.absorb(result)
    }

    /// One server-side apply of our status fields, conditional on the view's version.
    pub async fn apply_status(&mut self, status: Value) -> Result<Write, kube::Error> {
        let body = json!({
            "apiVersion": "cert-manager.io/v1",
            "kind": "CertificateRequest",
            "metadata": {
                "name": self.name,
                "namespace": self.object.namespace(),
                "uid": self.uid,
                "resourceVersion": self.object.resource_version(),
            },
            "status": status,
        });
        // Forced: the fields are ours by contract (cert-manager leaves an external issuer's
        // Ready, certificate and ca alone); the resourceVersion makes it safe. The apiserver
        // ignores metadata.uid in an apply body (measured on 1.34, tests/e2e.rs); the
        // resourceVersion, unique across objects, is what keeps a write off a replacement.
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let result = self.api.patch_status(&self.name, &params, &Patch::Apply(&body)).await;
        self.absorb(result)
    }

    fn absorb(&mut self, result: Result<CertificateRequest, kube::Error>) -> Result<Write, kube::Error> {
        match result {
            Ok(updated) => {
                self.object = updated;
                Ok(Write::Written)
            }
            Err(e) if is_gone(&e) => Ok(Write::Gone),
            Err(kube::Error::Api(s)) if s.is_conflict() => Ok(Write::Conflict),
            Err(e) => Err(e),
        }
    }
}
