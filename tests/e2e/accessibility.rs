//! axe-core (the npm package pinned in tests/e2e/package-lock.json) on the
//! pages and states that other browser tests do not already check.

use crate::browser::Browser;
use crate::server::Server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sign_in_and_device_check_pages_have_no_axe_violations() {
    let _one = crate::one_at_a_time().await;
    let server = Server::start(|_| {}).await;
    let b = Browser::launch("axe-pages", 1024, 768).await;
    b.goto(&server.url("/")).await;
    b.wait_for(
        "the sign-in form",
        "return !!document.querySelector('form')",
    )
    .await;
    b.assert_accessible("sign-in page").await;
    b.goto(&server.url("/check")).await;
    b.wait_for(
        "the device check",
        "return document.readyState === 'complete'",
    )
    .await;
    b.assert_accessible("device check").await;
}
