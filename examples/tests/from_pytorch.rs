//! docs/from-pytorch.md stays true: its listings are the two scripts, and the port is at most
//! 1.3x the PyTorch script's lines of code, as the page says.

use std::path::Path;

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Lines that are neither blank nor comments (`#` in Python, `//` in Rust), the count the page
/// states (`grep -v '^\s*$' | grep -v '^\s*#' | grep -v '^\s*//' | wc -l`).
fn code_lines(text: &str) -> usize {
    text.lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("//"))
        .count()
}

/// The body of the first fenced block of `language` after `marker`.
fn listing<'a>(page: &'a str, marker: &str, language: &str) -> &'a str {
    let start = page
        .find(marker)
        .unwrap_or_else(|| panic!("no '{marker}' in the page"));
    let fence = format!("```{language}\n");
    let open = start + page[start..].find(&fence).expect("a listing") + fence.len();
    let close = open + page[open..].find("\n```").expect("a closed listing");
    &page[open..=close]
}

#[test]
fn the_port_is_within_1_3_times_the_pytorch_lines_and_the_page_says_so() {
    let (python, rust) = (
        read("docs/from-pytorch/train.py"),
        read("examples/examples/from_pytorch.rs"),
    );
    let (py, rs) = (code_lines(&python), code_lines(&rust));
    let ratio = rs as f64 / py as f64;
    assert!(
        ratio <= 1.3,
        "the port has {rs} lines, the PyTorch script {py}: {ratio:.2}x"
    );
    let page = read("docs/from-pytorch.md");
    let row = format!("| {py} | {rs} ({ratio:.2}x) |");
    assert!(
        page.contains(&row),
        "the page's line-count row should read '{row}'"
    );
    let guide = read("docs/guide.md");
    assert!(
        guide.contains(&format!("in {ratio:.2}x its lines")),
        "docs/guide.md quotes the ratio"
    );
    assert_eq!(listing(&page, "### PyTorch", "python"), python);
    assert_eq!(listing(&page, "### This library", "rust"), rust);
}
