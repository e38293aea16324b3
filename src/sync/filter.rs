//! Which tags of a listed repository a sync takes: the YAML's selection (every tag, a regular
//! expression, a version range) and the command line's include and exclude expressions, all of
//! them at once. A prune asks the very same question of the destination's tags, which is what
//! "deleted within the same filters" means: a tag no filter lets through is never the sync's
//! business, at the source or at the destination.

use super::config::{TagRegex, TagSelection};

/// The command line's tag filters (`--include-tag-regex`, `--exclude-tag-regex`): a tag is
/// taken when some include expression matches it (or there is none) and no exclude expression
/// does. Each expression matches anywhere in the tag, as the YAML's `images-by-tag-regex` (Go's
/// `MatchString`): anchor it with `^…$` to match the whole tag.
#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    include: Vec<TagRegex>,
    exclude: Vec<TagRegex>,
}

/// Which list an expression of a [`TagFilter`] was given for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FilterSide {
    /// The tags to take.
    Include,
    /// The tags to leave out.
    Exclude,
}

/// A tag filter expression that does not compile.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid {} regular expression {pattern:?}: {why}", match side { FilterSide::Include => "include", FilterSide::Exclude => "exclude" })]
#[non_exhaustive]
pub struct TagFilterError {
    /// Which list it was given for.
    pub side: FilterSide,
    /// The expression as given.
    pub pattern: String,
    /// What the regular expression compiler said.
    pub why: String,
}

impl TagFilter {
    /// Compiles the expressions of both lists.
    pub fn new(include: &[String], exclude: &[String]) -> Result<TagFilter, TagFilterError> {
        let compile = |side: FilterSide, list: &[String]| {
            list.iter()
                .map(|p| {
                    TagRegex::new(p).map_err(|e| TagFilterError {
                        side,
                        pattern: p.clone(),
                        why: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(TagFilter {
            include: compile(FilterSide::Include, include)?,
            exclude: compile(FilterSide::Exclude, exclude)?,
        })
    }

    /// Whether it lets every tag through.
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// Whether `tag` is taken.
    pub fn matches(&self, tag: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.matches(tag)))
            && !self.exclude.iter().any(|r| r.matches(tag))
    }
}

/// Whether a repository entry's selection and the command line's filter both take `tag`. An
/// explicit list takes the tags it names.
pub(crate) fn takes_tag(selection: &TagSelection, filter: &TagFilter, tag: &str) -> bool {
    let selected = match selection {
        TagSelection::All => true,
        TagSelection::Regex(re) => re.matches(tag),
        TagSelection::Semver(c) => c.matches_tag(tag),
        TagSelection::List(list) => list
            .iter()
            .any(|i| matches!(i, super::config::ImageRef::Tag(t) if t == tag)),
    };
    selected && filter.matches(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> TagFilter {
        let s = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        TagFilter::new(&s(include), &s(exclude)).expect("compiles")
    }

    #[test]
    fn includes_any_excludes_all_and_matches_anywhere_as_the_yaml() {
        let none = filter(&[], &[]);
        assert!(none.is_empty() && none.matches("anything"));
        let f = filter(&[r"^v1\.", "^latest$"], &["-rc", "alpha"]);
        assert!(f.matches("v1.2") && f.matches("latest"));
        assert!(!f.matches("v2.0") && !f.matches("v1.3-rc1") && !f.matches("latest-alpha"));
        // Unanchored, as Go's MatchString and the YAML's images-by-tag-regex.
        assert!(filter(&["1"], &[]).matches("v21"));
        let e = TagFilter::new(&[], &["([".into()]).expect_err("bad");
        assert_eq!(e.side, FilterSide::Exclude);
        assert!(
            e.to_string()
                .starts_with("invalid exclude regular expression \"([\""),
            "{e}"
        );
    }

    #[test]
    fn the_selection_and_the_filter_both_decide() {
        let f = filter(&[], &["-rc"]);
        let re = TagSelection::Regex(TagRegex::new(r"^1\.").expect("re"));
        assert!(takes_tag(&re, &f, "1.2"));
        assert!(!takes_tag(&re, &f, "1.2-rc"), "the filter");
        assert!(!takes_tag(&re, &f, "2.0"), "the selection");
        assert!(takes_tag(&TagSelection::All, &f, "2.0"));
        let semver = TagSelection::Semver(
            super::super::semver::Constraints::parse(">= 1.1").expect("constraint"),
        );
        assert!(takes_tag(&semver, &f, "1.1.0") && !takes_tag(&semver, &f, "1.0.0"));
    }
}
