//! The read-only web view (`[host.management] web_view = true`): three static
//! files — `crates/daemon/web/index.html`, `app.js`, `style.css`, embedded at build
//! time — served at `GET /ui/`, `/ui/app.js` and `/ui/style.css` (`/ui` redirects
//! to `/ui/`). The page's data comes from the `/v1` GET endpoints, which `app.js`
//! calls with the operator's bearer token: roles, token expiry, the refusal audit
//! and TLS are the API's own (`docs/web.md`).
//!
//! These routes sit outside the API's guard: they carry no data, only the page.
//!
//! Invariant: a file is served only while the web view is on and only to a caller
//! that came over TCP+TLS ([`Peer::tcp`]); every other caller (the Unix socket, or
//! any caller while the view is off) gets the API's usual 404 JSON error, as for a
//! route that does not exist. Every file is served with a strict
//! Content-Security-Policy (scripts, styles and requests from the daemon itself
//! only, no inline code, no framing), `nosniff`, no referrer and no caching.

use super::{ApiError, Peer};
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// The Content-Security-Policy of every file: nothing but the daemon's own script,
/// style and API; images only from the daemon or `data:`; no forms, no base
/// rewriting, no framing.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The page.
const INDEX_HTML: &str = include_str!("../../web/index.html");
/// The page's script: polls the API and draws the sections.
const APP_JS: &str = include_str!("../../web/app.js");
/// The page's style sheet.
const STYLE_CSS: &str = include_str!("../../web/style.css");

/// Whether the web view is served (set at start and by an apply).
#[derive(Clone, Debug)]
struct WebState {
    on: Arc<AtomicBool>,
}

/// The web view's routes, answering only while `on` is set (see the module's
/// invariant). Not `/v1` routes: they are not in `ROUTES` nor in the OpenAPI
/// document.
pub fn router<S: Clone + Send + Sync + 'static>(on: Arc<AtomicBool>) -> Router<S> {
    Router::new()
        .route("/ui", any(redirect))
        .route("/ui/", any(index))
        .route("/ui/index.html", any(index))
        .route("/ui/app.js", any(app_js))
        .route("/ui/style.css", any(style_css))
        .with_state(WebState { on })
}

/// Whether `peer` may have the page now; `Err` is the answer when not (to
/// everyone the page is not served to: the API's 404).
fn admit(st: &WebState, peer: &Peer, method: &Method) -> Result<(), ApiError> {
    if !st.on.load(Ordering::Relaxed) || peer.tcp.is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such API route",
        ));
    }
    if method != Method::GET && method != Method::HEAD {
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the web view's files are read with GET",
        ));
    }
    Ok(())
}

/// The headers every file of the page carries.
fn with_headers(mut resp: Response, content_type: &'static str) -> Response {
    let h = resp.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    resp
}

fn file(
    st: &WebState,
    peer: &Peer,
    method: &Method,
    body: &'static str,
    content_type: &'static str,
) -> Response {
    match admit(st, peer, method) {
        Ok(()) => with_headers(body.into_response(), content_type),
        Err(e) => e.into_response(),
    }
}

async fn index(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
) -> Response {
    file(&st, &peer, &method, INDEX_HTML, "text/html; charset=utf-8")
}

async fn app_js(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
) -> Response {
    file(
        &st,
        &peer,
        &method,
        APP_JS,
        "text/javascript; charset=utf-8",
    )
}

async fn style_css(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
) -> Response {
    file(&st, &peer, &method, STYLE_CSS, "text/css; charset=utf-8")
}

