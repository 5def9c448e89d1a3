//! Diagnostics that point a person at the exact place of a mistake.
//!
//! Every problem found in a rack or board file becomes a [`Diagnostic`] with the file, line and
//! column (1-based, counted in characters) of the offending key or value, a message that says what
//! is wrong, and what would be valid. Errors make the file unusable; warnings are printed but the
//! rack still loads.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The rack still works, but a person should know (e.g. an even number of voters).
    Warning,
    /// The file cannot be used as it is.
    Error,
}

/// One finding in a configuration file, printed as `FILE:LINE:COL: severity: message`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
    pub severity: Severity,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.col,
            sev,
            self.message
        )
    }
}

/// Collects diagnostics for one source file and turns byte spans into line and column.
#[derive(Debug)]
pub struct Diagnostics<'a> {
    file: &'a Path,
    src: &'a str,
    items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub fn new(file: &'a Path, src: &'a str) -> Self {
        Self {
            file,
            src,
            items: Vec::new(),
        }
    }

    pub fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    pub fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    fn push(&mut self, span: Range<usize>, severity: Severity, message: String) {
        let (line, col) = line_col(self.src, span.start);
        self.items.push(Diagnostic {
            file: self.file.to_path_buf(),
            line,
            col,
            severity,
            message: cut(&message, MAX_MESSAGE),
        });
    }

    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The findings, in file order (errors before warnings at the same place).
    pub fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.items.sort_by(|a, b| {
            (a.line, a.col, std::cmp::Reverse(a.severity)).cmp(&(
                b.line,
                b.col,
                std::cmp::Reverse(b.severity),
            ))
        });
        self.items.dedup();
        self.items
    }
}

/// Longest value a message echoes (in characters); see [`shown`].
pub const MAX_SHOWN: usize = 80;
/// Longest message kept whole: a last guard for values echoed without [`shown`] (serde's own
/// messages quote the value they refused).
const MAX_MESSAGE: usize = 1000;

/// A value as a message echoes it: at most [`MAX_SHOWN`] characters, a longer one cut with `…`,
/// so a 50 MB value in a file does not become a 50 MB message.
pub fn shown(value: &str) -> String {
    cut(value, MAX_SHOWN)
}

fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((end, _)) => format!("{}…", &s[..end]),
    }
}

/// The text of a configuration file, or a diagnostic at the first byte that is not UTF-8 (with
/// the line and column of the valid text before it).
pub fn utf8_text<'a>(file: &Path, bytes: &'a [u8]) -> Result<&'a str, Diagnostic> {
    std::str::from_utf8(bytes).map_err(|e| {
        let good = e.valid_up_to();
        // The prefix is valid UTF-8 by definition of `valid_up_to`.
        let before = std::str::from_utf8(&bytes[..good]).unwrap_or("");
        let (line, col) = line_col(before, good);
        Diagnostic {
            file: file.to_path_buf(),
            line,
            col,
            severity: Severity::Error,
            message: format!(
                "the file is not UTF-8 text (byte {good} is not UTF-8; save it as UTF-8, and write non-ASCII text in a TOML string)"
            ),
        }
    })
}

/// 1-based line and column (in characters) of byte offset `pos` in `src`.
pub fn line_col(src: &str, pos: usize) -> (usize, usize) {
    let pos = floor_char_boundary(src, pos.min(src.len()));
    let before = &src[..pos];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The closest candidate to `word` if it is a plausible typo (edit distance at most 2).
pub fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    candidates
        .iter()
        .map(|c| (edit_distance(word, c), *c))
        .filter(|(d, c)| *d <= 2 && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// A suffix for messages: "; did you mean `x`?" or nothing.
pub fn suggestion(word: &str, candidates: &[&str]) -> String {
    did_you_mean(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one_in_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        // byte 9 is the space after 'b' and 'é' (two bytes, one character)
        assert_eq!(line_col(src, 9), (2, 3));
        assert_eq!(line_col(src, 1000), (3, 1));
    }

    #[test]
    fn long_values_and_messages_are_cut() {
        let long = "x".repeat(5000);
        assert_eq!(shown(&long).chars().count(), MAX_SHOWN + 1);
        assert!(shown(&long).ends_with('…'));
        assert_eq!(shown("short"), "short");
        assert_eq!(shown(&"é".repeat(100)).chars().count(), MAX_SHOWN + 1);
        let mut d = Diagnostics::new(Path::new("f"), "");
        d.error(0..0, long);
        assert!(d.into_sorted()[0].message.chars().count() <= MAX_MESSAGE + 1);
    }

    #[test]
    fn invalid_utf8_is_placed_by_line_and_column() {
        let d = utf8_text(Path::new("rack.toml"), b"a = 1\nbb = \"\xff\"\n").unwrap_err();
        assert_eq!(
            d.to_string().split(": error:").next(),
            Some("rack.toml:2:7")
        );
        assert_eq!(utf8_text(Path::new("f"), b"ok").unwrap(), "ok");
    }

    #[test]
    fn suggests_close_words_only() {
        assert_eq!(did_you_mean("mastr", &["master", "worker"]), Some("master"));
        assert_eq!(did_you_mean("zzzzzz", &["master", "worker"]), None);
    }
}
