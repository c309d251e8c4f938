use crate::core::CoreError;
use std::io;

/// Everything that can go wrong in the edge. The messages say what is missing and what to do.
#[derive(Debug, thiserror::Error)]
pub enum NetsimError {
    #[error(
        "network emulation needs CAP_SYS_ADMIN and CAP_NET_ADMIN (run as root) to create network namespaces and TUN devices; run as root, or use `runner: local` (no shaping)"
    )]
    NotPrivileged,
    #[error(
        "network emulation needs /dev/net/tun, which cannot be opened here ({0}); load the `tun` kernel module (`modprobe tun`) or run where /dev/net/tun exists"
    )]
    NoTun(#[source] io::Error),
    #[error("cannot {step} for node {index}: {source}")]
    Namespace {
        index: u32,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("node {index}: its address would fall outside {base}/{prefix}; use a wider subnet")]
    AddressRange {
        index: u32,
        base: std::net::Ipv4Addr,
        prefix: u8,
    },
    #[error("node {0} is already registered with the shaper")]
    DuplicateNode(u32),
    #[error("unknown group `{0}`; the shaper knows: {1}")]
    UnknownGroup(String, String),
    #[error(transparent)]
    Core(#[from] CoreError),
    #[error("the shaper thread has stopped{0}")]
    Stopped(String),
    #[error("shaper: {0}")]
    Io(#[from] io::Error),
}
