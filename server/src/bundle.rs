//! The browser bundle (`<site>/pkg`): which names the pages load it by, read once at start
//! from the list `scripts/build-site.sh` writes, and how `/pkg` serves it.

use crate::state::AppState;
use app::bundle::BundleFiles;
use axum::body::Body;
use axum::http::Request;
use axum::middleware;
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The site's list of the bundle's names cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the browser bundle's list {path}: {reason}")]
pub struct BundleError {
    pub path: PathBuf,
    pub reason: String,
}

/// The names of the browser bundle's files, from the list `scripts/build-site.sh` writes into
/// `pkg/`. A site without the list (built by `cargo leptos` without hashing, or none at all)
/// keeps the plain names; a list that is unreadable, or names a file that is not there, stops
/// the start: every page would load a file that does not exist.
pub fn names(pkg: &Path) -> Result<BundleFiles, BundleError> {
    let path = pkg.join(app::bundle::MANIFEST);
    let error = |reason: String| BundleError {
        path: path.clone(),
        reason,
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(BundleFiles::unhashed())
        }
        Err(err) => return Err(error(err.to_string())),
    };
    let files = BundleFiles::parse(&text).map_err(|err| error(err.to_string()))?;
    for name in files.names() {
        if !pkg.join(name).is_file() {
            return Err(error(format!("{name} is not in {}", pkg.display())));
        }
    }
    Ok(files)
}

/// The browser bundles (`<site>/pkg`): each page's wasm and its JavaScript, and the stylesheet,
/// each also compressed at build time with brotli and gzip (`scripts/build-site.sh`), so a
/// browser gets a page's module as about a third of its size without the hub compressing
/// anything per request. The
/// files the pages load are named after their content (see `app::bundle`): browsers keep them
/// for a year without asking again. Anything else here (the plain-named stylesheet of the
/// offline page, a site built without hashes) is revalidated each time (`no-cache`: a 304 by
/// `Last-Modified` when unchanged).
pub fn routes(state: &AppState) -> Router<AppState> {
    use axum::http::header::CACHE_CONTROL;
    use axum::http::HeaderValue;
    use tower_http::services::ServeDir;
    let options = &state.leptos_options;
    let dir = std::path::Path::new(&*options.site_root).join(&*options.site_pkg_dir);
    // Plain names may stand for other bytes tomorrow: only hashed ones are kept.
    let hashed_files = (state.bundle != app::bundle::BundleFiles::unhashed())
        .then(|| Arc::new(state.bundle.clone()));
    let hashed = move |request: Request<Body>, next: middleware::Next| {
        let hashed_files = hashed_files.clone();
        async move {
            let name = request.uri().path().trim_start_matches('/');
            let keep = hashed_files.is_some_and(|files| files.contains(name));
            let mut response = next.run(request).await;
            let policy = if keep && response.status().is_success() {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static(policy));
            response
        }
    };
    Router::new()
        .fallback_service(ServeDir::new(dir).precompressed_br().precompressed_gzip())
        .layer(middleware::from_fn(hashed))
}
