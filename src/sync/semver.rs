//! Tag filters by semantic version range (`images-by-semver`), with the semantics skopeo sync
//! gives them: those of Masterminds/semver v3's constraints, which differ from Cargo's in ways
//! a mirror config notices (a bare `1.2` means `1.2.x`, not Cargo's `^1.2`; `||`, hyphen ranges and
//! `!=` exist; a constraint without a pre-release excludes pre-release tags; tags are read
//! loosely, so `v1.2` and `3.14` are versions 1.2.0 and 3.14.0).
//!
//! Versions, their pre-release identifiers and their ordering are the `semver` crate's; the
//! constraint grammar and the meaning of each operator follow Masterminds' `constraints.go`
//! (the test table below is its own).

use std::cmp::Ordering;
use std::sync::LazyLock;

use regex::Regex;
use semver::{BuildMetadata, Prerelease, Version};

/// A `images-by-semver` value that is not a constraint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SemverError {
    /// The text is not a constraint (Masterminds' "improper constraint").
    #[error("improper constraint: {0:?}")]
    Improper(String),
    /// A version inside the constraint is invalid (a leading zero in a pre-release number, …).
    #[error("invalid version {version:?} in the constraint: {why}")]
    Version {
        /// The version as written.
        version: String,
        /// Why it is invalid.
        why: String,
    },
}

const OPS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";
// Masterminds' cvRegex, '|' inside the classes included (a quirk of theirs, kept).
const CV: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";

#[allow(clippy::expect_used)] // static patterns, covered by the tests below
fn re(pattern: String) -> Regex {
    Regex::new(&pattern).expect("static regex")
}

static CONSTRAINT: LazyLock<Regex> = LazyLock::new(|| re(format!(r"^\s*({OPS})\s*({CV})\s*$")));
static RANGE: LazyLock<Regex> = LazyLock::new(|| re(format!(r"\s*({CV})\s+-\s+({CV})\s*")));
static FIND: LazyLock<Regex> = LazyLock::new(|| re(format!(r"({OPS})\s*({CV})")));
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    re(format!(
        r"^(\s*({OPS})\s*({CV})\s*)((?:\s+|,\s*)({OPS})\s*({CV})\s*)*$"
    ))
});
static LOOSE_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$".to_string())
});

/// Reads a version as Masterminds' `NewVersion` does: an optional `v`, one to three numbers
/// (missing ones are 0, leading zeros allowed), then an optional pre-release and build.
pub fn parse_version(s: &str) -> Result<Version, String> {
    let m = LOOSE_VERSION
        .captures(s)
        .ok_or_else(|| "not a semantic version".to_string())?;
    let num = |i: usize| -> Result<u64, String> {
        match m.get(i) {
            None => Ok(0),
            Some(g) => g
                .as_str()
                .trim_start_matches('.')
                .parse::<u64>()
                .map_err(|e| format!("{:?}: {e}", g.as_str())),
        }
    };
    let mut v = Version::new(num(1)?, num(2)?, num(3)?);
    if let Some(p) = m.get(5) {
        v.pre = Prerelease::new(p.as_str()).map_err(|e| e.to_string())?;
    }
    if let Some(b) = m.get(8) {
        v.build = BuildMetadata::new(b.as_str()).map_err(|e| e.to_string())?;
    }
    Ok(v)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    TildeOrEqual,
    NotEqual,
    Greater,
    Less,
    GreaterEqual,
    LessEqual,
    Tilde,
    Caret,
}

