//! AFL++ target; the logic is `tests::fuzz::spool_journal`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::spool_journal(data));
}
