//! SPEC 10: ArcGIS portals and ESRI tokens, against the in-process fake portal
//! (`fake_portal`): login with and without a client secret, the 200-with-`error` answers,
//! `/metadata` and readiness, refresh, logout (revocation, `oauth2/signout`), ESRI bearer
//! tokens, and the `access_token` and `arcgis_server` targets through `POST /token` and the
//! proxy.

use std::time::Duration;

use crate::fake_portal::{
    CLIENT_ID, CLIENT_SECRET, FakePortal, Fault, PUBLIC_CLIENT_ID, PortalUser,
};
use crate::helpers::{
    APP_URL, AppOptions, TestApp, assert_error, browser, location, spawn_app_with, urlencode,
};

/// The `[[providers]]` table of portal `portal` with id `id`.
fn provider(portal: &FakePortal, id: &str, client_id: &str, extra: &str) -> String {
    let secret = if client_id == CLIENT_ID {
        format!("client_secret = \"{CLIENT_SECRET}\"\n")
    } else {
        String::new()
    };
    format!(
        "\n[[providers]]\nid = \"{id}\"\nkind = \"arcgis\"\nname = \"ArcGIS (test)\"\nportal_url = \"{}\"\nclient_id = \"{client_id}\"\n{secret}{extra}\n",
        portal.portal_url()
    )
}

async fn app_with(tail: String) -> TestApp {
    spawn_app_with(AppOptions {
        tail,
        ..AppOptions::default()
    })
    .await
}

/// Runs the login at provider `id` for `user`; returns the callback's answer.
async fn login(
    app: &TestApp,
    client: &reqwest::Client,
    portal: &FakePortal,
    id: &str,
    user: &PortalUser,
) -> reqwest::Response {
    let response = client
        .get(app.url(&format!(
            "/login?returnURL={}&provider={id}",
            urlencode(APP_URL)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let authorize = location(&response);
    assert!(
        authorize.starts_with(&format!("{}/oauth2/authorize?", portal.portal_url())),
        "{authorize}"
    );
    let callback = portal.authorize(&authorize, user);
    client.get(callback).send().await.unwrap()
}

async fn logged_in(app: &TestApp, portal: &FakePortal, id: &str) {
    let response = login(app, &app.client, portal, id, &PortalUser::jdoe()).await;
    assert_eq!(response.status(), 302, "{:?}", response.text().await);
    assert_eq!(location(&response), APP_URL);
}

#[tokio::test]
async fn a_portal_login_with_a_client_secret_builds_the_session_from_community_self() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "")).await;
    logged_in(&app, &portal, "agol").await;
    let userinfo = app.userinfo().await;
    assert_eq!(userinfo["name"], "jdoe_org", "{userinfo}");
    assert_eq!(userinfo["provider"], "agol", "{userinfo}");
    assert_eq!(userinfo["roles"], serde_json::json!(["org_publisher"]));
    assert_eq!(
        userinfo["groups"],
        serde_json::json!(["Field crew", "Editors"])
    );
    let attributes = &userinfo["attributes"];
    assert_eq!(attributes["fullName"], "Jane Doe", "{userinfo}");
    assert_eq!(attributes["email"], "jane@example.com");
    assert_eq!(attributes["orgId"], "0123456789ABCDEF");
    let token_form = &portal.forms("oauth2/token")[0];
    assert_eq!(token_form.get("grant_type"), Some("authorization_code"));
    assert_eq!(token_form.get("client_secret"), Some(CLIENT_SECRET));
    assert!(token_form.get("code_verifier").is_some());
    // The token went to community/self in the form body, never in a URL.
    let self_form = &portal.forms("community/self")[0];
    assert_eq!(self_form.get("f"), Some("json"));
    assert!(self_form.get("token").is_some());
    assert!(
        portal.urls().iter().all(|url| !url.contains("token=")),
        "{:?}",
        portal.urls()
    );
}

