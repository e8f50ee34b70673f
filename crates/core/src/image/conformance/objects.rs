//! The named-object checks every [`Pool`] runs ([`run_pool_object_suite`]).
//!
//! Object names carry a per-run prefix, so the suite can run again and
//! again against one long-lived pool (a real cluster); each check removes
//! the objects it created when it succeeds.
//!
//! [`run_pool_object_suite`]: super::run_pool_object_suite

use super::support::{ensure, pattern, MIB};
use super::CheckResult;
use crate::image::{ImageError, Pool};
use crate::objects::MAX_OBJECT_NAME;
use std::time::{SystemTime, UNIX_EPOCH};

/// One named check against a pool; `prefix` makes its object names unique.
pub struct ObjectCheck {
    pub name: &'static str,
    pub run: fn(&dyn Pool, &str) -> CheckResult,
}

const fn check(name: &'static str, run: fn(&dyn Pool, &str) -> CheckResult) -> ObjectCheck {
    ObjectCheck { name, run }
}

pub const CHECKS: &[ObjectCheck] = &[
    check("object_round_trip", round_trip),
    check("object_second_put_is_exists", second_put_is_exists),
    check("object_get_missing_is_none", get_missing_is_none),
    check("object_remove_is_idempotent", remove_is_idempotent),
    check("object_bad_names_rejected", bad_names_rejected),
    check("object_empty_round_trip", empty_round_trip),
    check("object_1mib_round_trip", one_mib_round_trip),
    check("object_too_large_rejected", too_large_rejected),
];

/// A prefix no earlier run used: `conformance.<pid>.<ns since epoch>`.
pub fn run_prefix() -> String {
    let ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("conformance.{}.{ns}", std::process::id())
}

fn fail(pool: &dyn Pool, op: String, e: ImageError) -> String {
    format!("{}: {op} failed: {e}", pool.describe())
}

fn put(pool: &dyn Pool, name: &str, data: &[u8]) -> CheckResult {
    pool.put_object(name, data)
        .map_err(|e| fail(pool, format!("put_object({name}, {} bytes)", data.len()), e))
}

fn get(pool: &dyn Pool, name: &str) -> Result<Option<Vec<u8>>, String> {
    pool.get_object(name)
        .map_err(|e| fail(pool, format!("get_object({name})"), e))
}

fn remove(pool: &dyn Pool, name: &str) -> CheckResult {
    pool.remove_object(name)
        .map_err(|e| fail(pool, format!("remove_object({name})"), e))
}

/// Puts `data`, reads it back, compares, removes.
fn put_get_remove(pool: &dyn Pool, name: &str, data: &[u8]) -> CheckResult {
    put(pool, name, data)?;
    let back = get(pool, name)?;
    ensure!(
        back.as_deref() == Some(data),
        "{name}: read back {} bytes, wrote {} (contents differ or missing)",
        back.map_or(-1, |b| b.len() as i64),
        data.len()
    );
    remove(pool, name)
}

fn round_trip(pool: &dyn Pool, prefix: &str) -> CheckResult {
    let data = br#"{"version": 2, "volume-metadata": {"k": "v"}}"#;
    put_get_remove(pool, &format!("{prefix}.round-trip"), data)
}

fn empty_round_trip(pool: &dyn Pool, prefix: &str) -> CheckResult {
    put_get_remove(pool, &format!("{prefix}.empty"), b"")
}

fn one_mib_round_trip(pool: &dyn Pool, prefix: &str) -> CheckResult {
    put_get_remove(pool, &format!("{prefix}.1mib"), &pattern(7, MIB))
}

fn second_put_is_exists(pool: &dyn Pool, prefix: &str) -> CheckResult {
    let name = format!("{prefix}.write-once");
    put(pool, &name, b"first")?;
    match pool.put_object(&name, b"second, longer content") {
        Err(ImageError::Exists { .. }) => {}
        other => {
            return Err(format!(
                "{name}: second put gave {other:?}, expected Exists"
            ))
        }
    }
    let back = get(pool, &name)?;
    ensure!(
        back.as_deref() == Some(&b"first"[..]),
        "{name}: after the refused put the object reads {:?}",
        back.map(|b| String::from_utf8_lossy(&b).into_owned())
    );
    remove(pool, &name)
}

