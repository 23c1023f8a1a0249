//! India's DLT rules for the text of an SMS: it must match the registered template, where
//! each `{#var#}` stands for 1–30 characters, and it should fit the configured number of SMS
//! parts (160 GSM-7 characters for one part, 153 per part when split; 70 / 67 in UCS-2).

/// The most characters one `{#var#}` slot may stand for (TRAI's DLT rule).
pub const MAX_VAR_CHARS: usize = 30;

/// The slot values if `text` matches the registered `template`, else `None`.
pub fn match_template(template: &str, text: &str) -> Option<Vec<String>> {
    let literals: Vec<&str> = template.split("{#var#}").collect();
    let rest = text.strip_prefix(literals[0])?;
    let mut vars = Vec::new();
    let mut failed = std::collections::HashSet::new();
    fill(
        &literals[1..],
        text,
        text.len() - rest.len(),
        &mut vars,
        &mut failed,
    )
    .then_some(vars)
}

/// Matches `text[at..]` against `var literal var literal …`, trying shorter slot values first.
/// `failed` remembers (slots left, offset) pairs that cannot match, so the search stays
/// polynomial however many slots the template has.
fn fill(
    literals: &[&str],
    text: &str,
    at: usize,
    vars: &mut Vec<String>,
    failed: &mut std::collections::HashSet<(usize, usize)>,
) -> bool {
    let Some((literal, later)) = literals.split_first() else {
        return at == text.len();
    };
    if failed.contains(&(literals.len(), at)) {
        return false;
    }
    let rest = &text[at..];
    // A slot stands for 1..=30 characters: never empty.
    let ends: Vec<usize> = rest
        .char_indices()
        .map(|(i, _)| i)
        .skip(1)
        .chain([rest.len()])
        .filter(|&e| e > 0)
        .take(MAX_VAR_CHARS)
        .collect();
    for end in ends {
        if rest[end..].starts_with(literal) {
            vars.push(rest[..end].to_owned());
            if fill(later, text, at + end + literal.len(), vars, failed) {
                return true;
            }
            vars.pop();
        }
    }
    failed.insert((literals.len(), at));
    false
}

/// GSM 03.38 basic character set (each one septet); the extension characters cost two.
const GSM7: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXT: &str = "^{}\\[~]|€\u{c}";

/// How many SMS parts `text` takes.
pub fn segments(text: &str) -> usize {
    let septets: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM7.contains(c) {
                Some(1)
            } else if GSM7_EXT.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (len, single, multi) = match septets {
        Some(n) => (n, 160, 153),
        None => (text.encode_utf16().count(), 70, 67),
    };
    if len <= single {
        1
    } else {
        len.div_ceil(multi)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = "{#var#} is your {#var#} sign-in code. It expires in {#var#} min.";

    #[test]
    fn a_matching_text_yields_its_slot_values() {
        let v = match_template(
            T,
            "123456 is your Arogya Vault sign-in code. It expires in 10 min.",
        )
        .unwrap();
        assert_eq!(v, vec!["123456", "Arogya Vault", "10"]);
    }

    #[test]
    fn changed_literals_empty_or_long_slots_do_not_match() {
        assert!(
            match_template(
                T,
                "123456 is your Arogya Vault login code. It expires in 10 min."
            )
            .is_none()
        );
        assert!(
            match_template(T, " is your X sign-in code. It expires in 10 min.").is_none(),
            "empty slot"
        );
        let long = "x".repeat(31);
        assert!(
            match_template(
                T,
                &format!("{long} is your X sign-in code. It expires in 10 min.")
            )
            .is_none()
        );
        assert!(
            match_template(T, "123456 is your X sign-in code. It expires in 10 min. PS").is_none(),
            "trailing text"
        );
    }

    #[test]
    fn slot_values_may_contain_the_next_literal_start() {
        let v = match_template("code {#var#} ok", "code a ok b ok").unwrap();
        assert_eq!(v, vec!["a ok b"]);
    }

    #[test]
    fn a_slot_is_never_empty_and_many_slots_stay_fast() {
        assert!(match_template("code {#var#}", "code ").is_none());
        let t = "{#var#}{#var#}{#var#}{#var#}{#var#}{#var#}{#var#}{#var#}!";
        // Unmemoised backtracking would try ~30^8 splits here (hours); memoised it is instant.
        assert!(match_template(t, &"x".repeat(150)).is_none());
        assert!(match_template(t, &format!("{}!", "x".repeat(100))).is_some());
    }

    #[test]
    fn segments_count_gsm7_and_ucs2() {
        assert_eq!(segments(&"a".repeat(160)), 1);
        assert_eq!(segments(&"a".repeat(161)), 2);
        assert_eq!(segments(&"a".repeat(306)), 2);
        assert_eq!(segments(&"a".repeat(307)), 3);
        assert_eq!(
            segments(&"€".repeat(80)),
            1,
            "extension chars cost two septets"
        );
        assert_eq!(segments(&"€".repeat(81)), 2);
        assert_eq!(segments(&"क".repeat(70)), 1, "Devanagari is UCS-2");
        assert_eq!(segments(&"क".repeat(71)), 2);
    }
}