#[tokio::test]
async fn a_portal_app_without_a_secret_logs_in_with_pkce_alone_and_roles_from_privileges() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(
        &portal,
        "enterprise",
        PUBLIC_CLIENT_ID,
        "roles_from = \"privileges\"\nattributes = [\"fullName\"]",
    ))
    .await;
    logged_in(&app, &portal, "enterprise").await;
    let userinfo = app.userinfo().await;
    assert_eq!(
        userinfo["roles"],
        serde_json::json!(["portal:user:createItem", "portal:publisher:publishFeatures"])
    );
    assert_eq!(
        userinfo["attributes"],
        serde_json::json!({"fullName": "Jane Doe"})
    );
    assert_eq!(portal.forms("oauth2/token")[0].get("client_secret"), None);
}

#[tokio::test]
async fn error_answers_of_the_portal_fail_the_login() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "")).await;
    for (operation, fault, status) in [
        ("oauth2/token", Fault::Error498, 400),
        ("oauth2/token", Fault::Http400, 400),
        ("oauth2/token", Fault::Http503, 502),
        ("community/self", Fault::Error498, 400),
        ("community/self", Fault::Error500, 502),
    ] {
        portal.set_fault(operation, Some(fault));
        let response = login(&app, &browser(), &portal, "agol", &PortalUser::jdoe()).await;
        assert_error(response, status, "LOGIN_FAILED").await;
        portal.set_fault(operation, None);
    }
    portal.set_username_in_token_answer(Some("somebody_else"));
    let response = login(&app, &browser(), &portal, "agol", &PortalUser::jdoe()).await;
    assert_error(response, 400, "LOGIN_FAILED").await;
}

#[tokio::test]
async fn metadata_lists_the_portal_and_readiness_checks_its_info() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "")).await;
    let body: serde_json::Value = app.get("/metadata").await.json().await.unwrap();
    assert_eq!(
        body["providers"][1],
        serde_json::json!({"id": "agol", "name": "ArcGIS (test)", "url": portal.portal_url()})
    );
    let ready: serde_json::Value = app.get("/health/ready").await.json().await.unwrap();
    assert_eq!(ready["checks"]["providers"]["agol"], "ok", "{ready}");
    assert!(portal.calls("info") >= 1);
    assert!(
        portal
            .urls()
            .iter()
            .any(|url| url == "/sharing/rest/info?f=json")
    );
}

#[tokio::test]
async fn a_portal_down_makes_the_login_answer_provider_unavailable() {
    let portal = FakePortal::start().await;
    portal.set_fault("info", Some(Fault::Http503));
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "")).await;
    let ready = app.get("/health/ready").await;
    assert_eq!(ready.status(), 503);
    let response = app
        .get(&format!(
            "/login?returnURL={}&provider=agol",
            urlencode(APP_URL)
        ))
        .await;
    assert_error(response, 502, "PROVIDER_UNAVAILABLE").await;
}

