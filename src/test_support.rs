//! What the crate's own tests share.

/// A test that cannot run on this machine (not root, a tool missing) says why and passes, except
/// under `MOOSEHERD_NO_SKIP=1` (`scripts/test.sh`, CI), where a missing set-up step must fail, as
/// in `tests/it`. Returns `None` so a fixture constructor can `return cannot_run(..)`.
pub fn cannot_run<T>(test: &str, why: &str) -> Option<T> {
    if std::env::var("MOOSEHERD_NO_SKIP").is_ok_and(|v| v == "1") {
        panic!("test {test} cannot run: {why} (MOOSEHERD_NO_SKIP=1)");
    }
    eprintln!("SKIPPED test {test}: {why}");
    None
}
