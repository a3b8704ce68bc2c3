//! The names the browser bundles are served under, and the `<head>` tags that load them.
//!
//! Each page that runs code in the browser has a bundle of its own ([`crate::Page`]):
//! `scripts/build-site.sh` builds one wasm module and its JavaScript per page, names every file
//! after its content (`iothub-device.<hash>.wasm`) and lists the names in `pkg/bundle.txt`; the
//! server reads that list once at start and hands it to [`crate::shell`]. A name then always
//! means the same bytes, so browsers may keep the files for good (the server marks them
//! `immutable`) and a new build is fetched because the page names new files, not because a
//! cache expired.
//!
//! Leptos' own `HydrationScripts` can load hashed names too, but reads its list from beside the
//! executable on every page it renders, and knows one bundle only; this reads it once.

use crate::Page;
use leptos::prelude::*;
use std::collections::BTreeMap;

/// The list `scripts/build-site.sh` writes: `css <file name>` once, and `js <page> <file
/// name>` and `wasm <page> <file name>` for each [`Page`].
pub const MANIFEST: &str = "bundle.txt";

/// The files pages load from `/pkg/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFiles {
    pub css: String,
    pub scripts: Scripts,
}

/// A wasm module and the JavaScript that loads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub js: String,
    pub wasm: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scripts {
    /// One bundle hydrates every page (a site built by `cargo leptos`).
    Shared(Script),
    /// Each page its own (`scripts/build-site.sh`); every [`Page`] has one.
    PerPage(BTreeMap<Page, Script>),
}

/// Why a [`MANIFEST`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("line {line}: expected `css <file name>` or `<js|wasm> <page> <file name>`, found {found:?}")]
    Malformed { line: usize, found: String },
    #[error("line {line}: {name:?} is not a page (overview, device, tokens, alarms)")]
    UnknownPage { line: usize, name: String },
    #[error("line {line}: {name:?} is not a plain file name")]
    BadName { line: usize, name: String },
    #[error("no {kind} file named for the {page} page")]
    MissingScript {
        kind: &'static str,
        page: &'static str,
    },
    #[error("no css file named")]
    MissingCss,
}

impl BundleFiles {
    /// The names without hashes, as `cargo leptos` builds them by default: used when a site
    /// has no [`MANIFEST`].
    pub fn unhashed() -> Self {
        let name = crate::BUNDLE_NAME;
        BundleFiles {
            css: format!("{name}.css"),
            scripts: Scripts::Shared(Script {
                js: format!("{name}.js"),
                wasm: format!("{name}_bg.wasm"),
            }),
        }
    }

    /// Reads a [`MANIFEST`]. The names end up in a script and in attributes of every page, so
    /// anything but a plain file name is refused.
    pub fn parse(manifest: &str) -> Result<Self, ManifestError> {
        let mut css = None;
        let mut halves: BTreeMap<Page, (Option<String>, Option<String>)> = BTreeMap::new();
        for (i, text) in manifest.lines().enumerate() {
            let line = i + 1;
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let malformed = || ManifestError::Malformed {
                line,
                found: text.chars().take(80).collect(),
            };
            let words: Vec<&str> = text.split_whitespace().collect();
            let (kind, page, name) = match words[..] {
                ["css", name] => ("css", None, name),
                [kind @ ("js" | "wasm"), page, name] => {
                    let page = Page::from_name(page).ok_or_else(|| ManifestError::UnknownPage {
                        line,
                        name: page.chars().take(80).collect(),
                    })?;
                    (kind, Some(page), name)
                }
                _ => return Err(malformed()),
            };
            let plain = !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !plain {
                return Err(ManifestError::BadName {
                    line,
                    name: name.chars().take(80).collect(),
                });
            }
            let name = Some(name.to_string());
            match (kind, page) {
                (_, None) => css = name,
                ("js", Some(page)) => halves.entry(page).or_default().0 = name,
                (_, Some(page)) => halves.entry(page).or_default().1 = name,
            }
        }
        let mut scripts = BTreeMap::new();
        for page in Page::ALL {
            let (js, wasm) = halves.remove(&page).unwrap_or_default();
            let missing = |kind| ManifestError::MissingScript {
                kind,
                page: page.name(),
            };
            let script = Script {
                js: js.ok_or_else(|| missing("js"))?,
                wasm: wasm.ok_or_else(|| missing("wasm"))?,
            };
            scripts.insert(page, script);
        }
        Ok(BundleFiles {
            css: css.ok_or(ManifestError::MissingCss)?,
            scripts: Scripts::PerPage(scripts),
        })
    }

    /// What `page` loads to run in the browser.
    pub fn script(&self, page: Page) -> Option<&Script> {
        match &self.scripts {
            Scripts::Shared(script) => Some(script),
            Scripts::PerPage(scripts) => scripts.get(&page),
        }
    }

    /// Every file named, once.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let (shared, per_page) = match &self.scripts {
            Scripts::Shared(script) => (Some(script), None),
            Scripts::PerPage(scripts) => (None, Some(scripts.values())),
        };
        let scripts = shared.into_iter().chain(per_page.into_iter().flatten());
        std::iter::once(self.css.as_str())
            .chain(scripts.flat_map(|s| [s.js.as_str(), s.wasm.as_str()]))
    }

    /// Whether `file` (a name under `/pkg/`) is one of these (asked for each file `/pkg` sends).
    pub fn contains(&self, file: &str) -> bool {
        self.names().any(|name| name == file)
    }
}

