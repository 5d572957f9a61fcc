//! The patient module: clinical records (patients, diagnoses, treatments), encrypted at
//! rest, audited on every read and write, and served as FHIR R4. It owns the `patients`,
//! `patient_diagnoses`, `patient_treatments` and `patient_audit` tables; other modules
//! reach it only through [`api::PatientService`] and its events, which carry ids and codes,
//! never personal data.
//!
//! [`PatientModule`] is what the binary plugs in (see [`kernel::module::Module`]); its
//! start-up check refuses the development keys in production ([`check_production`]).

mod audit;
mod clinical;
mod crypto;
mod domain;
mod http;
mod schema;
mod service;
mod store;

use std::{collections::BTreeMap, fmt, sync::Arc};

use anyhow::{Context as _, bail};
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use kernel::{
    bus::catalog::EventDoc,
    config::AppEnv,
    db::Migrations,
    module::{Context, Module, Tag},
};
use patient_api::PatientService;
use serde::{Deserialize, Serialize};
use utoipa_actix_web::service_config::ServiceConfig;

pub use crypto::{DEVELOPMENT_ENCRYPTION_KEY, DEVELOPMENT_KEY_ID, DEVELOPMENT_SEARCH_KEY};
pub use patient_api as api;

const SQLITE: EmbeddedMigrations = embed_migrations!("../../migrations/patient/sqlite");
const POSTGRES: EmbeddedMigrations = embed_migrations!("../../migrations/patient/postgres");

/// The patient module's tables, for both backends.
pub static MIGRATIONS: Migrations = Migrations {
    module: "patient",
    sqlite: &SQLITE,
    postgres: &POSTGRES,
};

/// `[modules.patient]` settings: the keys personal data is encrypted and searched with.
///
/// ```toml
/// [modules.patient]
/// encryption_keys = { k1 = "<base64 of 32 bytes>", k2 = "<base64 of 32 bytes>" }
/// active_key = "k2"                        # new writes; k1 values still decrypt
/// search_key = "<base64 of at least 32 bytes>"
/// ```
///
/// The default is the built-in development keys, for development and tests only:
/// [`check_production`] refuses them.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PatientSettings {
    /// AES-256-GCM keys by key id (ASCII letters, digits, `-`, `_`, `.`), each base64 of 32
    /// bytes. Keep retired keys here as long as values sealed under them exist. The default
    /// is a built-in development key, which `TESSERA_ENV=production` refuses.
    #[schema(format = Password)]
    pub encryption_keys: BTreeMap<String, String>,
    /// The key id new values are encrypted under.
    pub active_key: String,
    /// The HMAC-SHA256 key of the identifier and family-name search hashes, base64 of at
    /// least 32 bytes. Changing it makes existing records unsearchable until re-saved. The
    /// default is a built-in development key, which `TESSERA_ENV=production` refuses.
    #[schema(format = Password)]
    pub search_key: String,
}

impl Default for PatientSettings {
    fn default() -> Self {
        Self {
            encryption_keys: BTreeMap::from([(
                DEVELOPMENT_KEY_ID.to_owned(),
                DEVELOPMENT_ENCRYPTION_KEY.to_owned(),
            )]),
            active_key: DEVELOPMENT_KEY_ID.to_owned(),
            search_key: DEVELOPMENT_SEARCH_KEY.to_owned(),
        }
    }
}

// Hand-written so key material never reaches a log line.
impl fmt::Debug for PatientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PatientSettings")
            .field(
                "encryption_keys",
                &self.encryption_keys.keys().collect::<Vec<_>>(),
            )
            .field("active_key", &self.active_key)
            .field("search_key", &"<redacted>")
            .finish()
    }
}

/// The production rules for [`PatientSettings`]; call it at start-up when
/// `TESSERA_ENV=production`.
///
/// # Errors
/// When the keys are malformed (as building the [`PatientModule`] would report), when any
/// encryption key or the search key is a built-in development key, or when the search key
/// is also an encryption key.
pub fn check_production(settings: &PatientSettings) -> anyhow::Result<()> {
    let keys = crypto::KeyMaterial::parse(settings).context("invalid configuration")?;
    let development_key = crypto::decode_key(DEVELOPMENT_ENCRYPTION_KEY);
    let development_search = crypto::decode_key(DEVELOPMENT_SEARCH_KEY);
    if let Some(id) = keys
        .encryption
        .iter()
        .find(|(_, key)| Some(*key) == development_key.as_ref())
        .map(|(id, _)| id)
    {
        bail!(
            "refusing to start in production: modules.patient.encryption_keys.{id} is the \
             built-in development key; set TESSERA__MODULES__PATIENT__ENCRYPTION_KEYS__<ID> \
             to base64 of 32 random bytes and TESSERA__MODULES__PATIENT__ACTIVE_KEY to its id"
        );
    }
    if Some(&keys.search) == development_search.as_ref() {
        bail!(
            "refusing to start in production: modules.patient.search_key is the built-in \
             development key; set TESSERA__MODULES__PATIENT__SEARCH_KEY to base64 of at least \
             32 random bytes"
        );
    }
    if keys.encryption.values().any(|key| *key == keys.search) {
        bail!(
            "refusing to start in production: modules.patient.search_key must not also be an \
             encryption key"
        );
    }
    Ok(())
}

