//! Patients: request bodies as clients send them, the domain values they parse into, and
//! responses. Every type that holds personal data prints as `<redacted>` with `{:?}`.

use std::fmt;

use chrono::{DateTime, NaiveDate, Utc};
use kernel::{
    error::FieldError,
    http::{cursor, page_params},
};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::PatientId;

/// `Debug` that prints only the type's name, for values holding personal data.
macro_rules! redacted_debug {
    ($($ty:ident),* $(,)?) => {
        $(
            impl std::fmt::Debug for $ty {
                fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str(concat!(stringify!($ty), "(<redacted>)"))
                }
            }
        )*
    };
}
pub(crate) use redacted_debug;

// ---------------------------------------------------------------------------------------
// Parsing helpers shared with the clinical types.

/// Collects field errors while parsing several fields, so one response names them all.
#[derive(Debug, Default)]
pub(crate) struct Fields(pub Vec<FieldError>);

impl Fields {
    pub fn check<T>(&mut self, field: impl Into<String>, parsed: Result<T, String>) -> Option<T> {
        parsed
            .map_err(|message| self.0.push(FieldError::new(field, message)))
            .ok()
    }

    pub fn nested<T>(&mut self, parsed: Result<T, Vec<FieldError>>) -> Option<T> {
        parsed.map_err(|errors| self.0.extend(errors)).ok()
    }

    pub fn finish<T>(self, value: Option<T>) -> Result<T, Vec<FieldError>> {
        match value {
            Some(v) if self.0.is_empty() => Ok(v),
            _ => Err(self.0),
        }
    }
}

/// Trimmed, non-empty, at most `max` characters, no control characters. FHIR strings may
/// not be empty or padded, so every text field goes through here.
pub(crate) fn text(raw: &str, max: usize) -> Result<String, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().count() > max {
        return Err(format!("must be at most {max} characters"));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_owned())
}

/// Today in UTC: what "not in the future" is measured against.
pub fn today() -> NaiveDate {
    Utc::now().date_naive()
}

pub(crate) fn not_in_future(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, String> {
    if date > today {
        Err("must not be in the future".into())
    } else {
        Ok(date)
    }
}

// ---------------------------------------------------------------------------------------
// Shapes shared by requests and responses.

/// Administrative gender, as FHIR defines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Gender {
    Male,
    Female,
    Other,
    Unknown,
}

impl Gender {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Male => "male",
            Self::Female => "female",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }

    /// # Errors
    /// An unknown name.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "male" => Ok(Self::Male),
            "female" => Ok(Self::Female),
            "other" => Ok(Self::Other),
            "unknown" => Ok(Self::Unknown),
            _ => Err("unknown gender".into()),
        }
    }
}

/// A person's name.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HumanName {
    /// Family name (surname), 1–200 characters.
    #[schema(example = "Example")]
    pub family: String,
    /// Given names, in order; each 1–100 characters, at most 10.
    #[serde(default)]
    #[schema(example = json!(["Alex"]))]
    pub given: Vec<String>,
}

/// How a telecom value is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum TelecomSystem {
    Phone,
    Email,
}

/// A phone number or an email address.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactPoint {
    /// `phone` or `email`.
    pub system: TelecomSystem,
    /// A phone number (5–15 digits; a leading `+`, spaces, dashes, dots and parentheses
    /// allowed) or an email address.
    #[schema(example = "+1 555 0100")]
    pub value: String,
}

/// A postal address; at least one part must be given.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Address {
    /// Street lines, each 1–200 characters, at most 5.
    #[serde(default)]
    #[schema(example = json!(["1 Example Street"]))]
    pub line: Vec<String>,
    /// City, 1–100 characters.
    #[schema(example = "Springfield")]
    pub city: Option<String>,
    /// Postal code, 1–20 characters.
    #[schema(example = "12345")]
    pub postal_code: Option<String>,
    /// Country: an ISO 3166 code or a name, 1–100 characters.
    #[schema(example = "US")]
    pub country: Option<String>,
}

redacted_debug!(HumanName, ContactPoint, Address);

// ---------------------------------------------------------------------------------------
// Domain values: once built, they are valid.

