//! One `[[providers]]` entry, and client authentication (`auth_method` with
//! `client_secret[_file]` or `private_key_file`), which client_credentials targets share.

use super::checks::{check_http_url, checked};
use super::take::{Problems, Section};
use super::{
    ArcgisConfig, ClientAuth, ClientKeyAlg, ParMode, Profile, ProviderConfig, ProviderLogoutConfig,
    RolesFrom,
};

/// The algorithms `id_token_signed_response_alg` may name: the asymmetric JWS algorithms
/// we verify (no `none`, no HMAC: a provider's tokens are checked with its public keys).
pub const ID_TOKEN_ALGORITHMS: [(&str, jsonwebtoken::Algorithm); 9] = {
    use jsonwebtoken::Algorithm as A;
    [
        ("RS256", A::RS256),
        ("RS384", A::RS384),
        ("RS512", A::RS512),
        ("PS256", A::PS256),
        ("PS384", A::PS384),
        ("PS512", A::PS512),
        ("ES256", A::ES256),
        ("ES384", A::ES384),
        ("EdDSA", A::EdDSA),
    ]
};

/// Provider defaults (SPEC section 3).
const DEFAULT_SCOPES: [&str; 3] = ["openid", "profile", "email"];
const DEFAULT_NAME_CLAIM: &str = "preferred_username";

/// One provider; also returns its id (when valid) even if the rest is not, for cross-checks.
pub(super) fn provider(
    mut s: Section,
    p: &mut Problems,
) -> (Option<String>, Option<ProviderConfig>) {
    let kind_given = s.has("kind");
    match s.choice(p, "kind", &KINDS) {
        Some(Kind::Arcgis) => return arcgis_provider(s, p),
        Some(Kind::Oidc) => {}
        None if kind_given => {
            // An unknown kind: only its id is worth checking.
            let id = s.required_string(p, "id");
            return (id, None);
        }
        None => {}
    }
    let id = s
        .required_string(p, "id")
        .and_then(|id| checked(p, s.path_of("id"), check_id(&id).map(|()| id)));
    let name = s.opt_string(p, "name");
    let issuer = s
        .required_url(p, "issuer")
        .and_then(|u| checked(p, s.path_of("issuer"), check_http_url(&u).map(|()| u)));
    let client_id = s.required_string(p, "client_id");
    let client_auth = client_auth(&mut s, p, true);
    let scopes = s.strings(p, "scopes").and_then(|scopes| {
        let has_openid = scopes.iter().any(|sc| sc == "openid");
        let result = if has_openid {
            Ok(scopes)
        } else {
            Err("must contain \"openid\"".to_owned())
        };
        checked(p, s.path_of("scopes"), result)
    });
    let scopes_default = || DEFAULT_SCOPES.iter().map(|sc| (*sc).to_owned()).collect();
    let name_claim = s
        .opt_string(p, "name_claim")
        .unwrap_or_else(|| DEFAULT_NAME_CLAIM.to_owned());
    let roles_claim = s.opt_string(p, "roles_claim");
    let groups_claim = s.opt_string(p, "groups_claim");
    let attributes = s.strings(p, "attributes").unwrap_or_default();
    let use_userinfo_endpoint = s.bool(p, "use_userinfo_endpoint").unwrap_or(true);
    let accept_bearer = s.bool(p, "accept_bearer").unwrap_or(false);
    let bearer_audience = s.opt_string(p, "bearer_audience");
    let introspection = s.bool(p, "introspection").unwrap_or(false);
    let introspection_endpoint = s.url(p, "introspection_endpoint").and_then(|u| {
        checked(
            p,
            s.path_of("introspection_endpoint"),
            check_http_url(&u).map(|()| u),
        )
    });
    let introspection_for_opaque = s.bool(p, "introspection_for_opaque").unwrap_or(false);
    if introspection_for_opaque && !(introspection && accept_bearer) {
        p.push(
            s.path_of("introspection_for_opaque"),
            "needs accept_bearer = true and introspection = true",
        );
    }
    let id_token_signed_response_alg = id_token_algorithm(&mut s, p);
    let mut logout_section = s.section(p, "logout");
    let rp_initiated = logout_section
        .bool(p, "rp_initiated")
        .unwrap_or(ProviderLogoutConfig::default().rp_initiated);
    logout_section.finish(p);
    let high_assurance = high_assurance(&mut s, p, client_auth.as_ref());
    // FAPI 2.0 Security Profile 5.4.1: PS256, ES256 or EdDSA only.
    if high_assurance.profile == Profile::Fapi2
        && let Some(algorithm) = id_token_signed_response_alg
        && !matches!(
            algorithm,
            jsonwebtoken::Algorithm::PS256
                | jsonwebtoken::Algorithm::ES256
                | jsonwebtoken::Algorithm::EdDSA
        )
    {
        p.push(
            s.path_of("id_token_signed_response_alg"),
            format!(
                "\"{algorithm:?}\" contradicts profile \"fapi2\" (SPEC 12): use PS256, ES256 or EdDSA"
            ),
        );
    }
    s.finish(p);

    let provider = (|| {
        let id = id.clone()?;
        let client_id = client_id?;
        Some(ProviderConfig {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            issuer: issuer?,
            bearer_audience: bearer_audience.unwrap_or_else(|| client_id.clone()),
            client_id,
            client_auth: client_auth?,
            scopes: scopes.unwrap_or_else(scopes_default),
            name_claim,
            roles_claim,
            groups_claim,
            attributes,
            use_userinfo_endpoint,
            accept_bearer,
            introspection,
            introspection_endpoint,
            introspection_for_opaque,
            logout: ProviderLogoutConfig { rp_initiated },
            id_token_signed_response_alg,
            arcgis: None,
            profile: high_assurance.profile,
            par: high_assurance.par,
            dpop: high_assurance.dpop,
            private_key_alg: high_assurance.private_key_alg,
        })
    })();
    (id, provider)
}