async fn post_token(app: &TestApp, client: &reqwest::Client, target: &str) -> reqwest::Response {
    client
        .post(app.url("/token"))
        .header("X-Requested-With", "XMLHttpRequest")
        .form(&[("target", target)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_portal_token_is_refreshed_before_it_expires_following_a_new_refresh_token() {
    let portal = FakePortal::start().await;
    portal.set_token_ttl(2);
    portal.set_rotate_refresh_tokens(true);
    let target = format!("{}/", portal.server_url());
    let app = app_with(format!(
            "{}\n[[targets]]\nurl = \"{target}\"\nstrategy = \"access_token\"\ntransport = [\"TOKEN_PARAMETER\"]\n",
            provider(&portal, "agol", CLIENT_ID, "")
        ),
    )
    .await;
    logged_in(&app, &portal, "agol").await;
    let first: serde_json::Value = post_token(&app, &app.client, &target)
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let second: serde_json::Value = post_token(&app, &app.client, &target)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(
        first["token"]["value"], second["token"]["value"],
        "{first} {second}"
    );
    let refreshes: Vec<_> = portal
        .forms("oauth2/token")
        .into_iter()
        .filter(|form| form.get("grant_type") == Some("refresh_token"))
        .collect();
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].get("client_id"), Some(CLIENT_ID));
    // The rotated refresh token is the one used next time.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let third = post_token(&app, &app.client, &target).await;
    assert_eq!(third.status(), 200);
    assert_eq!(portal.live_refresh_tokens(), 1);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_and_signs_out_at_the_portal() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "")).await;
    logged_in(&app, &portal, "agol").await;
    assert_eq!(portal.live_refresh_tokens(), 1);
    let response = app
        .get(&format!("/logout?returnURL={}", urlencode(APP_URL)))
        .await;
    assert_eq!(response.status(), 302);
    let signout = url::Url::parse(&location(&response)).unwrap();
    assert!(
        signout
            .as_str()
            .starts_with(&format!("{}/oauth2/signout?", portal.portal_url())),
        "{signout}"
    );
    let query: std::collections::HashMap<_, _> = signout.query_pairs().into_owned().collect();
    assert_eq!(query["client_id"], CLIENT_ID);
    let back = &query["redirect_uri"];
    assert!(back.starts_with(&app.url("/logout/callback")), "{back}");
    let returned = app.client.get(back).send().await.unwrap();
    assert_eq!(returned.status(), 302);
    assert_eq!(location(&returned), APP_URL);
    for _ in 0..50 {
        if portal.live_refresh_tokens() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(portal.live_refresh_tokens(), 0);
    let revoke = &portal.forms("oauth2/revokeToken")[0];
    assert_eq!(revoke.get("client_id"), Some(CLIENT_ID));
    assert_eq!(revoke.get("token_type_hint"), Some("refresh_token"));
    assert!(revoke.get("auth_token").is_some());
}

#[tokio::test]
async fn a_portal_that_does_not_answer_the_revocation_does_not_hold_up_the_logout() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "")).await;
    logged_in(&app, &portal, "agol").await;
    portal.set_fault("oauth2/revokeToken", Some(Fault::Silent));
    let started = std::time::Instant::now();
    let response = app.get("/logout").await;
    assert_eq!(response.status(), 200);
    // Waiting for the revocation would take its whole 2 s deadline.
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.userinfo().await["authenticated"], false);
    for _ in 0..100 {
        if portal.calls("oauth2/revokeToken") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(portal.calls("oauth2/revokeToken"), 1);
}

async fn bearer(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn esri_bearer_tokens_are_checked_at_community_self_and_cached() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "accept_bearer = true")).await;
    let token = portal.issue_token(&PortalUser::jdoe());
    let response = bearer(&app, "/userinfo", &token).await;
    assert_eq!(response.status(), 200);
    let userinfo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(userinfo["name"], "jdoe_org");
    assert_eq!(
        userinfo["groups"],
        serde_json::json!(["Field crew", "Editors"])
    );
    assert_eq!(bearer(&app, "/userinfo", &token).await.status(), 200);
    assert_eq!(portal.calls("community/self"), 1, "the answer is cached");
    // A refused token is asked about once per 10 s, however often it comes.
    let unknown = "not-a-portal-token..";
    for _ in 0..3 {
        assert_error(
            bearer(&app, "/userinfo", unknown).await,
            401,
            "UNAUTHORIZED",
        )
        .await;
    }
    assert_eq!(portal.calls("community/self"), 2);
    // A JWT never goes to a portal.
    let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    assert_error(bearer(&app, "/userinfo", jwt).await, 401, "UNAUTHORIZED").await;
    assert_eq!(portal.calls("community/self"), 2);
    assert!(portal.urls().iter().all(|url| !url.contains("token=")));
}