/// The stylesheet, and for a page that runs in the browser the scripts that hydrate it: the
/// module and the wasm are fetched early (preload hints) and the page is hydrated once both are
/// in. The inline script carries the response's nonce, which the content security policy asks
/// for. A plain-HTML page (`page` is `None`) loads no script at all.
#[component]
pub fn BundleTags(files: BundleFiles, page: Option<Page>) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    let script = page.and_then(|page| files.script(page)).map(|script| {
        let js = format!("/pkg/{}", script.js);
        let wasm = format!("/pkg/{}", script.wasm);
        // Debug formatting quotes the names as JavaScript strings would (they are plain names).
        let start = format!(
            "import({js:?}).then(m => m.default({{module_or_path: {wasm:?}}}).then(() => m.hydrate()));"
        );
        view! {
            // CORS mode with same-origin credentials, as the import and the wasm fetch use, so
            // the browser reuses what the hints fetched.
            <link rel="modulepreload" href=js crossorigin="" />
            <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin="" />
            <script type="module" nonce=nonce>
                {start}
            </script>
        }
    });
    view! {
        <link rel="stylesheet" href=format!("/pkg/{}", files.css) />
        {script}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST_TEXT: &str = "css iothub.00ff00ff00ff00ff.css\n\
        js overview iothub-overview.0123456789abcdef.js\n\
        wasm overview iothub-overview.fedcba9876543210.wasm\n\
        \n\
        js device iothub-device.1111111111111111.js\n\
        wasm device iothub-device.2222222222222222.wasm\n\
        js tokens iothub-tokens.3333333333333333.js\n\
        wasm tokens iothub-tokens.4444444444444444.wasm\n\
        js alarms iothub-alarms.5555555555555555.js\n\
        wasm alarms iothub-alarms.6666666666666666.wasm\n";

    #[test]
    fn a_manifest_names_the_stylesheet_and_each_pages_script() {
        let files = BundleFiles::parse(MANIFEST_TEXT).expect("valid");
        assert_eq!(files.css, "iothub.00ff00ff00ff00ff.css");
        let device = files.script(Page::Device).expect("device");
        assert_eq!(device.js, "iothub-device.1111111111111111.js");
        assert_eq!(device.wasm, "iothub-device.2222222222222222.wasm");
        assert_eq!(files.names().count(), 9);
        assert!(files.contains("iothub-overview.fedcba9876543210.wasm"));
        assert!(!files.contains("iothub.css"));
    }

    #[test]
    fn without_a_manifest_one_bundle_serves_every_page() {
        let files = BundleFiles::unhashed();
        for page in Page::ALL {
            assert_eq!(
                files.script(page).map(|s| s.wasm.as_str()),
                Some("iothub_bg.wasm")
            );
        }
        assert_eq!(
            files.names().collect::<Vec<_>>(),
            ["iothub.css", "iothub.js", "iothub_bg.wasm"]
        );
    }

    #[test]
    fn names_that_could_escape_a_script_or_a_folder_are_refused() {
        for name in ["a\"b.js", "../x.js", ".hidden", "a/b.js", "x.js<script>"] {
            let manifest = MANIFEST_TEXT.replace("iothub-tokens.3333333333333333.js", name);
            assert!(
                matches!(
                    BundleFiles::parse(&manifest),
                    Err(ManifestError::BadName { line: 7, .. })
                ),
                "{name:?} was accepted"
            );
        }
        // A space splits a name into words: a line of four is no line of ours.
        let manifest = MANIFEST_TEXT.replace("iothub-tokens.3333333333333333.js", "a b.js");
        assert!(matches!(
            BundleFiles::parse(&manifest),
            Err(ManifestError::Malformed { line: 7, .. })
        ));
    }

    #[test]
    fn an_unknown_kind_or_page_or_a_missing_file_is_an_error() {
        assert_eq!(
            BundleFiles::parse("css a.css\nfont f.woff\n"),
            Err(ManifestError::Malformed {
                line: 2,
                found: "font f.woff".into()
            })
        );
        assert_eq!(
            BundleFiles::parse("js login l.js\n"),
            Err(ManifestError::UnknownPage {
                line: 1,
                name: "login".into()
            })
        );
        let without_alarms_wasm: String = MANIFEST_TEXT
            .lines()
            .filter(|l| !l.contains("wasm alarms"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert_eq!(
            BundleFiles::parse(&without_alarms_wasm),
            Err(ManifestError::MissingScript {
                kind: "wasm",
                page: "alarms"
            })
        );
        assert_eq!(
            BundleFiles::parse(&MANIFEST_TEXT.replace("css iothub.00ff00ff00ff00ff.css", "")),
            Err(ManifestError::MissingCss)
        );
        assert!(matches!(
            BundleFiles::parse("js"),
            Err(ManifestError::Malformed { line: 1, .. })
        ));
    }
}
