//! Two instances sharing one Redis behave as one.

use crate::fake_op::{FakeOp, TestUser};
use crate::helpers::{APP_URL, location, spawn_two_instances};

async fn two_instances() -> (crate::helpers::TestApp, crate::helpers::TestApp) {
    let op = FakeOp::start().await;
    spawn_two_instances(&op, "").await
}

#[tokio::test]
async fn a_login_on_one_instance_is_seen_by_the_other_and_a_logout_on_it_ends_it() {
    let (a, b) = two_instances().await;
    let browser = crate::helpers::browser();
    let response = a.login_with(&browser, &TestUser::alice()).await;
    assert_eq!(location(&response), APP_URL);
    assert_eq!(b.userinfo_with(&browser).await["authenticated"], true);
    let logout = browser.get(b.url("/logout")).send().await.unwrap();
    assert_eq!(logout.status(), 200);
    assert_eq!(a.userinfo_with(&browser).await["authenticated"], false);
}

#[tokio::test]
async fn a_login_started_on_one_instance_can_finish_on_the_other() {
    let (a, b) = two_instances().await;
    let browser = crate::helpers::browser();
    let authorize_url = a.start_login(&browser).await;
    let callback = a.op.authorize(&authorize_url, &TestUser::alice());
    let on_b = callback.replace(&a.address, &b.address);
    let response = browser.get(on_b).send().await.unwrap();
    assert_eq!(response.status(), 302);
    assert_eq!(a.userinfo_with(&browser).await["authenticated"], true);
}
