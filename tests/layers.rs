//! The modules of each crate form layers, and a module imports only from
//! layers below its own (docs/architecture.md). A new module must be given
//! a layer here; an import that points up, or sideways within a layer,
//! fails with the file and the edge, so a circle cannot come back.
//!
//! Edges are the `crate::NAME` paths in a module's code (comments and its
//! `#[cfg(test)]` tests left out: tests may reach anywhere).

use std::collections::BTreeMap;
use std::path::Path;

/// The core crate, lowest layer first.
const CORE: &[&[&str]] = &[
    &["calendar", "hash", "numeric", "stage"],
    &["format"],
    &["wire", "ruleset", "factors"],
    &["packed", "profile"],
    &["signals", "usertable"],
    &["params"],
    &["model", "experiment"],
    &["rank"],
    &["score"],
    &["rules", "codec"],
    &["recommender", "testing"],
    &["wasm"],
];

/// The builder, lowest layer first (`main.rs`, the binary, sits on top).
const BUILDER: &[&[&str]] = &[
    &["rng"],
    &["runtime", "progress", "publish", "als"],
    &["rows", "options"],
    &["family"],
    &["data", "import", "engine"],
    &["stage", "push", "replay", "shop", "synth", "report"],
    &["build", "stage_eval", "profiles", "simulate", "report_html"],
    &["train", "next_item", "users"],
    &["eval", "pipeline"],
];

/// The code of a source file that the layers govern.
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `text` names through `crate::`.
fn imports(text: &str, file: &Path) -> Vec<String> {
    assert!(
        !text.contains("use crate::{"),
        "{}: write one `use crate::module::...` per module, so that its layer can be checked",
        file.display()
    );
    text.match_indices("crate::")
        .filter(|(i, _)| {
            // `crate::` itself, not the end of `nestrank_crate::`.
            text[..*i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'))
        })
        .map(|(i, _)| {
            text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

/// Every `.rs` file of module `name` under `src` (a file or a folder).
fn files_of(src: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let file = src.join(format!("{name}.rs"));
    if file.exists() {
        return vec![file];
    }
    let mut out = Vec::new();
    let mut stack = vec![src.join(name)];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out
}

/// Checks `src` against `layers`; returns every violation.
fn violations(src: &Path, layers: &[&[&str]]) -> Vec<String> {
    let layer: BTreeMap<&str, usize> = layers
        .iter()
        .enumerate()
        .flat_map(|(l, names)| names.iter().map(move |n| (*n, l)))
        .collect();
    let mut bad = Vec::new();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_stem().unwrap().to_str().unwrap().to_string();
        if name == "lib"
            || name == "main"
            || !(p.is_dir() || p.extension().is_some_and(|x| x == "rs"))
        {
            continue;
        }
        let Some(&own) = layer.get(name.as_str()) else {
            bad.push(format!(
                "{}: module `{name}` has no layer in tests/layers.rs",
                p.display()
            ));
            continue;
        };
        for file in files_of(src, &name) {
            let text = code(&std::fs::read_to_string(&file).unwrap());
            for to in imports(&text, &file) {
                if to == name {
                    continue;
                }
                match layer.get(to.as_str()) {
                    Some(&l) if l < own => {}
                    Some(&l) => bad.push(format!(
                        "{}: `{name}` (layer {own}) imports `{to}` (layer {l}): only lower layers may be imported",
                        file.display()
                    )),
                    None => bad.push(format!("{}: `{name}` imports `{to}`, which has no layer", file.display())),
                }
            }
        }
    }
    bad.sort();
    bad
}

#[test]
fn core_modules_import_only_lower_layers() {
    let bad = violations(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), CORE);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn builder_modules_import_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("model-builder/src");
    let bad = violations(&src, BUILDER);
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn an_upward_import_is_caught() {
    let dir = std::env::temp_dir().join(format!("nestrank-layers-{}", std::process::id()));
    let src = dir.join("src");
    std::fs::create_dir_all(src.join("low")).unwrap();
    std::fs::write(src.join("high.rs"), "use crate::low::X;\n").unwrap();
    std::fs::write(
        src.join("low/mod.rs"),
        "// crate::high in a comment is not an edge\nuse crate::high::Y;\n#[cfg(test)]\nmod tests { use crate::high::Z; }\n",
    )
    .unwrap();
    std::fs::write(src.join("stray.rs"), "").unwrap();
    let bad = violations(&src, &[&["low"], &["high"]]);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(bad.len(), 2, "{bad:#?}");
    assert!(
        bad[0].contains("`low` (layer 0) imports `high` (layer 1)"),
        "{}",
        bad[0]
    );
    assert!(bad[1].contains("module `stray` has no layer"), "{}", bad[1]);
}
