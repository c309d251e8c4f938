//! The security upgrade of every connection (noise or plaintext, per the welcome), labelled so
//! that a failed handshake says which security this node runs. Peers of different security
//! cannot connect, and the bare library errors ("Failed to decode protobuf", "Invalid
//! payload") do not say so: the label turns them into a message a person can act on.

use futures::FutureExt;
use futures::future::BoxFuture;
use libp2p::core::upgrade::{InboundConnectionUpgrade, OutboundConnectionUpgrade, UpgradeInfo};
use testbed_contract::plan::Security;

/// A security upgrade whose errors name this node's security.
#[derive(Debug, Clone)]
pub struct Labelled<U> {
    inner: U,
    security: Security,
}

impl<U> Labelled<U> {
    pub fn new(inner: U, security: Security) -> Self {
        Labelled { inner, security }
    }
}

#[derive(Debug, thiserror::Error)]
#[error(
    "security handshake failed: this node uses {mine}, the peer likely another security ({other}); peers of different security cannot connect",
    mine = .security.as_str(),
    other = other(*.security).as_str()
)]
pub struct SecurityError {
    security: Security,
    source: Box<dyn std::error::Error + Send + Sync>,
}

fn other(s: Security) -> Security {
    match s {
        Security::Noise => Security::Plaintext,
        Security::Plaintext => Security::Noise,
    }
}

impl<U: UpgradeInfo> UpgradeInfo for Labelled<U> {
    type Info = U::Info;
    type InfoIter = U::InfoIter;

    fn protocol_info(&self) -> Self::InfoIter {
        self.inner.protocol_info()
    }
}

impl<C, U> InboundConnectionUpgrade<C> for Labelled<U>
where
    U: InboundConnectionUpgrade<C>,
    U::Future: Send + 'static,
    U::Output: 'static,
    U::Error: std::error::Error + Send + Sync + 'static,
{
    type Output = U::Output;
    type Error = SecurityError;
    type Future = BoxFuture<'static, Result<U::Output, SecurityError>>;

    fn upgrade_inbound(self, socket: C, info: Self::Info) -> Self::Future {
        let security = self.security;
        self.inner
            .upgrade_inbound(socket, info)
            .map(move |r| r.map_err(|e| label(security, e)))
            .boxed()
    }
}

impl<C, U> OutboundConnectionUpgrade<C> for Labelled<U>
where
    U: OutboundConnectionUpgrade<C>,
    U::Future: Send + 'static,
    U::Output: 'static,
    U::Error: std::error::Error + Send + Sync + 'static,
{
    type Output = U::Output;
    type Error = SecurityError;
    type Future = BoxFuture<'static, Result<U::Output, SecurityError>>;

    fn upgrade_outbound(self, socket: C, info: Self::Info) -> Self::Future {
        let security = self.security;
        self.inner
            .upgrade_outbound(socket, info)
            .map(move |r| r.map_err(|e| label(security, e)))
            .boxed()
    }
}

fn label(security: Security, e: impl std::error::Error + Send + Sync + 'static) -> SecurityError {
    SecurityError {
        security,
        source: Box::new(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_names_both_securities() {
        let e = label(
            Security::Plaintext,
            std::io::Error::other("Failed to decode protobuf"),
        );
        let text = e.to_string();
        assert!(text.contains("this node uses plaintext"), "{text}");
        assert!(text.contains("another security (noise)"), "{text}");
        // The library's own error is the source: error chains print it after this one.
        let source = std::error::Error::source(&e).unwrap().to_string();
        assert_eq!(source, "Failed to decode protobuf");
    }
}
