//! Replays every seed and every crash the fuzzers ever found
//! (`fuzz/corpus/<target>/`, `fuzz/regressions/<target>/`) through the fuzz
//! targets without AFL, so the default test run keeps fixed crashes fixed and
//! catches a parser change that breaks a target's property.

use std::path::Path;

#[test]
fn every_corpus_and_regression_input_passes_its_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut ran = 0;
    let mut failed = Vec::new();
    for (name, target) in tests::fuzz::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let dir = root.join(kind).join(name);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let path = e.path();
                let data = std::fs::read(&path).unwrap();
                inputs += 1;
                if std::panic::catch_unwind(|| target(&data)).is_err() {
                    failed.push(path.display().to_string());
                }
            }
        }
        assert!(
            inputs > 0,
            "fuzz target {name} has no seed corpus in fuzz/corpus/{name}"
        );
        ran += inputs;
    }
    assert!(
        failed.is_empty(),
        "inputs that fail their target: {failed:#?}"
    );
    assert!(ran > 0);
}
