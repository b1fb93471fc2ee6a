//! AFL++ target; the logic is `tests::fuzz::mime`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::mime(data));
}
