//! The `telemetry:` section's checks (after `--traces`, `--sample-ratio` … were applied).

use super::rules::Problems;
use crate::plan::locate::FieldPath;
use testbed_contract::plan::Telemetry;

pub fn check(t: &Telemetry, p: &mut Problems) {
    let at = |field: &str| FieldPath::default().key("telemetry").key(field);
    if !(0.0..=1.0).contains(&t.sample_ratio) {
        p.push((
            at("sample_ratio"),
            format!(
                "{} is not a fraction: use 0..=1 (0.01 traces 1 message in 100)",
                t.sample_ratio
            ),
        ));
    }
    if let Some(e) = &t.otlp_endpoint
        && !(e.starts_with("http://") || e.starts_with("https://"))
    {
        p.push((
            at("otlp_endpoint"),
            format!("`{e}` is not an OTLP/HTTP URL: use e.g. http://collector:4318"),
        ));
    }
    if let Some(m) = &t.metrics_listen
        && m != "off"
        && m.parse::<std::net::SocketAddr>().is_err()
    {
        p.push((
            at("metrics_listen"),
            format!("`{m}` is not HOST:PORT (e.g. 127.0.0.1:9464) or `off`"),
        ));
    }
}