/// A medical record number: 1–64 letters, digits, `-`, `_`, `.` or `/`, unique among
/// patients. Compared exactly (case-sensitive).
#[derive(Clone, PartialEq, Eq)]
pub struct Mrn(String);

impl Mrn {
    /// # Errors
    /// A message saying what is wrong (never repeating the value).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.is_empty() || s.len() > 64 {
            return Err("must be 1 to 64 characters".into());
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b))
        {
            return Err("may only contain letters, digits, '-', '_', '.' and '/'".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A family name: 1–200 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct FamilyName(String);

impl FamilyName {
    /// # Errors
    /// A message saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, String> {
        text(raw, 200).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form family-name search compares: lower case, so the search is
    /// case-insensitive.
    pub fn folded(&self) -> String {
        self.0.to_lowercase()
    }
}

/// Given names: at most 10, each 1–100 characters.
#[derive(Clone, PartialEq, Eq)]
pub struct GivenNames(Vec<String>);

impl GivenNames {
    /// # Errors
    /// Errors under `name.given[i]`.
    pub fn parse(raw: &[String]) -> Result<Self, Vec<FieldError>> {
        if raw.len() > 10 {
            return Err(vec![FieldError::new(
                "name.given",
                "at most 10 given names",
            )]);
        }
        let mut f = Fields::default();
        let names: Vec<Option<String>> = raw
            .iter()
            .enumerate()
            .map(|(i, n)| f.check(format!("name.given[{i}]"), text(n, 100)))
            .collect();
        f.finish(names.into_iter().collect::<Option<Vec<_>>>())
            .map(Self)
    }

    pub fn as_slice(&self) -> &[String] {
        &self.0
    }
}

/// A birth date, not in the future.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BirthDate(NaiveDate);

impl BirthDate {
    /// # Errors
    /// When it is after `today`.
    pub fn parse(date: NaiveDate, today: NaiveDate) -> Result<Self, String> {
        not_in_future(date, today).map(Self)
    }

    pub fn date(self) -> NaiveDate {
        self.0
    }
}

/// Checked phone numbers and email addresses, at most 10.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Telecoms(Vec<ContactPoint>);

impl Telecoms {
    /// # Errors
    /// Errors under `telecom[i].value`.
    pub fn parse(raw: &[ContactPoint]) -> Result<Self, Vec<FieldError>> {
        if raw.len() > 10 {
            return Err(vec![FieldError::new("telecom", "at most 10 entries")]);
        }
        let mut f = Fields::default();
        let points: Vec<Option<ContactPoint>> = raw
            .iter()
            .enumerate()
            .map(|(i, point)| {
                let value = match point.system {
                    TelecomSystem::Phone => phone(&point.value),
                    TelecomSystem::Email => email(&point.value),
                };
                f.check(format!("telecom[{i}].value"), value)
                    .map(|value| ContactPoint {
                        system: point.system,
                        value,
                    })
            })
            .collect();
        f.finish(points.into_iter().collect::<Option<Vec<_>>>())
            .map(Self)
    }

    pub fn as_slice(&self) -> &[ContactPoint] {
        &self.0
    }
}

fn phone(raw: &str) -> Result<String, String> {
    const RULE: &str = "must be a phone number: 5 to 15 digits, optionally a leading '+', \
                        spaces, '-', '.' or parentheses";
    let s = raw.trim();
    let body = s.strip_prefix('+').unwrap_or(s);
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    let allowed = body
        .bytes()
        .all(|b| b.is_ascii_digit() || b" -.()".contains(&b));
    if allowed && (5..=15).contains(&digits) && s.len() <= 32 {
        Ok(s.to_owned())
    } else {
        Err(RULE.into())
    }
}

fn email(raw: &str) -> Result<String, String> {
    const RULE: &str = "must be an email address such as name@example.org";
    let s = raw.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return Err(RULE.into());
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && local
            .chars()
            .all(|c| !c.is_whitespace() && !c.is_control() && !"@<>()[],;:\"\\".contains(c));
    let domain_ok = domain.len() <= 253
        && domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok && s.len() <= 254 {
        Ok(s.to_owned())
    } else {
        Err(RULE.into())
    }
}

/// A checked postal address with at least one part.
#[derive(Clone, PartialEq, Eq)]
pub struct PostalAddress(Address);

impl PostalAddress {
    /// # Errors
    /// Errors under `address.*`.
    pub fn parse(raw: &Address) -> Result<Self, Vec<FieldError>> {
        if raw.line.is_empty()
            && raw.city.is_none()
            && raw.postal_code.is_none()
            && raw.country.is_none()
        {
            return Err(vec![FieldError::new(
                "address",
                "must have at least one of line, city, postal_code or country",
            )]);
        }
        if raw.line.len() > 5 {
            return Err(vec![FieldError::new("address.line", "at most 5 lines")]);
        }
        let mut f = Fields::default();
        let line: Vec<Option<String>> = raw
            .line
            .iter()
            .enumerate()
            .map(|(i, l)| f.check(format!("address.line[{i}]"), text(l, 200)))
            .collect();
        let mut part = |name: &str, value: &Option<String>, max: usize| -> Option<String> {
            value
                .as_deref()
                .and_then(|v| f.check(format!("address.{name}"), text(v, max)))
        };
        let city = part("city", &raw.city, 100);
        let postal_code = part("postal_code", &raw.postal_code, 20);
        let country = part("country", &raw.country, 100);
        let line = line.into_iter().collect::<Option<Vec<_>>>();
        f.finish(line.map(|line| {
            Self(Address {
                line,
                city,
                postal_code,
                country,
            })
        }))
    }

    pub fn as_address(&self) -> &Address {
        &self.0
    }
}

redacted_debug!(
    Mrn,
    FamilyName,
    GivenNames,
    BirthDate,
    Telecoms,
    PostalAddress
);

/// A valid new patient.
#[derive(Clone, PartialEq, Eq)]
pub struct NewPatient {
    pub identifier: Mrn,
    pub family: FamilyName,
    pub given: GivenNames,
    pub gender: Gender,
    pub birth_date: BirthDate,
    pub telecom: Telecoms,
    pub address: Option<PostalAddress>,
}

impl NewPatient {
    /// Parses a patient whose birth date is checked against `today`.
    ///
    /// # Errors
    /// Every offending field.
    pub fn parse(input: PatientInput, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::default();
        let identifier = f.check("identifier", Mrn::parse(&input.identifier));
        let family = f.check("name.family", FamilyName::parse(&input.name.family));
        let given = f.nested(GivenNames::parse(&input.name.given));
        let birth_date = f.check("birth_date", BirthDate::parse(input.birth_date, today));
        let telecom = f.nested(Telecoms::parse(&input.telecom));
        let address = input
            .address
            .as_ref()
            .map(|a| f.nested(PostalAddress::parse(a)));
        let value = (|| {
            Some(Self {
                identifier: identifier?,
                family: family?,
                given: given?,
                gender: input.gender,
                birth_date: birth_date?,
                telecom: telecom?,
                address: match address {
                    Some(parsed) => Some(parsed?),
                    None => None,
                },
            })
        })();
        f.finish(value)
    }
}

impl TryFrom<PatientInput> for NewPatient {
    type Error = Vec<FieldError>;

    fn try_from(input: PatientInput) -> Result<Self, Self::Error> {
        Self::parse(input, today())
    }
}

/// The fields a PUT or PATCH changes; `None` leaves a field as it is. `address:
/// Some(None)` removes the address.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PatientChanges {
    pub identifier: Option<Mrn>,
    pub family: Option<FamilyName>,
    pub given: Option<GivenNames>,
    pub gender: Option<Gender>,
    pub birth_date: Option<BirthDate>,
    pub telecom: Option<Telecoms>,
    pub address: Option<Option<PostalAddress>>,
}

impl From<NewPatient> for PatientChanges {
    fn from(p: NewPatient) -> Self {
        Self {
            identifier: Some(p.identifier),
            family: Some(p.family),
            given: Some(p.given),
            gender: Some(p.gender),
            birth_date: Some(p.birth_date),
            telecom: Some(p.telecom),
            address: Some(p.address),
        }
    }
}

impl PatientChanges {
    /// Parses a merge patch whose birth date is checked against `today`.
    ///
    /// # Errors
    /// Every offending field.
    pub fn parse(patch: PatientPatch, today: NaiveDate) -> Result<Self, Vec<FieldError>> {
        let mut f = Fields::default();
        let (family, given) = match &patch.name {
            Some(name) => (
                name.family
                    .as_deref()
                    .and_then(|n| f.check("name.family", FamilyName::parse(n))),
                name.given
                    .as_deref()
                    .and_then(|g| f.nested(GivenNames::parse(g))),
            ),
            None => (None, None),
        };
        let changes = Self {
            identifier: patch
                .identifier
                .as_deref()
                .and_then(|s| f.check("identifier", Mrn::parse(s))),
            family,
            given,
            gender: patch.gender,
            birth_date: patch
                .birth_date
                .and_then(|d| f.check("birth_date", BirthDate::parse(d, today))),
            telecom: patch
                .telecom
                .as_deref()
                .and_then(|t| f.nested(Telecoms::parse(t))),
            address: match &patch.address {
                None => None,
                Some(None) => Some(None),
                Some(Some(a)) => f.nested(PostalAddress::parse(a)).map(Some),
            },
        };
        f.finish(Some(changes))
    }
}

impl TryFrom<PatientPatch> for PatientChanges {
    type Error = Vec<FieldError>;

    fn try_from(patch: PatientPatch) -> Result<Self, Self::Error> {
        Self::parse(patch, today())
    }
}

redacted_debug!(NewPatient, PatientChanges);

// ---------------------------------------------------------------------------------------
// Request bodies.

/// A patient as written by `POST /patients` and `PUT /patients/{id}`.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientInput {
    /// Medical record number (MRN), unique: 1–64 letters, digits, `-`, `_`, `.` or `/`.
    #[schema(example = "MRN-000123")]
    pub identifier: String,
    /// The patient's name; `family` is required.
    pub name: HumanName,
    /// Administrative gender.
    pub gender: Gender,
    /// Date of birth (`YYYY-MM-DD`), not in the future.
    #[schema(example = "1980-04-01")]
    pub birth_date: NaiveDate,
    /// Phone numbers and email addresses, at most 10.
    #[serde(default)]
    pub telecom: Vec<ContactPoint>,
    /// Postal address.
    #[serde(default)]
    pub address: Option<Address>,
}

