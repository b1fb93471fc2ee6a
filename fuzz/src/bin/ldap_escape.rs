//! AFL++ target; the logic is `tests::fuzz::ldap_escape`.
fn main() {
    afl::fuzz!(|data: &[u8]| tests::fuzz::ldap_escape(data));
}
