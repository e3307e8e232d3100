//! `returnURL` inputs not written by hand: the public open-redirect corpus and
//! generated hostile URLs.

use super::*;

#[test]
fn public_corpus_never_lands_elsewhere() {
    // `shared/` sits beside the main checkout, and one level further up from a worktree.
    let manifest = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = ["..", "../.."]
        .iter()
        .map(|up| manifest.join(up).join("shared/data/openredirects.txt"))
        .find_map(|path| std::fs::read_to_string(path).ok())
        .expect("shared/data/openredirects.txt beside the repository");
    let lines: Vec<&str> = corpus.lines().collect();
    assert!(
        lines.len() >= 500,
        "corpus too small: {} lines",
        lines.len()
    );
    let policy = policy(true, &["https://www.whitelisteddomain.tld"]);
    let allowed = [
        policy.public_url.origin(),
        Url::parse("https://www.whitelisteddomain.tld")
            .unwrap()
            .origin(),
    ];
    let mut failures = Vec::new();
    let mut accepted_count = 0;
    for line in &lines {
        let decoded = percent_decode_str(line).decode_utf8_lossy();
        let Ok(url) = ReturnUrl::parse(&decoded, &policy) else {
            continue;
        };
        if std::env::var_os("SHOW_ACCEPTED").is_some() {
            eprintln!("{line:?} -> {url}");
        }
        accepted_count += 1;
        // What a browser does with our Location: parse it (absolute, so no base).
        match Url::parse(url.as_str()) {
            Ok(location) if allowed.contains(&location.origin()) && &location == url.as_url() => {}
            _ => failures.push(format!("{line:?} -> {}", url.as_str())),
        }
    }
    assert!(
        failures.is_empty(),
        "{} lines land elsewhere:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "corpus: {} lines, {accepted_count} accepted (same origin or allowed), the rest refused",
        lines.len()
    );
}

/// Pieces `returnURL` attacks are made of (see the public corpus), glued at random.
fn hostile_return_url() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let piece = prop_oneof![
        Just("https://"),
        Just("http://"),
        Just("https:"),
        Just("//"),
        Just("/"),
        Just("\\"),
        Just("@"),
        Just(":"),
        Just("."),
        Just("#"),
        Just("?"),
        Just("%2F"),
        Just("%5C"),
        Just("%09"),
        Just("%2e"),
        Just("%40"),
        Just("\u{3002}"),
        Just("javascript:"),
        Just("www.whitelisteddomain.tld"),
        Just("a.example.com"),
        Just("example.com"),
        Just("localhost:3000"),
        Just("127.0.0.1:8080"),
        Just("evil.com"),
        Just("443"),
    ]
    .prop_map(str::to_owned);
    let any_piece = prop_oneof![4 => piece, 1 => any::<String>()];
    proptest::collection::vec(any_piece, 1..8).prop_map(|pieces| pieces.concat())
}

#[test]
fn accepted_return_urls_always_land_on_an_allowed_origin() {
    use proptest::prelude::*;
    let policy = default_policy();
    let allowed = |url: &Url| {
        url.origin() == policy.public_url.origin() || policy.allowed_origins.allows(&url.origin())
    };
    proptest!(proptest::test_runner::Config::with_cases(4_000), |(raw in hostile_return_url())| {
        if let Ok(accepted) = ReturnUrl::parse(&raw, &policy) {
            // What a browser does with our Location: parse it absolutely.
            let location = Url::parse(accepted.as_str()).unwrap();
            prop_assert!(allowed(&location), "{raw:?} -> {accepted}");
            prop_assert_eq!(&location, accepted.as_url());
            prop_assert!(location.username().is_empty() && location.password().is_none());
            prop_assert!(matches!(location.scheme(), "http" | "https"));
        }
    });
}
