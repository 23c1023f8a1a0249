//! Indian mobile numbers: parsed once at the edge into a type that cannot be wrong.
//!
//! Parsing is the `phonenumber` crate's (libphonenumber's rules for national prefixes, `+91`,
//! `0091`, spaces and dashes); on top of it we keep the rule of DESIGN.md: ten national digits
//! starting with 6–9, and refuse what libphonenumber's metadata knows to be a landline or a
//! special-rate number. We deliberately do not require the metadata to *know* the number: a
//! newly allocated mobile series missing from the bundled metadata would lock real people out,
//! and the SMS provider rejects numbers that do not exist anyway.

use std::fmt;

/// Longest input we look at; longer is refused before any parsing (DESIGN: phone 64 bytes).
pub const MAX_INPUT_BYTES: usize = 64;

/// An Indian mobile number in E.164 (`+919876543210`). Only [`PhoneNumber::parse`] makes one.
///
/// It has no `Display`: use [`PhoneNumber::masked`] for logs and [`PhoneNumber::as_e164`] where
/// the full number is meant to go (the database, the SMS provider, the caller's own response).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

/// Why a number was refused, in words a person understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("enter a mobile number")]
    Empty,
    #[error("the mobile number is too long")]
    TooLong,
    #[error(
        "use only digits, spaces, dashes, dots, brackets and a leading +91 in the mobile number"
    )]
    BadCharacters,
    #[error("only Indian (+91) mobile numbers are supported")]
    NotIndian,
    #[error("an Indian mobile number has 10 digits and starts with 6, 7, 8 or 9")]
    NotAMobile,
    /// Well-formed, but the numbering plan says it is a landline or a special number.
    #[error("this is not a mobile number; enter a number that can receive SMS")]
    Landline,
}

impl PhoneNumber {
    /// Accepts `9876543210`, `+919876543210`, `+91 98765-43210`, `09876543210` and the like.
    pub fn parse(raw: &str) -> Result<Self, PhoneError> {
        if raw.len() > MAX_INPUT_BYTES {
            return Err(PhoneError::TooLong);
        }
        let trimmed = raw.trim_matches(|c: char| c == ' ' || c == '\t');
        if trimmed.is_empty() {
            return Err(PhoneError::Empty);
        }
        // ASCII only: libphonenumber would happily read Arabic-Indic or fullwidth digits, and a
        // number that looks different from what we store invites confusion and spoofing.
        let allowed = |c: char| c.is_ascii_digit() || matches!(c, ' ' | '-' | '(' | ')' | '.');
        let body = trimmed.strip_prefix('+').unwrap_or(trimmed);
        if !body.chars().all(allowed) || !body.chars().any(|c| c.is_ascii_digit()) {
            return Err(PhoneError::BadCharacters);
        }
        let digits: String = body.chars().filter(char::is_ascii_digit).collect();
        // Decide national vs international ourselves: libphonenumber would read a ten-digit
        // national number that happens to start with 91 as "+91" plus eight digits.
        let national = if trimmed.starts_with('+') {
            let parsed = phonenumber::parse(None, trimmed).map_err(|_| PhoneError::NotAMobile)?;
            if parsed.code().value() != 91 {
                return Err(PhoneError::NotIndian);
            }
            if parsed.national().zeros() != 0 || parsed.extension().is_some() {
                return Err(PhoneError::NotAMobile);
            }
            parsed.national().value().to_string()
        } else {
            match digits.len() {
                10 => digits,
                11 if digits.starts_with('0') => digits[1..].to_owned(),
                12 if digits.starts_with("91") => digits[2..].to_owned(),
                14 if digits.starts_with("0091") => digits[4..].to_owned(),
                _ => return Err(PhoneError::NotAMobile),
            }
        };
        if national.len() != 10 || !matches!(national.as_bytes()[0], b'6'..=b'9') {
            return Err(PhoneError::NotAMobile);
        }
        let e164 = format!("+91{national}");
        let parsed = phonenumber::parse(None, &e164).map_err(|_| PhoneError::NotAMobile)?;
        // Landlines such as Bengaluru's 080 also have ten digits starting with 8: refuse what
        // the metadata knows is not a mobile, but let unknown (newly allocated) ranges through.
        use phonenumber::Type;
        use phonenumber::metadata::DATABASE;
        if !matches!(
            parsed.number_type(&DATABASE),
            Type::Mobile | Type::FixedLineOrMobile | Type::Unknown
        ) {
            return Err(PhoneError::Landline);
        }
        Ok(Self(e164))
    }

