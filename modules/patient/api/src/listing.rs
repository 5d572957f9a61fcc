//! Listing patients and their records: query parameters, their checked forms, and cursors.
//! A search by identifier or family name is described to the audit log without its values.

use std::fmt;

use kernel_api::{
    error::FieldError,
    page::{cursor, page_params},
};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::{
    PatientId,
    demographics::{FamilyName, Mrn},
    parse::{Fields, redacted_debug},
};

/// Query parameters of `GET /patients`.
#[derive(Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PatientListParams {
    /// Only the patient with exactly this medical record number.
    pub identifier: Option<String>,
    /// Only patients with this family name (exact, case-insensitive).
    pub family: Option<String>,
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A valid patient search.
#[derive(Clone, PartialEq, Eq)]
pub struct PatientQuery {
    pub identifier: Option<Mrn>,
    pub family: Option<FamilyName>,
    pub limit: u32,
    /// List patients registered before this one (the cursor).
    pub before: Option<PatientId>,
}

redacted_debug!(PatientListParams);

impl fmt::Debug for PatientQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientQuery")
            .field("by_identifier", &self.identifier.is_some())
            .field("by_family", &self.family.is_some())
            .field("limit", &self.limit)
            .field("before", &self.before)
            .finish()
    }
}

impl Default for PatientQuery {
    fn default() -> Self {
        Self {
            identifier: None,
            family: None,
            limit: kernel_api::page::DEFAULT_PAGE_SIZE,
            before: None,
        }
    }
}

impl PatientQuery {
    /// The `next` cursor of a page whose last (oldest) patient is `last`.
    pub fn cursor_after(last: PatientId) -> String {
        cursor::encode(&last)
    }

    /// The query as the audit log records it: which filters were used, never their values.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.identifier.is_some() {
            parts.push("identifier=[redacted]".to_owned());
        }
        if self.family.is_some() {
            parts.push("family=[redacted]".to_owned());
        }
        parts.push(format!("limit={}", self.limit));
        if let Some(before) = self.before {
            parts.push(format!("before={before}"));
        }
        format!("Patient?{}", parts.join("&"))
    }
}

impl TryFrom<PatientListParams> for PatientQuery {
    type Error = Vec<FieldError>;

    fn try_from(p: PatientListParams) -> Result<Self, Self::Error> {
        let mut f = Fields::default();
        let identifier = p
            .identifier
            .as_deref()
            .and_then(|s| f.check("identifier", Mrn::parse(s)));
        let family = p
            .family
            .as_deref()
            .and_then(|s| f.check("family", FamilyName::parse(s)));
        let page = page_params(p.limit, p.cursor.as_deref())
            .map_err(|errors| f.0.extend(errors))
            .ok();
        let value = page.map(|(limit, before)| Self {
            identifier,
            family,
            limit,
            before,
        });
        f.finish(value)
    }
}

/// Query parameters of the other lists (diagnoses, treatments, audit trail).
#[derive(Debug, Clone, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// Page size, 1–100 (default 20).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next` value of the previous page.
    pub cursor: Option<String>,
}

/// A valid page request: newest first, older than `before`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageQuery {
    pub limit: u32,
    /// List items created before this one (the cursor).
    pub before: Option<uuid::Uuid>,
}

impl Default for PageQuery {
    fn default() -> Self {
        Self {
            limit: kernel_api::page::DEFAULT_PAGE_SIZE,
            before: None,
        }
    }
}

impl PageQuery {
    /// The `next` cursor of a page whose last (oldest) item has id `last`.
    pub fn cursor_after(last: uuid::Uuid) -> String {
        cursor::encode(&last)
    }
}

impl TryFrom<PageParams> for PageQuery {
    type Error = Vec<FieldError>;

    fn try_from(p: PageParams) -> Result<Self, Self::Error> {
        let (limit, before) = page_params(p.limit, p.cursor.as_deref())?;
        Ok(Self { limit, before })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn searches_validate_their_filters_and_describe_themselves_without_values() {
        let query = PatientQuery::try_from(PatientListParams {
            identifier: Some("MRN-0001".into()),
            family: Some("QuiXotic".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(query.family.as_ref().unwrap().folded(), "quixotic");
        let described = query.describe();
        assert!(!described.contains("MRN-0001") && !described.to_lowercase().contains("quixotic"));
        assert!(!format!("{query:?}").contains("MRN-0001"));

        let errors = PatientQuery::try_from(PatientListParams {
            identifier: Some("a b".into()),
            family: Some(" ".into()),
            limit: Some(0),
            cursor: Some("junk".into()),
        })
        .unwrap_err();
        assert_eq!(fields(&errors), ["identifier", "family", "limit", "cursor"]);
    }

    #[test]
    fn a_page_cursor_reads_back() {
        let id = uuid::Uuid::now_v7();
        let query = PageQuery::try_from(PageParams {
            limit: Some(5),
            cursor: Some(PageQuery::cursor_after(id)),
        })
        .unwrap();
        assert_eq!(
            query,
            PageQuery {
                limit: 5,
                before: Some(id)
            }
        );
    }
}