#[tokio::test]
async fn a_portal_down_answers_an_esri_bearer_token_with_502() {
    let portal = FakePortal::start().await;
    let app = app_with(provider(&portal, "agol", CLIENT_ID, "accept_bearer = true")).await;
    let token = portal.issue_token(&PortalUser::jdoe());
    portal.set_fault("community/self", Some(Fault::Http503));
    assert_error(
        bearer(&app, "/userinfo", &token).await,
        502,
        "PROVIDER_UNAVAILABLE",
    )
    .await;
    let other = portal.issue_token(&PortalUser::jdoe());
    portal.set_fault("community/self", Some(Fault::Error498));
    assert_error(bearer(&app, "/userinfo", &other).await, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn two_portals_and_an_openid_provider_side_by_side() {
    let online = FakePortal::start().await;
    let enterprise = FakePortal::start().await;
    let app = app_with(format!(
        "{}{}",
        provider(&online, "agol", CLIENT_ID, "accept_bearer = true"),
        provider(
            &enterprise,
            "enterprise",
            PUBLIC_CLIENT_ID,
            "accept_bearer = true"
        )
    ))
    .await;
    let token = enterprise.issue_token(&PortalUser::jdoe());
    let response = bearer(&app, "/userinfo", &token).await;
    assert_eq!(response.status(), 200);
    let userinfo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(userinfo["provider"], "enterprise");
    assert_eq!(online.calls("community/self"), 1);
    assert_eq!(enterprise.calls("community/self"), 1);
    // The OpenID provider's users still log in.
    app.login(&crate::fake_op::TestUser::alice()).await;
}

fn server_targets(portal: &FakePortal) -> String {
    let server = portal.server_url();
    format!(
        r#"
[[targets]]
url = "{server}/"
strategy = "arcgis_server"
transport = ["TOKEN_PARAMETER"]
proxy_path = "/api/gis"

[[targets]]
url = "{server}/portal-token/"
strategy = "access_token"
transport = ["TOKEN_PARAMETER"]
"#
    )
}

#[tokio::test]
async fn arcgis_server_tokens_come_from_generate_token_and_are_cached() {
    let portal = FakePortal::start().await;
    let app = app_with(format!(
        "{}{}",
        provider(&portal, "agol", CLIENT_ID, ""),
        server_targets(&portal)
    ))
    .await;
    logged_in(&app, &portal, "agol").await;
    let target = format!("{}/", portal.server_url());
    let response = post_token(&app, &app.client, &target).await;
    assert_eq!(response.status(), 200);
    let first: serde_json::Value = response.json().await.unwrap();
    let second: serde_json::Value = post_token(&app, &app.client, &target)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["token"]["value"], second["token"]["value"]);
    assert_eq!(portal.calls("generateToken"), 1);
    let form = &portal.forms("generateToken")[0];
    assert_eq!(form.get("request"), Some("getToken"));
    assert_eq!(form.get("serverUrl"), Some(target.as_str()));
    assert_eq!(form.get("f"), Some("json"));
    // The proxy adds token= (and drops the browser's own).
    let proxied = app
        .client
        .get(app.url("/api/gis/Parcels/FeatureServer?f=json&token=forged"))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 200);
    let body: serde_json::Value = proxied.json().await.unwrap();
    assert!(body["services"].is_array(), "{body}");
    // access_token gives the portal token itself.
    let portal_token: serde_json::Value = post_token(
        &app,
        &app.client,
        &format!("{}/portal-token/", portal.server_url()),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_ne!(portal_token["token"]["value"], first["token"]["value"]);
    assert!(portal.knows_token(portal_token["token"]["value"].as_str().unwrap()));
}

#[tokio::test]
async fn a_server_token_is_renewed_shortly_before_it_expires() {
    let portal = FakePortal::start().await;
    portal.set_server_token_ttl_ms(3000);
    let app = app_with(format!(
        "{}{}",
        provider(&portal, "agol", CLIENT_ID, ""),
        server_targets(&portal)
    ))
    .await;
    logged_in(&app, &portal, "agol").await;
    let target = format!("{}/", portal.server_url());
    let first: serde_json::Value = post_token(&app, &app.client, &target)
        .await
        .json()
        .await
        .unwrap();
    let again: serde_json::Value = post_token(&app, &app.client, &target)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["token"]["value"], again["token"]["value"]);
    assert_eq!(portal.calls("generateToken"), 1);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let renewed: serde_json::Value = post_token(&app, &app.client, &target)
        .await
        .json()
        .await
        .unwrap();
    assert_ne!(first["token"]["value"], renewed["token"]["value"]);
    assert_eq!(portal.calls("generateToken"), 2);
}

