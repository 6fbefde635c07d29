//! The graph of a crate's top-level modules, and the cycles in it.
//!
//! Shared by `agent/tests/module_cycles.rs` and `coordinator/tests/module_cycles.rs`, which
//! include this file with `#[path]`: one implementation, no crate of its own (it is test
//! tooling, never shipped), and no dependency beyond `std` and `thiserror`, which both
//! crates already have.
//!
//! The rule it checks: the top-level modules of a crate (`report`, `source`, …) form an
//! acyclic graph. Module `a` depends on `b` when code in `a` names `b` through `crate::b…`
//! (in a `use` or anywhere else, macro arguments included) or through a `super::` path that
//! climbs out of `a`. Inside one top-level module, submodules may refer to each other freely.
//! The crate root is no node: it declares every module, and its items are not followed.
//!
//! It reads tokens, not the full Rust grammar: comments, strings and character literals
//! are skipped; `#[cfg(test)]` items (and `cfg(all(test, …))`) are skipped, and a
//! `#[cfg(test)] mod x;` file is not read at all. Modules are found by following `mod`
//! declarations from each crate root (`lib.rs`, `main.rs`, `bin/…`), `#[path]` included, so
//! a file no root declares is not part of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Why a crate's modules could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: module `{module}` has no file (looked for {candidates})")]
    MissingModule {
        path: PathBuf,
        line: usize,
        module: String,
        candidates: String,
    },
    #[error("{path}: no crate root (lib.rs, main.rs or bin/) in this directory")]
    NoRoot { path: PathBuf },
}

/// Where an edge is made: the first path that makes it, and how many more do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Site {
    pub(crate) file: PathBuf,
    pub(crate) line: usize,
    pub(crate) more: usize,
}

/// The top-level modules of one crate root and the dependencies between them.
#[derive(Debug, Default)]
pub(crate) struct ModuleGraph {
    /// The crate root file, e.g. `src/lib.rs`.
    pub(crate) root: PathBuf,
    pub(crate) modules: BTreeSet<String>,
    /// (from, to) → where the dependency is made.
    pub(crate) edges: BTreeMap<(String, String), Site>,
}

/// At most this many cycles are listed per crate; a graph with more needs work anyway.
const MAX_CYCLES: usize = 200;

/// The module graph of every crate root under `src`.
pub(crate) fn module_graphs(src: &Path) -> Result<Vec<ModuleGraph>, Error> {
    let mut roots = Vec::new();
    for name in ["lib.rs", "main.rs"] {
        let root = src.join(name);
        if root.is_file() {
            roots.push(root);
        }
    }
    let bin = src.join("bin");
    if bin.is_dir() {
        let entries = std::fs::read_dir(&bin).map_err(|source| Error::Read {
            path: bin.clone(),
            source,
        })?;
        let mut bins = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| Error::Read {
                    path: bin.clone(),
                    source,
                })?
                .path();
            if path.extension().is_some_and(|e| e == "rs") {
                bins.push(path);
            } else if path.join("main.rs").is_file() {
                bins.push(path.join("main.rs"));
            }
        }
        bins.sort();
        roots.extend(bins);
    }
    if roots.is_empty() {
        return Err(Error::NoRoot {
            path: src.to_path_buf(),
        });
    }
    roots.iter().map(|root| crate_graph(root)).collect()
}

