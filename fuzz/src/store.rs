//! Target `store_load`: the saved-network file as a load reads it (size limit, JSON, every field, the
//! checksum), through `wifiprov_store::decode_for_fuzzing`.
//!
//! Asserted: a list that loads respects its own rules (no more networks than its capacity, no SSID twice); the
//! bytes a save of it would write load again to the same bytes (the format round-trips); no error message shows
//! anything from the file: the seeds put the lock character `🔒` into strings (and a valid passphrase cannot
//! hold it), and it must never come back out in an error; the `Debug` of a loaded list shows no passphrase
//! (checked for passphrases with a `~`, when no SSID, which may be shown, has one).

use wifiprov_proto::ErrorChain;

const LOCK: &str = "🔒";

/// Runs one input.
pub fn run(data: &[u8]) {
    match wifiprov_store::decode_for_fuzzing(data) {
        Err(error) => {
            let text = ErrorChain(&error).to_string();
            assert!(!text.contains(LOCK), "an error message quotes the file: {text}");
            let debug = format!("{error:?}");
            assert!(!debug.contains(LOCK), "an error's Debug quotes the file: {debug}");
        }
        Ok((list, encoded)) => {
            assert!(list.len() <= list.capacity(), "{} networks in a list of {}", list.len(), list.capacity());
            for (i, network) in list.iter().enumerate() {
                assert!(list.iter().skip(i + 1).all(|other| other.ssid() != network.ssid()), "an SSID is saved twice");
            }
            let (again, encoded_again) = wifiprov_store::decode_for_fuzzing(&encoded)
                .unwrap_or_else(|e| panic!("a saved list does not load: {e}"));
            assert_eq!(again.len(), list.len());
            assert_eq!(again.capacity(), list.capacity());
            assert_eq!(*encoded_again, *encoded, "saving a loaded list twice gives different files");
            let ssids_show_marker = list.iter().any(|n| n.ssid().as_bytes().contains(&b'~'));
            if !ssids_show_marker {
                let debug = format!("{list:?}");
                assert!(!debug.contains('~'), "the Debug of a loaded list shows a passphrase: {debug}");
            }
        }
    }
}
