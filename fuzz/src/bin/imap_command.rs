//! AFL++ target; the logic is `tests::fuzz::imap_command`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::imap_command(data));
}
