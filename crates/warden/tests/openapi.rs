//! The OpenAPI document is exact: schemathesis (PyPI; `scripts/test` installs it and runs this test with
//! `--ignored`) drives a real `warden serve` from its `/openapi.json` and finds no schema-valid request
//! rejected, no 5xx, no undocumented status or response shape, following the links from `POST /v1/turns` to
//! the turn's own routes. The server has pi installed (the tests' shared install), so prompt turns are accepted
//! like argv turns. Bounded and repeatable: a fixed number of examples per operation, generated
//! deterministically.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{Netns, Serve};

#[test]
#[ignore = "needs schemathesis: scripts/test installs it and runs this with --ignored"]
fn schemathesis_finds_the_api_exactly_as_documented() {
    let ns = Netns::new();
    // pi is installed (as `warden setup --step agent` leaves it), so prompt turns are accepted.
    let state = common::state_with_pi();
    // PATH names an empty directory: no node, so an accepted prompt turn fails at once (`infrastructure`)
    // instead of starting pi, and `?wait=true` answers quickly. What the API returns for it is what is checked.
    let empty = state.path().join("empty-path");
    std::fs::create_dir(&empty).unwrap();
    let serve = Serve::start(&ns, state.path(), &[("PATH", empty.to_str().unwrap())]);
    let mut argv = ns.prefix();
    argv.extend(
        [
            "schemathesis",
            "run",
            &format!("{}/openapi.json", serve.base),
            "--header",
            &format!("Authorization: Bearer {}", serve.token),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,positive_data_acceptance",
            "--mode",
            "positive",
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "10",
            "--generation-deterministic",
            "--workers",
            "2",
            "--request-timeout",
            "30",
            "--no-shrink",
            "--output-truncate",
            "false",
        ]
        .map(String::from),
    );
    // schemathesis is installed by scripts/test (pip install schemathesis).
    let out = common::output_within(
        Command::new(&argv[0]).args(&argv[1..]).env("NO_COLOR", "1"),
        Duration::from_secs(900),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        serve.log_text()
    );
    // It ran every operation, and the stateful phase followed the links.
    assert!(report.contains("Tested: 9"), "{report}");
    assert!(report.contains("Stateful"), "{report}");
}
