//! The Linux backend's checks on an OS without it (the doctor's `linux.rs` is compiled on Linux only): each says
//! the backend runs only on Linux.

use std::net::SocketAddrV4;

use crate::report::Check;
use crate::Ctx;

const WHY: &str = "the linux backend runs only on Linux";
const FIX: &str = "use --backend bastille on FreeBSD";

/// Not on this OS.
pub fn parse_ip_addr_json(_: &str) -> Result<(bool, Vec<String>), String> {
    Err(WHY.into())
}

/// Not on this OS.
pub fn outbound(_: &Ctx, _: SocketAddrV4, expected: String) -> Vec<Check> {
    vec![Check::fail("outbound", expected, WHY, FIX)]
}

/// Not on this OS.
pub fn jail(_: &Ctx, jail: &str) -> Vec<Check> {
    vec![Check::fail(
        format!("jail.{jail}"),
        "a Linux service jail",
        WHY,
        FIX,
    )]
}

/// Not on this OS.
pub fn psql_in_jail(_: &Ctx, _: &str) -> Result<Vec<String>, (String, String)> {
    Err((WHY.into(), FIX.into()))
}