/// Reads every module reachable from `root` and returns their dependency graph.
pub(crate) fn crate_graph(root: &Path) -> Result<ModuleGraph, Error> {
    let mut graph = ModuleGraph {
        root: root.to_path_buf(),
        ..Default::default()
    };
    let dir = root.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut pending = vec![FileModule {
        path: root.to_path_buf(),
        module: Vec::new(),
        child_dir: dir,
    }];
    let mut references = Vec::new();
    while let Some(file) = pending.pop() {
        let text = std::fs::read_to_string(&file.path).map_err(|source| Error::Read {
            path: file.path.clone(),
            source,
        })?;
        let scanned = scan(&tokenize(&text), &file.module);
        if file.module.is_empty() {
            graph.modules.extend(scanned.top_inline);
        }
        for child in scanned.children {
            if file.module.is_empty() && child.module.len() == 1 {
                graph.modules.insert(child.module[0].clone());
            }
            pending.push(child_file(&file, child)?);
        }
        references.extend(
            scanned
                .references
                .into_iter()
                .map(|r| (file.path.clone(), r)),
        );
    }
    // Resolved only now: a reference may name a top-level module declared after it.
    for (file, reference) in references {
        let (Some(from), Some(to)) = (reference.from.first(), reference.target.first()) else {
            continue;
        };
        if from == to || !graph.modules.contains(to) || !graph.modules.contains(from) {
            continue;
        }
        graph
            .edges
            .entry((from.clone(), to.clone()))
            .and_modify(|site| {
                if (&file, reference.line) < (&site.file, site.line) {
                    *site = Site {
                        file: file.clone(),
                        line: reference.line,
                        more: site.more + 1,
                    };
                } else {
                    site.more += 1;
                }
            })
            .or_insert(Site {
                file: file.clone(),
                line: reference.line,
                more: 0,
            });
    }
    Ok(graph)
}

impl ModuleGraph {
    /// Every elementary cycle (up to [`MAX_CYCLES`]), each as the modules in order, starting
    /// from its smallest name; cycles are listed in order.
    pub(crate) fn cycles(&self) -> Vec<Vec<String>> {
        let names: Vec<&String> = self.modules.iter().collect();
        let index = |name: &String| names.binary_search(&name).ok();
        let mut next: Vec<Vec<usize>> = vec![Vec::new(); names.len()];
        for (from, to) in self.edges.keys() {
            if let (Some(f), Some(t)) = (index(from), index(to)) {
                next[f].push(t);
            }
        }
        let mut cycles = Vec::new();
        // A cycle is found once: from its smallest node, through larger nodes only.
        for start in 0..names.len() {
            let mut path = vec![start];
            let mut on_path = vec![false; names.len()];
            on_path[start] = true;
            walk(start, start, &next, &mut path, &mut on_path, &mut cycles);
            if cycles.len() >= MAX_CYCLES {
                break;
            }
        }
        cycles.truncate(MAX_CYCLES);
        cycles
            .into_iter()
            .map(|c| c.into_iter().map(|i| names[i].clone()).collect())
            .collect()
    }

    /// Every cycle with the place that makes each of its edges, or `None` without cycles.
    /// File names are shown relative to `base`.
    pub(crate) fn describe_cycles(&self, base: &Path) -> Option<String> {
        let cycles = self.cycles();
        if cycles.is_empty() {
            return None;
        }
        let root = self.root.strip_prefix(base).unwrap_or(&self.root);
        let mut out = format!(
            "{} module cycle(s) in the crate rooted at {}:\n",
            cycles.len(),
            root.display()
        );
        for (n, cycle) in cycles.iter().enumerate() {
            let mut ring = cycle.clone();
            ring.push(cycle[0].clone());
            let _ = writeln!(out, "cycle {}: {}", n + 1, ring.join(" -> "));
            for pair in ring.windows(2) {
                let site = &self.edges[&(pair[0].clone(), pair[1].clone())];
                let file = site.file.strip_prefix(base).unwrap_or(&site.file);
                let more = match site.more {
                    0 => String::new(),
                    n => format!(" (and {n} more)"),
                };
                let _ = writeln!(
                    out,
                    "  {} -> {}: {}:{}{more}",
                    pair[0],
                    pair[1],
                    file.display(),
                    site.line
                );
            }
        }
        if cycles.len() >= MAX_CYCLES {
            let _ = writeln!(out, "(listing stopped at {MAX_CYCLES} cycles)");
        }
        Some(out)
    }
}

/// Extends `path` (which ends at `at`) through nodes larger than `start`, recording each
/// way back to `start`.
fn walk(
    start: usize,
    at: usize,
    next: &[Vec<usize>],
    path: &mut Vec<usize>,
    on_path: &mut [bool],
    cycles: &mut Vec<Vec<usize>>,
) {
    for &to in &next[at] {
        if cycles.len() >= MAX_CYCLES {
            return;
        }
        if to == start {
            cycles.push(path.clone());
        } else if to > start && !on_path[to] {
            path.push(to);
            on_path[to] = true;
            walk(start, to, next, path, on_path, cycles);
            on_path[to] = false;
            path.pop();
        }
    }
}

