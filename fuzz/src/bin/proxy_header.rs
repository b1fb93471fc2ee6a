//! AFL++ target; the logic is `tests::fuzz::proxy_header`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::proxy_header(data));
}
