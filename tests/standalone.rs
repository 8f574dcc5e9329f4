//! The repository stands alone: every document its files cite (a path
//! ending in `.md`) is in it, and nothing reaches outside it through a
//! `../shared` path. A renamed or dropped document fails here with the
//! citing file and the path.

use std::path::{Path, PathBuf};

/// Folders that are built, downloaded or generated, not written.
const SKIP: &[&str] = &[
    "target",
    "node_modules",
    "out",
    ".git",
    "pkg",
    "corpus",
    "artifacts",
];

/// The files a person writes: code, scripts and documents.
fn written_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if path.is_dir() {
            if !SKIP.contains(&name.as_str()) {
                written_files(&path, out);
            }
        } else if [".rs", ".md", ".js", ".mjs", ".sh", ".py", ".toml", ".html"]
            .iter()
            .any(|ext| name.ends_with(ext))
            || name == "Makefile"
        {
            out.push(path);
        }
    }
}

/// The `.md` paths `text` names: runs of path characters ending in `.md`.
fn cited_documents(text: &str) -> Vec<&str> {
    let is_path = |c: char| c.is_ascii_alphanumeric() || "_./-".contains(c);
    let mut cited = Vec::new();
    for (i, _) in text.match_indices(".md") {
        let end = i + 3;
        if text[end..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            continue; // `.mdx`, `.mdbook`: not a document name
        }
        let start = text[..i]
            .char_indices()
            .rev()
            .find(|&(_, c)| !is_path(c))
            .map_or(0, |(j, c)| j + c.len_utf8());
        let path = &text[start..end];
        if path.len() > 3 && !path.starts_with('/') && !path.contains("://") {
            cited.push(path);
        }
    }
    cited
}

#[test]
fn every_cited_document_is_in_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    written_files(root, &mut files);
    assert!(files.len() > 50, "walked only {} files", files.len());
    let mut missing = Vec::new();
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for cited in cited_documents(&text) {
            let here = file.parent().unwrap().join(cited);
            if !here.exists() && !root.join(cited).exists() {
                missing.push(format!(
                    "{}: cites {cited}",
                    file.strip_prefix(root).unwrap().display()
                ));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn nothing_reaches_outside_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    written_files(root, &mut files);
    let outside = ["../", "shared/"].concat();
    let reaching: Vec<String> = files
        .iter()
        .filter(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains(&outside)))
        .map(|f| f.strip_prefix(root).unwrap().display().to_string())
        .collect();
    assert!(
        reaching.is_empty(),
        "these files name {outside}: {reaching:?}"
    );
}

#[test]
fn citations_are_found() {
    // The scanner itself: it must see what the two tests above rely on.
    let text = "see [the spec](FORMAT.md), docs/api.md; ../EVAL.md and `x.mdx`";
    assert_eq!(
        cited_documents(text),
        ["FORMAT.md", "docs/api.md", "../EVAL.md"]
    );
}