/// Panics listing every module cycle of the crate whose sources are in `src`.
pub(crate) fn assert_no_cycles(src: &Path) {
    let graphs = module_graphs(src).unwrap_or_else(|e| panic!("reading the modules failed: {e}"));
    let base = src.parent().and_then(Path::parent).unwrap_or(src);
    let found: Vec<String> = graphs
        .iter()
        .filter_map(|g| g.describe_cycles(base))
        .collect();
    assert!(
        found.is_empty(),
        "top-level modules must not depend on each other in a cycle; move what both need \
         to the module that owns it.\n{}",
        found.join("\n")
    );
}

/// A file to read, the module it holds, and where its `mod x;` files live.
struct FileModule {
    path: PathBuf,
    module: Vec<String>,
    child_dir: PathBuf,
}

/// A `mod name;` declaration found in a file.
struct ChildDecl {
    module: Vec<String>,
    name: String,
    /// The directory its file is looked up in (the file's, plus any inline modules around it).
    dir_parts: Vec<String>,
    path_attr: Option<String>,
    line: usize,
}

fn child_file(parent: &FileModule, child: ChildDecl) -> Result<FileModule, Error> {
    // `#[path]` is relative to the declaring file's directory.
    if let Some(rel) = &child.path_attr {
        let path = parent.path.parent().unwrap_or(Path::new(".")).join(rel);
        let child_dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        return Ok(FileModule {
            path,
            module: child.module,
            child_dir,
        });
    }
    let mut dir = parent.child_dir.clone();
    dir.extend(&child.dir_parts);
    let flat = dir.join(format!("{}.rs", child.name));
    let nested = dir.join(&child.name).join("mod.rs");
    let (path, child_dir) = if flat.is_file() {
        (flat, dir.join(&child.name))
    } else if nested.is_file() {
        (nested, dir.join(&child.name))
    } else {
        return Err(Error::MissingModule {
            path: parent.path.clone(),
            line: child.line,
            module: child.name,
            candidates: format!("{} and {}", flat.display(), nested.display()),
        });
    };
    Ok(FileModule {
        path,
        module: child.module,
        child_dir,
    })
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Ident(String),
    Str(String),
    PathSep,
    Punct(char),
    /// Numbers, lifetimes and character literals: present so neighbours stay apart.
    Other,
}

/// Tokens with their line numbers; comments, whitespace and literal contents (except
/// string contents, kept for `#[path = "…"]`) are dropped.
fn tokenize(text: &str) -> Vec<(Tok, usize)> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        if c == '\n' {
            line += 1;
            i += 1;
        } else if c.is_whitespace() {
            i += 1;
        } else if c == '/' && at(i + 1) == '/' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && at(i + 1) == '*' {
            // Block comments nest.
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
        } else if c == '"' {
            let (s, end) = quoted(&chars, i + 1, &mut line);
            out.push((Tok::Str(s), start_line));
            i = end;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{1F600}') or a lifetime/label ('a).
            if at(i + 1) == '\\' {
                // Past the quote, the backslash and the escaped character.
                i += 3;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
            } else if at(i + 2) == '\'' {
                i += 3;
            } else {
                i += 1;
                while i < chars.len() && is_ident_continue(chars[i]) {
                    i += 1;
                }
            }
            out.push((Tok::Other, start_line));
        } else if c.is_ascii_digit() {
            while i < chars.len()
                && (is_ident_continue(chars[i]) || (chars[i] == '.' && at(i + 1).is_ascii_digit()))
            {
                i += 1;
            }
            out.push((Tok::Other, start_line));
        } else if is_ident_start(c) {
            let begin = i;
            while i < chars.len() && is_ident_continue(chars[i]) {
                i += 1;
            }
            let word: String = chars[begin..i].iter().collect();
            let prefix = matches!(word.as_str(), "r" | "br" | "cr");
            if prefix && (at(i) == '#' || at(i) == '"') {
                let mut hashes = 0;
                while at(i + hashes) == '#' {
                    hashes += 1;
                }
                if at(i + hashes) == '"' {
                    // A raw string: ends at a quote followed by as many hashes.
                    let body = i + hashes + 1;
                    let mut j = body;
                    while j < chars.len() {
                        if chars[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                            break;
                        }
                        if chars[j] == '\n' {
                            line += 1;
                        }
                        j += 1;
                    }
                    out.push((
                        Tok::Str(chars[body..j.min(chars.len())].iter().collect()),
                        start_line,
                    ));
                    i = j + 1 + hashes;
                    continue;
                }
                if word == "r" && hashes == 1 && is_ident_start(at(i + 1)) {
                    // A raw identifier, r#type.
                    let begin = i + 1;
                    i = begin;
                    while i < chars.len() && is_ident_continue(chars[i]) {
                        i += 1;
                    }
                    out.push((Tok::Ident(chars[begin..i].iter().collect()), start_line));
                    continue;
                }
            }
            if matches!(word.as_str(), "b" | "c") && at(i) == '"' {
                let (s, end) = quoted(&chars, i + 1, &mut line);
                out.push((Tok::Str(s), start_line));
                i = end;
            } else if word == "b" && at(i) == '\'' {
                i += 1;
                if at(i) == '\\' {
                    i += 1;
                }
                i += 1;
                while i < chars.len() && chars[i] != '\'' {
                    i += 1;
                }
                i += 1;
                out.push((Tok::Other, start_line));
            } else {
                out.push((Tok::Ident(word), start_line));
            }
        } else if c == ':' && at(i + 1) == ':' {
            out.push((Tok::PathSep, start_line));
            i += 2;
        } else {
            out.push((Tok::Punct(c), start_line));
            i += 1;
        }
    }
    out
}

