//! The server's module layout, checked from its source: no module imports one that imports it
//! (at every level: top-level modules, and the files within a folder), and no source file (of
//! the server's library, the app or the browser entry) is longer than a newcomer can hold in
//! their head.
//!
//! Edges are the `crate::…` and `super::…` paths a file names outside comments, strings and
//! `#[cfg(test)]` items. The binaries (`src/bin`, `main.rs`) are outside the library and
//! import it from the top; they are not part of the graph.

// Panicking on the unexpected is what a test is for.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Longest a source file of the server's library, the app or the browser entry may be, not
/// counting its `#[cfg(test)]` module, in the file or in a file of its own (the benchmark
/// binaries in `src/bin` are not counted).
const MAX_LINES: usize = 600;

fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every library source file with its module path (`devices/tcp.rs` → `["devices", "tcp"]`).
fn library_files() -> Vec<(Vec<String>, PathBuf)> {
    let mut files = Vec::new();
    let mut folders = vec![source_root()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    folders.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(source_root()).unwrap();
            let mut module: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if module
                .last()
                .is_some_and(|last| last == "mod" || last == "lib")
            {
                module.pop();
            }
            if module == ["main"] {
                continue;
            }
            files.push((module, path));
        }
    }
    files.sort();
    files
}

/// The text of a Rust file with comments, string and character literals blanked out.
fn code_only(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let mut depth = 0;
            let mut j = 0;
            while j < rest.len() {
                if rest[j..].starts_with("/*") {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with("*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += rest[j..].chars().next().unwrap().len_utf8();
                }
            }
            out.extend(rest[..j].chars().filter(|c| *c == '\n'));
            i += j;
        } else if let Some(hashes) = raw_string_start(rest) {
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            let end = rest[body..]
                .find(&close)
                .map_or(rest.len(), |e| body + e + close.len());
            out.push_str("\"\"");
            out.extend(rest[..end].chars().filter(|c| *c == '\n'));
            i += end;
        } else if rest.starts_with('"') {
            let mut j = 1;
            while j < rest.len() {
                match bytes[i + j] {
                    b'\\' => j += 2,
                    b'"' => break,
                    _ => j += 1,
                }
            }
            out.push_str("\"\"");
            out.extend(rest[..j.min(rest.len())].chars().filter(|c| *c == '\n'));
            i += (j + 1).min(rest.len());
        } else if let Some(after) = rest.strip_prefix('\'') {
            // A character literal ('x', '\n', '\u{1F600}'), or else a lifetime ('a).
            let literal_len = if after.starts_with('\\') {
                after.find('\'').map(|e| e + 2)
            } else {
                let c = after.chars().next().map_or(0, char::len_utf8);
                after[c..].starts_with('\'').then_some(c + 2)
            };
            match literal_len {
                Some(len) => {
                    out.push_str("' '");
                    i += len;
                }
                None => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `r"…"`, `r#"…"#` (also `br…`): the number of `#`s, if a raw string starts here.
fn raw_string_start(rest: &str) -> Option<usize> {
    let rest = rest.strip_prefix('b').unwrap_or(rest);
    let rest = rest.strip_prefix('r')?;
    let hashes = rest.len() - rest.trim_start_matches('#').len();
    rest[hashes..].starts_with('"').then_some(hashes)
}

/// The code with every `#[cfg(test)]` item removed (a `mod tests { … }`, a `mod tests;`, a
/// test-only function or `use`).
fn without_test_items(code: &str) -> String {
    const MARK: &str = "#[cfg(test)]";
    let mut out = String::new();
    let mut rest = code;
    while let Some(at) = rest.find(MARK) {
        out.push_str(&rest[..at]);
        let item = &rest[at + MARK.len()..];
        // The item ends at its first `;` outside braces, or at the brace closing its body.
        let mut depth = 0usize;
        let mut end = item.len();
        for (k, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// The first segment of each path that follows `prefix` (`crate::` or `super::`), including
/// each member of a `crate::{a, b::c}` group.
fn targets_after(code: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before_ok = rest[..at]
            .chars()
            .next_back()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        let after = &rest[at + prefix.len()..];
        rest = after;
        if !before_ok {
            continue;
        }
        if let Some(group) = after.strip_prefix('{') {
            let mut depth = 1;
            let mut member = String::new();
            let mut members = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => members.push(std::mem::take(&mut member)),
                    _ if depth == 1 => member.push(c),
                    _ => {}
                }
            }
            members.push(member);
            for member in members {
                let name = first_segment(member.trim());
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name = first_segment(after);
            if !name.is_empty() {
                found.insert(name);
            }
        }
    }
    found
}

fn first_segment(path: &str) -> String {
    path.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Edges between sibling modules, keyed by their parent (`[]` for the top level).
type Graph = BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>>;

fn module_graph() -> Graph {
    let files = library_files();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|(m, _)| m.clone()).collect();
    let mut graph = Graph::new();
    for (module, path) in &files {
        let code = without_test_items(&code_only(&std::fs::read_to_string(path).unwrap()));
        let mut targets: Vec<Vec<String>> = targets_after(&code, "crate::")
            .into_iter()
            .map(|name| vec![name])
            .collect();
        // `super::x` in a folder's file names a sibling of that file.
        if module.len() >= 2 {
            let parent = &module[..module.len() - 1];
            let is_folder = path.file_name().is_some_and(|n| n == "mod.rs");
            let base = if is_folder {
                &module[..module.len() - 2]
            } else {
                parent
            };
            for name in targets_after(&code, "super::") {
                let mut target = base.to_vec();
                target.push(name);
                targets.push(target);
            }
        }
        for target in targets {
            // Only modules count (not functions such as `crate::now_ms`).
            if !modules.contains(&target) {
                continue;
            }
            // The edge is between the two modules' ancestors that are siblings.
            let common = module
                .iter()
                .zip(&target)
                .take_while(|(a, b)| a == b)
                .count();
            if common == module.len() || common == target.len() {
                continue; // a module and its own parent or child
            }
            graph
                .entry(module[..common].to_vec())
                .or_default()
                .entry(module[common].clone())
                .or_default()
                .insert(target[common].clone());
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        edges: &'g BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w.as_str()) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w.as_str()]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w.as_str()) {
                    let low = self.low[v].min(self.index[w.as_str()]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.found
}

#[test]
fn no_module_imports_one_that_imports_it() {
    let graph = module_graph();
    // `LAYOUT_PRINT=1 cargo test -p server --test layout -- --nocapture` shows the graph.
    if std::env::var_os("LAYOUT_PRINT").is_some() {
        for (parent, edges) in &graph {
            for (module, imports) in edges {
                eprintln!(
                    "{}{module} -> {imports:?}",
                    parent.iter().map(|p| format!("{p}/")).collect::<String>()
                );
            }
        }
    }
    assert!(
        graph.get(&Vec::new()).is_some_and(|top| top.len() > 10),
        "the graph was not read: {graph:?}"
    );
    let mut problems = Vec::new();
    for (parent, edges) in &graph {
        for cycle in cycles(edges) {
            let place = if parent.is_empty() {
                "src".to_string()
            } else {
                parent.join("/")
            };
            let detail: Vec<String> = cycle
                .iter()
                .map(|m| format!("{m} -> {:?}", edges[m]))
                .collect();
            problems.push(format!("{place}: {}", detail.join("; ")));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_checker_sees_cycles() {
    // A checker that cannot fail proves nothing: the same code on a made-up circle.
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    edges.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    edges.insert("d".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(cycles(&edges), [["a", "b", "c"]]);
    let code = code_only(
        "use crate::{state::AppState, devices::{self, x}};\n\
         // crate::comment\nlet s = \"crate::string\"; let c = '\"'; fn f<'a>() {}\n\
         #[cfg(test)]\nmod tests { use crate::hidden; }\nuse super::sibling;",
    );
    let code = without_test_items(&code);
    assert_eq!(
        targets_after(&code, "crate::"),
        BTreeSet::from(["devices".to_string(), "state".to_string()])
    );
    assert_eq!(
        targets_after(&code, "super::"),
        BTreeSet::from(["sibling".to_string()])
    );
}

/// The files of the test modules `file` declares out of line (`#[cfg(test)] mod tests;`).
fn test_module_files(file: &Path) -> Vec<PathBuf> {
    let code = code_only(&std::fs::read_to_string(file).unwrap());
    // A module's children live beside `mod.rs` and `lib.rs`, and in a folder named after
    // any other file.
    let name = file.file_stem().unwrap().to_string_lossy();
    let folder = match name.as_ref() {
        "mod" | "lib" | "main" => file.parent().unwrap().to_path_buf(),
        _ => file.with_extension(""),
    };
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        rest = &rest[at + "#[cfg(test)]".len()..];
        let item = rest.trim_start();
        let Some(module) = item.strip_prefix("mod ") else {
            continue;
        };
        let module: String = module
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if module.is_empty() || !module_declaration_ends_here(item, &module) {
            continue;
        }
        found.push(folder.join(format!("{module}.rs")));
        found.push(folder.join(&module).join("mod.rs"));
    }
    found
}

/// Whether `item` (`mod name…`) declares the module out of line (`mod name;`).
fn module_declaration_ends_here(item: &str, module: &str) -> bool {
    item["mod ".len() + module.len()..]
        .trim_start()
        .starts_with(';')
}

#[test]
fn out_of_line_test_modules_are_found() {
    let dir = std::env::temp_dir().join(format!("layout-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("store.rs");
    std::fs::write(
        &file,
        "mod writer;\n#[cfg(test)]\nmod tests;\n#[cfg(test)]\nmod inline { }\n",
    )
    .unwrap();
    let found = test_module_files(&file);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        found,
        [dir.join("store/tests.rs"), dir.join("store/tests/mod.rs")]
    );
}

/// Every `.rs` file below `folder`.
fn rust_files(folder: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![folder.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files
}

#[test]
fn no_library_file_is_too_long() {
    // The server's library, and the app and browser crates beside it.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files: Vec<PathBuf> = library_files().into_iter().map(|(_, p)| p).collect();
    files.extend(rust_files(&workspace.join("app/src")));
    files.extend(rust_files(&workspace.join("frontend/src")));
    assert!(files.len() > 40, "the sources were not found: {files:?}");
    let test_files: BTreeSet<PathBuf> = files.iter().flat_map(|f| test_module_files(f)).collect();
    let mut long = Vec::new();
    for path in files {
        if test_files.contains(&path) {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        // Comments count (code_only keeps their lines); the test module does not.
        let lines = without_test_items(&code_only(&text))
            .trim_end()
            .lines()
            .count();
        if lines > MAX_LINES {
            long.push(format!("{} ({lines} lines)", path.display()));
        }
    }
    assert!(
        long.is_empty(),
        "longer than {MAX_LINES} lines without tests: {long:?}"
    );
}
