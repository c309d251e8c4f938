//! A node's network namespace and its TUN device.
//!
//! The namespace is made by a short-lived thread that calls `unshare(CLONE_NEWNET)` (a thread
//! can change its own network namespace without touching the rest of the process), brings `lo`
//! up, creates the TUN device, gives it the node's address with the fleet's prefix (so the
//! connected route sends every other node's address into the TUN, and nothing else is
//! reachable), then opens `/proc/thread-self/ns/net` and exits.
//!
//! Nothing is named: the namespace lives exactly as long as something refers to it — the TUN
//! and namespace descriptors held by this process, and the processes running inside. So when
//! this process ends, even by `kill -9`, the kernel closes the descriptors and the namespace
//! goes away with the last process in it (spawned with `die_with_parent`, those die too).

use crate::error::NetsimError;
use crate::sys;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;
use std::sync::Arc;

/// Name of the TUN device inside every node namespace.
pub const TUN_NAME: &str = "tb0";

/// How nodes are addressed: node `i` gets `base + i + 1` inside `base/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addressing {
    pub base: Ipv4Addr,
    pub prefix: u8,
}

impl Default for Addressing {
    /// `10.77.0.0/16`: node 0 is 10.77.0.1, node 300 is 10.77.1.45. These addresses exist only
    /// inside the node namespaces; nothing routes them to the host's network.
    fn default() -> Self {
        Addressing {
            base: Ipv4Addr::new(10, 77, 0, 0),
            prefix: 16,
        }
    }
}

impl Addressing {
    /// Most nodes the subnet holds (network and broadcast addresses excluded).
    pub fn capacity(&self) -> u32 {
        let size = 1u64 << (32 - self.prefix as u32);
        size.saturating_sub(2) as u32
    }

    pub fn addr_of(&self, index: u32) -> Option<Ipv4Addr> {
        (index < self.capacity()).then(|| Ipv4Addr::from(u32::from(self.base) + index + 1))
    }

    /// The node an address belongs to, if it is a node address.
    pub fn node_of(&self, addr: Ipv4Addr) -> Option<u32> {
        let off = u32::from(addr).checked_sub(u32::from(self.base))?;
        (off >= 1 && off <= self.capacity()).then(|| off - 1)
    }
}

/// Interface settings of the TUN devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunSettings {
    pub mtu: u32,
    pub txqueuelen: u32,
}

impl Default for TunSettings {
    fn default() -> Self {
        TunSettings {
            mtu: 1500,
            txqueuelen: 1000,
        }
    }
}

/// Creates a node namespace with its TUN device; returns (TUN, namespace) descriptors.
pub(crate) fn create(
    index: u32,
    addr: Ipv4Addr,
    prefix: u8,
    tun: TunSettings,
) -> Result<(OwnedFd, OwnedFd), NetsimError> {
    let step = move |step: &'static str| {
        move |source: io::Error| NetsimError::Namespace {
            index,
            step,
            source,
        }
    };
    std::thread::Builder::new()
        .name(format!("netsim-ns-{index}"))
        .spawn(move || {
            sys::unshare_net().map_err(step("create a network namespace (unshare)"))?;
            let ns =
                sys::open_ro(c"/proc/thread-self/ns/net").map_err(step("open the namespace"))?;
            // No IPv6 on the TUN: the shaper forwards IPv4 only, and router solicitations would be noise.
            for path in [
                c"/proc/sys/net/ipv6/conf/all/disable_ipv6",
                c"/proc/sys/net/ipv6/conf/default/disable_ipv6",
            ] {
                let _ = sys::write_sysctl(path, b"1");
            }
            sys::set_up("lo").map_err(step("bring lo up"))?;
            let fd = sys::open_tun(TUN_NAME).map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENODEV) | Some(libc::ENXIO) => {
                    NetsimError::NoTun(e)
                }
                _ => step("create the TUN device")(e),
            })?;
            sys::configure_interface(TUN_NAME, addr, prefix, tun.mtu, tun.txqueuelen)
                .map_err(step("configure the TUN device"))?;
            Ok((fd, ns))
        })
        .map_err(NetsimError::Io)?
        .join()
        .unwrap_or_else(|_| {
            Err(NetsimError::Stopped(format!(
                " (namespace thread of node {index} panicked)"
            )))
        })
}

