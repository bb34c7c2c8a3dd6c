//! What is wrong with a lockfile that could not be read, and where.

use crate::version::shown;

/// A lockfile that could not be read, with the 1-based line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub kind: ParseErrorKind,
}

/// What is wrong with a lockfile line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    /// The bytes are not UTF-8.
    #[error(
        "the file is not valid UTF-8 text; restore Gemfile.lock from version control or regenerate it with `bundle lock`"
    )]
    InvalidUtf8,
    /// A Git conflict marker starts the line.
    #[error(
        "Git merge-conflict marker; resolve the merge conflict in Gemfile.lock (or run `bundle lock`)"
    )]
    MergeConflict,
    /// A control character (tab, NUL, stray carriage return…) inside a known section.
    #[error(
        "`{}` contains a control character; Bundler writes plain text, so regenerate the file with `bundle lock`",
        shown(.0)
    )]
    ControlCharacter(String),
    /// The line does not have the shape its section needs.
    #[error("cannot read `{}`: expected {expected}", shown(text))]
    Malformed {
        /// The offending line.
        text: String,
        /// What the section allows there.
        expected: &'static str,
    },
    /// A gem name with characters RubyGems does not allow.
    #[error(
        "`{}` is not a valid gem name (only ASCII letters, digits, `.`, `_` and `-` are allowed; it may not start with `.` or `-` nor contain `..`)",
        shown(.0)
    )]
    BadName(String),
    /// A platform suffix with characters RubyGems does not allow.
    #[error(
        "`{}` is not a valid platform (expected something like `x86_64-linux-gnu` or `arm64-darwin`)",
        shown(.0)
    )]
    BadPlatform(String),
    /// A version or requirement RubyGems would reject (`version.rs` words it).
    #[error(transparent)]
    Version(#[from] crate::version::VersionError),
    /// A checksum that is not `algo=value`, or a sha256 that is not 32 bytes in hex or base64.
    #[error(
        "`{}` is not a valid checksum (expected `sha256=` and 64 hex digits or 44 base64 characters); remove it and run `bundle lock` to record it again",
        shown(.0)
    )]
    BadChecksum(String),
    /// Two different sha256 digests for the same gem.
    #[error(
        "`{full_name}` already has a different sha256 checksum on line {first_line}; remove the wrong one and run `bundle lock`"
    )]
    ConflictingChecksum {
        /// The gem's full name.
        full_name: String,
        /// Where the first digest is.
        first_line: usize,
    },
    /// A gem entry (4 spaces) that is not inside a source's `specs:` list.
    #[error(
        "a gem entry (4-space indent) must come after `  specs:` inside a GEM, GIT, PATH or PLUGIN SOURCE section"
    )]
    SpecOutsideSource,
    /// A dependency (6 spaces) with no gem entry above it.
    #[error(
        "a dependency (6-space indent) must follow the gem entry (4-space indent) it belongs to"
    )]
    DependencyBeforeSpec,
    /// A source option after `  specs:`.
    #[error("source options such as `remote:` must come before `  specs:` in their section")]
    OptionAfterSpecs,
    /// `  specs:` twice in one source.
    #[error("`  specs:` appears twice in one source section")]
    DuplicateSpecsLine,
    /// A source block without a required option.
    #[error("the {section} section starting here has no `{key}:` line before `  specs:`")]
    MissingOption {
        /// The section header.
        section: &'static str,
        /// The missing key.
        key: &'static str,
    },
    /// A single-valued option given twice.
    #[error("`{key}:` is given twice in this {section} section")]
    DuplicateOption {
        /// The section header.
        section: &'static str,
        /// The repeated key.
        key: String,
    },
    /// A source block that never opens its `specs:` list.
    #[error(
        "the {section} section starting here has no `  specs:` line; the file looks truncated, regenerate it with `bundle lock`"
    )]
    MissingSpecs {
        /// The section header.
        section: &'static str,
    },
    /// The same gem, version and platform locked twice.
    #[error(
        "`{full_name}` is already locked on line {first_line}; remove the duplicate or run `bundle lock`"
    )]
    DuplicateSpec {
        /// The gem's full name.
        full_name: String,
        /// Where it first appears.
        first_line: usize,
    },
    /// The same gem listed twice under DEPENDENCIES.
    #[error(
        "`{name}` is already listed under DEPENDENCIES on line {first_line}; remove the duplicate or run `bundle lock`"
    )]
    DuplicateDependency {
        /// The gem name.
        name: String,
        /// Where it first appears.
        first_line: usize,
    },
    /// RUBY VERSION or BUNDLED WITH given more than one value.
    #[error("{section} already has a value; keep only one")]
    DuplicateValue {
        /// The section header.
        section: &'static str,
    },
}