#[derive(Debug, Clone)]
struct Constraint {
    op: Op,
    con: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

#[derive(Debug, Clone)]
struct Group {
    constraints: Vec<Constraint>,
    has_pre: bool,
}

/// A parsed version range: `>=1.2, <2 || ~3.1`.
#[derive(Debug, Clone)]
pub struct Constraints {
    text: String,
    groups: Vec<Group>,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn rewrite_range(s: &str) -> String {
    let mut out = s.to_string();
    for c in RANGE.captures_iter(s) {
        let (Some(whole), Some(a), Some(b)) = (c.get(0), c.get(1), c.get(11)) else {
            continue;
        };
        out = out.replacen(
            whole.as_str(),
            &format!(">= {}, <= {} ", a.as_str(), b.as_str()),
            1,
        );
    }
    out
}

fn parse_constraint(s: &str) -> Result<Constraint, SemverError> {
    let m = CONSTRAINT
        .captures(s)
        .ok_or_else(|| SemverError::Improper(s.to_string()))?;
    let get = |i: usize| m.get(i).map(|g| g.as_str()).unwrap_or("");
    let op = match get(1) {
        "" | "=" => Op::TildeOrEqual,
        "!=" => Op::NotEqual,
        ">" => Op::Greater,
        "<" => Op::Less,
        ">=" | "=>" => Op::GreaterEqual,
        "<=" | "=<" => Op::LessEqual,
        "~" | "~>" => Op::Tilde,
        "^" => Op::Caret,
        _ => return Err(SemverError::Improper(s.to_string())),
    };
    let (major, minor, patch, pre) = (
        get(3),
        get(4).trim_start_matches('.'),
        get(5).trim_start_matches('.'),
        get(6),
    );
    let (mut dirty, mut minor_dirty, mut patch_dirty) = (false, false, false);
    let version = if is_x(major) || major.is_empty() {
        dirty = true;
        format!("0.0.0{pre}")
    } else if is_x(minor) || minor.is_empty() {
        dirty = true;
        minor_dirty = true;
        format!("{major}.0.0{pre}")
    } else if is_x(patch) || patch.is_empty() {
        dirty = true;
        patch_dirty = true;
        format!("{major}.{minor}.0{pre}")
    } else {
        get(2).to_string()
    };
    let con = parse_version(&version).map_err(|why| SemverError::Version {
        version: get(2).to_string(),
        why,
    })?;
    Ok(Constraint {
        op,
        con,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

impl Constraints {
    /// Parses a constraint as Masterminds' `NewConstraint`.
    pub fn parse(text: &str) -> Result<Constraints, SemverError> {
        let rewritten = rewrite_range(text);
        let mut groups = Vec::new();
        for or in rewritten.split("||") {
            if !VALID.is_match(or) {
                return Err(SemverError::Improper(or.to_string()));
            }
            let mut parts: Vec<&str> = FIND.find_iter(or).map(|m| m.as_str()).collect();
            if parts.is_empty() {
                parts.push(or);
            }
            let constraints = parts
                .into_iter()
                .map(parse_constraint)
                .collect::<Result<Vec<_>, _>>()?;
            let has_pre = constraints.iter().any(|c| !c.con.pre.is_empty());
            groups.push(Group {
                constraints,
                has_pre,
            });
        }
        Ok(Constraints {
            text: text.to_string(),
            groups,
        })
    }

    /// The constraint as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `version` satisfies the constraint.
    pub fn check(&self, version: &Version) -> bool {
        self.groups
            .iter()
            .any(|g| g.constraints.iter().all(|c| c.check(version, g.has_pre)))
    }

    /// Whether a tag, read as a version, satisfies the constraint; a tag that is no version
    /// (`latest`) never does.
    pub fn matches_tag(&self, tag: &str) -> bool {
        parse_version(tag).is_ok_and(|v| self.check(&v))
    }
}

fn cmp(a: &Version, b: &Version) -> Ordering {
    a.cmp_precedence(b)
}

impl Constraint {
    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.con;
        match self.op {
            Op::TildeOrEqual if self.dirty => self.tilde(v),
            Op::TildeOrEqual => cmp(v, c) == Ordering::Equal,
            Op::Tilde => self.tilde(v),
            Op::NotEqual => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    } else if self.minor_dirty {
                        return false;
                    } else if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    } else if self.patch_dirty {
                        if !v.pre.is_empty() || !c.pre.is_empty() {
                            return v.pre != c.pre;
                        }
                        return false;
                    }
                }
                cmp(v, c) != Ordering::Equal
            }
            Op::Greater => {
                if !self.dirty {
                    return cmp(v, c) == Ordering::Greater;
                }
                if v.major > c.major {
                    true
                } else if v.major < c.major || self.minor_dirty {
                    false
                } else if self.patch_dirty {
                    v.minor > c.minor
                } else {
                    cmp(v, c) == Ordering::Greater
                }
            }
            Op::Less => cmp(v, c) == Ordering::Less,
            Op::GreaterEqual => cmp(v, c) != Ordering::Less,
            Op::LessEqual => {
                if !self.dirty {
                    return cmp(v, c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            Op::Caret => {
                if cmp(v, c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
        }
    }

    fn tilde(&self, v: &Version) -> bool {
        let c = &self.con;
        if cmp(v, c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        if v.major != c.major {
            return false;
        }
        v.minor == c.minor || self.minor_dirty
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Masterminds/semver's own TestConstraintsCheck table (constraints_test.go).
    const CASES: &[(&str, &str, bool)] = &[
        ("*", "1.2.3", true),
        ("~0.0.0", "1.2.3", true),
        ("0.x.x", "1.2.3", false),
        ("0.0.x", "1.2.3", false),
        ("0.0.0", "1.2.3", false),
        ("*", "1.2.3", true),
        ("^0.0.0", "1.2.3", false),
        ("= 2.0", "1.2.3", false),
        ("= 2.0", "2.0.0", true),
        ("4.1", "4.1.0", true),
        ("4.1.x", "4.1.3", true),
        ("1.x", "1.4", true),
        ("!=4.1", "4.1.0", false),
        ("!=4.1-alpha", "4.1.0-alpha", false),
        ("!=4.1-alpha", "4.1.1-alpha", false),
        ("!=4.1-alpha", "4.1.0", true),
        ("!=4.1", "5.1.0", true),
        ("!=4.x", "5.1.0", true),
        ("!=4.x", "4.1.0", false),
        ("!=4.1.x", "4.2.0", true),
        ("!=4.2.x", "4.2.3", false),
        (">1.1", "4.1.0", true),
        (">1.1", "1.1.0", false),
        ("<1.1", "0.1.0", true),
        ("<1.1", "1.1.0", false),
        ("<1.1", "1.1.1", false),
        ("<1.x", "1.1.1", false),
        ("<1.x", "0.1.1", true),
        ("<1.x", "2.0.0", false),
        ("<1.1.x", "1.2.1", false),
        ("<1.1.x", "1.1.500", false),
        ("<1.1.x", "1.0.500", true),
        ("<1.2.x", "1.1.1", true),
        (">=1.1", "4.1.0", true),
        (">=1.1", "4.1.0-beta", false),
        (">=1.1", "1.1.0", true),
        (">=1.1", "0.0.9", false),
        ("<=1.1", "0.1.0", true),
        ("<=1.1", "0.1.0-alpha", false),
        ("<=1.1-a", "0.1.0-alpha", true),
        ("<=1.1", "1.1.0", true),
        ("<=1.x", "1.1.0", true),
        ("<=2.x", "3.0.0", false),
        ("<=1.1", "1.1.1", true),
        ("<=1.1.x", "1.2.500", false),
        ("<=4.5", "3.4.0", true),
        ("<=4.5", "3.7.0", true),
        ("<=4.5", "4.6.3", false),
        (">1.1, <2", "1.1.1", false),
        (">1.1, <2", "1.2.1", true),
        (">1.1, <3", "4.3.2", false),
        (">=1.1, <2, !=1.2.3", "1.2.3", false),
        (">1.1 <2", "1.1.1", false),
        (">1.1 <2", "1.2.1", true),
        (">1.1    <3", "4.3.2", false),
        (">=1.1    <2    !=1.2.3", "1.2.3", false),
        (">=1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
        (">=1.1, <2, !=1.2.3 || > 3", "3.1.2", false),
        (">=1.1, <2, !=1.2.3 || >= 3", "3.0.0", true),
        (">=1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
        (">=1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
        (">=1.1 <2 !=1.2.3", "1.2.3", false),
        (">=1.1 <2 !=1.2.3 || > 3", "4.1.2", true),
        (">=1.1 <2 !=1.2.3 || > 3", "3.1.2", false),
        (">=1.1 <2 !=1.2.3 || >= 3", "3.0.0", true),
        (">=1.1 <2 !=1.2.3 || > 3", "3.0.0", false),
        (">=1.1 <2 !=1.2.3 || > 3", "1.2.3", false),
        ("> 1.1, <     2", "1.1.1", false),
        (">   1.1, <2", "1.2.1", true),
        (">1.1, <  3", "4.3.2", false),
        (">= 1.1, <     2, !=1.2.3", "1.2.3", false),
        ("> 1.1 < 2", "1.1.1", false),
        (">1.1 < 2", "1.2.1", true),
        ("> 1.1    <3", "4.3.2", false),
        (">=1.1    < 2    != 1.2.3", "1.2.3", false),
        (">= 1.1, <2, !=1.2.3 || > 3", "4.1.2", true),
        (">= 1.1, <2, != 1.2.3 || > 3", "3.1.2", false),
        (">= 1.1, <2, != 1.2.3 || >= 3", "3.0.0", true),
        (">= 1.1, <2, !=1.2.3 || > 3", "3.0.0", false),
        (">= 1.1, <2, !=1.2.3 || > 3", "1.2.3", false),
        (">= 1.1 <2 != 1.2.3", "1.2.3", false),
        (">= 1.1 <2 != 1.2.3 || > 3", "4.1.2", true),
        (">= 1.1 <2 != 1.2.3 || > 3", "3.1.2", false),
        (">= 1.1 <2 != 1.2.3 || >= 3", "3.0.0", true),
        (">= 1.1 < 2 !=1.2.3 || > 3", "3.0.0", false),
        (">=1.1 < 2 !=1.2.3 || > 3", "1.2.3", false),
        (">= 1.0.0  <= 2.0.0-beta", "1.0.1-beta", true),
        (">= 1.0.0  <= 2.0.0-beta", "1.0.1", true),
        (">= 1.0.0  <= 2.0.0-beta", "3.0.0", false),
        (">= 1.0.0  <= 2.0.0-beta || > 3", "1.0.1-beta", true),
        (">= 1.0.0  <= 2.0.0-beta || > 3", "3.0.1-beta", false),
        (
            ">= 1.0.0  <= 2.0.0-beta != 1.0.1 || > 3",
            "1.0.1-beta",
            true,
        ),
        (
            ">= 1.0.0  <= 2.0.0-beta != 1.0.1-beta || > 3",
            "1.0.1-beta",
            false,
        ),
        (">= 1.0.0-0  <= 2.0.0", "1.0.1-beta", true),
        ("1.1 - 2", "1.1.1", true),
        ("1.5.0 - 4.5", "3.7.0", true),
        ("1.1-3", "4.3.2", false),
        ("^1.1", "1.1.1", true),
        ("^1.1", "4.3.2", false),
        ("^1.x", "1.1.1", true),
        ("^2.x", "1.1.1", false),
        ("^1.x", "2.1.1", false),
        ("^1.x", "1.1.1-beta1", false),
        ("^1.1.2-alpha", "1.2.1-beta1", true),
        ("^1.2.x-alpha", "1.1.1-beta1", false),
        ("^0.0.1", "0.0.1", true),
        ("^0.0.1", "0.3.1", false),
        ("~*", "2.1.1", true),
        ("~1", "2.1.1", false),
        ("~1", "1.3.5", true),
        ("~1", "1.4", true),
        ("~1.x", "2.1.1", false),
        ("~1.x", "1.3.5", true),
        ("~1.x", "1.4", true),
        ("~1.1", "1.1.1", true),
        ("~1.1", "1.1.1-alpha", false),
        ("~1.1-alpha", "1.1.1-beta", true),
        ("~1.1.1-beta", "1.1.1-alpha", false),
        ("~1.1.1-beta", "1.1.1", true),
        ("~1.2.3", "1.2.5", true),
        ("~1.2.3", "1.2.2", false),
        ("~1.2.3", "1.3.2", false),
        ("~1.1", "1.2.3", false),
        ("~1.3", "2.4.5", false),
        ("1.0.0 - 2.0.0 <=2.0.0", "1.5.0", true),
        ("1.0.0 - 2.0.0, <=2.0.0", "1.5.0", true),
    ];

    #[test]
    fn masterminds_check_table() {
        let mut wrong = Vec::new();
        for (constraint, version, want) in CASES {
            let c = Constraints::parse(constraint).unwrap_or_else(|e| panic!("{constraint}: {e}"));
            let v = parse_version(version).unwrap_or_else(|e| panic!("{version}: {e}"));
            if c.check(&v) != *want {
                wrong.push(format!("{constraint:?} {version:?} should be {want}"));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn masterminds_parse_table() {
        // (input, ORs, constraints in the first OR), or None for an error; TestNewConstraint.
        let cases: &[(&str, Option<(usize, usize)>)] = &[
            (">= 1.1", Some((1, 1))),
            (">40.50.60, < 50.70", Some((1, 2))),
            ("2.0", Some((1, 1))),
            ("v2.3.5-20161202202307-sha.e8fc5e5", Some((1, 1))),
            ("v1.2.3-0abc", Some((1, 1))),
            ("v1.2.3-beta.01", None),
            (">= bar", None),
            ("BAR >= 1.2.3", None),
            (">= 1.2.3 < 2.0", Some((1, 2))),
            (">= 1.2.3 < 2.0 || => 3.0 < 4", Some((2, 2))),
            (">= 1.2.3, < 2.0", Some((1, 2))),
            (">= 1.2.3, < 2.0 || => 3.0, < 4", Some((2, 2))),
            ("3 - 4 || => 3.0, < 4", Some((2, 2))),
            ("12.3.4.1234", None),
            ("12.23.4.1234", None),
            ("12.3.34.1234", None),
            ("12.3.34 ~1.2.3", Some((1, 2))),
            ("12.3.34~ 1.2.3", None),
            ("1.0.0 - 2.0.0, <=2.0.0", Some((1, 3))),
        ];
        for (input, want) in cases {
            match (Constraints::parse(input), want) {
                (Ok(c), Some((ors, count))) => {
                    assert_eq!(c.groups.len(), *ors, "{input}");
                    assert_eq!(c.groups[0].constraints.len(), *count, "{input}");
                }
                (Err(_), None) => {}
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn tags_are_read_loosely_and_non_versions_never_match() {
        let c = Constraints::parse(">=3.14").expect("parse");
        assert!(c.matches_tag("3.14"));
        assert!(c.matches_tag("v3.15.1"));
        assert!(c.matches_tag("4"));
        assert!(!c.matches_tag("3.13.9"));
        assert!(!c.matches_tag("latest"));
        assert!(
            !c.matches_tag("3.15-rc1"),
            "pre-releases need a pre-release constraint"
        );
        assert!(!c.matches_tag("3.15.0.1"));
        // A bare version with fewer than three numbers is a wildcard, not Cargo's caret.
        let c = Constraints::parse("1.2").expect("parse");
        assert!(c.matches_tag("1.2.0") && c.matches_tag("1.2.7") && !c.matches_tag("1.3.0"));
        let c = Constraints::parse("1.2.3").expect("parse");
        assert!(c.matches_tag("v1.2.3") && !c.matches_tag("1.2.4"));
    }
}
