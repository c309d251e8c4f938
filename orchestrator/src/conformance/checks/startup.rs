//! Checks of a node's start: hello, listening (a real peer id, dialable TCP addresses).

use crate::conformance::ctx::Ctx;
use crate::conformance::harness::{Proc, STARTUP, STEP, excerpt};
use std::time::Duration;
use testbed_contract::PROTOCOL_VERSION;
use testbed_contract::protocol::NodeMsg;
use testbed_contract::results::NodeState;

pub(crate) fn check_hello(
    ctx: &Ctx,
    p: &Proc,
    first: Option<usize>,
    reference: bool,
) -> Result<(), String> {
    let Some(i) = first else {
        return Err(format!(
            "no message within {} s ({}, log {})",
            STARTUP.as_secs(),
            if p.closed_at.is_some() {
                "the channel closed"
            } else {
                "nothing arrived"
            },
            p.log.display()
        ));
    };
    let l = &p.lines[i];
    let Ok(NodeMsg::Hello {
        protocol,
        index,
        pid,
        implementation,
        impl_version,
        ..
    }) = &l.msg
    else {
        return Err(match &l.msg {
            Err(e) if l.kind() == "hello" => format!(
                "hello does not match the contract: {e}: {}",
                excerpt(&l.raw)
            ),
            _ => format!("the first message is `{}`, not hello", l.kind()),
        });
    };
    let mut probs = Vec::new();
    if *protocol != PROTOCOL_VERSION {
        probs.push(format!("protocol {protocol}, not {PROTOCOL_VERSION}"));
    }
    if *index != p.index {
        probs.push(format!(
            "index {index}, but TESTBED_NODE_INDEX is {}",
            p.index
        ));
    }
    if *pid != p.pid {
        probs.push(format!("pid {pid}, but the process is {}", p.pid));
    }
    let want = if reference {
        "rust"
    } else {
        ctx.implementation.as_str()
    };
    if implementation != want {
        probs.push(format!("implementation `{implementation}`, not `{want}`"));
    }
    if impl_version.trim().is_empty() {
        probs.push("empty impl_version".into());
    } else if !reference
        && let Some(v) = ctx
            .impl_version
            .as_deref()
            .filter(|v| v.starts_with('v') && !v.contains('@'))
        && !impl_version.contains(v)
    {
        probs.push(format!(
            "impl_version `{impl_version}` does not name the requested version {v}"
        ));
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

pub(crate) async fn check_listening(p: &mut Proc) -> Result<(), String> {
    let i = p
        .expect(STARTUP, "listening", |l| l.kind() == "listening")
        .await?;
    let (peer_id, addrs) = match &p.lines[i].msg {
        Ok(NodeMsg::Listening {
            peer_id,
            listen_addrs,
            ..
        }) => (peer_id.clone(), listen_addrs.clone()),
        Ok(_) => unreachable!("kind is listening"),
        Err(e) => {
            return Err(format!(
                "listening does not match the contract: {e}: {}",
                excerpt(&p.lines[i].raw)
            ));
        }
    };
    let mut probs = Vec::new();
    if let Err(e) = check_peer_id(&peer_id) {
        probs.push(e);
    }
    if addrs.is_empty() {
        probs.push("listen_addrs is empty".into());
    }
    for a in &addrs {
        match parse_tcp_multiaddr(a) {
            Ok(sock) => {
                if a == &addrs[0] {
                    let dial = tokio::time::timeout(
                        Duration::from_secs(5),
                        tokio::net::TcpStream::connect(sock),
                    )
                    .await;
                    if !matches!(dial, Ok(Ok(_))) {
                        probs.push(format!("{a} is not dialable over TCP"));
                    }
                }
            }
            Err(e) => probs.push(e),
        }
    }
    // state{listening} follows.
    let st = p
        .expect_since(i + 1, STEP, "state{listening} after listening", |l| {
            matches!(
                l.msg,
                Ok(NodeMsg::State {
                    state: NodeState::Listening,
                    ..
                })
            )
        })
        .await;
    if let Err(e) = st {
        probs.push(e);
    }
    if probs.is_empty() {
        Ok(())
    } else {
        Err(probs.join("; "))
    }
}

/// A libp2p peer id: base58btc of an identity (Ed25519 keys) or SHA-256 multihash.
pub(crate) fn check_peer_id(s: &str) -> Result<(), String> {
    let bytes = bs58::decode(s)
        .into_vec()
        .ok()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| format!("peer id `{s}` is not base58"))?;
    let ok = match bytes.as_slice() {
        [0x00, len, rest @ ..] => *len as usize == rest.len(),
        [0x12, 0x20, rest @ ..] => rest.len() == 32,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "peer id `{s}` is not a libp2p peer id (identity or SHA-256 multihash)"
        ))
    }
}

/// `/ip4/A/tcp/P` or `/ip6/A/tcp/P`, nothing after.
pub(crate) fn parse_tcp_multiaddr(a: &str) -> Result<std::net::SocketAddr, String> {
    let parts: Vec<&str> = a.split('/').collect();
    if a.contains("/p2p/") {
        return Err(format!("{a} has a /p2p/ suffix"));
    }
    match parts.as_slice() {
        ["", proto @ ("ip4" | "ip6"), ip, "tcp", port] => {
            let ip: std::net::IpAddr = ip
                .parse()
                .map_err(|_| format!("{a}: `{ip}` is not an IP address"))?;
            if (*proto == "ip4") != ip.is_ipv4() {
                return Err(format!("{a}: /{proto} with the wrong address family"));
            }
            let port: u16 = port
                .parse()
                .map_err(|_| format!("{a}: `{port}` is not a port"))?;
            if port == 0 {
                return Err(format!(
                    "{a}: port 0 (the OS-assigned port must be resolved)"
                ));
            }
            Ok(std::net::SocketAddr::new(ip, port))
        }
        _ => Err(format!("{a} is not /ip4|ip6/<addr>/tcp/<port>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base58_peer_ids() {
        assert!(check_peer_id("12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA").is_ok());
        assert!(check_peer_id("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N").is_ok());
        assert!(check_peer_id("not-a-peer-id").is_err());
        assert!(check_peer_id("12D3KooW").is_err());
    }

    #[test]
    fn multiaddrs() {
        assert!(parse_tcp_multiaddr("/ip4/127.0.0.1/tcp/4001").is_ok());
        assert!(parse_tcp_multiaddr("/ip6/::1/tcp/4001").is_ok());
        assert!(parse_tcp_multiaddr("/ip4/127.0.0.1/tcp/0").is_err());
        assert!(
            parse_tcp_multiaddr(
                "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"
            )
            .is_err()
        );
        assert!(parse_tcp_multiaddr("/ip4/::1/tcp/1").is_err());
        assert!(parse_tcp_multiaddr("/ip4/127.0.0.1/udp/1/quic-v1").is_err());
    }
}