/// `/ui` → `/ui/`, so that the page's relative paths resolve under `/ui/`.
async fn redirect(
    State(st): State<WebState>,
    ConnectInfo(peer): ConnectInfo<Peer>,
    method: Method,
) -> Response {
    if let Err(e) = admit(&st, &peer, &method) {
        return e.into_response();
    }
    let mut resp = StatusCode::PERMANENT_REDIRECT.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/ui/"));
    with_headers(resp, "text/plain; charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn tcp() -> Peer {
        Peer {
            tcp: Some("127.0.0.1:40000".parse().expect("address")),
            ..Peer::default()
        }
    }

    fn unix() -> Peer {
        Peer {
            uid: Some(0),
            gid: Some(0),
            pid: Some(1),
            tcp: None,
        }
    }

    async fn call(on: bool, peer: Peer, method: Method, path: &str) -> (Response, String) {
        let app: Router = router(Arc::new(AtomicBool::new(on)));
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .expect("request");
        req.extensions_mut().insert(ConnectInfo(peer));
        let resp = app.oneshot(req).await.expect("infallible");
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.expect("body");
        (
            Response::from_parts(parts, Body::empty()),
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn header(resp: &Response, name: header::HeaderName) -> &str {
        resp.headers()
            .get(&name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| panic!("no {name} header"))
    }

    #[tokio::test]
    async fn files_are_served_over_tcp_with_their_type_and_the_security_headers() {
        for (path, ty, needle) in [
            ("/ui/", "text/html; charset=utf-8", "<script src=\"app.js\""),
            ("/ui/index.html", "text/html; charset=utf-8", "<title>"),
            (
                "/ui/app.js",
                "text/javascript; charset=utf-8",
                "textContent",
            ),
            ("/ui/style.css", "text/css; charset=utf-8", "font-family"),
        ] {
            let (resp, body) = call(true, tcp(), Method::GET, path).await;
            assert_eq!(resp.status(), StatusCode::OK, "{path}");
            assert_eq!(header(&resp, header::CONTENT_TYPE), ty, "{path}");
            assert_eq!(header(&resp, header::CONTENT_SECURITY_POLICY), CSP);
            assert_eq!(header(&resp, header::X_CONTENT_TYPE_OPTIONS), "nosniff");
            assert_eq!(header(&resp, header::REFERRER_POLICY), "no-referrer");
            assert_eq!(header(&resp, header::CACHE_CONTROL), "no-store");
            assert!(body.contains(needle), "{path}");
        }
        let (resp, _) = call(true, tcp(), Method::GET, "/ui").await;
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header(&resp, header::LOCATION), "/ui/");
    }

    /// Off, or over the Unix socket, the page does not exist: the API's 404.
    #[tokio::test]
    async fn off_or_over_the_socket_is_the_apis_404() {
        for (on, peer) in [(false, tcp()), (true, unix()), (false, unix())] {
            for path in ["/ui", "/ui/", "/ui/app.js", "/ui/style.css"] {
                let (resp, body) = call(on, peer, Method::GET, path).await;
                assert_eq!(resp.status(), StatusCode::NOT_FOUND, "{on} {peer:?} {path}");
                let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
                assert_eq!(v["error"]["code"], "not_found", "{body}");
                assert!(resp.headers().get(header::LOCATION).is_none());
            }
        }
        // Writes are never accepted.
        let (resp, body) = call(true, tcp(), Method::POST, "/ui/").await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(body.contains("method_not_allowed"), "{body}");
    }

    /// The CSP allows no inline code, so the page has none, and the data is
    /// written as text: no `innerHTML`, `eval` or inline handlers anywhere.
    #[test]
    fn the_page_has_no_inline_code_and_writes_data_as_text() {
        assert!(!INDEX_HTML.contains("style="), "inline style attribute");
        // ` on…=`: an inline event handler.
        let handler = INDEX_HTML.match_indices(" on").any(|(i, _)| {
            let rest = &INDEX_HTML[i + 3..];
            let word = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            word > 0 && rest[word..].starts_with('=')
        });
        assert!(!handler, "inline event handler");
        assert_eq!(
            INDEX_HTML.matches("<script").count(),
            INDEX_HTML.matches("<script src=").count(),
            "inline script"
        );
        for bad in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "eval(",
            "new Function",
            "setAttribute('on",
            "method: 'POST'",
            "localStorage",
        ] {
            assert!(!APP_JS.contains(bad), "app.js uses {bad}");
        }
        assert!(APP_JS.len() + INDEX_HTML.len() + STYLE_CSS.len() < 40 * 1024);
    }
}
