//! An in-memory Kubernetes API server behind a `kube::Client`: GET, POST (create), PUT
//! (replace), JSON merge patch and server-side apply of status, each honouring resourceVersion
//! and UID preconditions like the real one, and events.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Duration,
};

use http::{Method, Request, Response};
use kube::{Client, client::Body};
use serde_json::{Value, json};

/// One recorded request: method, path (without query), and query.
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, Value>,
    requests: Vec<Recorded>,
    resource_version: u64,
    /// Fail the next request whose path ends with this suffix (method, path suffix, status).
    fail_next: Vec<(Method, String, u16)>,
}

/// An in-memory API server.
#[derive(Clone, Default)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
}

fn status(code: u16, reason: &str, message: &str) -> Response<Body> {
    let body = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message, "reason": reason, "code": code});
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string().into_bytes()))
        .expect("response")
}

fn ok(value: &Value, code: u16) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(value.to_string().into_bytes()))
        .expect("response")
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            let t = target.as_object_mut().expect("object");
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    merge(t.entry(k.clone()).or_insert(Value::Null), v);
                }
            }
        }
        other => *target = other.clone(),
    }
}

impl FakeApi {
    /// The client talking to this server.
    pub fn client(&self) -> Client {
        let api = self.clone();
        let service = tower::service_fn(move |req: Request<Body>| {
            let api = api.clone();
            async move { Ok::<_, Infallible>(api.handle(req).await) }
        });
        Client::new(service, "default")
    }

