//! Store round trips on the hot paths, counted with Redis MONITOR: a cached `POST /token`
//! reads its session and its cached token in one command.

use futures_util::StreamExt;

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{AppOptions, TestApp, redis_url, spawn_app_for};
use crate::targets::post_token;

/// The store commands (name and first key) the app sends under its prefix while `work`
/// runs. A marker command after `work` ends the count, so nothing here waits on time.
async fn commands_during<F: std::future::Future<Output = ()>>(
    app: &TestApp,
    work: F,
) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let monitor = client.get_async_monitor().await.unwrap();
    let mut lines = monitor.into_on_message::<String>();
    work.await;
    let marker = format!("{}end-of-count", app.prefix);
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let _: Option<Vec<u8>> = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut connection)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while let Some(line) = lines.next().await {
        if line.contains(&marker) {
            break;
        }
        if line.contains(&format!("\"{}", app.prefix)) {
            // `<time> [<db> <client>] "<COMMAND>" "<key>" …`
            let command = line.split('"').nth(1).unwrap_or_default().to_uppercase();
            seen.push(command);
        }
    }
    seen
}

async fn token_value(app: &TestApp, target: &str) -> String {
    let response = post_token(app, target).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let body: serde_json::Value = response.json().await.unwrap();
    body["token"]["value"].as_str().unwrap().to_owned()
}

async fn app_with(op: &FakeOp, targets: String) -> TestApp {
    spawn_app_for(
        op,
        AppOptions {
            tail: targets,
            ..AppOptions::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_cached_user_token_costs_one_store_command() {
    let op = FakeOp::start().await;
    let app = app_with(
        &op,
        "[[targets]]\nurl = \"https://gis.example.com/\"\nstrategy = \"jwt\"\nlifetime = \"2m\"\n"
            .to_owned(),
    )
    .await;
    app.login(&TestUser::alice()).await;
    let first = token_value(&app, "https://gis.example.com/layers").await;
    let mut second = String::new();
    let commands = commands_during(&app, async {
        second = token_value(&app, "https://gis.example.com/layers").await;
    })
    .await;
    assert_eq!(second, first);
    assert_eq!(commands, ["MGET"]);
}

#[tokio::test]
async fn a_cached_service_token_costs_one_store_command() {
    let op = FakeOp::start().await;
    op.add_client("service-a", Some("service-a-secret"));
    let app = app_with(
        &op,
        format!(
            "[[targets]]\nurl = \"https://meters.example.com/\"\nstrategy = \"client_credentials\"\ntoken_url = \"{}\"\nclient_id = \"service-a\"\nclient_secret = \"service-a-secret\"\n",
            op.token_endpoint()
        ),
    )
    .await;
    app.login(&TestUser::alice()).await;
    let first = token_value(&app, "https://meters.example.com/").await;
    let mut second = String::new();
    let commands = commands_during(&app, async {
        second = token_value(&app, "https://meters.example.com/").await;
    })
    .await;
    assert_eq!(second, first);
    assert_eq!(commands, ["MGET"]);
}

#[tokio::test]
async fn userinfo_costs_one_store_command() {
    let op = FakeOp::start().await;
    let app = app_with(&op, String::new()).await;
    app.login(&TestUser::alice()).await;
    let mut body = serde_json::Value::Null;
    let commands = commands_during(&app, async {
        body = app.userinfo().await;
    })
    .await;
    assert_eq!(body["authenticated"], true);
    assert_eq!(commands, ["GET"]);
}

/// SPEC 11: the session list's "last seen" rides on the throttled idle touch: between
/// touches `/userinfo` stays one GET; a touch sends the record write and the listing
/// update together (no read of the listing, no round trip of its own), and the listed
/// end moves with it.
#[tokio::test]
async fn the_listing_is_refreshed_only_by_the_throttled_touch() {
    let op = FakeOp::start().await;
    let app = spawn_app_for(
        &op,
        AppOptions {
            session_extra: "idle_timeout = \"3s\"".to_owned(),
            ..AppOptions::default()
        },
    )
    .await;
    app.login(&TestUser::alice()).await;
    let other = crate::helpers::browser();
    let response = app.login_with(&other, &TestUser::alice()).await;
    assert_eq!(response.status(), 302);
    let expires_of_first = |listed: serde_json::Value| {
        listed["sessions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|session| session["current"] == false)
            .map(|session| session["expiresAt"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let list = || async {
        other
            .get(app.url("/sessions"))
            .send()
            .await
            .unwrap()
            .json::<serde_json::Value>()
            .await
            .unwrap()
    };
    // A first touch loads the listing script into Redis: a server that has not run it
    // yet (a fresh one, or after SCRIPT FLUSH) answers the first EVALSHA with NOSCRIPT
    // and the client sends it again. The touch measured below is the steady state.
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(app.userinfo().await["authenticated"], true);
    let before = expires_of_first(list().await);
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    let mut touch = commands_during(&app, async {
        assert_eq!(app.userinfo().await["authenticated"], true);
    })
    .await;
    touch.sort();
    // MONITOR also shows the script's own HGET and HSET (inside Redis, no round trip).
    assert_eq!(
        touch,
        ["EVALSHA", "GET", "HGET", "HSET", "SET"],
        "one touch: record and listing together"
    );
    let between = commands_during(&app, async {
        assert_eq!(app.userinfo().await["authenticated"], true);
    })
    .await;
    assert_eq!(between, ["GET"], "between touches nothing more");
    let after = expires_of_first(list().await);
    assert!(
        after > before,
        "the listed end moved with the touch: {before} → {after}"
    );
}
