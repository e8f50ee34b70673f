//! CEPH_ARGS is applied after the conf file. A test binary of its own: it
//! sets an environment variable, which must not race with other tests.

mod common;

use blockback_rbd::Cluster;
use common::*;

#[test]
fn ceph_args_override_the_conf() {
    let Some(conf) = conf() else { return };
    Cluster::connect(&config(conf.clone(), "admin")).expect("connects before the override");
    // Only thread of this binary: nothing else reads the environment now.
    let saved = std::env::var_os("CEPH_ARGS");
    std::env::set_var("CEPH_ARGS", "--keyring=/nonexistent/bb/ceph.keyring");
    let result = Cluster::connect(&config(conf, "admin"));
    match saved {
        Some(v) => std::env::set_var("CEPH_ARGS", v),
        None => std::env::remove_var("CEPH_ARGS"),
    }
    let err = result.expect_err("CEPH_ARGS keyring was ignored");
    assert!(err.to_string().contains("client.admin"), "{err}");
}