    /// Stores an object (JSON with apiVersion/kind/metadata), assigning uid and resourceVersion.
    pub fn put(&self, mut object: Value) -> Value {
        let mut s = self.state.lock().expect("lock");
        s.resource_version += 1;
        let rv = s.resource_version.to_string();
        let meta = object["metadata"].as_object_mut().expect("metadata");
        meta.entry("uid")
            .or_insert_with(|| json!(uuid::Uuid::new_v4().to_string()));
        meta.insert("resourceVersion".into(), json!(rv));
        meta.entry("generation").or_insert(json!(1));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(crate::controller::now_rfc3339()));
        let key = Self::key_of(&object);
        s.objects.insert(key, object.clone());
        object
    }

    /// Removes an object.
    pub fn delete(&self, path: &str) {
        self.state.lock().expect("lock").objects.remove(path);
    }

    /// The stored object at an API path.
    pub fn get(&self, path: &str) -> Option<Value> {
        self.state.lock().expect("lock").objects.get(path).cloned()
    }

    /// Requests seen so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().expect("lock").requests.clone()
    }

    /// Makes the next matching request fail with `code`.
    pub fn fail_next(&self, method: Method, path_suffix: &str, code: u16) {
        self.state
            .lock()
            .expect("lock")
            .fail_next
            .push((method, path_suffix.to_owned(), code));
    }

    /// The API path of an object.
    pub fn key_of(object: &Value) -> String {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let plural = format!("{}s", kind.to_lowercase());
        let prefix = if api_version.contains('/') {
            format!("/apis/{api_version}")
        } else {
            format!("/api/{api_version}")
        };
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        match object["metadata"]["namespace"].as_str() {
            Some(ns) => format!("{prefix}/namespaces/{ns}/{plural}/{name}"),
            None => format!("{prefix}/{plural}/{name}"),
        }
    }

    async fn handle(&self, req: Request<Body>) -> Response<Body> {
        use http_body_util::BodyExt;
        let (parts, body) = req.into_parts();
        let bytes = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        if query.contains("watch=true") {
            // Watches never deliver anything here.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return status(410, "Expired", "watch closed");
        }
        let mut s = self.state.lock().expect("lock");
        s.requests.push(Recorded {
            method: parts.method.clone(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        if let Some(i) = s
            .fail_next
            .iter()
            .position(|(m, suffix, _)| *m == parts.method && path.ends_with(suffix.as_str()))
        {
            let (_, _, code) = s.fail_next.remove(i);
            let reason = match code {
                404 => "NotFound",
                409 => "Conflict",
                403 => "Forbidden",
                _ => "InternalError",
            };
            return status(code, reason, "injected failure");
        }
        match parts.method {
            Method::POST if path.ends_with("/events") => ok(&body, 201),
            Method::POST => {
                let mut object = body.clone();
                if object["metadata"]["namespace"].is_null()
                    && let Some(ns) = path.split("/namespaces/").nth(1).and_then(|r| r.split('/').next())
                {
                    object["metadata"]["namespace"] = json!(ns);
                }
                let key = Self::key_of(&object);
                if s.objects.contains_key(&key) {
                    return status(409, "AlreadyExists", &format!("{key} already exists"));
                }
                s.resource_version += 1;
                let rv = s.resource_version.to_string();
                object["metadata"]["resourceVersion"] = json!(rv);
                object["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
                s.objects.insert(key, object.clone());
                ok(&object, 201)
            }
            Method::PUT => {
                let Some(existing) = s.objects.get(&path).cloned() else {
                    return status(404, "NotFound", &format!("{path} not found"));
                };
                if body["metadata"]["resourceVersion"].as_str() != existing["metadata"]["resourceVersion"].as_str() {
                    return status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version",
                    );
                }
                let mut object = body.clone();
                s.resource_version += 1;
                object["metadata"]["resourceVersion"] = json!(s.resource_version.to_string());
                object["metadata"]["uid"] = existing["metadata"]["uid"].clone();
                s.objects.insert(path.clone(), object.clone());
                ok(&object, 200)
            }
            Method::GET => {
                if let Some(obj) = s.objects.get(&path) {
                    return ok(obj, 200);
                }
                if is_collection(&path) {
                    let prefix = format!("{path}/");
                    let items: Vec<Value> = s
                        .objects
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix) && !k[prefix.len()..].contains('/'))
                        .map(|(_, v)| v.clone())
                        .collect();
                    let rv = s.resource_version.to_string();
                    return ok(
                        &json!({"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": rv}, "items": items}),
                        200,
                    );
                }
                status(404, "NotFound", &format!("{path} not found"))
            }
            Method::PATCH => {
                let (object_path, is_status) = match path.strip_suffix("/status") {
                    Some(p) => (p.to_owned(), true),
                    None => (path.clone(), false),
                };
                let Some(mut object) = s.objects.get(&object_path).cloned() else {
                    return status(404, "NotFound", &format!("{object_path} not found"));
                };
                let uid = object["metadata"]["uid"].clone();
                if let Some(want) = body["metadata"]["uid"].as_str()
                    && Some(want) != uid.as_str()
                {
                    return status(
                        409,
                        "Conflict",
                        &format!("Precondition failed: UID in precondition: {want}, UID in object meta: {uid}"),
                    );
                }
                if let Some(want) = body["metadata"]["resourceVersion"].as_str()
                    && Some(want) != object["metadata"]["resourceVersion"].as_str()
                {
                    return status(
                        409,
                        "Conflict",
                        "the object has been modified; please apply your changes to the latest version",
                    );
                }
                if is_status {
                    apply_status(&mut object, &body["status"]);
                } else {
                    let mut patch = body.clone();
                    if let Some(m) = patch["metadata"].as_object_mut() {
                        m.remove("resourceVersion");
                        m.remove("uid");
                    }
                    merge(&mut object, &patch);
                }
                s.resource_version += 1;
                object["metadata"]["resourceVersion"] = json!(s.resource_version.to_string());
                s.objects.insert(object_path, object.clone());
                ok(&object, 200)
            }
            _ => status(405, "MethodNotAllowed", "not supported by the fake"),
        }
    }
}

/// Whether an API path names a collection (`/api/v1/secrets`, `/apis/g/v/namespaces/n/r`).
fn is_collection(path: &str) -> bool {
    let rest: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let skip = match rest.first() {
        Some(&"api") => 2,
        Some(&"apis") => 3,
        _ => return false,
    };
    rest.len().saturating_sub(skip) % 2 == 1
}

/// Server-side apply of a status, simplified: conditions merge by type, other fields replace.
fn apply_status(object: &mut Value, applied: &Value) {
    let Some(applied) = applied.as_object() else { return };
    if !object["status"].is_object() {
        object["status"] = json!({});
    }
    for (k, v) in applied {
        if k == "conditions" {
            let mut existing: Vec<Value> = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
            for c in v.as_array().cloned().unwrap_or_default() {
                existing.retain(|e| e["type"] != c["type"]);
                existing.push(c);
            }
            object["status"]["conditions"] = Value::Array(existing);
        } else {
            object["status"][k] = v.clone();
        }
    }
}