/// A node's place in the emulated network: its namespace and address. Spawn the node's process
/// into it with [`NodeNet::configure`] (std `Command`) or [`NodeNet::pre_exec_hook`] (any
/// command type with a `pre_exec`, e.g. tokio's). Its TUN device belongs to the shaper.
#[derive(Debug, Clone)]
pub struct NodeNet {
    pub(crate) index: u32,
    pub(crate) addr: Ipv4Addr,
    pub(crate) group: String,
    pub(crate) netns: Arc<OwnedFd>,
    pub(crate) netns_inode: u64,
}

impl NodeNet {
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The node's address; the node listens on it (e.g. `TESTBED_LISTEN_IP`).
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    /// Inode of the namespace (`net:[N]` in `/proc/PID/ns/net`), to find leftovers.
    pub fn netns_inode(&self) -> u64 {
        self.netns_inode
    }

    /// A hook for `pre_exec` that moves the child into the node's namespace before exec. With
    /// `die_with_parent`, the child also gets SIGKILL when the thread that spawned it ends (so
    /// spawn from a long-lived thread) — that is what makes `kill -9` of the parent leave no
    /// process behind.
    ///
    /// Only async-signal-safe calls are made in the child (setns, prctl, getppid, kill).
    pub fn pre_exec_hook(
        &self,
        die_with_parent: bool,
    ) -> impl FnMut() -> io::Result<()> + Send + Sync + 'static {
        let ns = Arc::clone(&self.netns);
        let parent = std::process::id() as libc::pid_t;
        move || {
            sys::setns_net(ns.as_raw_fd())?;
            if die_with_parent {
                // SAFETY: plain syscalls in the forked child.
                unsafe {
                    if libc::prctl(
                        libc::PR_SET_PDEATHSIG,
                        libc::SIGKILL as libc::c_ulong,
                        0,
                        0,
                        0,
                    ) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    // The parent may have died before prctl: then we are orphaned already.
                    if libc::getppid() != parent {
                        libc::kill(libc::getpid(), libc::SIGKILL);
                    }
                }
            }
            Ok(())
        }
    }

    /// Makes `cmd` start inside the node's namespace and die with its parent.
    pub fn configure(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        let hook = self.pre_exec_hook(true);
        // SAFETY: the hook only makes async-signal-safe system calls.
        unsafe { cmd.pre_exec(hook) };
    }

    /// Runs `f` on a new thread inside the node's namespace and returns its result. Sockets
    /// created there stay in the namespace when used from other threads afterwards.
    pub fn run_in<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> io::Result<R> {
        let ns = Arc::clone(&self.netns);
        std::thread::Builder::new()
            .name(format!("netsim-in-{}", self.index))
            .spawn(move || -> io::Result<R> {
                sys::setns_net(ns.as_raw_fd())?;
                Ok(f())
            })?
            .join()
            .map_err(|_| io::Error::other("thread in the node namespace panicked"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_both_ways() {
        let a = Addressing::default();
        assert_eq!(a.capacity(), 65_534);
        assert_eq!(a.addr_of(0), Some(Ipv4Addr::new(10, 77, 0, 1)));
        assert_eq!(a.addr_of(300), Some(Ipv4Addr::new(10, 77, 1, 45)));
        assert_eq!(a.addr_of(65_534), None);
        for i in [0, 1, 254, 255, 300, 65_533] {
            assert_eq!(a.node_of(a.addr_of(i).unwrap()), Some(i));
        }
        assert_eq!(a.node_of(Ipv4Addr::new(10, 77, 0, 0)), None);
        assert_eq!(a.node_of(Ipv4Addr::new(10, 77, 255, 255)), None);
        assert_eq!(a.node_of(Ipv4Addr::new(10, 78, 0, 1)), None);
        assert_eq!(a.node_of(Ipv4Addr::new(127, 0, 0, 1)), None);
    }
}
