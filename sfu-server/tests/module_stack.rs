//! The modules of every crate in the workspace form a one-way stack: no module imports,
//! directly or through others, a module that imports it.
//!
//! Checked twice: between a crate's top-level modules (one file, or one folder such as
//! `room/` with everything in it), and between files, where a file naming a module it sits
//! inside (`super::Room` from `room/forwarding.rs`) does not count: a folder's `mod.rs` is
//! its face, and the files beside each other in it form a one-way stack of their own. An
//! import is any path that names an item of another module (`use` declarations,
//! `crate::stats::bump(…)`, `super::…`); comments, doc links and code that exists only for
//! tests (`#[cfg(test)]` items) are not imports.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// One source file: its module path inside the crate (`[]` for the crate root).
struct SourceFile {
    module: Vec<String>,
    text: String,
}

/// For each module of a crate, the modules it imports, with one path that does so.
type Imports = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn the_workspace_has_no_import_circle() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds this crate");
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(workspace).expect("read the workspace") {
        let dir = entry.expect("a workspace entry").path();
        if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
            crates.push(dir);
        }
    }
    assert!(
        crates.len() >= 5,
        "found only {crates:?}: the check must see every crate"
    );
    let mut circles = Vec::new();
    for dir in crates {
        let files = read_sources(&dir.join("src"));
        assert!(!files.is_empty(), "{} has no sources", dir.display());
        for circle in find_circles(&imports(&files, Level::TopModules)) {
            circles.push(format!("{}: {circle}", dir.display()));
        }
        for circle in find_circles(&imports(&files, Level::Files)) {
            circles.push(format!("{} (files): {circle}", dir.display()));
        }
    }
    assert!(
        circles.is_empty(),
        "import circles:\n{}",
        circles.join("\n")
    );
}

#[test]
fn a_circle_through_three_modules_is_found() {
    // Requirement: the check itself fails on a circle, however it is spelled: a `use`
    // group, a path in an expression, `super::` from a file inside a folder.
    let files = vec![
        file(&[], "mod a; mod b; mod c; mod d;"),
        file(&["a"], "use crate::{b::Thing, d};\nfn f() { d::g(); }"),
        file(&["b"], "pub struct Thing; fn f() { crate::c::h(); }"),
        file(&["c"], "mod inner;"),
        file(&["c", "inner"], "use super::super::a::f;"),
        file(
            &["d"],
            "#[cfg(test)]\nmod tests { use crate::a::f; }\n// crate::a::f\n",
        ),
    ];
    let circles = find_circles(&imports(&files, Level::TopModules));
    assert_eq!(circles.len(), 1, "{circles:?}");
    for module in ["a", "b", "c"] {
        assert!(circles[0].contains(module), "{}", circles[0]);
    }
    assert!(
        !circles[0].contains("d ->"),
        "test code and comments are no imports: {}",
        circles[0]
    );
}

#[test]
fn a_circle_between_files_of_one_folder_is_found() {
    // Requirement: files beside each other in a folder import each other one way only,
    // while each may name the folder's own module (`super::Room`) and the folder may name
    // its files.
    let files = vec![
        file(&[], "mod room;"),
        file(
            &["room"],
            "mod a; mod b; mod c;\nuse a::Handle;\npub struct Room;",
        ),
        file(&["room", "a"], "use super::Room;\nuse super::b::Helper;"),
        file(&["room", "b"], "use super::{c, Room};\nfn f() { c::g(); }"),
        file(&["room", "c"], "fn g() { super::a::h(); }"),
    ];
    assert!(
        find_circles(&imports(&files, Level::TopModules)).is_empty(),
        "one folder is one top-level module"
    );
    let circles = find_circles(&imports(&files, Level::Files));
    assert_eq!(circles.len(), 1, "{circles:?}");
    for module in ["room::a", "room::b", "room::c"] {
        assert!(circles[0].contains(module), "{}", circles[0]);
    }
    assert!(
        !circles[0].contains("-> room ("),
        "naming the folder's module is no step of a circle: {}",
        circles[0]
    );
}

