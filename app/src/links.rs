//! Addresses of the dashboard's pages and downloads, and which page an address shows. Device
//! ids are device-supplied and may hold any printable character, so each one is percent-encoded
//! into exactly one path segment.
//!
//! There is no client-side router: every page is rendered by the server and hydrated, and a link
//! loads the page it names. Two pages do not need one, and leaving it out keeps the browser
//! bundle within its size budget.

use crate::model::{DeviceOrder, DeviceQuery, TimeWindow};

/// The page an address shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/[?q=…][&sort=…][&page=…]`: the overview's page of cards (`page` counts from 1).
    Overview {
        query: DeviceQuery,
    },
    /// `/devices/<id>[?window=…|?from=…&to=…][&field=…]…`
    Device {
        id: String,
        window: TimeWindow,
        /// Fields to draw together on one chart (two or more; see [`device_view`]).
        fields: Vec<String>,
    },
    /// `/tokens`: device tokens.
    Tokens,
    /// `/alarms`: alarms up, rules, history.
    Alarms,
    /// `/login[?failed=1][&next=…]`: the sign-in form.
    Login {
        /// The previous attempt was refused.
        failed: bool,
        /// Where to go after signing in (checked by the server).
        next: String,
    },
    NotFound,
}

impl Route {
    /// From the path and query of an address (query without the `?`).
    pub fn parse(path: &str, query: &str) -> Route {
        let param = |name: &str| {
            query.split('&').find_map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (key == name).then(|| decode_query_value(value))
            })
        };
        if path == "/" || path.is_empty() {
            let query = DeviceQuery {
                filter: param("q").flatten().unwrap_or_default(),
                order: DeviceOrder::from_key(&param("sort").flatten().unwrap_or_default()),
                page: param("page")
                    .flatten()
                    .and_then(|p| p.parse::<u32>().ok())
                    .map_or(0, |p| p.saturating_sub(1)),
            };
            return Route::Overview {
                query: query.normalised(),
            };
        }
        if path == TOKENS_PAGE {
            return Route::Tokens;
        }
        if path == ALARMS_PAGE {
            return Route::Alarms;
        }
        if path == LOGIN_PAGE {
            return Route::Login {
                failed: param("failed").is_some(),
                next: param("next").flatten().unwrap_or_else(|| "/".into()),
            };
        }
        let Some(segment) = path.strip_prefix("/devices/") else {
            return Route::NotFound;
        };
        match decode_path_segment(segment) {
            Some(id) if !id.is_empty() => {
                let time = |name: &str| param(name).flatten()?.parse::<i64>().ok();
                let range = time("from")
                    .zip(time("to"))
                    .and_then(|(from, to)| TimeWindow::range(from, to));
                let window = range.unwrap_or_else(|| {
                    param("window")
                        .flatten()
                        .map_or(TimeWindow::Live, |key| TimeWindow::from_key(&key))
                });
                let mut fields: Vec<String> = Vec::new();
                for pair in query.split('&') {
                    let Some(field) = pair.strip_prefix("field=").and_then(decode_query_value)
                    else {
                        continue;
                    };
                    let fits = !field.is_empty() && field.len() <= MAX_FIELD_BYTES;
                    if fits && !fields.contains(&field) && fields.len() < MAX_FIELDS_TOGETHER {
                        fields.push(field);
                    }
                }
                if fields.len() < 2 {
                    fields.clear();
                }
                Route::Device { id, window, fields }
            }
            _ => Route::NotFound,
        }
    }

    /// The page being rendered: the request's address on the server, the browser's location
    /// in the browser.
    /// What the page's live data covers ([`crate::model::Scope`]); `None` for plain-HTML pages.
    pub fn scope(&self) -> Option<crate::model::Scope> {
        use crate::model::Scope;
        match self {
            Route::Overview { query } => Some(Scope::Devices(query.clone())),
            Route::Device { id, .. } => Some(Scope::Device(id.clone())),
            Route::Tokens | Route::Alarms => Some(Scope::Fleet),
            Route::Login { .. } | Route::NotFound => None,
        }
    }

    /// The page's own code in the browser (see [`crate::Page`]); `None` for plain-HTML pages.
    pub fn page(&self) -> Option<crate::Page> {
        match self {
            Route::Overview { .. } => Some(crate::Page::Overview),
            Route::Device { .. } => Some(crate::Page::Device),
            Route::Tokens => Some(crate::Page::Tokens),
            Route::Alarms => Some(crate::Page::Alarms),
            Route::Login { .. } | Route::NotFound => None,
        }
    }

    pub fn current() -> Route {
        #[cfg(feature = "ssr")]
        {
            let uri = leptos::prelude::use_context::<http::request::Parts>().map(|p| p.uri);
            uri.map_or(Route::NotFound, |uri| {
                Route::parse(uri.path(), uri.query().unwrap_or_default())
            })
        }
        #[cfg(not(feature = "ssr"))]
        {
            let location = leptos::prelude::window().location();
            let path = location.pathname().unwrap_or_default();
            let search = location.search().unwrap_or_default();
            Route::parse(&path, search.trim_start_matches('?'))
        }
    }
}

