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
