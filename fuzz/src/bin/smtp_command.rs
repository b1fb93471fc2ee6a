//! AFL++ target; the logic is `tests::fuzz::smtp_command`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::smtp_command(data));
}
