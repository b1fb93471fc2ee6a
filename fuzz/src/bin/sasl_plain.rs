//! AFL++ target; the logic is `tests::fuzz::sasl_plain`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::sasl_plain(data));
}