fn file(module: &[&str], text: &str) -> SourceFile {
    SourceFile {
        module: module.iter().map(|s| s.to_string()).collect(),
        text: text.to_owned(),
    }
}

/// Every `.rs` file under `src`, with its module path.
fn read_sources(src: &Path) -> Vec<SourceFile> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read a source folder") {
            let path = entry.expect("a source entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read a source file");
                files.push(SourceFile {
                    module: module_of(src, &path),
                    text,
                });
            }
        }
    }
    files
}

/// `src/a/b.rs` → `[a, b]`; `src/a/mod.rs` → `[a]`; `src/main.rs`, `src/lib.rs` → `[]`.
fn module_of(src: &Path, path: &Path) -> Vec<String> {
    let relative: PathBuf = path.strip_prefix(src).expect("under src").into();
    let mut parts: Vec<String> = relative
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() == 1 && (parts[0] == "main" || parts[0] == "lib") {
        parts.clear();
    }
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts
}

/// What the nodes of the import graph are.
#[derive(Clone, Copy)]
enum Level {
    /// A crate's top-level modules, each with everything inside it.
    TopModules,
    /// Each file; naming a module the file sits inside is no import.
    Files,
}

/// The node a module is at `level` (`crate` for the root).
fn unit(module: &[String], level: Level) -> String {
    match (level, module.first()) {
        (_, None) => "crate".into(),
        (Level::TopModules, Some(first)) => first.clone(),
        (Level::Files, Some(_)) => module.join("::"),
    }
}

/// Which modules each one imports, at `level`.
fn imports(files: &[SourceFile], level: Level) -> Imports {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let mut graph = Imports::new();
    for file in files {
        let code = without_test_items(&without_comments(&file.text));
        let children = declared_modules(&code);
        let from = unit(&file.module, level);
        graph.entry(from.clone()).or_default();
        for path in paths(&code) {
            let Some(target) = resolve(&path, &file.module, &children, &modules) else {
                continue;
            };
            let inside = matches!(level, Level::Files) && file.module.starts_with(&target);
            let to = unit(&target, level);
            if to != from && !inside {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| path.join("::"));
            }
        }
    }
    graph
}

/// The module a path names an item of, if it is a module of this crate.
fn resolve(
    path: &[String],
    here: &[String],
    children: &[String],
    modules: &BTreeSet<Vec<String>>,
) -> Option<Vec<String>> {
    let mut segments = path.iter().peekable();
    let mut module: Vec<String> = match segments.peek()?.as_str() {
        "crate" => {
            segments.next();
            Vec::new()
        }
        "self" => {
            segments.next();
            here.to_vec()
        }
        "super" => {
            let mut up = here.to_vec();
            while segments.peek().is_some_and(|s| *s == "super") {
                segments.next();
                up.pop()?;
            }
            up
        }
        first if children.iter().any(|c| c == first) => here.to_vec(),
        _ => return None,
    };
    for segment in segments {
        let mut deeper = module.clone();
        deeper.push(segment.clone());
        if !modules.contains(&deeper) {
            break;
        }
        module = deeper;
    }
    modules.contains(&module).then_some(module)
}

/// The modules a file declares (`mod name;`).
fn declared_modules(code: &str) -> Vec<String> {
    let mut names = Vec::new();
    let words: Vec<&str> = code
        .split(|c: char| c.is_whitespace() || c == ';' || c == '{')
        .filter(|w| !w.is_empty())
        .collect();
    for pair in words.windows(2) {
        if pair[0] == "mod" {
            names.push(pair[1].to_owned());
        }
    }
    names
}

/// Every path of two segments or more, `use` trees expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = (chars[i].is_alphabetic() || chars[i] == '_')
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_'));
        if !starts_word {
            i += 1;
            continue;
        }
        let (tree, end) = use_tree(&chars, i);
        for path in tree {
            if path.len() >= 2 {
                found.push(path);
            }
        }
        i = end.max(i + 1);
    }
    found
}

