use crate::helpers::{eventually, TestApp};

/// The dashboard's pages are routed by the server (there is no client-side router): each
/// address renders its page with real data, and anything else is a 404 page.
#[tokio::test]
async fn each_page_is_rendered_by_the_server_with_its_data() {
    let app = TestApp::spawn().await;
    let mut device = app.device("?id=a%2Fb%20c").await;
    device.send("a/b c,1,21.5").await;
    eventually("the device", || async {
        (!app.dashboard().await.devices.is_empty()).then_some(())
    })
    .await;

    let get = |path: &str| {
        let request = app.http.get(app.url(path));
        async move {
            let res = request.send().await.unwrap();
            (res.status().as_u16(), res.text().await.unwrap())
        }
    };
    let (status, overview) = get("/").await;
    assert_eq!(status, 200);
    assert!(overview.contains(r#"data-device-id="a/b c""#), "{overview}");
    assert!(
        overview.contains("/devices/a%2Fb%20c"),
        "cards link to the device page"
    );

    let (status, page) = get("/devices/a%2Fb%20c?window=live").await;
    assert_eq!(status, 200);
    assert!(page.contains(">a/b c</h2>"), "{page}");
    assert!(
        page.contains(r#"data-field="temp""#),
        "the live chart is rendered"
    );

    let (status, history) = get("/devices/a%2Fb%20c?window=1h").await;
    assert_eq!(status, 200);
    assert!(
        history.contains(r#"aria-current="page" data-window="1h""#),
        "{history}"
    );

    for missing in ["/nope", "/devices/a/b", "/devices/%zz"] {
        let (status, body) = get(missing).await;
        assert_eq!(status, 404, "{missing}");
        assert!(body.contains("Page not found"), "{missing}: {body}");
    }
    app.stop().await;
}

/// A site built by `scripts/build-site.sh` names its files after their content, with a
/// bundle per page: a page loads its own bundle's names (a plain-HTML page none), browsers may
/// keep them for good, and each is sent brotli- or gzip-compressed as the browser accepts,
/// from the copies made at build time. Other files are revalidated.
#[tokio::test]
async fn the_bundle_is_loaded_by_hashed_names_kept_for_good_and_sent_precompressed() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let css = "iothub.8899aabbccddeeff.css";
    let mut manifest = format!("css {css}\n");
    let mut names = vec![css.to_string(), "iothub.css".to_string()];
    for (i, page) in ["overview", "device", "tokens", "alarms"]
        .iter()
        .enumerate()
    {
        for kind in ["js", "wasm"] {
            let name = format!("iothub-{page}.{i}0112233aabbccdd.{kind}");
            manifest.push_str(&format!("{kind} {page} {name}\n"));
            names.push(name);
        }
    }
    for name in &names {
        std::fs::write(pkg.join(name), format!("the whole of {name}")).unwrap();
        std::fs::write(pkg.join(format!("{name}.br")), "brotli").unwrap();
        std::fs::write(pkg.join(format!("{name}.gz")), "gzip").unwrap();
    }
    std::fs::write(pkg.join("bundle.txt"), manifest).unwrap();
    let root = site.path().to_path_buf();
    let app = TestApp::spawn_with(move |args| args.http.site_root = root).await;

    let (js, wasm) = (
        "iothub-overview.00112233aabbccdd.js",
        "iothub-overview.00112233aabbccdd.wasm",
    );
    let page = crate::helpers::body_text(app.http.get(app.url("/"))).await;
    for name in [js, wasm, css] {
        assert!(
            page.contains(&format!("\"/pkg/{name}\"")),
            "{name} in {page}"
        );
    }
    assert!(!page.contains("/pkg/iothub.js"), "no plain names: {page}");
    assert!(
        !page.contains("iothub-device"),
        "no other page's bundle: {page}"
    );
    let page = crate::helpers::body_text(app.http.get(app.url("/alarms"))).await;
    assert!(
        page.contains("\"/pkg/iothub-alarms.30112233aabbccdd.wasm\""),
        "{page}"
    );
    assert!(!page.contains("iothub-overview"), "{page}");
    // Signing in is a plain form: the page loads the stylesheet and no code.
    let login = crate::helpers::body_text(crate::helpers::anonymous().get(app.url("/login"))).await;
    assert!(login.contains(&format!("\"/pkg/{css}\"")), "{login}");
    assert!(
        !login.contains(".wasm") && !login.contains("<script type=\"module\""),
        "{login}"
    );

    let get = |name: &str, encodings: &str| {
        let request = crate::helpers::anonymous()
            .get(app.url(&format!("/pkg/{name}")))
            .header("accept-encoding", encodings);
        async move {
            let res = request.send().await.unwrap();
            let header = |h: &str| {
                res.headers()
                    .get(h)
                    .map(|v| v.to_str().unwrap().to_string())
            };
            let (encoding, cache) = (header("content-encoding"), header("cache-control"));
            (
                res.status().as_u16(),
                encoding,
                cache,
                res.bytes().await.unwrap(),
            )
        }
    };
    let (status, encoding, cache, body) = get(wasm, "gzip, deflate, br").await;
    assert_eq!(status, 200);
    assert_eq!(encoding.as_deref(), Some("br"));
    assert_eq!(
        cache.as_deref(),
        Some("public, max-age=31536000, immutable")
    );
    assert_eq!(&body[..], b"brotli");
    let (_, encoding, _, body) = get(js, "gzip").await;
    assert_eq!(
        (encoding.as_deref(), &body[..]),
        (Some("gzip"), &b"gzip"[..])
    );
    let (_, encoding, _, body) = get(css, "identity").await;
    assert_eq!(encoding, None);
    assert_eq!(body, format!("the whole of {css}").as_bytes());

    // The offline page's stylesheet keeps its plain name: it may change under it.
    let (status, _, cache, _) = get("iothub.css", "br").await;
    assert_eq!((status, cache.as_deref()), (200, Some("no-cache")));
    let (status, _, cache, _) = get("iothub.ffffffffffffffff.wasm", "br").await;
    assert_eq!((status, cache.as_deref()), (404, Some("no-cache")));
    app.stop().await;
}

/// A list naming a file the site does not have would make every page load a missing file:
/// the hub refuses to start, naming the list and the file.
#[tokio::test]
async fn a_bundle_list_naming_a_missing_file_stops_the_start() {
    let site = tempfile::tempdir().unwrap();
    let pkg = site.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let mut manifest = "css a.css\n".to_string();
    for page in ["overview", "device", "tokens", "alarms"] {
        for kind in ["js", "wasm"] {
            let name = format!("{page}.{kind}");
            manifest.push_str(&format!("{kind} {page} {name}\n"));
            if name != "device.wasm" {
                std::fs::write(pkg.join(&name), "").unwrap();
            }
        }
    }
    std::fs::write(pkg.join("a.css"), "").unwrap();
    std::fs::write(pkg.join("bundle.txt"), manifest).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut args = server::config::ServeArgs::defaults();
    args.http.bind = "127.0.0.1:0".parse().unwrap();
    args.store.data_dir = data.path().to_path_buf();
    args.http.site_root = site.path().to_path_buf();
    let err = server::startup::Application::build(args)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("bundle.txt") && err.contains("device.wasm is not in"),
        "{err}"
    );
}
