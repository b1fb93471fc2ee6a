//! AFL++ target; the logic is `tests::fuzz::pop3_command`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::pop3_command(data));
}
