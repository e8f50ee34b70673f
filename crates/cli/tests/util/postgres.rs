//! The throwaway PostgreSQL server of the tests (scripts/postgres.sh,
//! started by scripts/test.sh): its URL comes in
//! BLOCKBACK_TEST_POSTGRES_URL; each test's catalog gets a schema of its own.

/// The server's URL; `None` (skip, loudly) only when PostgreSQL is not required.
pub fn server() -> Option<String> {
    match std::env::var("BLOCKBACK_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ if std::env::var("BLOCKBACK_REQUIRE_POSTGRES").as_deref() == Ok("1") => {
            panic!("BLOCKBACK_REQUIRE_POSTGRES=1 but BLOCKBACK_TEST_POSTGRES_URL is not set: start scripts/postgres.sh")
        }
        _ => {
            eprintln!("SKIPPED: no PostgreSQL test server (set BLOCKBACK_TEST_POSTGRES_URL)");
            None
        }
    }
}

/// A catalog URL in a new, empty schema of the server at `url`.
pub fn fresh_catalog(url: &str) -> String {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut admin = postgres::Client::connect(url, postgres::NoTls).expect("test server");
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .expect("create schema");
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}options=-csearch_path%3D{schema}")
}