/// The patient module, built: its store (the bus and the vault of its keys).
#[derive(Debug, Clone)]
pub struct PatientModule {
    store: store::Store,
}

impl Module for PatientModule {
    const NAME: &'static str = "patient";
    const MIGRATIONS: &'static Migrations = &MIGRATIONS;
    /// The tags of its handlers (`http.rs`): records, and their FHIR views.
    const TAGS: &'static [Tag] = &[
        Tag {
            name: "patient",
            description: "Clinical records (clinician and admin only; every access audited)",
        },
        Tag {
            name: "fhir",
            description: "FHIR R4 views of clinical records",
        },
    ];
    /// Its bodies carry personal data.
    const PRIVATE_PATHS: &'static [&'static str] = &["/api/v1/patients", "/api/v1/fhir"];
    type Settings = PatientSettings;
    type Neighbours = ();
    type Service = dyn PatientService;

    fn mount(cfg: &mut ServiceConfig<'_>) {
        http::configure(cfg);
    }

    fn events() -> Vec<EventDoc> {
        api::events::catalog()
    }

    /// In production, [`check_production`].
    fn check(settings: &PatientSettings, env: AppEnv) -> anyhow::Result<()> {
        if env == AppEnv::Production {
            check_production(settings)?;
        }
        Ok(())
    }

    /// # Errors
    /// When the keys in the settings are malformed (the message names the setting, never a
    /// key).
    fn new(context: Context<PatientSettings>, (): ()) -> anyhow::Result<Self> {
        let vault = crypto::Vault::new(&context.settings).context("invalid configuration")?;
        Ok(Self {
            store: store::Store {
                bus: context.bus,
                vault,
            },
        })
    }

    fn service(&self) -> Arc<dyn PatientService> {
        Arc::new(service::LocalPatients::new(self.store.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::{Engine, engine::general_purpose::STANDARD};

    fn production_keys() -> PatientSettings {
        PatientSettings {
            encryption_keys: BTreeMap::from([("k1".to_owned(), STANDARD.encode([3u8; 32]))]),
            active_key: "k1".into(),
            search_key: STANDARD.encode([4u8; 48]),
        }
    }

    #[test]
    fn the_default_keys_work_but_production_refuses_them() {
        let defaults = PatientSettings::default();
        assert!(crypto::Vault::new(&defaults).is_ok());
        let err = check_production(&defaults).unwrap_err();
        assert!(err.to_string().contains("development"), "{err:#}");
    }

    #[test]
    fn production_accepts_its_own_keys_and_refuses_any_development_one() {
        assert!(check_production(&production_keys()).is_ok());

        let mut with_dev_search = production_keys();
        with_dev_search.search_key = DEVELOPMENT_SEARCH_KEY.into();
        assert!(check_production(&with_dev_search).is_err());

        let mut with_dev_key_kept = production_keys();
        with_dev_key_kept
            .encryption_keys
            .insert("old".into(), DEVELOPMENT_ENCRYPTION_KEY.into());
        assert!(check_production(&with_dev_key_kept).is_err());

        let mut reused = production_keys();
        reused.search_key = STANDARD.encode([3u8; 32]);
        assert!(check_production(&reused).is_err());
    }

    #[test]
    fn production_refuses_malformed_keys() {
        let mut missing_active = production_keys();
        missing_active.active_key = "k9".into();
        let err = check_production(&missing_active).unwrap_err();
        assert!(format!("{err:#}").contains("active_key"), "{err:#}");
        let mut short = production_keys();
        short.search_key = STANDARD.encode([4u8; 8]);
        assert!(check_production(&short).is_err());
    }

    #[test]
    fn settings_read_from_a_config_section_and_never_print_keys() {
        let section = serde_json::json!({
            "encryption_keys": {"k1": STANDARD.encode([3u8; 32])},
            "active_key": "k1",
            "search_key": STANDARD.encode([4u8; 48]),
        });
        let settings: PatientSettings = serde_json::from_value(section).unwrap();
        assert_eq!(settings, production_keys());
        let printed = format!("{settings:?}");
        assert!(!printed.contains(&STANDARD.encode([3u8; 32])), "{printed}");
        assert!(!printed.contains(&STANDARD.encode([4u8; 48])), "{printed}");
        let empty: PatientSettings = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(empty, PatientSettings::default());
        assert!(
            serde_json::from_value::<PatientSettings>(serde_json::json!({"key": "x"})).is_err()
        );
    }

    #[test]
    fn the_catalog_lists_the_four_events() {
        let kinds: Vec<_> = PatientModule::events().iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [
                "patient.registered",
                "patient.updated",
                "diagnosis.recorded",
                "treatment.planned"
            ]
        );
        assert!(PatientModule::consumers().is_empty());
    }
}
