//! AFL++ target; the logic is `tests::fuzz::smtp_bdat`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::smtp_bdat(data));
}