/// The paths a `use` tree (or a plain path) starting at `start` spells, and where it ends.
fn use_tree(chars: &[char], start: usize) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut i = start;
    loop {
        let word_start = i;
        while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        if i == word_start {
            break;
        }
        prefix.push(chars[word_start..i].iter().collect::<String>());
        if !(chars.get(i) == Some(&':') && chars.get(i + 1) == Some(&':')) {
            return (vec![prefix], i);
        }
        i += 2;
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        if chars.get(i) == Some(&'{') {
            let mut all = Vec::new();
            i += 1;
            loop {
                while chars.get(i).is_some_and(|c| c.is_whitespace() || *c == ',') {
                    i += 1;
                }
                match chars.get(i) {
                    None => return (all, i),
                    Some('}') => return (all, i + 1),
                    Some(_) => {}
                }
                let (inner, end) = use_tree(chars, i);
                for path in inner {
                    let mut full = prefix.clone();
                    full.extend(path.into_iter().filter(|s| s != "self"));
                    all.push(full);
                }
                // Skip what follows an entry (`as name`, `*`) up to the next one.
                i = end.max(i + 1);
                while chars.get(i).is_some_and(|c| *c != ',' && *c != '}') {
                    i += 1;
                }
            }
        }
    }
    (vec![prefix], i)
}

/// The code with `//` and `/* */` comments blanked out.
fn without_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('/') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if after.starts_with("//") {
            let end = after.find('\n').unwrap_or(after.len());
            rest = &after[end..];
        } else if after.starts_with("/*") {
            let end = after.find("*/").map_or(after.len(), |e| e + 2);
            out.push(' ');
            rest = &after[end..];
        } else {
            out.push('/');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    out
}

/// The code without the items marked `#[cfg(test)]` (a `mod tests { … }`, a `use`, a
/// test-only module declaration, an enum variant).
fn without_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(pos) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..pos]);
        let item = &rest[pos + "#[cfg(test)]".len()..];
        // An item ends at its `;` or its block; an enum variant or field at its `,`.
        let end = match item.find([';', '{', ',']) {
            Some(b) if item[b..].starts_with('{') => matching_brace(item, b),
            Some(e) => e + 1,
            None => item.len(),
        };
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Where the block opened at `open` ends.
fn matching_brace(text: &str, open: usize) -> usize {
    let mut depth = 0usize;
    for (i, c) in text[open..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return open + i + 1;
                }
            }
            _ => {}
        }
    }
    text.len()
}

/// Each circle of the graph, spelled with the import that ties each step.
fn find_circles(graph: &Imports) -> Vec<String> {
    let mut circles = Vec::new();
    for component in strongly_connected(graph) {
        if component.len() < 2 {
            continue;
        }
        let mut steps = Vec::new();
        for from in &component {
            for (to, path) in &graph[from] {
                if component.contains(to) {
                    steps.push(format!("{from} -> {to} ({path})"));
                }
            }
        }
        circles.push(steps.join(", "));
    }
    circles
}

/// Tarjan's strongly connected components.
fn strongly_connected(graph: &Imports) -> Vec<BTreeSet<String>> {
    struct Walk<'a> {
        graph: &'a Imports,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        components: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(walk: &mut Walk<'a>, node: &'a str) {
        let n = walk.index.len();
        walk.index.insert(node, n);
        walk.low.insert(node, n);
        walk.stack.push(node);
        walk.on_stack.insert(node);
        let graph = walk.graph;
        for next in graph.get(node).into_iter().flat_map(|edges| edges.keys()) {
            let next = next.as_str();
            if !graph.contains_key(next) {
                continue;
            }
            if !walk.index.contains_key(next) {
                visit(walk, next);
                let low = walk.low[node].min(walk.low[next]);
                walk.low.insert(node, low);
            } else if walk.on_stack.contains(next) {
                let low = walk.low[node].min(walk.index[next]);
                walk.low.insert(node, low);
            }
        }
        if walk.low[node] == walk.index[node] {
            let mut component = BTreeSet::new();
            while let Some(top) = walk.stack.pop() {
                walk.on_stack.remove(top);
                component.insert(top.to_owned());
                if top == node {
                    break;
                }
            }
            walk.components.push(component);
        }
    }
    let mut walk = Walk {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in graph.keys() {
        if !walk.index.contains_key(node.as_str()) {
            visit(&mut walk, node);
        }
    }
    walk.components
}
