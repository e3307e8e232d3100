//! SPEC 11: a user's sessions (GET/DELETE /sessions), the operator's /admin/sessions,
//! token revocation at logout (RFC 7009), the listing data kept in Redis and its cost.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use identity_service::startup::Application;
use redis::AsyncCommands;
use serde_json::Value;

use crate::fake_op::{CLIENT_RSA_PUBLIC_PEM, ClientAuthMethod, FakeOp, TestUser, fixture_path};
use crate::helpers::{
    APP_URL, AppOptions, TestApp, assert_error, config_text, load_config_text, location, redis_url,
    session_cookie, spawn_app_for, spawn_app_with, spawn_two_instances, urlencode,
};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.86 Safari/537.36";
const ADMIN_TOKEN: &str = "adm1n-T0ken-for-tests";

/// A browser-like client that sends `user_agent`.
fn browser_as(user_agent: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .user_agent(user_agent)
        .build()
        .unwrap()
}

async fn logged_in(app: &TestApp, user: &TestUser, user_agent: &str) -> reqwest::Client {
    let client = browser_as(user_agent);
    let response = app.login_with(&client, user).await;
    assert_eq!(location(&response), APP_URL);
    client
}

async fn sessions_of(app: &TestApp, client: &reqwest::Client) -> Vec<Value> {
    let response = client.get(app.url("/sessions")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["sessions"].as_array().unwrap().clone()
}

async fn end(app: &TestApp, client: &reqwest::Client, path: &str) -> reqwest::Response {
    client
        .delete(app.url(path))
        .header("X-Requested-With", "XMLHttpRequest")
        .send()
        .await
        .unwrap()
}

async fn authenticated(app: &TestApp, client: &reqwest::Client) -> bool {
    app.userinfo_with(client).await["authenticated"] == true
}

fn clears_the_cookie(response: &reqwest::Response) -> bool {
    session_cookie(response).is_some_and(|cookie| cookie.starts_with("ctIDENTITY=;"))
}

#[tokio::test]
async fn a_user_sees_every_live_session_on_every_instance_newest_first() {
    let op = FakeOp::start().await;
    let (a, b) = spawn_two_instances(&op, "").await;
    let alice = TestUser::alice();
    let first = logged_in(&a, &alice, FIREFOX).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let second = logged_in(&b, &alice, CHROME).await;
    let _bob = logged_in(&a, &TestUser::bob(), FIREFOX).await;

    let listed = sessions_of(&a, &second).await;
    assert_eq!(listed.len(), 2, "{listed:#?}");
    assert_eq!(listed[0]["browser"], "Chrome 131 on Windows 10");
    assert_eq!(listed[0]["current"], true);
    assert_eq!(listed[1]["browser"], "Firefox 133 on Linux");
    assert_eq!(listed[1]["current"], false);
    let now = chrono::Utc::now().timestamp();
    for session in &listed {
        let mut fields: Vec<&str> = session
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "browser",
                "createdAt",
                "current",
                "expiresAt",
                "id",
                "lastSeenAt",
                "provider"
            ]
        );
        assert_eq!(session["provider"], "local");
        let time = |name: &str| {
            chrono::DateTime::parse_from_rfc3339(session[name].as_str().unwrap())
                .unwrap()
                .timestamp()
        };
        assert!((time("createdAt") - now).abs() <= 5);
        assert_eq!(time("lastSeenAt") % 60, 0, "to the minute");
        assert!(now - time("lastSeenAt") < 65);
        // Default idle timeout 30m, max lifetime 12h: idle wins.
        assert!((time("expiresAt") - (now + 30 * 60)).abs() <= 5);
    }
    assert!(
        listed[0]["createdAt"].as_str() >= listed[1]["createdAt"].as_str(),
        "newest first"
    );
    // The other browser sees the same two, itself current; ids are stable.
    let from_first = sessions_of(&b, &first).await;
    assert_eq!(from_first.len(), 2);
    assert_eq!(from_first[0]["id"], listed[0]["id"]);
    assert_eq!(from_first[1]["id"], listed[1]["id"]);
    assert_eq!(from_first[1]["current"], true);
    assert_eq!(from_first[0]["current"], false);
}