/// `id_token_signed_response_alg` (SPEC 3): `""` (not set) or one of [`ID_TOKEN_ALGORITHMS`].
fn id_token_algorithm(s: &mut Section, p: &mut Problems) -> Option<jsonwebtoken::Algorithm> {
    const KEY: &str = "id_token_signed_response_alg";
    let text = s.opt_string(p, KEY)?;
    if let Some((_, algorithm)) = ID_TOKEN_ALGORITHMS.iter().find(|(name, _)| *name == text) {
        return Some(*algorithm);
    }
    let names = ID_TOKEN_ALGORITHMS
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(", ");
    let refused = text.eq_ignore_ascii_case("none") || text.to_ascii_uppercase().starts_with("HS");
    let message = if refused {
        format!(
            "\"{}\" is refused: ID tokens must be signed with the provider's key ({names})",
            text.escape_debug()
        )
    } else {
        format!("\"{}\" is not one of {names}", text.escape_debug())
    };
    p.push(s.path_of(KEY), message);
    None
}

#[derive(Clone, Copy)]
enum Kind {
    Oidc,
    Arcgis,
}

const KINDS: [(&str, Kind); 2] = [("oidc", Kind::Oidc), ("arcgis", Kind::Arcgis)];

const ROLES_FROM: [(&str, RolesFrom); 2] = [
    ("role", RolesFrom::Role),
    ("privileges", RolesFrom::Privileges),
];

/// Default `attributes` of an ArcGIS provider (SPEC 10).
const DEFAULT_ARCGIS_ATTRIBUTES: [&str; 3] = ["fullName", "email", "orgId"];

