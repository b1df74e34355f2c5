//! The README's generated blocks must match what the binary prints today.
//! Refresh them with `WARDEN_UPDATE_README=1 cargo test -p warden --test readme`.

mod common;

use common::{ok_stdout, warden};

fn blocks() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("warden init --stdout", vec!["init", "--stdout"]),
        (
            "warden plan --backend bastille",
            vec!["plan", "--backend", "bastille"],
        ),
    ]
}

#[test]
fn readme_blocks_are_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
    let mut readme = std::fs::read_to_string(path).unwrap();
    let update = std::env::var_os("WARDEN_UPDATE_README").is_some();
    for (label, args) in blocks() {
        let out = ok_stdout(&warden(&args, &[("PATH", "/usr/bin:/bin")]));
        let fence = if label.contains("init") {
            "toml"
        } else {
            "text"
        };
        let want = format!(
            "<!-- BEGIN generated: {label} -->\n```{fence}\n{out}```\n<!-- END generated -->"
        );
        let begin = readme
            .find(&format!("<!-- BEGIN generated: {label} -->"))
            .expect("block start");
        let end = begin
            + readme[begin..]
                .find("<!-- END generated -->")
                .expect("block end")
            + "<!-- END generated -->".len();
        if update {
            readme.replace_range(begin..end, &want);
        } else {
            assert_eq!(&readme[begin..end], want, "README block `{label}` is stale: run WARDEN_UPDATE_README=1 cargo test -p warden --test readme");
        }
    }
    if update {
        std::fs::write(path, readme).unwrap();
    }
}
