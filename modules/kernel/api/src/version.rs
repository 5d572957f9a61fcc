//! Optimistic concurrency as the domain sees it: a change names the revisions of a resource
//! it may apply to, so it cannot overwrite a change its author has not seen. Over HTTP the
//! client states it with `If-Match` (the kernel turns the header into an [`ExpectedVersion`]);
//! a module's trait never sees the header.

/// Which revisions (`version` fields) of a resource a change may apply to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ExpectedVersion {
    /// Whatever revision is current: no precondition.
    #[default]
    Any,
    /// Only one of these revisions; an empty list matches none.
    OneOf(Vec<i64>),
}

impl ExpectedVersion {
    /// Only revision `version`.
    pub fn exactly(version: i64) -> Self {
        Self::OneOf(vec![version])
    }

    /// Whether a resource at `version` satisfies the precondition.
    pub fn allows(&self, version: i64) -> bool {
        match self {
            Self::Any => true,
            Self::OneOf(versions) => versions.contains(&version),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_allows_every_revision_and_a_list_only_its_own() {
        assert!(ExpectedVersion::Any.allows(7));
        assert!(ExpectedVersion::exactly(3).allows(3));
        assert!(!ExpectedVersion::exactly(3).allows(4));
        assert!(ExpectedVersion::OneOf(vec![2, 4]).allows(4));
        assert!(!ExpectedVersion::OneOf(Vec::new()).allows(1));
    }
}