/// A `kind = "arcgis"` provider (SPEC 10): the portal URL is its issuer; OpenID keys
/// (`issuer`, `scopes`, claim paths, introspection, `auth_method`) are unknown keys here.
fn arcgis_provider(mut s: Section, p: &mut Problems) -> (Option<String>, Option<ProviderConfig>) {
    let id = s
        .required_string(p, "id")
        .and_then(|id| checked(p, s.path_of("id"), check_id(&id).map(|()| id)));
    let name = s.opt_string(p, "name");
    let portal_url = s.required_url(p, "portal_url").and_then(|u| {
        checked(
            p,
            s.path_of("portal_url"),
            check_http_url(&u)
                .and_then(|()| check_https_or_loopback(&u))
                .map(|()| u),
        )
    });
    let client_id = s.required_string(p, "client_id");
    let secret_given = s.has("client_secret") || s.has("client_secret_file");
    let secret = s.secret(p, "client_secret");
    let accept_bearer = s.bool(p, "accept_bearer").unwrap_or(false);
    let roles_from_given = s.has("roles_from");
    let roles_from = s.choice(p, "roles_from", &ROLES_FROM);
    let roles_from_bad = roles_from.is_none() && roles_from_given;
    let attributes = s.strings(p, "attributes").unwrap_or_else(|| {
        DEFAULT_ARCGIS_ATTRIBUTES
            .iter()
            .map(|name| (*name).to_owned())
            .collect()
    });
    let mut logout_section = s.section(p, "logout");
    let rp_initiated = logout_section
        .bool(p, "rp_initiated")
        .unwrap_or(ProviderLogoutConfig::default().rp_initiated);
    logout_section.finish(p);
    s.finish(p);

    let provider = (|| {
        let id = id.clone()?;
        let client_id = client_id?;
        let portal_url = portal_url?;
        let client_auth = match secret {
            Some(secret) => ClientAuth::ClientSecretPost { secret },
            None if secret_given => return None,
            None => ClientAuth::None,
        };
        if roles_from_bad {
            return None;
        }
        Some(ProviderConfig {
            name: name.unwrap_or_else(|| id.clone()),
            id,
            issuer: portal_url.clone(),
            bearer_audience: client_id.clone(),
            client_id,
            client_auth,
            scopes: Vec::new(),
            name_claim: "username".to_owned(),
            roles_claim: Some("roles".to_owned()),
            groups_claim: Some("groups".to_owned()),
            attributes,
            use_userinfo_endpoint: false,
            accept_bearer,
            introspection: false,
            introspection_endpoint: None,
            introspection_for_opaque: false,
            logout: ProviderLogoutConfig { rp_initiated },
            id_token_signed_response_alg: None,
            profile: super::Profile::Oidc,
            par: super::ParMode::Never,
            dpop: false,
            private_key_alg: None,
            arcgis: Some(ArcgisConfig {
                portal_url,
                roles_from: roles_from.unwrap_or(RolesFrom::Role),
            }),
        })
    })();
    (id, provider)
}

/// https, or http to a loopback address (development): where tokens travel to a portal,
/// and a `fapi2` provider's redirect URI.
pub(super) fn check_https_or_loopback(url: &url::Url) -> Result<(), String> {
    let loopback = match url.host() {
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if url.scheme() == "https" || loopback {
        Ok(())
    } else {
        Err("must be an https URL (http only to a loopback address)".to_owned())
    }
}

const PROFILES: [(&str, Profile); 2] = [("oidc", Profile::Oidc), ("fapi2", Profile::Fapi2)];
const PAR_MODES: [(&str, ParMode); 3] = [
    ("auto", ParMode::Auto),
    ("always", ParMode::Always),
    ("never", ParMode::Never),
];
const KEY_ALGS: [(&str, ClientKeyAlg); 4] = [
    ("PS256", ClientKeyAlg::PS256),
    ("ES256", ClientKeyAlg::ES256),
    ("EdDSA", ClientKeyAlg::EdDSA),
    ("RS256", ClientKeyAlg::RS256),
];

/// `profile`, `par`, `dpop` and `private_key_alg` as configured, with what `fapi2` implies.
struct HighAssurance {
    profile: Profile,
    par: ParMode,
    dpop: bool,
    private_key_alg: Option<ClientKeyAlg>,
}

/// SPEC 12: `profile = "fapi2"` implies PAR, DPoP and `private_key_jwt` without RS256; a
/// key that says otherwise is named as a problem (exit 2).
fn high_assurance(
    s: &mut Section,
    p: &mut Problems,
    client_auth: Option<&ClientAuth>,
) -> HighAssurance {
    let profile = s.choice(p, "profile", &PROFILES).unwrap_or_default();
    let par = s.choice(p, "par", &PAR_MODES);
    let dpop = s.bool(p, "dpop");
    let private_key_alg = s.choice(p, "private_key_alg", &KEY_ALGS);
    let key_jwt = matches!(client_auth, Some(ClientAuth::PrivateKeyJwt { .. }));
    if private_key_alg.is_some() && client_auth.is_some() && !key_jwt {
        p.push(
            s.path_of("private_key_alg"),
            "is used only with auth_method \"private_key_jwt\"",
        );
    }
    if profile == Profile::Fapi2 {
        const FAPI: &str = "contradicts profile \"fapi2\" (SPEC 12)";
        if par == Some(ParMode::Never) {
            p.push(s.path_of("par"), format!("\"never\" {FAPI}"));
        }
        if dpop == Some(false) {
            p.push(s.path_of("dpop"), format!("false {FAPI}"));
        }
        if private_key_alg == Some(ClientKeyAlg::RS256) {
            p.push(
                s.path_of("private_key_alg"),
                format!("\"RS256\" {FAPI}: use PS256, ES256 or EdDSA"),
            );
        }
        match client_auth {
            Some(ClientAuth::ClientSecretBasic { .. } | ClientAuth::ClientSecretPost { .. }) => {
                p.push(
                    s.path_of("client_secret"),
                    format!("a client secret {FAPI}: use auth_method \"private_key_jwt\""),
                );
            }
            Some(ClientAuth::None) => p.push(
                s.path_of("auth_method"),
                format!("\"none\" {FAPI}: use \"private_key_jwt\""),
            ),
            Some(ClientAuth::PrivateKeyJwt { .. }) | None => {}
        }
    }
    let fapi2 = profile == Profile::Fapi2;
    HighAssurance {
        profile,
        par: if fapi2 {
            ParMode::Always
        } else {
            par.unwrap_or_default()
        },
        dpop: fapi2 || dpop.unwrap_or(false),
        private_key_alg,
    }
}

fn check_id(id: &str) -> Result<(), String> {
    if id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "\"{id}\" may only contain letters, digits, \"-\" and \"_\""
        ))
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Method {
    Basic,
    Post,
    PrivateKeyJwt,
    None,
}

