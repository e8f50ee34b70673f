//! Checks of image key/value metadata ([`crate::image::ImageMetadata`]).

use super::support::{ensure, expect_err, is_read_only, Ctx, MIB};
use super::{CheckResult, ImageFactory};
use crate::image::{Image, ImageMetadata};

fn meta(img: &dyn Image) -> Result<&dyn ImageMetadata, String> {
    img.metadata()
        .ok_or_else(|| format!("{}: metadata() is None", img.describe()))
}

fn expect_value(img: &dyn Image, key: &str, want: Option<&str>) -> CheckResult {
    let got = meta(img)?.get(key).ctx(img, format_args!("get({key})"))?;
    ensure!(
        got.as_deref() == want,
        "{}: metadata key {key}: got {got:?}, want {want:?}",
        img.describe()
    );
    Ok(())
}

pub(super) fn presence(f: &dyn ImageFactory) -> CheckResult {
    let img = f.create(MIB);
    ensure!(
        img.metadata().is_some() == f.has_metadata(),
        "{}: metadata() is_some = {}, but the factory says has_metadata = {}",
        img.describe(),
        img.metadata().is_some(),
        f.has_metadata()
    );
    Ok(())
}

pub(super) fn set_get(f: &dyn ImageFactory) -> CheckResult {
    let img = f.create(MIB);
    let m = meta(&*img)?;
    expect_value(&*img, "owner", None)?;
    m.set("owner", "ops").ctx(&*img, "set(owner)")?;
    m.set("tier", "gold: ünïcode, spaces")
        .ctx(&*img, "set(tier)")?;
    expect_value(&*img, "owner", Some("ops"))?;
    m.set("owner", "").ctx(&*img, "set(owner) again")?;
    expect_value(&*img, "owner", Some(""))?;
    expect_value(&*img, "tier", Some("gold: ünïcode, spaces"))?;
    let long = "v".repeat(5000);
    m.set("long", &long).ctx(&*img, "set(long)")?;
    expect_value(&*img, "long", Some(&long))
}

pub(super) fn snapshot_handle_is_read_only(f: &dyn ImageFactory) -> CheckResult {
    let img = f.create(MIB);
    meta(&*img)?.set("k", "head").ctx(&*img, "set(k)")?;
    let snaps = img.snapshots().ok_or("snapshots() is None")?;
    snaps.create("meta").ctx(&*img, "create snapshot meta")?;
    let at = snaps
        .open_snapshot("meta")
        .ctx(&*img, "open_snapshot(meta)")?;
    let res = meta(&*at)?.set("k", "snap");
    expect_err(&*at, "set(k) at a snapshot", res, "ReadOnly", is_read_only)?;
    expect_value(&*img, "k", Some("head"))?;
    drop(at);
    snaps.remove("meta").ctx(&*img, "remove snapshot meta")
}
