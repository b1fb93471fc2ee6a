//! AFL++ target; the logic is `tests::fuzz::address`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::address(data));
}