#[tokio::test]
async fn a_generate_token_error_is_token_unavailable() {
    let portal = FakePortal::start().await;
    let app = app_with(format!(
        "{}{}",
        provider(&portal, "agol", CLIENT_ID, "accept_bearer = true"),
        server_targets(&portal)
    ))
    .await;
    logged_in(&app, &portal, "agol").await;
    let target = format!("{}/", portal.server_url());
    portal.set_fault("generateToken", Some(Fault::Error498));
    assert_error(
        post_token(&app, &app.client, &target).await,
        502,
        "TOKEN_UNAVAILABLE",
    )
    .await;
    portal.set_fault("generateToken", None);
    // An ESRI bearer caller sees the targets and gets a server token too.
    let token = portal.issue_token(&PortalUser::jdoe());
    let targets = bearer(&app, "/token-targets", &token).await;
    assert_eq!(targets.status(), 200);
    let targets: serde_json::Value = targets.json().await.unwrap();
    assert_eq!(targets["targets"][0], target.as_str(), "{targets}");
    let response = reqwest::Client::new()
        .post(app.url("/token"))
        .bearer_auth(&token)
        .form(&[("target", target.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let forms = portal.forms("generateToken");
    assert_eq!(forms.last().unwrap().get("token"), Some(token.as_str()));
}

#[test]
fn arcgis_configuration_is_checked() {
    let base = |provider: &str| {
        format!(
            "[server]\npublic_url = \"http://localhost:8080\"\n[session]\nstore = \"memory\"\n[redirects]\nallowed_origins = [\"http://localhost:3000\"]\n[[providers]]\nid = \"agol\"\nkind = \"arcgis\"\nclient_id = \"c\"\n{provider}"
        )
    };
    let problem = |provider: &str| crate::helpers::load_config_text(&base(provider)).unwrap_err();
    assert!(
        problem("").contains("providers[0].portal_url"),
        "{}",
        problem("")
    );
    let http = problem("portal_url = \"http://gis.example.com/portal/sharing/rest\"");
    assert!(
        http.contains("providers[0].portal_url") && http.contains("https"),
        "{http}"
    );
    let issuer = problem(
        "portal_url = \"https://www.arcgis.com/sharing/rest\"\nissuer = \"https://x.example\"",
    );
    assert!(
        issuer.contains("providers[0].issuer") && issuer.contains("unknown key"),
        "{issuer}"
    );
    let roles =
        problem("portal_url = \"https://www.arcgis.com/sharing/rest\"\nroles_from = \"groups\"");
    assert!(roles.contains("providers[0].roles_from"), "{roles}");
    let kind = crate::helpers::load_config_text(
        &base("portal_url = \"https://www.arcgis.com/sharing/rest\"")
            .replace("\"arcgis\"", "\"saml\""),
    )
    .unwrap_err();
    assert!(kind.contains("providers[0].kind"), "{kind}");
    assert!(
        crate::helpers::load_config_text(&base(
            "portal_url = \"https://www.arcgis.com/sharing/rest\""
        ))
        .is_ok()
    );
    assert!(
        crate::helpers::load_config_text(&base("portal_url = \"http://127.0.0.1:9/sharing/rest\""))
            .is_ok()
    );
}

#[tokio::test]
async fn every_portal_refusal_logs_one_warn_line_naming_its_check_and_no_token() {
    use crate::refusal_logs::{LoggedService, one_warning};
    let op = crate::fake_op::FakeOp::start().await;
    let portal = FakePortal::start().await;
    let mut service = LoggedService::start(
        &op,
        AppOptions {
            store: "memory",
            tail: format!(
                "{}{}",
                provider(&portal, "agol", CLIENT_ID, "accept_bearer = true"),
                server_targets(&portal)
            ),
            ..AppOptions::default()
        },
    )
    .await;
    let _ = one_warning_or_none(&mut service).await;
    let mut tokens = Vec::new();

    // A login the portal refuses at oauth2/token (HTTP 200 with error 498).
    portal.set_fault("oauth2/token", Some(Fault::Error498));
    let browser = browser();
    let response = browser
        .get(service.url(&format!(
            "/login?returnURL={}&provider=agol",
            urlencode(APP_URL)
        )))
        .send()
        .await
        .unwrap();
    let callback = portal.authorize(&location(&response), &PortalUser::jdoe());
    tokens.push(query_value(&callback, "code"));
    assert_eq!(browser.get(&callback).send().await.unwrap().status(), 400);
    one_warning(
        &mut service,
        "token refused",
        &["login refused", "agol", "oauth2/token"],
    )
    .await;
    portal.set_fault("oauth2/token", None);

    // An ESRI bearer token the portal does not know.
    let refused = portal.issue_token(&PortalUser::jdoe()) + "x";
    tokens.push(refused.clone());
    let response = reqwest::Client::new()
        .get(service.url("/userinfo"))
        .bearer_auth(&refused)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    one_warning(
        &mut service,
        "bearer refused",
        &["bearer token refused", "agol", "community/self"],
    )
    .await;

    // The portal down for a bearer token: 502, and the line says so.
    let token = portal.issue_token(&PortalUser::jdoe());
    tokens.push(token.clone());
    portal.set_fault("community/self", Some(Fault::Http503));
    let response = reqwest::Client::new()
        .get(service.url("/userinfo"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    one_warning(
        &mut service,
        "portal down",
        &["bearer token not checked", "agol", "could not be asked"],
    )
    .await;
    portal.set_fault("community/self", None);

    // generateToken refused for a bearer caller.
    let token = portal.issue_token(&PortalUser::jdoe());
    tokens.push(token.clone());
    portal.set_fault("generateToken", Some(Fault::Error498));
    let response = reqwest::Client::new()
        .post(service.url("/token"))
        .bearer_auth(&token)
        .form(&[("target", format!("{}/", portal.server_url()))])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    one_warning(
        &mut service,
        "generateToken",
        &["target token refused", "agol", "generateToken"],
    )
    .await;

    let log = service.all();
    for token in tokens {
        assert!(!log.contains(&token), "a token or code is in the log");
    }
    assert!(!log.contains(CLIENT_SECRET));
}

async fn one_warning_or_none(service: &mut crate::refusal_logs::LoggedService) -> usize {
    service.new_warnings().await.len()
}

fn query_value(url: &str, name: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn one_refresh_of_the_portal_token_across_two_instances() {
    let portal = FakePortal::start().await;
    portal.set_token_ttl(1);
    let op = crate::fake_op::FakeOp::start().await;
    let target = format!("{}/portal-token/", portal.server_url());
    let tail = format!(
        "{}{}",
        provider(&portal, "agol", CLIENT_ID, ""),
        server_targets(&portal)
    );
    let (a, b) = crate::helpers::spawn_two_instances(&op, &tail).await;
    logged_in(&a, &portal, "agol").await;
    // The refreshed token lasts: a burst slower than a second (a loaded machine) must not
    // see the new token expire and refresh it again.
    portal.set_token_ttl(300);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let requests = (0..8).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        post_token(app, &a.client, &target)
    });
    let answers = futures_util::future::join_all(requests).await;
    let mut values = std::collections::HashSet::new();
    for answer in answers {
        assert_eq!(answer.status(), 200);
        let body: serde_json::Value = answer.json().await.unwrap();
        values.insert(body["token"]["value"].as_str().unwrap().to_owned());
    }
    assert_eq!(values.len(), 1, "every request got the one refreshed token");
    let refreshes = portal
        .forms("oauth2/token")
        .iter()
        .filter(|form| form.get("grant_type") == Some("refresh_token"))
        .count();
    assert_eq!(refreshes, 1);
}