pub const TOKENS_PAGE: &str = "/tokens";
pub const ALARMS_PAGE: &str = "/alarms";
pub const LOGIN_PAGE: &str = "/login";
/// The sign-out form's target (a POST).
pub const LOGOUT: &str = "/logout";

/// The login page, coming back to `next` (a path on this site) afterwards.
pub fn login_page(next: &str) -> String {
    format!("{LOGIN_PAGE}?next={}", encode_path_segment(next))
}

/// The overview showing `query`: `/`, `/?q=kitchen&sort=last-seen&page=2`.
pub fn overview_page(query: &DeviceQuery) -> String {
    let mut params = Vec::new();
    if !query.filter.is_empty() {
        params.push(format!("q={}", encode_path_segment(&query.filter)));
    }
    if query.order != DeviceOrder::default() {
        params.push(format!("sort={}", query.order.key()));
    }
    if query.page > 0 {
        params.push(format!("page={}", u64::from(query.page) + 1));
    }
    if params.is_empty() {
        "/".into()
    } else {
        format!("/?{}", params.join("&"))
    }
}

/// Most fields one chart draws together (one colour each, see `chart::LINE_COLOURS`).
pub const MAX_FIELDS_TOGETHER: usize = 6;
/// A field name longer than any a device may register is not one.
const MAX_FIELD_BYTES: usize = 64;

/// The device page: `/devices/<id>`, with a history window `/devices/<id>?window=1h`, or
/// zoomed into a chart `/devices/<id>?from=<ms>&to=<ms>`.
pub fn device_page(id: &str, window: TimeWindow) -> String {
    device_view(id, window, &[])
}

