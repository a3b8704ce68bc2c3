//! `GET /api/v1/docs`: the API reference as a page, made from the same OpenAPI document the
//! server answers `/api/v1/openapi.json` with. Plain HTML with no script (a Swagger UI would
//! mean downloading its bundle at build time).

use axum::response::Html;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::{OpenApi, RefOr};

/// The reference page for `api`.
pub fn page(api: &OpenApi) -> Html<String> {
    let mut html = String::from(
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>IoT hub API</title><link rel=\"stylesheet\" href=\"/pkg/iothub.css\"></head>\
         <body><main class=\"api-docs\">",
    );
    html.push_str(&format!("<h1>{}</h1>", escape(&api.info.title)));
    if let Some(description) = &api.info.description {
        html.push_str(&format!("<p>{}</p>", escape(description)));
    }
    html.push_str(
        "<p>The whole description, for tools: <a href=\"/api/v1/openapi.json\">\
         openapi.json</a> (OpenAPI 3.1). <a href=\"/\">Back to the dashboard</a>.</p>\
         <p>Example: <code>curl -H \"Authorization: Bearer $TOKEN\" \
         https://hub.example.org/api/v1/devices</code></p>",
    );
    for (path, item) in &api.paths.paths {
        let operations = [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PATCH", &item.patch),
            ("PUT", &item.put),
            ("DELETE", &item.delete),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                operation_html(&mut html, method, path, operation);
            }
        }
    }
    html.push_str("</main></body></html>");
    Html(html)
}

fn operation_html(html: &mut String, method: &str, path: &str, operation: &Operation) {
    html.push_str(&format!(
        "<section class=\"api-operation\"><h2><code>{method} {}</code></h2>",
        escape(path)
    ));
    for text in [&operation.summary, &operation.description]
        .into_iter()
        .flatten()
    {
        html.push_str(&format!("<p>{}</p>", escape(text)));
    }
    let parameters = operation.parameters.iter().flatten();
    let mut list = String::new();
    for parameter in parameters {
        let place = match parameter.parameter_in {
            ParameterIn::Path => "path",
            ParameterIn::Query => "query",
            ParameterIn::Header => "header",
            ParameterIn::Cookie => "cookie",
        };
        list.push_str(&format!(
            "<li><code>{}</code> ({place}): {}</li>",
            escape(&parameter.name),
            escape(parameter.description.as_deref().unwrap_or(""))
        ));
    }
    if !list.is_empty() {
        html.push_str(&format!("<ul>{list}</ul>"));
    }
    if let Some(body) = &operation.request_body {
        let kinds: Vec<String> = body
            .content
            .iter()
            .map(|(kind, content)| format!("{kind} {}", schema_name(content.schema.as_ref())))
            .collect();
        html.push_str(&format!("<p>Body: {}</p>", escape(&kinds.join(", "))));
    }
    let answers: Vec<String> = operation
        .responses
        .responses
        .iter()
        .map(|(status, response)| match response {
            RefOr::T(response) => {
                let body = response
                    .content
                    .values()
                    .next()
                    .map(|content| schema_name(content.schema.as_ref()))
                    .unwrap_or_default();
                format!("{status} {body}")
            }
            RefOr::Ref(reference) => format!("{status} {}", reference.ref_location),
        })
        .collect();
    html.push_str(&format!(
        "<p>Answers: {}</p></section>",
        escape(&answers.join(" · "))
    ));
}

fn schema_name(schema: Option<&RefOr<utoipa::openapi::schema::Schema>>) -> String {
    match schema {
        Some(RefOr::Ref(reference)) => reference
            .ref_location
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_string(),
        Some(RefOr::T(utoipa::openapi::schema::Schema::Array(array))) => match &array.items {
            utoipa::openapi::schema::ArrayItems::RefOrSchema(item) => {
                format!("[{}]", schema_name(Some(item)))
            }
            utoipa::openapi::schema::ArrayItems::False => "[]".into(),
        },
        Some(RefOr::T(_)) => "value".into(),
        None => String::new(),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