fn get_missing_is_none(pool: &dyn Pool, prefix: &str) -> CheckResult {
    let name = format!("{prefix}.never-written");
    let got = get(pool, &name)?;
    ensure!(got.is_none(), "{name}: missing object read as {got:?}");
    Ok(())
}

fn remove_is_idempotent(pool: &dyn Pool, prefix: &str) -> CheckResult {
    let name = format!("{prefix}.removed");
    remove(pool, &name)?;
    put(pool, &name, b"x")?;
    remove(pool, &name)?;
    let got = get(pool, &name)?;
    ensure!(got.is_none(), "{name}: removed object still reads {got:?}");
    remove(pool, &name)?;
    // Removed means gone for good: the name can be written again.
    put_get_remove(pool, &name, b"again")
}

fn bad_names_rejected(pool: &dyn Pool, prefix: &str) -> CheckResult {
    let long = format!("{prefix}.{}", "n".repeat(MAX_OBJECT_NAME));
    let slash = format!("{prefix}/slash");
    let nul = format!("{prefix}\0nul");
    let dot = format!(".{prefix}");
    // rbd_directory: an RBD pool's image directory, which must survive.
    let names = ["", &long, &slash, &nul, &dot, ".", "..", "rbd_directory"];
    for name in names {
        bad_name_rejected(pool, name)?;
    }
    Ok(())
}

/// Every operation refuses `name` with `Invalid` naming the object.
fn bad_name_rejected(pool: &dyn Pool, name: &str) -> CheckResult {
    let results = [
        ("put_object", pool.put_object(name, b"x").err()),
        ("get_object", pool.get_object(name).err()),
        ("remove_object", pool.remove_object(name).err()),
    ];
    for (op, err) in results {
        match err {
            Some(e @ ImageError::Invalid { .. }) => ensure!(
                e.to_string().contains(&format!("{name:?}")),
                "{op}({name:?}): the error does not name the object: {e}"
            ),
            other => return Err(format!("{op}({name:?}) gave {other:?}, expected Invalid")),
        }
    }
    Ok(())
}

fn too_large_rejected(pool: &dyn Pool, prefix: &str) -> CheckResult {
    let name = format!("{prefix}.too-large");
    let data = vec![1u8; crate::objects::MAX_OBJECT_SIZE as usize + 1];
    match pool.put_object(&name, &data) {
        Err(ImageError::Invalid { .. }) => {}
        other => {
            return Err(format!(
                "{name}: oversized put gave {other:?}, expected Invalid"
            ))
        }
    }
    let got = get(pool, &name)?;
    ensure!(got.is_none(), "{name}: the refused object exists");
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::image::{Image, Pool, Result};

    /// A pool with only the required methods: every object call is
    /// Unsupported, so the suite must report failures.
    struct NoObjects;

    impl Pool for NoObjects {
        fn describe(&self) -> String {
            "noobjects".into()
        }
        fn list(&self) -> Result<Vec<String>> {
            Ok(Vec::new())
        }
        fn create(&self, _: &str, _: u64) -> Result<()> {
            unimplemented!("not used by the object suite")
        }
        fn open(&self, _: &str) -> Result<Box<dyn Image>> {
            unimplemented!("not used by the object suite")
        }
        fn open_read_only(&self, _: &str, _: Option<&str>) -> Result<Box<dyn Image>> {
            unimplemented!("not used by the object suite")
        }
        fn remove(&self, _: &str) -> Result<()> {
            unimplemented!("not used by the object suite")
        }
    }

    #[test]
    fn default_methods_are_unsupported_and_the_suite_says_so() {
        let err = NoObjects.get_object("x").unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
        let panic = std::panic::catch_unwind(|| super::super::run_pool_object_suite(&NoObjects))
            .expect_err("the suite must fail on a pool without objects");
        let msg = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(msg.contains("object_round_trip"), "{msg}");
        assert!(msg.contains("noobjects"), "{msg}");
    }
}
