//! Which authenticators may hold a passkey: allow and deny lists of
//! AAGUIDs, a minimum FIDO certification level and refused statuses, per
//! group of identities (the first rule whose condition matches the Kratos
//! identity wins), and what a BLOB's later status change does to passkeys
//! already registered.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::attestation::Attestation;
use crate::kratos::KratosIdentity;
use crate::metadata::{CertificationLevel, Metadata, MetadataSettings, Model};
use crate::metrics::Metrics;
use crate::store::{NewAttestation, StatusAction};

/// `authenticators`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AuthenticatorSettings {
    /// The MDS3 BLOB; none by default.
    #[serde(default)]
    pub metadata: Option<MetadataSettings>,
    /// The policy of identities no rule matches.
    #[serde(default)]
    pub policy: PolicySettings,
    /// Policies for groups of identities; the first match wins.
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
    #[serde(default)]
    pub on_status_change: OnStatusChange,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Only these AAGUIDs (as attested); empty: any.
    #[serde(default)]
    pub allow: Vec<Uuid>,
    /// Never these AAGUIDs (attested or claimed).
    #[serde(default)]
    pub deny: Vec<Uuid>,
    /// `FIDO_CERTIFIED_L1` ... `FIDO_CERTIFIED_L3plus`.
    #[serde(default)]
    pub min_certification: Option<CertificationLevel>,
    /// Statuses (in the model's status reports) that refuse it.
    #[serde(default = "default_refused_statuses")]
    pub refused_statuses: Vec<String>,
    /// Refuse passkeys whose attestation is not verified, even without an
    /// allow list or a certification level (which imply it).
    #[serde(default)]
    pub require_attestation: bool,
}

impl Default for PolicySettings {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
            min_certification: None,
            refused_statuses: default_refused_statuses(),
            require_attestation: false,
        }
    }
}

fn default_refused_statuses() -> Vec<String> {
    [
        "REVOKED",
        "USER_VERIFICATION_BYPASS",
        "ATTESTATION_KEY_COMPROMISE",
        "USER_KEY_REMOTE_COMPROMISE",
        "USER_KEY_PHYSICAL_COMPROMISE",
    ]
    .map(String::from)
    .to_vec()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    pub when: Condition,
    pub policy: PolicySettings,
}

/// `field` is a dotted path into the Kratos identity (`traits.…` or
/// `metadata_public.…`); the rule matches when its value equals `equals`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub field: String,
    pub equals: Value,
}

impl Condition {
    fn matches(&self, identity: &KratosIdentity) -> bool {
        let mut parts = self.field.split('.');
        let root = match parts.next() {
            Some("traits") => &identity.traits,
            Some("metadata_public") => &identity.metadata_public,
            _ => return false,
        };
        let value = parts.try_fold(root, |value, key| value.get(key));
        match (value, &self.equals) {
            (Some(Value::String(found)), Value::String(wanted)) => found == wanted,
            (Some(found), wanted) => found == wanted,
            (None, _) => false,
        }
    }
}

/// `authenticators.on_status_change`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnStatusChange {
    #[default]
    Flag,
    Warn,
}

impl OnStatusChange {
    pub fn action(self) -> StatusAction {
        match self {
            Self::Flag => StatusAction::Flag,
            Self::Warn => StatusAction::Warn,
        }
    }
}

/// Why a new passkey was refused. Each has a stable error id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the authenticator model is not allowed")]
    NotAllowed,
    #[error("the authenticator model is not certified at the required level")]
    NotCertified,
    #[error("the authenticator model has a refused status")]
    Revoked,
    #[error("the attestation does not lead to a root the metadata lists for the model")]
    AttestationInvalid,
    #[error("the policy requires verified attestation, and none was given")]
    AttestationRequired,
}

/// One group's policy.
#[derive(Debug, Clone)]
pub struct Policy {
    settings: PolicySettings,
}

impl Policy {
    fn new(settings: PolicySettings) -> Self {
        Self { settings }
    }

    /// Whether only attested passkeys may be registered: password managers
    /// (the automatic upgrade) never attest.
    pub fn requires_attestation(&self) -> bool {
        self.settings.require_attestation
            || !self.settings.allow.is_empty()
            || self.settings.min_certification.is_some()
    }