#[tokio::test]
async fn a_subject_with_hundreds_of_sessions_sees_every_live_one_across_store_reads() {
    // More sessions than one store read checks (100), some ended in between: the listing
    // must keep each session paired with its own record across the reads.
    let app = spawn_app_with(AppOptions::default()).await;
    let alice = TestUser::alice();
    let mut clients = Vec::new();
    for _ in 0..230 {
        clients.push(logged_in(&app, &alice, FIREFOX).await);
    }
    let newest = clients.pop().unwrap();
    let listed = sessions_of(&app, &newest).await;
    assert_eq!(listed.len(), 230);
    assert_eq!(listed[0]["current"], true);
    // End every third of the others from the newest browser, and those at each read's
    // edge (listing positions 99, 100 and 199).
    let to_end: Vec<&str> = listed
        .iter()
        .enumerate()
        .filter(|(n, _)| *n > 0 && (n % 3 == 0 || [99, 100, 199].contains(n)))
        .map(|(_, session)| session["id"].as_str().unwrap())
        .collect();
    for id in &to_end {
        let response = end(&app, &newest, &format!("/sessions/{id}")).await;
        assert_eq!(response.status(), 200);
    }
    let listed = sessions_of(&app, &newest).await;
    assert_eq!(listed.len(), 230 - to_end.len());
    let ids: std::collections::HashSet<&str> = listed
        .iter()
        .map(|session| session["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), listed.len(), "no session listed twice");
    assert!(to_end.iter().all(|id| !ids.contains(id)));
    // Every browser still logged in sees the same list, itself in it as current.
    let mut live = 0;
    for client in &clients {
        if !authenticated(&app, client).await {
            continue;
        }
        live += 1;
        let own = sessions_of(&app, client).await;
        assert_eq!(own.len(), listed.len());
        let current = own
            .iter()
            .find(|session| session["current"] == true)
            .unwrap();
        assert!(ids.contains(current["id"].as_str().unwrap()));
    }
    assert_eq!(live + 1, listed.len());
}

#[tokio::test]
async fn a_listing_id_opens_nothing_and_redis_holds_no_cookie_and_no_token() {
    let app = spawn_app_with(AppOptions::default()).await;
    let client = browser_as(FIREFOX);
    let response = app.login_with(&client, &TestUser::alice()).await;
    let cookie = session_cookie(&response).unwrap();
    let value = cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("ctIDENTITY=");
    let (cookie_id, cookie_secret) = value.split_once('.').unwrap();
    let listed = sessions_of(&app, &client).await;
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert!(!value.contains(&id));
    // The id as a cookie opens nothing.
    let forged = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .header("Cookie", format!("ctIDENTITY={id}.{cookie_secret}"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.json::<Value>().await.unwrap()["authenticated"],
        false
    );

    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis.keys(format!("{}*", app.prefix)).await.unwrap();
    let mut dump = String::new();
    let mut listings = 0;
    for key in &keys {
        assert!(!key.contains(&id), "the listing id names a key: {key}");
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        dump.push_str(key);
        match kind.as_str() {
            "string" => {
                let value: Vec<u8> = redis.get(key).await.unwrap();
                dump.push_str(&String::from_utf8_lossy(&value));
            }
            "hash" => {
                listings += 1;
                let entries: Vec<(String, String)> = redis.hgetall(key).await.unwrap();
                for (field, entry) in entries {
                    // Only the listing fields: times and the label.
                    let parts: Vec<&str> = entry.splitn(3, ' ').collect();
                    assert!(
                        i64::from_str_radix(parts[0], 36).is_ok()
                            && i64::from_str_radix(parts[1], 36).is_ok()
                    );
                    assert_eq!(parts[2], "Firefox 133 on Linux");
                    assert!(entry.len() <= 64, "{entry}");
                    dump.push_str(&field);
                    dump.push_str(&entry);
                }
                let ttl: i64 = redis.pttl(key).await.unwrap();
                assert!(ttl > 0, "the listing expires");
            }
            "zset" => {
                let members: Vec<String> = redis.zrange(key, 0, -1).await.unwrap();
                dump.push_str(&members.join(" "));
            }
            _ => {}
        }
    }
    assert_eq!(listings, 1, "{keys:?}");
    let alice = TestUser::alice();
    for secret in [
        value,
        cookie_id,
        cookie_secret,
        "eyJ",
        alice.email.as_str(),
        alice.sub.as_str(),
        "127.0.0.1",
        "Mozilla",
    ] {
        assert!(!dump.contains(secret), "Redis holds {secret} in clear");
    }
}

#[tokio::test]
async fn bearer_callers_are_403_and_callers_without_a_session_401() {
    let app = spawn_app_with(AppOptions {
        provider_extra: "accept_bearer = true\nbearer_audience = \"identity\"\n".to_owned(),
        ..AppOptions::default()
    })
    .await;
    let token = app.op.access_token_for(&TestUser::alice(), "identity", 300);
    let client = reqwest::Client::new();
    let listing = client
        .get(app.url("/sessions"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_error(listing, 403, "FORBIDDEN").await;
    for path in ["/sessions", "/sessions/some-id"] {
        let ending = client
            .delete(app.url(path))
            .bearer_auth(&token)
            .header("X-Requested-With", "x")
            .send()
            .await
            .unwrap();
        assert_error(ending, 403, "FORBIDDEN").await;
    }
    assert_error(
        client.get(app.url("/sessions")).send().await.unwrap(),
        401,
        "UNAUTHORIZED",
    )
    .await;
    let nobody = client
        .delete(app.url("/sessions"))
        .header("X-Requested-With", "x")
        .send()
        .await
        .unwrap();
    assert_error(nobody, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn ending_another_session_ends_it_on_every_instance_at_once_and_is_not_revoked() {
    let op = FakeOp::start().await;
    let (a, b) = spawn_two_instances(&op, "").await;
    let alice = TestUser::alice();
    let first = logged_in(&a, &alice, FIREFOX).await;
    let second = logged_in(&b, &alice, CHROME).await;
    let listed = sessions_of(&b, &second).await;
    let other = listed
        .iter()
        .find(|session| session["current"] == false)
        .unwrap();
    let id = other["id"].as_str().unwrap();

    let response = end(&b, &second, &format!("/sessions/{id}")).await;
    assert_eq!(response.status(), 200);
    assert!(
        session_cookie(&response).is_none(),
        "the caller's cookie stays"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"success": true, "ended": 1}));
    assert!(!authenticated(&a, &first).await);
    assert!(!authenticated(&b, &first).await);
    assert!(authenticated(&a, &second).await);
    assert_eq!(sessions_of(&a, &second).await.len(), 1);
    // Ended from elsewhere: deleted, not revoked at the provider.
    assert!(op.revocations().is_empty());
    assert_eq!(op.live_refresh_tokens().len(), 2);
    assert_eq!(
        a.op.calls("/revoke"),
        0,
        "no revocation call for a session ended from elsewhere"
    );
    // The same id again is gone.
    assert_error(
        end(&a, &second, &format!("/sessions/{id}")).await,
        404,
        "NOT_FOUND",
    )
    .await;
}

#[tokio::test]
async fn another_users_session_and_unknown_ids_are_the_same_404() {
    let app = spawn_app_with(AppOptions::default()).await;
    let alice = logged_in(&app, &TestUser::alice(), FIREFOX).await;
    let bob = logged_in(&app, &TestUser::bob(), CHROME).await;
    let bobs_id = sessions_of(&app, &bob).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let theirs = end(&app, &alice, &format!("/sessions/{bobs_id}")).await;
    let theirs = assert_error(theirs, 404, "NOT_FOUND").await;
    let unknown = end(
        &app,
        &alice,
        "/sessions/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    let unknown = assert_error(unknown, 404, "NOT_FOUND").await;
    assert_eq!(theirs, unknown, "no difference visible");
    assert!(authenticated(&app, &bob).await);
    assert!(authenticated(&app, &alice).await);
}

#[tokio::test]
async fn ending_sessions_follows_the_csrf_rule_of_post_token() {
    let app = spawn_app_with(AppOptions::default()).await;
    let alice = logged_in(&app, &TestUser::alice(), FIREFOX).await;
    let id = sessions_of(&app, &alice).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in ["/sessions".to_owned(), format!("/sessions/{id}")] {
        let bare = alice.delete(app.url(&path)).send().await.unwrap();
        assert_error(bare, 403, "FORBIDDEN").await;
        let cross_site = alice
            .delete(app.url(&path))
            .header("Origin", "https://evil.example")
            .header("X-Requested-With", "x")
            .send()
            .await
            .unwrap();
        assert_error(cross_site, 403, "FORBIDDEN").await;
    }
    assert!(authenticated(&app, &alice).await);
    let allowed = alice
        .delete(app.url("/sessions"))
        .header("Origin", "http://localhost:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    assert!(!authenticated(&app, &alice).await);
}

#[tokio::test]
async fn log_out_everywhere_ends_all_clears_the_cookie_and_revokes_only_its_own_token() {
    let op = FakeOp::start().await;
    let (a, b) = spawn_two_instances(&op, "").await;
    let alice = TestUser::alice();
    let browsers = [
        logged_in(&a, &alice, FIREFOX).await,
        logged_in(&b, &alice, CHROME).await,
        logged_in(&a, &alice, CHROME).await,
    ];
    let bob = logged_in(&b, &TestUser::bob(), FIREFOX).await;
    let response = end(&b, &browsers[0], "/sessions").await;
    assert_eq!(response.status(), 200);
    assert!(clears_the_cookie(&response));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"success": true, "ended": 3}));
    for browser in &browsers {
        assert!(!authenticated(&a, browser).await);
        assert!(!authenticated(&b, browser).await);
    }
    assert!(authenticated(&a, &bob).await);
    assert_eq!(
        op.revocations(),
        vec![(
            "refresh_token".to_owned(),
            ClientAuthMethod::ClientSecretBasic
        )]
    );
    // Alice's two other grants and Bob's stay: their tokens are sealed with their cookies.
    assert_eq!(op.live_refresh_tokens().len(), 3);
}

#[tokio::test]
async fn ending_ones_own_session_by_id_clears_the_cookie_and_revokes_its_token() {
    let app = spawn_app_with(AppOptions::default()).await;
    let alice = logged_in(&app, &TestUser::alice(), FIREFOX).await;
    let other = logged_in(&app, &TestUser::alice(), CHROME).await;
    let own = sessions_of(&app, &alice)
        .await
        .into_iter()
        .find(|session| session["current"] == true)
        .unwrap();
    let response = end(
        &app,
        &alice,
        &format!("/sessions/{}", own["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert!(clears_the_cookie(&response));
    assert_eq!(response.json::<Value>().await.unwrap()["ended"], 1);
    assert!(!authenticated(&app, &alice).await);
    assert!(authenticated(&app, &other).await);
    assert_eq!(app.op.revocations().len(), 1);
    assert_eq!(app.op.live_refresh_tokens().len(), 1);
}

/// Logs `user` in at provider `provider` of `app` with `client`.
async fn login_at(app: &TestApp, client: &reqwest::Client, provider: &str) {
    let response = client
        .get(app.url(&format!(
            "/login?returnURL={}&provider={provider}",
            urlencode(APP_URL)
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 302);
    let callback = app.op.authorize(&location(&response), &TestUser::alice());
    let response = client.get(callback).send().await.unwrap();
    assert_eq!(location(&response), APP_URL);
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_with_every_client_authentication() {
    let op = FakeOp::start().await;
    op.register_client_key("identity-k", CLIENT_RSA_PUBLIC_PEM);
    let tail = format!(
        "[[providers]]\nid = \"keyed\"\nissuer = \"{issuer}\"\nclient_id = \"identity-k\"\nauth_method = \"private_key_jwt\"\nprivate_key_file = \"{key}\"\n\n[[providers]]\nid = \"posting\"\nissuer = \"{issuer}\"\nclient_id = \"identity\"\nclient_secret = \"identity-secret\"\nauth_method = \"client_secret_post\"\n",
        issuer = op.issuer(),
        key = fixture_path("client-rsa.pem").display(),
    );
    let app = spawn_app_for(
        &op,
        AppOptions {
            tail,
            ..AppOptions::default()
        },
    )
    .await;
    for (provider, method) in [
        ("local", ClientAuthMethod::ClientSecretBasic),
        ("posting", ClientAuthMethod::ClientSecretPost),
        ("keyed", ClientAuthMethod::PrivateKeyJwt),
    ] {
        let client = browser_as(FIREFOX);
        login_at(&app, &client, provider).await;
        assert_eq!(op.live_refresh_tokens().len(), 1, "{provider}");
        let logout = client.get(app.url("/logout")).send().await.unwrap();
        assert_eq!(logout.status(), 200, "{provider}");
        assert_eq!(
            op.revocations().last().cloned(),
            Some(("refresh_token".to_owned(), method)),
            "{provider}"
        );
        assert!(op.live_refresh_tokens().is_empty(), "{provider}: revoked");
        assert!(!authenticated(&app, &client).await);
    }
}

#[tokio::test]
async fn without_a_refresh_token_the_access_token_is_revoked() {
    let app = spawn_app_with(AppOptions::default()).await;
    app.op.set_issue_refresh_tokens(false);
    let client = logged_in(&app, &TestUser::alice(), FIREFOX).await;
    let logout = client.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(
        app.op.revocations(),
        vec![(
            "access_token".to_owned(),
            ClientAuthMethod::ClientSecretBasic
        )]
    );
}

#[tokio::test]
async fn a_slow_or_failing_revocation_endpoint_never_holds_up_or_fails_the_logout() {
    let app = spawn_app_with(AppOptions::default()).await;
    app.op.set_revocation_delay(10_000);
    let client = logged_in(&app, &TestUser::alice(), FIREFOX).await;
    let started = Instant::now();
    let logout = client.get(app.url("/logout")).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    assert!(
        started.elapsed() < Duration::from_millis(3000),
        "{:?}",
        started.elapsed()
    );
    assert!(!authenticated(&app, &client).await);

    app.op.set_revocation_delay(0);
    app.op.fail_revocation(Some(500));
    let client = logged_in(&app, &TestUser::alice(), FIREFOX).await;
    let everywhere = end(&app, &client, "/sessions").await;
    assert_eq!(everywhere.status(), 200);
    assert!(!authenticated(&app, &client).await);
}

/// An app with `[admin] token` and, with `metrics_bind`, a metrics listener; returns the
/// main address and the metrics address.
async fn admin_app(op: &FakeOp, metrics_bind: bool, admin: &str) -> (String, Option<String>) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut text = config_text(
        op,
        port,
        &AppOptions {
            tail: admin.to_owned(),
            ..AppOptions::default()
        },
    );
    if metrics_bind {
        text = text.replace("[server]\n", "[server]\nmetrics_bind = \"127.0.0.1:0\"\n");
    }
    let config = load_config_text(&text).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let application = Application::build_with_listener(config, listener)
        .await
        .unwrap();
    let metrics = application
        .metrics_port()
        .map(|port| format!("http://127.0.0.1:{port}"));
    tokio::spawn(application.run_until_stopped());
    let address = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{address}/health/ready"))
            .await
            .is_ok_and(|response| response.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (address, metrics)
}

fn admin_table() -> String {
    format!("[admin]\ntoken = \"{ADMIN_TOKEN}\"\n")
}

#[tokio::test]
async fn an_operator_lists_and_ends_a_subjects_sessions_with_the_admin_token() {
    let op = FakeOp::start().await;
    let (address, _) = admin_app(&op, false, &admin_table()).await;
    let app = TestApp {
        address: address.clone(),
        op: op.clone(),
        client: browser_as(FIREFOX),
        prefix: String::new(),
    };
    let alice = TestUser::alice();
    let browsers = [
        logged_in(&app, &alice, FIREFOX).await,
        logged_in(&app, &alice, CHROME).await,
    ];
    let bob = logged_in(&app, &TestUser::bob(), FIREFOX).await;
    let admin = reqwest::Client::new();
    let query = format!(
        "{address}/admin/sessions?provider=local&subject={}",
        urlencode(&alice.sub)
    );
    let listed = admin
        .get(&query)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    let listed = listed["sessions"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|session| session["current"] == false));
    assert_eq!(listed[0]["browser"], "Chrome 131 on Windows 10");

    // Refusals.
    let wrong = admin.get(&query).bearer_auth("nope").send().await.unwrap();
    assert_error(wrong, 401, "UNAUTHORIZED").await;
    let missing = admin.get(&query).send().await.unwrap();
    assert_error(missing, 401, "UNAUTHORIZED").await;
    let prefix_of_it = admin
        .delete(&query)
        .bearer_auth(&ADMIN_TOKEN[..10])
        .send()
        .await
        .unwrap();
    assert_error(prefix_of_it, 401, "UNAUTHORIZED").await;
    let no_subject = admin
        .get(format!("{address}/admin/sessions?provider=local"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(no_subject, 400, "MISSING_PARAMETER").await;
    let unknown = admin
        .get(format!("{address}/admin/sessions?provider=nope&subject=x"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(unknown, 400, "UNKNOWN_PROVIDER").await;
    for browser in &browsers {
        assert!(authenticated(&app, browser).await);
    }

    let ended = admin
        .delete(&query)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ended.status(), 200);
    assert_eq!(
        ended.json::<Value>().await.unwrap(),
        serde_json::json!({"success": true, "ended": 2})
    );
    for browser in &browsers {
        assert!(!authenticated(&app, browser).await);
    }
    assert!(authenticated(&app, &bob).await);
    assert!(op.revocations().is_empty(), "admin ends are not revoked");
    let metrics = reqwest::get(format!("{address}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("identity_sessions_ended_total{kind=\"admin\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn admin_endpoints_are_404_without_a_token_and_only_on_the_metrics_listener_with_one() {
    let op = FakeOp::start().await;
    let (address, _) = admin_app(&op, false, "").await;
    let query = "/admin/sessions?provider=local&subject=alice";
    let client = reqwest::Client::new();
    let none = client
        .get(format!("{address}{query}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(none, 404, "NOT_FOUND").await;
    let (address, _) = admin_app(&op, false, "[admin]\ntoken = \"\"\n").await;
    let empty = client
        .get(format!("{address}{query}"))
        .bearer_auth("")
        .send()
        .await
        .unwrap();
    assert_error(empty, 404, "NOT_FOUND").await;

    let (address, metrics) = admin_app(&op, true, &admin_table()).await;
    let metrics = metrics.unwrap();
    let on_main = client
        .get(format!("{address}{query}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_error(on_main, 404, "NOT_FOUND").await;
    let on_metrics = client
        .get(format!("{metrics}{query}"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(on_metrics.status(), 200);
    let wrong = client
        .delete(format!("{metrics}{query}"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401, "UNAUTHORIZED").await;
}

#[tokio::test]
async fn metrics_count_sessions_ended_by_kind() {
    let app = spawn_app_with(AppOptions::default()).await;
    let alice = TestUser::alice();
    let first = logged_in(&app, &alice, FIREFOX).await;
    assert_eq!(
        first.get(app.url("/logout")).send().await.unwrap().status(),
        200
    );
    let second = logged_in(&app, &alice, FIREFOX).await;
    let _third = logged_in(&app, &alice, CHROME).await;
    assert_eq!(end(&app, &second, "/sessions").await.status(), 200);
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains("identity_sessions_ended_total{kind=\"logout\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("identity_sessions_ended_total{kind=\"user\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_openapi_document_lists_the_session_endpoints() {
    let app = spawn_app_with(AppOptions::default()).await;
    let document: Value = app.get("/openapi.json").await.json().await.unwrap();
    let paths = &document["paths"];
    assert!(paths["/sessions"]["get"].is_object());
    assert!(paths["/sessions"]["delete"].is_object());
    assert!(paths["/sessions/{id}"]["delete"].is_object());
    assert!(paths["/admin/sessions"]["get"].is_object());
    assert!(paths["/admin/sessions"]["delete"].is_object());
    assert!(paths["/sessions/{id}"]["delete"]["responses"]["404"].is_object());
}

/// Issue 19 point 5: the listing adds at most 200 bytes of Redis memory per session
/// (MEMORY USAGE … SAMPLES 0, as bench/run measures), with many sessions of one subject
/// and with one session per subject.
#[tokio::test]
async fn the_listing_costs_at_most_200_bytes_of_redis_per_session() {
    let app = spawn_app_with(AppOptions::default()).await;
    let mut clients = Vec::new();
    for n in 0..40 {
        let user = if n < 30 {
            TestUser::alice()
        } else {
            TestUser::new(&format!("user-{n}"), &format!("user{n}"))
        };
        clients.push(logged_in(&app, &user, FIREFOX).await);
    }
    let mut redis = redis::Client::open(redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<String> = redis.keys(format!("{}*", app.prefix)).await.unwrap();
    let (mut listing, mut all) = (0_i64, 0_i64);
    for key in &keys {
        let used: i64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .arg("SAMPLES")
            .arg(0)
            .query_async(&mut redis)
            .await
            .unwrap();
        all += used;
        if key.ends_with(":l") {
            listing += used;
            let entries: i64 = redis.hlen(key).await.unwrap();
            assert!(used / entries <= 200, "{used} bytes for {entries} sessions");
        }
    }
    let sessions = clients.len() as i64;
    eprintln!(
        "Redis bytes per session: {} with the listing, {} without (listing {} per session)",
        all / sessions,
        (all - listing) / sessions,
        listing / sessions
    );
    assert!(listing / sessions <= 200, "{} bytes", listing / sessions);
}

#[tokio::test]
async fn the_memory_store_lists_and_ends_sessions_too() {
    let app = spawn_app_with(AppOptions {
        store: "memory",
        ..AppOptions::default()
    })
    .await;
    let alice = TestUser::alice();
    let first = logged_in(&app, &alice, FIREFOX).await;
    let second = logged_in(&app, &alice, CHROME).await;
    let listed = sessions_of(&app, &first).await;
    assert_eq!(listed.len(), 2);
    let other = listed.iter().find(|s| s["current"] == false).unwrap();
    assert_eq!(other["browser"], "Chrome 131 on Windows 10");
    let ended = end(
        &app,
        &first,
        &format!("/sessions/{}", other["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(ended.status(), 200);
    assert!(!authenticated(&app, &second).await);
    assert_eq!(sessions_of(&app, &first).await.len(), 1);
}