const METHODS: [(&str, Method); 4] = [
    ("client_secret_basic", Method::Basic),
    ("client_secret_post", Method::Post),
    ("private_key_jwt", Method::PrivateKeyJwt),
    ("none", Method::None),
];

/// `auth_method` with `client_secret[_file]` or `private_key_file`. Without
/// `auth_method`, a lone `private_key_file` means `private_key_jwt`, else
/// `client_secret_basic`.
pub(super) fn client_auth(
    s: &mut Section,
    p: &mut Problems,
    allow_none: bool,
) -> Option<ClientAuth> {
    let secret_given = s.has("client_secret") || s.has("client_secret_file");
    let key_given = s.has("private_key_file");
    let method_given = s.has("auth_method");
    let method = if allow_none {
        s.choice(p, "auth_method", &METHODS)
    } else {
        s.choice(p, "auth_method", &METHODS[..3])
    };
    let secret = s.secret(p, "client_secret");
    let key_file = s.readable_file(p, "private_key_file");
    let method = match method {
        Some(m) => m,
        None if method_given => return None,
        None if key_given && !secret_given => Method::PrivateKeyJwt,
        None => Method::Basic,
    };
    let method_name = METHODS
        .iter()
        .find(|(_, m)| *m == method)
        .map_or("", |(n, _)| *n);
    let unused = |p: &mut Problems, key: &str| {
        p.push(
            s.path_of(key),
            format!("not used with auth_method \"{method_name}\""),
        );
    };
    match method {
        Method::Basic | Method::Post => {
            if key_given {
                unused(p, "private_key_file");
            }
            if !secret_given {
                p.push(
                    s.path_of("client_secret"),
                    format!(
                        "is required for auth_method \"{method_name}\" (or give client_secret_file)"
                    ),
                );
            }
            let secret = secret?;
            if key_given {
                return None;
            }
            Some(if method == Method::Basic {
                ClientAuth::ClientSecretBasic { secret }
            } else {
                ClientAuth::ClientSecretPost { secret }
            })
        }
        Method::PrivateKeyJwt => {
            if secret_given {
                unused(p, "client_secret");
            }
            if !key_given {
                p.push(
                    s.path_of("private_key_file"),
                    "is required for auth_method \"private_key_jwt\"",
                );
            }
            let key_file = key_file?;
            (!secret_given).then_some(ClientAuth::PrivateKeyJwt { key_file })
        }
        Method::None => {
            if secret_given {
                unused(p, "client_secret");
            }
            if key_given {
                unused(p, "private_key_file");
            }
            (!secret_given && !key_given).then_some(ClientAuth::None)
        }
    }
}
