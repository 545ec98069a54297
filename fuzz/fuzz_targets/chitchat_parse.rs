//! Parses arbitrary bytes as a chitchat corpus (plain or gzip): must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(conversations) = tresor_cli::chitchat::parse(data) {
        for c in conversations {
            for (i, m) in c.messages.iter().enumerate() {
                assert_eq!(m.id, format!("{}:{i}", c.id));
                assert_eq!(m.conversation_id, c.id);
            }
        }
    }
});
