//! The shape of the code: no file-level import circle in the gateway crate.
//! An edge `a -> b` is a `crate::b` (or `super::`) path named in file `a`,
//! outside its tests; a child naming its parent module is not an edge (the
//! parent declares it), a parent naming its child is.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Every `.rs` file under `src/` as its module path (`service::enforce`),
/// with its text before any `#[cfg(test)] mod tests`.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            if path.extension().map_or(true, |e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let module = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("::");
            let module = match module.as_str() {
                "lib" | "main" => "crate".to_string(),
                _ => module,
            };
            if module == "tests" || module.ends_with("::tests") || module.contains("::tests::") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text
                .split("#[cfg(test)]\nmod tests")
                .next()
                .unwrap()
                .to_string();
            out.insert(module, code);
        }
    }
    out
}

/// The longest module that is a prefix of `path` (`a::b::Item` -> `a::b`).
fn resolve<'m>(mods: &'m BTreeMap<String, String>, path: &[&str]) -> Option<&'m str> {
    (1..=path.len())
        .rev()
        .find_map(|n| mods.get_key_value(&path[..n].join("::")))
        .map(|(k, _)| k.as_str())
}

fn edges(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    for (module, code) in mods {
        let here: Vec<&str> = module.split("::").collect();
        let mut to = BTreeSet::new();
        let bytes = code.as_bytes();
        for (at, _) in code.match_indices("::") {
            // The word before `::` and the path after it.
            let start = code[..at]
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
                .map_or(0, |i| i + 1);
            let head = &code[start..at];
            if start > 1 && &bytes[start - 2..start] == b"::" {
                continue; // inside a longer path, counted from its head
            }
            let tail: String = code[at + 2..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':' || *c == '{')
                .collect();
            let mut path: Vec<&str> = match head {
                "crate" => vec![],
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => continue,
            };
            let first_group = tail.split('{').next().unwrap_or("");
            let mut groups = vec![first_group.to_string()];
            if tail.contains('{') {
                // `use crate::{a::X, b}`: each item of the group.
                let rest = &code[at + 2 + first_group.len()..];
                if let Some(end) = rest.find('}') {
                    groups = rest[1..end]
                        .split(',')
                        .map(|g| format!("{first_group}{}", g.trim()))
                        .collect();
                }
            }
            for g in &groups {
                let mut p = path.clone();
                p.extend(g.split("::").filter(|s| !s.is_empty()));
                if let Some(target) = resolve(mods, &p) {
                    let child_of_target = module.starts_with(&format!("{target}::"));
                    if target != module && target != "crate" && !child_of_target {
                        to.insert(target.to_string());
                    }
                }
            }
            path.clear();
        }
        out.insert(module.clone(), to);
    }
    out
}

/// The strongly connected components with more than one file (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct Walk<'e> {
        edges: &'e BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'e str, usize>,
        low: BTreeMap<&'e str, usize>,
        stack: Vec<&'e str>,
        on: BTreeSet<&'e str>,
        out: Vec<Vec<String>>,
    }
    impl<'e> Walk<'e> {
        fn visit(&mut self, v: &'e str) {
            let n = self.index.len();
            self.index.insert(v, n);
            self.low.insert(v, n);
            self.stack.push(v);
            self.on.insert(v);
            for w in &self.edges[v] {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let l = self.low[v].min(self.low[w]);
                    self.low.insert(v, l);
                } else if self.on.contains(w) {
                    let l = self.low[v].min(self.index[w]);
                    self.low.insert(v, l);
                }
            }
            if self.low[v] == self.index[v] {
                let mut comp = Vec::new();
                while let Some(w) = self.stack.pop() {
                    self.on.remove(w);
                    comp.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if comp.len() > 1 {
                    comp.sort();
                    self.out.push(comp);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v.as_str()) {
            walk.visit(v);
        }
    }
    walk.out
}

#[test]
fn no_file_level_import_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&root);
    assert!(mods.len() > 40, "found the source tree: {}", mods.len());
    let edges = edges(&mods);
    // The checker sees the edges it must: the service uses routing and
    // forwarding, routing does not use config.
    assert!(edges["service"].contains("route"), "{:?}", edges["service"]);
    assert!(edges["service"].contains("answer::forward"));
    assert!(!edges["route"].contains("config"), "{:?}", edges["route"]);
    let found = cycles(&edges);
    assert!(
        found.is_empty(),
        "file-level import circles: {}",
        found
            .iter()
            .map(|c| {
                let parts: Vec<String> = c
                    .iter()
                    .map(|m| {
                        let inside: Vec<&str> = edges[m]
                            .iter()
                            .filter(|t| c.contains(t))
                            .map(String::as_str)
                            .collect();
                        format!("{m} -> {inside:?}")
                    })
                    .collect();
                parts.join("; ")
            })
            .collect::<Vec<_>>()
            .join(" | ")
    );
}

/// The checker finds a circle when there is one.
#[test]
fn a_circle_is_found() {
    let mut mods = BTreeMap::new();
    mods.insert("a".to_string(), "use crate::b::X;".to_string());
    mods.insert("b".to_string(), "fn f() { crate::c::g() }".to_string());
    mods.insert("c".to_string(), "use crate::{a::Y, d};".to_string());
    mods.insert("d".to_string(), "use super::x;".to_string());
    let e = edges(&mods);
    assert_eq!(e["c"], BTreeSet::from(["a".to_string(), "d".to_string()]));
    assert_eq!(
        cycles(&e),
        vec![vec!["a".to_string(), "b".to_string(), "c".to_string()]]
    );
}