    pub fn as_e164(&self) -> &str {
        &self.0
    }

    /// `+91******3210`: the only form that may reach a log line.
    pub fn masked(&self) -> Masked<'_> {
        Masked(&self.0)
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.masked())
    }
}

/// Display form of a phone number for logs: country code and last four digits.
pub struct Masked<'a>(&'a str);

impl fmt::Display for Masked<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let keep = 4.min(s.len());
        let head = if s.starts_with("+91") { "+91" } else { "" };
        let hidden = s.len().saturating_sub(keep + head.len());
        write!(f, "{head}{}{}", "*".repeat(hidden), &s[s.len() - keep..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(raw: &str) -> String {
        PhoneNumber::parse(raw)
            .unwrap_or_else(|e| panic!("{raw:?} refused: {e}"))
            .as_e164()
            .to_owned()
    }

    #[test]
    fn the_design_forms_all_normalise_to_e164() {
        for raw in [
            "9876543210",
            "+919876543210",
            "+91 98765-43210",
            "09876543210",
            " 98765 43210 ",
            "+91 (98765) 43210",
            "0091 98765 43210",
            "919876543210",
            "+91-98765-43210",
        ] {
            assert_eq!(ok(raw), "+919876543210", "{raw:?}");
        }
    }

    #[test]
    fn mobiles_start_with_six_to_nine() {
        assert_eq!(ok("6000000000"), "+916000000000");
        for raw in ["5876543210", "1234567890", "+91 22 2345 6789"] {
            assert_eq!(
                PhoneNumber::parse(raw),
                Err(PhoneError::NotAMobile),
                "{raw:?}"
            );
        }
        // Ten digits from 6-9, but the numbering plan says landline: a message that says so.
        assert_eq!(PhoneNumber::parse("08041234567"), Err(PhoneError::Landline));
    }

    #[test]
    fn a_ten_digit_number_starting_with_91_is_national() {
        assert_eq!(ok("9123456789"), "+919123456789");
        assert_eq!(ok("91234 56789"), "+919123456789");
    }

    #[test]
    fn wrong_lengths_are_not_mobiles() {
        for raw in ["987654321", "98765432101", "+9198765432", "1", "0"] {
            assert!(PhoneNumber::parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn other_countries_are_refused_by_name() {
        assert_eq!(
            PhoneNumber::parse("+1 415 555 2671"),
            Err(PhoneError::NotIndian)
        );
        assert_eq!(
            PhoneNumber::parse("+44 7911 123456"),
            Err(PhoneError::NotIndian)
        );
    }

    #[test]
    fn empty_and_blank_are_empty() {
        assert_eq!(PhoneNumber::parse(""), Err(PhoneError::Empty));
        assert_eq!(PhoneNumber::parse("   "), Err(PhoneError::Empty));
    }

    #[test]
    fn unicode_digits_letters_and_nul_are_refused() {
        for raw in [
            "९८७६५४३२१०",           // Devanagari digits
            "٩٨٧٦٥٤٣٢١٠",           // Arabic-Indic digits
            "９８７６５４３２１０", // fullwidth
            "98765\u{0}43210",
            "98765abcde",
            "+91 98765 43210 ext 5",
            "++919876543210",
            "-",
        ] {
            assert_eq!(
                PhoneNumber::parse(raw),
                Err(PhoneError::BadCharacters),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn input_longer_than_the_cap_is_refused_before_parsing() {
        let raw = "9".repeat(MAX_INPUT_BYTES + 1);
        assert_eq!(PhoneNumber::parse(&raw), Err(PhoneError::TooLong));
    }

    #[test]
    fn masking_keeps_only_the_country_code_and_last_four() {
        let p = PhoneNumber::parse("9876543210").unwrap();
        assert_eq!(p.masked().to_string(), "+91******3210");
        assert_eq!(format!("{p:?}"), "PhoneNumber(+91******3210)");
    }
}
