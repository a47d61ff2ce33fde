//! The JSON query endpoint of `CassandraOutput` (`query_address`), served with hyper on
//! the output's tokio runtime. Started by the plugin on its first call; it lives as long
//! as the output. Routes (GET only):
//!
//! * `/messages?hostname=H&type=T&from=&until=&limit=` (messages schema)
//! * `/metrics?name=N&from=&until=&limit=` (metrics schema)
//! * `/hostnames`, `/types` (messages schema), `/names` (metrics schema), with `limit=`
//!
//! Answers are the JSON of `super::query`; errors are `{"error": "..."}` with 400 (bad
//! parameter), 404 (unknown path) or 503 (Cassandra unreachable or failing).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Mutex;

use super::config::Target;
use super::query::{parse_limit, QueryError, Range, Reader};

/// Shared by every connection: the target and a reader connected on first use.
struct Service {
    target: Target,
    reader: Mutex<Option<Arc<Reader>>>,
}

impl Service {
    async fn reader(&self) -> Result<Arc<Reader>, QueryError> {
        let mut slot = self.reader.lock().await;
        if let Some(r) = slot.as_ref() {
            return Ok(r.clone());
        }
        let r = Arc::new(Reader::connect(self.target.clone()).await?);
        *slot = Some(r.clone());
        Ok(r)
    }
}

/// Binds `listener`'s address and serves until the runtime stops.
pub async fn serve(listener: TcpListener, target: Target) {
    let service = Arc::new(Service {
        target,
        reader: Mutex::new(None),
    });
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "Query endpoint accept failed; going on.");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = service.clone();
        tokio::spawn(async move {
            let handler = service_fn(move |req| {
                let service = service.clone();
                async move { Ok::<_, Infallible>(handle(&service, req).await) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), handler);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "Query endpoint connection ended with an error.");
            }
        });
    }
}

async fn handle(service: &Service, req: Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"error": "only GET is served"}),
        );
    }
    let params = parse_query(req.uri().query().unwrap_or(""));
    match answer(service, req.uri().path(), &params).await {
        Ok(v) => reply(StatusCode::OK, &v),
        Err(Answer::NotFound) => reply(
            StatusCode::NOT_FOUND,
            &json!({"error": "unknown path; try /messages, /metrics, /hostnames, /types, /names"}),
        ),
        Err(Answer::Failed(e)) => {
            let status = if e.is_bad_request() {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, &json!({"error": e.to_string()}))
        }
    }
}

enum Answer {
    NotFound,
    Failed(QueryError),
}

impl From<QueryError> for Answer {
    fn from(e: QueryError) -> Self {
        Answer::Failed(e)
    }
}

async fn answer(
    service: &Service,
    path: &str,
    params: &HashMap<String, String>,
) -> Result<Value, Answer> {
    let get = |k: &str| params.get(k).map(String::as_str);
    let required = |k: &str| {
        get(k)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| QueryError::BadRequest(format!("missing parameter {k}")))
    };
    let limit = parse_limit(get("limit"))?;
    let kind = match path {
        "/messages" | "/metrics" => None,
        "/hostnames" => Some("hostname"),
        "/types" => Some("type"),
        "/names" => Some("name"),
        _ => return Err(Answer::NotFound),
    };
    let reader = service.reader().await?;
    let value = match (path, kind) {
        (_, Some(kind)) => reader.seen(kind, limit).await?,
        ("/messages", None) => {
            let range = Range::parse(get("from"), get("until"))?;
            reader
                .messages(required("hostname")?, required("type")?, range, limit)
                .await?
        }
        _ => {
            let range = Range::parse(get("from"), get("until"))?;
            reader.metrics(required("name")?, range, limit).await?
        }
    };
    Ok(value)
}

fn reply(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// Parses `a=1&b=x%20y` (percent-decoding, `+` as space); the last repeat wins.
pub fn parse_query(q: &str) -> HashMap<String, String> {
    crate::http::query_pairs(q).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::percent_decode;

    #[test]
    fn query_strings_decode() {
        let p = parse_query("hostname=web%2D1&type=a+b&from=2026-11-23T01%3A00%3A00Z&x");
        assert_eq!(p["hostname"], "web-1");
        assert_eq!(p["type"], "a b");
        assert_eq!(p["from"], "2026-11-23T01:00:00Z");
        assert_eq!(p["x"], "");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%41"), "A");
    }
}
