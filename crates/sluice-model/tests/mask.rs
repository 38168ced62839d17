//! Property tests of [`SecretMask`]: whatever the secrets and however they overlap or span
//! lines in a text, no part of any occurrence survives masking, and nothing else is touched.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use sluice_model::{Capture, MASK, SecretMask};

/// Which bytes of `text` belong to some occurrence of some secret, found the slow obvious way.
fn covered(text: &[u8], secrets: &[String]) -> Vec<bool> {
    let mut covered = vec![false; text.len()];
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        let s = secret.as_bytes();
        for start in 0..text.len() {
            if text[start..].starts_with(s) {
                covered[start..start + s.len()]
                    .iter_mut()
                    .for_each(|c| *c = true);
            }
        }
    }
    covered
}

/// Texts and secrets over a small alphabet (with line breaks), so secrets overlap each other
/// and the text often; the text is built from pieces that are often secrets.
fn case() -> impl Strategy<Value = (Vec<String>, String)> {
    let secret = "[ab\nc]{1,6}";
    prop::collection::vec(secret, 1..4).prop_flat_map(|secrets| {
        let piece = prop_oneof![
            "[ab\ncx ]{0,4}",
            prop::sample::select(secrets.clone()),
            prop::sample::select(secrets.clone()).prop_map(|s| s[1..].to_string()),
        ];
        let text = prop::collection::vec(piece, 0..8).prop_map(|p| p.concat());
        (Just(secrets), text)
    })
}

proptest! {
    #[test]
    fn no_part_of_a_secret_survives_and_nothing_else_changes((secrets, text) in case()) {
        let masked = SecretMask::new(secrets.clone()).mask(&text);
        for secret in &secrets {
            prop_assert!(!masked.contains(secret.as_str()), "{secret:?} in {masked:?}");
        }
        // What is left between the masks is exactly the bytes no occurrence covers, in order,
        // and each maximal covered run is one mask.
        let cover = covered(text.as_bytes(), &secrets);
        let mut expected = String::new();
        for (i, ch) in text.char_indices() {
            if cover[i] {
                if i == 0 || !cover[i - 1] {
                    expected.push_str(MASK);
                }
            } else {
                expected.push(ch);
            }
        }
        prop_assert_eq!(masked, expected);
    }

    #[test]
    fn a_capture_cut_anywhere_in_a_secret_shows_none_of_it(
        secret in "[a-z0-9]{6,12}",
        cut in 2usize..5,
        before in "[ x]{0,6}",
        after in "[ x]{0,6}",
    ) {
        let mask = SecretMask::new([secret.clone()]);
        let cut = cut.min(secret.len() - 2);
        let capture = Capture {
            head: format!("{before}{}", &secret[..cut]),
            tail: format!("{}{after}", &secret[cut..]),
            bytes: 10_000,
            sha256: String::new(),
            truncated: true,
        };
        let out = mask.mask_capture(&capture);
        prop_assert!(!out.head.contains(&secret[..cut]), "{:?}", out.head);
        prop_assert!(!out.tail.contains(&secret[cut..]), "{:?}", out.tail);
    }
}