    /// The policy's answer to a new passkey, with what to store of its
    /// attestation.
    pub fn admit(
        &self,
        claimed: Uuid,
        attestation: &Attestation,
        model: Option<&Model>,
        metadata_no: Option<i32>,
    ) -> Result<Option<NewAttestation>, Refusal> {
        let s = &self.settings;
        let (format, aaguid, model, no) = match (attestation, model, metadata_no) {
            (Attestation::Verified { format, aaguid }, Some(model), Some(no)) => {
                (format, *aaguid, model, no)
            }
            (Attestation::Unverifiable(_), _, _) if self.requires_attestation() => {
                return Err(Refusal::AttestationInvalid)
            }
            _ => {
                // A claim is enough to refuse, never to admit.
                if s.deny.contains(&claimed) {
                    return Err(Refusal::NotAllowed);
                }
                if self.requires_attestation() {
                    return Err(Refusal::AttestationRequired);
                }
                return Ok(None);
            }
        };
        if s.deny.contains(&aaguid) || (!s.allow.is_empty() && !s.allow.contains(&aaguid)) {
            return Err(Refusal::NotAllowed);
        }
        if self.refused_status(model).is_some() {
            return Err(Refusal::Revoked);
        }
        if let Some(minimum) = s.min_certification {
            if model.certification.is_none_or(|level| level < minimum) {
                return Err(Refusal::NotCertified);
            }
        }
        Ok(Some(NewAttestation {
            format: format.clone(),
            aaguid,
            description: model.description.clone(),
            certification: model.certification.map(|c| c.as_str().to_string()),
            metadata_no: no,
        }))
    }

    /// The first of the model's statuses this policy refuses.
    pub fn refused_status<'m>(&self, model: &'m Model) -> Option<&'m str> {
        model
            .statuses
            .iter()
            .find(|status| self.settings.refused_statuses.contains(status))
            .map(String::as_str)
    }
}

/// Everything registration and the refresh need to apply the policy.
pub struct Authenticators {
    pub metadata: Arc<Metadata>,
    default: Policy,
    rules: Vec<(Condition, Policy)>,
    pub on_status_change: OnStatusChange,
}

impl Authenticators {
    pub fn new(
        settings: &AuthenticatorSettings,
        attestation_requested: bool,
        metrics: &Metrics,
    ) -> anyhow::Result<Self> {
        let metadata = Arc::new(Metadata::new(settings.metadata.clone(), metrics)?);
        let authenticators = Self {
            metadata,
            default: Policy::new(settings.policy.clone()),
            rules: settings
                .rules
                .iter()
                .map(|rule| (rule.when.clone(), Policy::new(rule.policy.clone())))
                .collect(),
            on_status_change: settings.on_status_change,
        };
        let needs_attestation = authenticators.policies().any(Policy::requires_attestation);
        if needs_attestation && !attestation_requested {
            anyhow::bail!(
                "authenticators.policy (or a rule) requires attestation: set webauthn.attestation to direct or enterprise"
            );
        }
        if attestation_requested && settings.metadata.is_none() {
            anyhow::bail!(
                "webauthn.attestation direct or enterprise verifies against the FIDO metadata: set authenticators.metadata"
            );
        }
        Ok(authenticators)
    }

    fn policies(&self) -> impl Iterator<Item = &Policy> {
        std::iter::once(&self.default).chain(self.rules.iter().map(|(_, p)| p))
    }

    /// The policy of `identity`'s group: the first rule that matches.
    pub fn policy_for(&self, identity: &KratosIdentity) -> &Policy {
        self.rules
            .iter()
            .find(|(condition, _)| condition.matches(identity))
            .map_or(&self.default, |(_, policy)| policy)
    }