/// A string body starting at `i` (after the opening quote): its text and the index after
/// the closing quote.
fn quoted(chars: &[char], mut i: usize, line: &mut usize) -> (String, usize) {
    let begin = i;
    while i < chars.len() && chars[i] != '"' {
        if chars[i] == '\\' {
            i += 1;
        }
        if chars.get(i) == Some(&'\n') {
            *line += 1;
        }
        i += 1;
    }
    let end = i.min(chars.len());
    (chars[begin..end].iter().collect(), end + 1)
}

fn is_ident_start(c: char) -> bool {
    c == '_' || c.is_alphabetic()
}

fn is_ident_continue(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

/// A path that names something in the crate, seen from module `from`.
struct Reference {
    from: Vec<String>,
    /// The absolute module path it names (its first segment is the top-level module).
    target: Vec<String>,
    line: usize,
}

struct Scanned {
    children: Vec<ChildDecl>,
    /// Inline modules of the crate root (`mod x { … }` in lib.rs): top-level modules too.
    top_inline: Vec<String>,
    references: Vec<Reference>,
}

/// Finds the `mod` declarations and crate-relative paths of one file holding `module`.
fn scan(toks: &[(Tok, usize)], module: &[String]) -> Scanned {
    let mut scanned = Scanned {
        children: Vec::new(),
        top_inline: Vec::new(),
        references: Vec::new(),
    };
    // Inline modules (`mod x { … }`) open around the code: (name, brace depth inside).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut path_attr: Option<String> = None;
    let ident = |i: usize| match toks.get(i) {
        Some((Tok::Ident(s), _)) => Some(s.as_str()),
        _ => None,
    };
    let is = |i: usize, t: Tok| toks.get(i).map(|(k, _)| k) == Some(&t);
    let mut i = 0;
    while i < toks.len() {
        let line = toks[i].1;
        match &toks[i].0 {
            Tok::Punct('#') => {
                let inner = is(i + 1, Tok::Punct('!'));
                let open = if inner { i + 2 } else { i + 1 };
                if !is(open, Tok::Punct('[')) {
                    i += 1;
                    continue;
                }
                let close = matching(toks, open);
                let body = &toks[open + 1..close.min(toks.len())];
                if cfg_test(body) {
                    if inner && inline.is_empty() {
                        // `#![cfg(test)]`: the whole file is test code.
                        return Scanned {
                            children: Vec::new(),
                            top_inline: Vec::new(),
                            references: Vec::new(),
                        };
                    }
                    i = if inner {
                        // Skip the rest of the enclosing inline module.
                        skip_to_depth_end(toks, close + 1)
                    } else {
                        skip_item(toks, close + 1)
                    };
                    path_attr = None;
                    continue;
                }
                if let [
                    (Tok::Ident(name), _),
                    (Tok::Punct('='), _),
                    (Tok::Str(p), _),
                ] = body
                    && name == "path"
                {
                    path_attr = Some(p.clone());
                }
                i = close + 1;
                continue;
            }
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Tok::Ident(w) if w == "mod" => {
                if let Some(name) = ident(i + 1) {
                    if is(i + 2, Tok::Punct(';')) {
                        let mut child = current(module, &inline);
                        child.push(name.to_owned());
                        scanned.children.push(ChildDecl {
                            module: child,
                            name: name.to_owned(),
                            dir_parts: inline.iter().map(|(n, _)| n.clone()).collect(),
                            path_attr: path_attr.take(),
                            line,
                        });
                        i += 3;
                        continue;
                    }
                    if is(i + 2, Tok::Punct('{')) {
                        if module.is_empty() && inline.is_empty() {
                            scanned.top_inline.push(name.to_owned());
                        }
                        depth += 1;
                        inline.push((name.to_owned(), depth));
                        path_attr = None;
                        i += 3;
                        continue;
                    }
                }
            }
            Tok::Ident(w) if w == "use" => {
                let end = statement_end(toks, i + 1);
                let mut paths = Vec::new();
                use_tree(&toks[i + 1..end], Vec::new(), &mut paths);
                let from = current(module, &inline);
                for (segments, line) in paths {
                    if let Some(target) = resolve(&from, &segments) {
                        scanned.references.push(Reference {
                            from: from.clone(),
                            target,
                            line,
                        });
                    }
                }
                i = end;
                continue;
            }
            Tok::Ident(w)
                if matches!(w.as_str(), "crate" | "super" | "self")
                    && is(i + 1, Tok::PathSep)
                    && !(i > 0 && is(i - 1, Tok::Punct('$')))
                    && !(i > 0 && is(i - 1, Tok::PathSep)) =>
            {
                let mut segments = Vec::new();
                let mut j = i;
                while let Some(s) = ident(j) {
                    segments.push(s.to_owned());
                    if is(j + 1, Tok::PathSep) {
                        j += 2;
                    } else {
                        break;
                    }
                }
                let from = current(module, &inline);
                if let Some(target) = resolve(&from, &segments) {
                    scanned.references.push(Reference { from, target, line });
                }
                i = j + 1;
                continue;
            }
            _ => {}
        }
        // A `#[path]` belongs to the next item; it is used only if that is a `mod x;`.
        if matches!(toks[i].0, Tok::Punct(';' | '{' | '}')) {
            path_attr = None;
        }
        i += 1;
    }
    scanned
}

/// The module the code at a point of a file is in: the file's, plus the inline modules
/// open there.
fn current(module: &[String], inline: &[(String, usize)]) -> Vec<String> {
    let mut m = module.to_vec();
    m.extend(inline.iter().map(|(n, _)| n.clone()));
    m
}

/// The absolute module path `segments` names from module `from`, if it starts with
/// `crate`, `super` or `self`.
fn resolve(from: &[String], segments: &[String]) -> Option<Vec<String>> {
    let mut base: Vec<String>;
    let mut rest = segments;
    match segments.first()?.as_str() {
        "crate" => {
            base = Vec::new();
            rest = &segments[1..];
        }
        "self" => {
            base = from.to_vec();
            rest = &segments[1..];
        }
        "super" => {
            base = from.to_vec();
            while rest.first().is_some_and(|s| s == "super") {
                base.pop()?;
                rest = &rest[1..];
            }
        }
        _ => return None,
    }
    base.extend(rest.iter().filter(|s| *s != "self").cloned());
    Some(base)
}

/// Expands a `use` tree (without `use` and `;`) into full paths with the line of each.
fn use_tree(toks: &[(Tok, usize)], prefix: Vec<String>, out: &mut Vec<(Vec<String>, usize)>) {
    let mut path = prefix.clone();
    let mut line = toks.first().map(|t| t.1).unwrap_or(0);
    let mut i = 0;
    let mut started = false;
    while i < toks.len() {
        match &toks[i].0 {
            Tok::Ident(s) if s == "as" => {
                // `as name` renames; the path is complete.
                i += 2;
                continue;
            }
            Tok::Ident(s) => {
                if !started {
                    line = toks[i].1;
                    started = true;
                }
                path.push(s.clone());
            }
            Tok::Punct('{') => {
                let close = matching(toks, i);
                for item in split_top_level(&toks[i + 1..close.min(toks.len())]) {
                    use_tree(item, path.clone(), out);
                }
                return;
            }
            Tok::Punct(',') => {
                if path.len() > prefix.len() {
                    out.push((path, line));
                }
                path = prefix.clone();
                started = false;
            }
            _ => {}
        }
        i += 1;
    }
    if path.len() > prefix.len() || started {
        out.push((path, line));
    }
}

/// Splits a `{ … }` body of a use tree at its top-level commas.
fn split_top_level(toks: &[(Tok, usize)]) -> Vec<&[(Tok, usize)]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut begin = 0;
    for (i, (t, _)) in toks.iter().enumerate() {
        match t {
            Tok::Punct('{') => depth += 1,
            Tok::Punct('}') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                parts.push(&toks[begin..i]);
                begin = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&toks[begin..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// Whether an attribute body (inside `#[…]`) is `cfg(…)` true only under test.
fn cfg_test(body: &[(Tok, usize)]) -> bool {
    match body {
        [
            (Tok::Ident(cfg), _),
            (Tok::Punct('('), _),
            predicate @ ..,
            (Tok::Punct(')'), _),
        ] if cfg == "cfg" => test_only(predicate),
        _ => false,
    }
}

/// Whether a cfg predicate can only hold when compiling tests.
fn test_only(predicate: &[(Tok, usize)]) -> bool {
    match predicate {
        [(Tok::Ident(t), _)] => t == "test",
        [
            (Tok::Ident(op), _),
            (Tok::Punct('('), _),
            list @ ..,
            (Tok::Punct(')'), _),
        ] => {
            let items = split_commas(list);
            match op.as_str() {
                "all" => items.iter().any(|p| test_only(p)),
                "any" => !items.is_empty() && items.iter().all(|p| test_only(p)),
                _ => false,
            }
        }
        _ => false,
    }
}

fn split_commas(toks: &[(Tok, usize)]) -> Vec<&[(Tok, usize)]> {
    let mut parts = Vec::new();
    let mut depth = 0i32;
    let mut begin = 0;
    for (i, (t, _)) in toks.iter().enumerate() {
        match t {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(',') if depth == 0 => {
                parts.push(&toks[begin..i]);
                begin = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&toks[begin..]);
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

/// The index of the bracket closing the one at `open` (or the end of the tokens).
fn matching(toks: &[(Tok, usize)], open: usize) -> usize {
    let mut depth = 0usize;
    for (i, (t, _)) in toks.iter().enumerate().skip(open) {
        match t {
            Tok::Punct('(' | '[' | '{') => depth += 1,
            Tok::Punct(')' | ']' | '}') => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    toks.len()
}

/// The index of the `;` ending a statement that starts at `i` (or the end of the tokens).
fn statement_end(toks: &[(Tok, usize)], mut i: usize) -> usize {
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct(';') => return i,
            Tok::Punct('(' | '[' | '{') => i = matching(toks, i) + 1,
            // An unbalanced closer: the statement was cut short.
            Tok::Punct(')' | ']' | '}') => return i,
            _ => i += 1,
        }
    }
    toks.len()
}

/// The index after the item starting at `i`: its further attributes, then up to a `;` or
/// the end of its body.
fn skip_item(toks: &[(Tok, usize)], mut i: usize) -> usize {
    while toks.get(i).map(|t| &t.0) == Some(&Tok::Punct('#')) {
        i = matching(toks, i + 1) + 1;
    }
    // Statements and items without a body end at `;` even when braces come first.
    let word = |k: usize| match toks.get(k) {
        Some((Tok::Ident(w), _)) => w.as_str(),
        _ => "",
    };
    let mut k = i;
    if word(k) == "pub" {
        k += 1;
        if toks.get(k).map(|t| &t.0) == Some(&Tok::Punct('(')) {
            k = matching(toks, k) + 1;
        }
    }
    let starts_statement = match word(k) {
        "use" | "static" | "type" | "let" => true,
        "const" => !matches!(word(k + 1), "fn" | "unsafe" | "async" | "extern"),
        _ => false,
    };
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct(';') => return i + 1,
            Tok::Punct('{') => {
                let end = matching(toks, i) + 1;
                if starts_statement {
                    i = end;
                } else {
                    return end;
                }
            }
            Tok::Punct('(' | '[') => i = matching(toks, i) + 1,
            Tok::Punct(')' | ']' | '}') => return i,
            _ => i += 1,
        }
    }
    toks.len()
}

/// The index of the `}` closing the block the tokens from `i` are in.
fn skip_to_depth_end(toks: &[(Tok, usize)], mut i: usize) -> usize {
    while i < toks.len() {
        match toks[i].0 {
            Tok::Punct('(' | '[' | '{') => i = matching(toks, i) + 1,
            Tok::Punct(')' | ']' | '}') => return i,
            _ => i += 1,
        }
    }
    toks.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `files` (path relative to `src/`, contents) into a fresh temporary crate.
    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let path = dir.path().join("src").join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, text).expect("write");
        }
        dir
    }

    fn graph(dir: &tempfile::TempDir) -> ModuleGraph {
        let mut graphs = module_graphs(&dir.path().join("src")).expect("graph");
        assert_eq!(graphs.len(), 1, "one crate root");
        graphs.remove(0)
    }

    fn edges(g: &ModuleGraph) -> Vec<(String, String, String, usize)> {
        g.edges
            .iter()
            .map(|((f, t), s)| {
                let file = s
                    .file
                    .file_name()
                    .expect("name")
                    .to_string_lossy()
                    .into_owned();
                (f.clone(), t.clone(), file, s.line)
            })
            .collect()
    }

    fn e(from: &str, to: &str, file: &str, line: usize) -> (String, String, String, usize) {
        (from.into(), to.into(), file.into(), line)
    }

    #[test]
    fn a_two_module_cycle_is_found_with_the_use_that_makes_each_edge() {
        let dir = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "//! a\n\nuse crate::b::X;\npub struct Y(X);\n"),
            ("b.rs", "pub struct X;\npub fn f(_: crate::a::Y) {}\n"),
        ]);
        let g = graph(&dir);
        assert_eq!(
            edges(&g),
            vec![e("a", "b", "a.rs", 3), e("b", "a", "b.rs", 2)]
        );
        assert_eq!(g.cycles(), vec![vec!["a".to_owned(), "b".to_owned()]]);
        let text = g.describe_cycles(dir.path()).expect("a cycle");
        assert!(text.contains("cycle 1: a -> b -> a"), "{text}");
        assert!(text.contains("a -> b: src/a.rs:3"), "{text}");
        assert!(text.contains("b -> a: src/b.rs:2"), "{text}");
        let src = dir.path().join("src");
        let panicked = std::panic::catch_unwind(|| assert_no_cycles(&src));
        assert!(panicked.is_err(), "assert_no_cycles must fail on a cycle");
    }

    #[test]
    fn an_acyclic_crate_passes_and_submodules_refer_to_each_other_freely() {
        let dir = tree(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\nuse a::Top;\n"),
            ("a/mod.rs", "mod inner;\nmod other;\npub struct Top;\n"),
            // Within `a`: free. `super::super::b` leaves `a`, so it is an edge.
            (
                "a/inner.rs",
                "use super::Top;\nuse super::other::{self, Thing};\nfn f() { super::super::b::g(); }\n",
            ),
            ("a/other.rs", "pub struct Thing;\nuse crate::a::inner;\n"),
            ("b.rs", "use crate::{c::{self, H}};\npub fn g() {}\n"),
            ("c.rs", "pub struct H;\n"),
        ]);
        let g = graph(&dir);
        assert_eq!(
            edges(&g),
            vec![e("a", "b", "inner.rs", 3), e("b", "c", "b.rs", 1)]
        );
        assert!(g.cycles().is_empty());
        assert_eq!(g.describe_cycles(dir.path()), None);
        assert_no_cycles(&dir.path().join("src"));
    }

    #[test]
    fn test_only_code_comments_and_strings_make_no_edges() {
        let dir = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "use crate::b::X;\npub struct Y;\n"),
            (
                "b.rs",
                r####"pub struct X;
// use crate::a::Y;
/* outer /* nested crate::a::Y */ still crate::a::Y */
/// Doc links such as [`crate::a::Y`] are not dependencies.
const S: &str = "crate::a::Y \" crate::a::Y";
const R: &str = r#"crate::a::Y " crate::a::Y"#;
const C: char = '"';
const D: char = '\'';
fn life<'a>(x: &'a str) -> &'a str { x }
#[cfg(test)]
use crate::a::Y;
#[cfg(test)]
mod tests {
    use crate::a::Y;
    fn f() { let _ = crate::a::Y; }
}
#[cfg(test)]
mod more;
#[cfg(all(test, feature = "x"))]
fn g() -> crate::a::Y { crate::a::Y }
#[cfg(test)]
impl X { fn h(&self) -> crate::a::Y { crate::a::Y } }
macro_rules! m { () => { $crate::a::Y } }
"####,
            ),
            // Not read: declared only under cfg(test).
            ("b/more.rs", "use crate::a::Y;\n"),
        ]);
        let g = graph(&dir);
        assert_eq!(edges(&g), vec![e("a", "b", "a.rs", 1)]);
        assert!(g.cycles().is_empty());
    }

    #[test]
    fn code_that_is_not_only_for_tests_still_counts() {
        let dir = tree(&[
            ("lib.rs", "pub mod a;\npub mod b;\n"),
            ("a.rs", "use crate::b::X;\npub struct Y;\n"),
            (
                "b.rs",
                "pub struct X;\n#[cfg(test)]\nfn t() {}\n#[cfg(any(test, unix))]\nuse crate::a::Y;\n",
            ),
        ]);
        let g = graph(&dir);
        assert_eq!(
            edges(&g),
            vec![e("a", "b", "a.rs", 1), e("b", "a", "b.rs", 5)]
        );
        assert_eq!(g.cycles().len(), 1);
    }

    #[test]
    fn every_cycle_is_listed_including_longer_ones() {
        let dir = tree(&[
            ("lib.rs", "mod a;\nmod b;\nmod c;\nmod d;\nmod e;\n"),
            ("a.rs", "use crate::b::B;\npub struct A;\n"),
            ("b.rs", "use crate::c::C;\npub struct B;\n"),
            (
                "c.rs",
                "use crate::a::A;\nuse crate::b::B;\npub struct C;\n",
            ),
            ("d.rs", "use crate::e::E;\npub struct D;\n"),
            (
                "e.rs",
                "pub struct E;\nfn f() -> crate::d::D { crate::d::D }\n",
            ),
        ]);
        let g = graph(&dir);
        let names = |c: &[&str]| c.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            g.cycles(),
            vec![
                names(&["a", "b", "c"]),
                names(&["b", "c"]),
                names(&["d", "e"])
            ]
        );
        let text = g.describe_cycles(dir.path()).expect("cycles");
        assert!(text.starts_with("3 module cycle(s)"), "{text}");
        assert!(text.contains("c -> a: src/c.rs:1"), "{text}");
        assert!(text.contains("e -> d: src/e.rs:2 (and 1 more)"), "{text}");
    }

    #[test]
    fn path_attributes_and_inline_modules_are_followed() {
        let dir = tree(&[
            (
                "lib.rs",
                "#[path = \"elsewhere/x.rs\"]\nmod a;\nmod b {\n    mod nested;\n}\n",
            ),
            ("elsewhere/x.rs", "pub fn f() { crate::b::g(); }\n"),
            ("b/nested.rs", "fn h() { super::super::a::f(); }\n"),
        ]);
        let g = graph(&dir);
        assert_eq!(
            edges(&g),
            vec![e("a", "b", "x.rs", 1), e("b", "a", "nested.rs", 1)]
        );
    }

    #[test]
    fn a_missing_module_file_is_an_error_naming_it() {
        let dir = tree(&[("lib.rs", "mod a;\nmod gone;\n"), ("a.rs", "")]);
        let err = module_graphs(&dir.path().join("src")).expect_err("missing file");
        let text = err.to_string();
        assert!(
            text.contains("lib.rs:2: module `gone` has no file"),
            "{text}"
        );
    }
}
