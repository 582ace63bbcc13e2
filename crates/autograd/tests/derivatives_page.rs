//! `docs/derivatives.md` lists every primitive as the declaration table does: this test renders
//! the table's rows and compares them with the page (set `UPDATE_DERIVATIVES=1` to rewrite the
//! page's table from the declarations).

use autograd::PrimitiveKind;

const START: &str = "<!-- primitives:start -->\n";
const END: &str = "<!-- primitives:end -->";

fn rendered() -> String {
    let mut table = String::from(
        "| op | forward | gradient for each input | tangent | kink / special convention | file |\n|---|---|---|---|---|---|\n",
    );
    for kind in PrimitiveKind::ALL {
        let [forward, gradient, tangent, convention, file] = kind.derivative_row();
        table.push_str(&format!(
            "| `{}` | {forward} | {gradient} | {tangent} | {convention} | `{file}` |\n",
            kind.name()
        ));
    }
    table
}

#[test]
fn the_derivative_page_lists_the_declared_primitives() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/derivatives.md");
    let page = std::fs::read_to_string(path).unwrap();
    let start = page.find(START).expect("the start marker") + START.len();
    let end = page.find(END).expect("the end marker");
    let expected = rendered();
    if std::env::var_os("UPDATE_DERIVATIVES").is_some() {
        let updated = format!("{}{expected}{}", &page[..start], &page[end..]);
        std::fs::write(path, updated).unwrap();
        return;
    }
    assert_eq!(
        &page[start..end],
        expected,
        "docs/derivatives.md is out of date: run UPDATE_DERIVATIVES=1 cargo test -p autograd --test derivatives_page"
    );
}
