//! [`str_enum!`]: the option values the portal client (`CursorMode`, `SourceType`) and the
//! recorder (`Container`, `Codec`, `EncoderChoice`) name by a word, with one parser and one
//! error for all of them. A crate of its own because those two share no other dependency.

use std::fmt;

/// A value that is none of an enum's names; says what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// What the value is (`container`, `cursor mode`).
    pub what: &'static str,
    pub value: String,
    /// The names, each followed by a space.
    pub expected: &'static str,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid {} '{}': expected one of {}",
            self.what, self.value, self.expected
        )
    }
}

impl std::error::Error for ParseError {}

/// `str_enum!(Codec, "codec", { H264 => "h264", … })` on an enum declared beside it: `ALL` (in
/// declaration order of the list), `as_str`, `Display` (the name) and `FromStr` (the name in
/// any case, else [`ParseError`]).
#[macro_export]
macro_rules! str_enum {
    ($ty:ident, $what:literal, { $($variant:ident => $s:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $s),+ }
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = $crate::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.to_ascii_lowercase().as_str() {
                    $($s => Ok($ty::$variant),)+
                    _ => Err($crate::ParseError {
                        what: $what,
                        value: s.to_string(),
                        expected: concat!($($s, " "),+),
                    }),
                }
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Fruit {
        Apple,
        Pear,
    }
    str_enum!(Fruit, "fruit", { Apple => "apple", Pear => "pear" });

    #[test]
    fn names_parse_and_errors() {
        assert_eq!(Fruit::ALL, &[Fruit::Apple, Fruit::Pear]);
        assert_eq!(Fruit::Pear.to_string(), "pear");
        assert_eq!("APPLE".parse::<Fruit>(), Ok(Fruit::Apple));
        let e = "plum".parse::<Fruit>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid fruit 'plum': expected one of apple pear "
        );
    }
}