/// Part of a name in a merge patch.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NamePatch {
    /// New family name.
    pub family: Option<String>,
    /// New given names (replaces the list).
    pub given: Option<Vec<String>>,
}

/// A JSON merge patch for `PATCH /patients/{id}`: fields that are absent (or null) stay as
/// they are, except `address`, which null removes. Lists are replaced whole.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatientPatch {
    /// New medical record number.
    pub identifier: Option<String>,
    /// New family and/or given names.
    pub name: Option<NamePatch>,
    /// New administrative gender.
    pub gender: Option<Gender>,
    /// New date of birth (`YYYY-MM-DD`), not in the future.
    pub birth_date: Option<NaiveDate>,
    /// New phone numbers and email addresses (replaces the list).
    pub telecom: Option<Vec<ContactPoint>>,
    /// New postal address, or null to remove it.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Address>)]
    pub address: Option<Option<Address>>,
}

/// Tells a field that is present (even as null) from one that is absent.
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

redacted_debug!(PatientInput, NamePatch, PatientPatch);

// ---------------------------------------------------------------------------------------
// Responses.

/// A patient.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Patient {
    /// Patient id (UUID v7).
    pub id: PatientId,
    /// Medical record number (MRN).
    pub identifier: String,
    /// The patient's name.
    pub name: HumanName,
    /// Administrative gender.
    pub gender: Gender,
    /// Date of birth.
    pub birth_date: NaiveDate,
    /// Phone numbers and email addresses.
    pub telecom: Vec<ContactPoint>,
    /// Postal address, or null.
    pub address: Option<Address>,
    /// Revision, incremented by every change; the ETag is this number in quotes.
    pub version: i64,
    /// When the patient was registered (UTC).
    pub created_at: DateTime<Utc>,
    /// When the record last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Patient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Patient")
            .field("id", &self.id)
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// One page of patients, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PatientPage {
    /// The patients on this page.
    pub items: Vec<Patient>,
    /// Cursor for the next page (pass it as `cursor`), or null on the last page.
    pub next: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Listing.

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
            limit: kernel::http::DEFAULT_PAGE_SIZE,
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
            limit: kernel::http::DEFAULT_PAGE_SIZE,
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
    use serde_json::json;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
    }

    fn input() -> serde_json::Value {
        json!({
            "identifier": "MRN-0001",
            "name": {"family": "Quixotic", "given": ["Zebulon"]},
            "gender": "male",
            "birth_date": "1970-01-31",
            "telecom": [
                {"system": "phone", "value": "+44 20 7946 0958"},
                {"system": "email", "value": "zq@example.org"}
            ],
            "address": {"line": ["1 Main St"], "city": "Leeds", "postal_code": "LS1 1AA", "country": "GB"}
        })
    }

    fn parse(value: serde_json::Value) -> Result<NewPatient, Vec<FieldError>> {
        let input: PatientInput = kernel::http::from_value(value)?;
        NewPatient::parse(input, today())
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_complete_patient_parses() {
        let patient = parse(input()).unwrap();
        assert_eq!(patient.identifier.as_str(), "MRN-0001");
        assert_eq!(patient.family.folded(), "quixotic");
        assert_eq!(patient.telecom.as_slice().len(), 2);
        assert!(patient.address.is_some());
    }

    #[test]
    fn every_bad_field_is_named() {
        let mut value = input();
        value["identifier"] = json!("has spaces");
        value["name"] = json!({"family": "  ", "given": ["", "Ok"]});
        value["birth_date"] = json!("2026-11-23");
        value["telecom"] = json!([
            {"system": "email", "value": "not-an-email"},
            {"system": "phone", "value": "12"},
            {"system": "phone", "value": "+1 (555) 010-0199"}
        ]);
        value["address"] = json!({"line": [], "city": ""});
        let errors = parse(value).unwrap_err();
        assert_eq!(
            fields(&errors),
            [
                "identifier",
                "name.family",
                "name.given[0]",
                "birth_date",
                "telecom[0].value",
                "telecom[1].value",
                "address.city"
            ]
        );
    }

    #[test]
    fn an_unknown_gender_or_field_is_a_shape_error() {
        let mut value = input();
        value["gender"] = json!("robot");
        value["nickname"] = json!("Zeb");
        let errors = kernel::http::from_value::<PatientInput>(value).unwrap_err();
        let mut named = fields(&errors);
        named.sort_unstable();
        assert_eq!(named, ["gender", "nickname"]);
    }

    #[test]
    fn an_empty_address_is_refused() {
        let mut value = input();
        value["address"] = json!({});
        assert_eq!(fields(&parse(value).unwrap_err()), ["address"]);
    }

    #[test]
    fn a_birth_date_of_today_is_accepted() {
        let mut value = input();
        value["birth_date"] = json!("2026-11-22");
        assert!(parse(value).is_ok());
    }

    #[test]
    fn debug_output_never_shows_personal_data() {
        let patient = parse(input()).unwrap();
        let raw: PatientInput = serde_json::from_value(input()).unwrap();
        let printed = format!(
            "{patient:?} {raw:?} {:?}",
            PatientChanges::from(patient.clone())
        );
        for secret in ["Quixotic", "Zebulon", "7946", "MRN-0001", "1970", "Leeds"] {
            assert!(!printed.contains(secret), "{printed}");
        }
    }

    #[test]
    fn a_patch_distinguishes_a_null_address_from_an_absent_one() {
        let removed: PatientPatch = serde_json::from_value(json!({"address": null})).unwrap();
        let changes = PatientChanges::parse(removed, today()).unwrap();
        assert_eq!(changes.address, Some(None));
        let untouched: PatientPatch = serde_json::from_value(json!({"gender": "other"})).unwrap();
        let changes = PatientChanges::parse(untouched, today()).unwrap();
        assert_eq!(changes.address, None);
        assert_eq!(changes.gender, Some(Gender::Other));
    }

    #[test]
    fn a_patch_names_its_bad_fields() {
        let patch: PatientPatch = serde_json::from_value(json!({
            "name": {"family": ""},
            "birth_date": "2030-01-01",
            "telecom": [{"system": "email", "value": "a@b"}]
        }))
        .unwrap();
        let errors = PatientChanges::parse(patch, today()).unwrap_err();
        assert_eq!(
            fields(&errors),
            ["name.family", "birth_date", "telecom[0].value"]
        );
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
