//! The names the browser bundle is served under, and the `<head>` tags that load it.
//!
//! `scripts/build-site.sh` names each file after its content (`iothub.<hash>.wasm`) and lists
//! the names in `pkg/bundle.txt`; the server reads that list once at start and hands it to
//! [`crate::shell`]. A name then always means the same bytes, so browsers may keep the files
//! for good (the server marks them `immutable`) and a new build is fetched because the page
//! names new files, not because a cache expired.
//!
//! Leptos' own `HydrationScripts` can load hashed names too, but reads its list from beside the
//! executable on every page it renders; this reads it once.

use leptos::prelude::*;

/// The list `scripts/build-site.sh` writes: one `<kind> <file name>` per line.
pub const MANIFEST: &str = "bundle.txt";

/// The files a page loads from `/pkg/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleFiles {
    pub js: String,
    pub wasm: String,
    pub css: String,
}

/// Why a [`MANIFEST`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("line {line}: expected `<js|wasm|css> <file name>`, found {found:?}")]
    Malformed { line: usize, found: String },
    #[error("line {line}: {name:?} is not a plain file name")]
    BadName { line: usize, name: String },
    #[error("no {0} file named")]
    Missing(&'static str),
}

impl BundleFiles {
    /// The names without hashes, as `cargo leptos` builds them by default: used when a site
    /// has no [`MANIFEST`].
    pub fn unhashed() -> Self {
        let name = crate::BUNDLE_NAME;
        BundleFiles {
            js: format!("{name}.js"),
            wasm: format!("{name}_bg.wasm"),
            css: format!("{name}.css"),
        }
    }

    /// Reads a [`MANIFEST`]. The names end up in a script and in attributes of every page, so
    /// anything but a plain file name is refused.
    pub fn parse(manifest: &str) -> Result<Self, ManifestError> {
        let (mut js, mut wasm, mut css) = (None, None, None);
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
            let (kind, name) = text.split_once(' ').ok_or_else(malformed)?;
            let name = name.trim();
            let plain = !name.is_empty()
                && !name.starts_with('.')
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !plain {
                return Err(ManifestError::BadName {
                    line,
                    name: name.chars().take(80).collect(),
                });
            }
            let slot = match kind {
                "js" => &mut js,
                "wasm" => &mut wasm,
                "css" => &mut css,
                _ => return Err(malformed()),
            };
            *slot = Some(name.to_string());
        }
        Ok(BundleFiles {
            js: js.ok_or(ManifestError::Missing("js"))?,
            wasm: wasm.ok_or(ManifestError::Missing("wasm"))?,
            css: css.ok_or(ManifestError::Missing("css"))?,
        })
    }

    /// Whether `file` (a name under `/pkg/`) is one of these.
    pub fn contains(&self, file: &str) -> bool {
        [&self.js, &self.wasm, &self.css].iter().any(|n| *n == file)
    }
}

/// The stylesheet and the scripts that hydrate the page: the module and the wasm are fetched
/// early (preload hints) and the page is hydrated once both are in. The inline script carries
/// the response's nonce, which the content security policy asks for.
#[component]
pub fn BundleTags(files: BundleFiles) -> impl IntoView {
    let nonce = leptos::nonce::use_nonce();
    let js = format!("/pkg/{}", files.js);
    let wasm = format!("/pkg/{}", files.wasm);
    // Debug formatting quotes the names as JavaScript strings would (they are plain names).
    let script = format!(
        "import({js:?}).then(m => m.default({{module_or_path: {wasm:?}}}).then(() => m.hydrate()));"
    );
    view! {
        <link rel="stylesheet" href=format!("/pkg/{}", files.css) />
        // CORS mode with same-origin credentials, as the import and the wasm fetch use, so the
        // browser reuses what the hints fetched.
        <link rel="modulepreload" href=js crossorigin="" />
        <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin="" />
        <script type="module" nonce=nonce>
            {script}
        </script>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_the_three_files() {
        let files = BundleFiles::parse(
            "js iothub.0123456789abcdef.js\nwasm iothub.fedcba9876543210.wasm\n\ncss iothub.00ff00ff00ff00ff.css\n",
        )
        .expect("valid");
        assert_eq!(files.js, "iothub.0123456789abcdef.js");
        assert_eq!(files.wasm, "iothub.fedcba9876543210.wasm");
        assert_eq!(files.css, "iothub.00ff00ff00ff00ff.css");
        assert!(files.contains("iothub.fedcba9876543210.wasm"));
        assert!(!files.contains("iothub.css"));
    }

    #[test]
    fn names_that_could_escape_a_script_or_a_folder_are_refused() {
        for name in [
            "a\"b.js",
            "../x.js",
            ".hidden",
            "a/b.js",
            "x.js<script>",
            "a b.js",
        ] {
            let manifest = format!("js {name}\nwasm w.wasm\ncss c.css\n");
            assert!(
                matches!(
                    BundleFiles::parse(&manifest),
                    Err(ManifestError::BadName { line: 1, .. } | ManifestError::Malformed { .. })
                ),
                "{name:?} was accepted"
            );
        }
    }

    #[test]
    fn an_unknown_kind_or_a_missing_file_is_an_error() {
        assert_eq!(
            BundleFiles::parse("js a.js\nfont f.woff\n"),
            Err(ManifestError::Malformed {
                line: 2,
                found: "font f.woff".into()
            })
        );
        assert_eq!(
            BundleFiles::parse("js a.js\nwasm b.wasm\n"),
            Err(ManifestError::Missing("css"))
        );
        assert!(matches!(
            BundleFiles::parse("js"),
            Err(ManifestError::Malformed { line: 1, .. })
        ));
    }
}