/// The device page with `fields` (two or more) drawn together on one chart:
/// `/devices/<id>?window=1h&field=temp&field=hum`.
pub fn device_view(id: &str, window: TimeWindow, fields: &[String]) -> String {
    let mut params: Vec<String> = window_params(window)
        .into_iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    if fields.len() > 1 {
        params.extend(
            fields
                .iter()
                .map(|f| format!("field={}", encode_path_segment(f))),
        );
    }
    let path = format!("/devices/{}", encode_path_segment(id));
    if params.is_empty() {
        path
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// The query parameters that name `window` in a device page's address (none for live). The
/// values are numbers and fixed keys: nothing to encode.
pub fn window_params(window: TimeWindow) -> Vec<(&'static str, String)> {
    match window {
        TimeWindow::Live => Vec::new(),
        TimeWindow::Range { from_ms, to_ms } => {
            vec![("from", from_ms.to_string()), ("to", to_ms.to_string())]
        }
        other => vec![("window", other.key().to_string())],
    }
}

/// Where the device page's form posts to remove the device (answered with the overview).
pub fn remove_device(id: &str) -> String {
    format!("/devices/{}/remove", encode_path_segment(id))
}

/// The CSV export of one UTC day (`YYYY-MM-DD`).
pub fn csv_day(id: &str, day: &str) -> String {
    format!("/export/{}.csv?day={day}", encode_path_segment(id))
}

/// The CSV export of `[from_ms, to_ms)`.
pub fn csv_window(id: &str, from_ms: i64, to_ms: i64) -> String {
    format!(
        "/export/{}.csv?from={from_ms}&to={to_ms}",
        encode_path_segment(id)
    )
}

/// Percent-encodes everything but unreserved characters.
pub fn encode_path_segment(raw: &str) -> String {
    raw.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A form-encoded query value (`+` is a space).
fn decode_query_value(raw: &str) -> Option<String> {
    percent_decode(&raw.replace('+', " "))
}

/// The inverse of [`encode_path_segment`]; `None` for a segment that holds a `/` or bad
/// percent-encoding.
fn decode_path_segment(raw: &str) -> Option<String> {
    if raw.contains('/') {
        return None;
    }
    percent_decode(raw)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_device_id_is_one_path_segment() {
        assert_eq!(device_page("7", TimeWindow::Live), "/devices/7");
        assert_eq!(
            device_page("a/b c?<é>", TimeWindow::Hour1),
            "/devices/a%2Fb%20c%3F%3C%C3%A9%3E?window=1h"
        );
        assert_eq!(
            csv_day("x&y", "2026-11-22"),
            "/export/x%26y.csv?day=2026-11-22"
        );
        assert_eq!(csv_window("7", 1, 2), "/export/7.csv?from=1&to=2");
    }

    #[test]
    fn the_login_page_keeps_where_to_go_next() {
        let next = "/devices/a b?window=1h";
        let url = login_page(next);
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(
            Route::parse(path, query),
            Route::Login {
                failed: false,
                next: next.into()
            }
        );
        assert_eq!(
            Route::parse("/login", "failed=1&next=%2Fdevices%2F7"),
            Route::Login {
                failed: true,
                next: "/devices/7".into()
            }
        );
        assert_eq!(
            Route::parse("/login", ""),
            Route::Login {
                failed: false,
                next: "/".into()
            }
        );
        assert_eq!(Route::parse("/tokens", ""), Route::Tokens);
    }

    #[test]
    fn addresses_name_their_page() {
        assert_eq!(
            Route::parse("/", ""),
            Route::Overview {
                query: DeviceQuery::default()
            }
        );
        for query in [
            DeviceQuery::default(),
            DeviceQuery {
                filter: "küche & co+".into(),
                order: DeviceOrder::OfflineFirst,
                page: 4,
            },
            DeviceQuery {
                filter: String::new(),
                order: DeviceOrder::LastSeen,
                page: 0,
            },
        ] {
            let link = overview_page(&query);
            let (path, params) = link.split_once('?').unwrap_or((&link, ""));
            assert_eq!(Route::parse(path, params), Route::Overview { query });
        }
        assert_eq!(
            Route::parse("/", "page=0&sort=bogus&q=%zz"),
            Route::Overview {
                query: DeviceQuery::default()
            },
            "nonsense reads as the first page"
        );
        for (id, window) in [
            ("7", TimeWindow::Live),
            ("<img src=x onerror=\"alert(1)\">", TimeWindow::Hours24),
            ("a/b%c é", TimeWindow::Minutes5),
            (
                "7",
                TimeWindow::Range {
                    from_ms: 1_795_000_000_000,
                    to_ms: 1_795_000_060_000,
                },
            ),
        ] {
            let link = device_page(id, window);
            let (path, query) = link.split_once('?').unwrap_or((&link, ""));
            assert_eq!(
                Route::parse(path, query),
                Route::Device {
                    id: id.to_string(),
                    window,
                    fields: Vec::new(),
                }
            );
        }
        assert_eq!(
            Route::parse("/devices/7", "x=1&window=bogus"),
            Route::Device {
                id: "7".into(),
                window: TimeWindow::Live,
                fields: Vec::new(),
            }
        );
        // Fields drawn together: kept with the window through a link, in the order picked.
        let fields: Vec<String> = vec!["temp".into(), "a&b é".into()];
        let link = device_view("7", TimeWindow::Hour1, &fields);
        assert_eq!(link, "/devices/7?window=1h&field=temp&field=a%26b%20%C3%A9");
        let (path, query) = link.split_once('?').unwrap();
        assert_eq!(
            Route::parse(path, query),
            Route::Device {
                id: "7".into(),
                window: TimeWindow::Hour1,
                fields: fields.clone(),
            }
        );
        for (query, expected) in [
            ("field=temp", vec![]),
            ("field=temp&field=temp", vec![]),
            ("field=a&field=&field=b&field=a", vec!["a", "b"]),
            (
                "field=1&field=2&field=3&field=4&field=5&field=6&field=7",
                vec!["1", "2", "3", "4", "5", "6"],
            ),
        ] {
            let Route::Device { fields, .. } = Route::parse("/devices/7", query) else {
                panic!("{query}");
            };
            assert_eq!(fields, expected, "{query}");
        }
        // A zoomed window that makes no sense is the live view; one too narrow is widened.
        for (query, window) in [
            ("from=20&to=10", TimeWindow::Live),
            ("from=-5&to=10", TimeWindow::Live),
            ("from=0&to=99999999999999999999", TimeWindow::Live),
            ("from=0&to=34560000000001", TimeWindow::Live),
            ("from=x&to=10&window=1h", TimeWindow::Hour1),
            (
                "from=5000&to=5000",
                TimeWindow::Range {
                    from_ms: 4_500,
                    to_ms: 5_500,
                },
            ),
        ] {
            assert_eq!(
                Route::parse("/devices/7", query),
                Route::Device {
                    id: "7".into(),
                    window,
                    fields: Vec::new(),
                },
                "{query}"
            );
        }
        for bad in [
            "/devices/",
            "/devices/a/b",
            "/devices/%zz",
            "/devices/%c3",
            "/nope",
        ] {
            assert_eq!(Route::parse(bad, ""), Route::NotFound, "{bad}");
        }
    }
}