    /// The answer of `identity`'s policy to a new passkey verified against
    /// `blob` (the BLOB in use when it was verified).
    pub fn admit(
        &self,
        identity: &KratosIdentity,
        claimed: Uuid,
        attestation: &Attestation,
        blob: Option<&crate::metadata::Blob>,
    ) -> Result<Option<NewAttestation>, Refusal> {
        let model = match attestation {
            Attestation::Verified { aaguid, .. } => blob.and_then(|b| b.models.get(aaguid)),
            _ => None,
        };
        self.policy_for(identity)
            .admit(claimed, attestation, model, blob.map(|b| b.no))
    }

    /// The default policy: what acts on passkeys after a status change (a
    /// status the default refuses is refused for everyone).
    pub fn default_policy(&self) -> &Policy {
        &self.default
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use webauthn_rs::prelude::AttestationCaList;

    fn model(certification: Option<CertificationLevel>, statuses: &[&str]) -> Model {
        Model {
            aaguid: Uuid::from_u128(7),
            description: "Key".into(),
            icon: None,
            certification,
            statuses: statuses.iter().map(|s| s.to_string()).collect(),
            status_reports: Value::Null,
            roots: AttestationCaList::default(),
        }
    }

    fn verified() -> Attestation {
        Attestation::Verified {
            format: "packed".into(),
            aaguid: Uuid::from_u128(7),
        }
    }

    #[test]
    fn each_refusal_has_its_reason() {
        let policy = |change: fn(&mut PolicySettings)| {
            let mut s = PolicySettings::default();
            change(&mut s);
            Policy::new(s)
        };
        let aaguid = Uuid::from_u128(7);
        let l1 = model(Some(CertificationLevel::L1), &["FIDO_CERTIFIED_L1"]);
        assert_eq!(
            policy(|s| s.deny = vec![Uuid::from_u128(7)])
                .admit(aaguid, &verified(), Some(&l1), Some(1))
                .unwrap_err(),
            Refusal::NotAllowed
        );
        assert_eq!(
            policy(|s| s.allow = vec![Uuid::from_u128(8)])
                .admit(aaguid, &verified(), Some(&l1), Some(1))
                .unwrap_err(),
            Refusal::NotAllowed
        );
        assert_eq!(
            policy(|s| s.min_certification = Some(CertificationLevel::L2))
                .admit(aaguid, &verified(), Some(&l1), Some(1))
                .unwrap_err(),
            Refusal::NotCertified
        );
        let revoked = model(Some(CertificationLevel::L3), &["REVOKED"]);
        assert_eq!(
            policy(|_| {})
                .admit(aaguid, &verified(), Some(&revoked), Some(1))
                .unwrap_err(),
            Refusal::Revoked
        );
        assert_eq!(
            policy(|s| s.require_attestation = true)
                .admit(aaguid, &Attestation::Unattested, None, Some(1))
                .unwrap_err(),
            Refusal::AttestationRequired
        );
        assert_eq!(
            policy(|s| s.require_attestation = true)
                .admit(
                    aaguid,
                    &Attestation::Unverifiable("x".into()),
                    None,
                    Some(1)
                )
                .unwrap_err(),
            Refusal::AttestationInvalid
        );
        // Without a requirement, an unattested passkey is admitted as a claim.
        assert!(matches!(
            policy(|_| {}).admit(aaguid, &Attestation::Unattested, None, None),
            Ok(None)
        ));
        let stored = policy(|s| s.min_certification = Some(CertificationLevel::L1))
            .admit(aaguid, &verified(), Some(&l1), Some(4))
            .expect("admitted")
            .expect("attested");
        assert_eq!(stored.certification.as_deref(), Some("FIDO_CERTIFIED_L1"));
        assert_eq!(stored.metadata_no, 4);
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let identity = |role: &str| KratosIdentity {
            id: crate::domain::IdentityId::new(Uuid::from_u128(1)),
            traits: serde_json::json!({"email": "a@example.com"}),
            metadata_public: serde_json::json!({"role": role}),
        };
        let condition = Condition {
            field: "metadata_public.role".into(),
            equals: Value::String("admin".into()),
        };
        assert!(condition.matches(&identity("admin")));
        assert!(!condition.matches(&identity("staff")));
        let by_trait = Condition {
            field: "traits.email".into(),
            equals: Value::String("a@example.com".into()),
        };
        assert!(by_trait.matches(&identity("staff")));
    }
}
