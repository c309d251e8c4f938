//! Kubernetes names and label values: what is valid, and how a plan's names become valid.
//! The Helm chart (helm/pubsub-testbed/templates/_helpers.tpl) applies the same rules, so the
//! chart and `orchestrator k8s render` name every object alike.

/// Longest group part of a Job name: an Indexed Job's pods are named
/// `<job>-<index>-<5 random>` and their hostnames `<job>-<index>`, both at most 63 characters.
pub const GROUP_NAME_MAX: usize = 30;

/// An RFC 1123 DNS label: 1–63 characters of `a-z`, `0-9` and `-`, starting and ending with
/// a letter or digit. Namespaces, Services and the name of a Pod's container must be one.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// A label value: at most 63 characters of `A-Za-z0-9-_.`, alphanumeric at both ends (or empty).
pub fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// `text` as part of a DNS label: lower case, every run of other characters becomes one `-`,
/// no `-` at either end, at most `max` characters; `fallback` when nothing is left.
pub fn dns_part(text: &str, max: usize, fallback: &str) -> String {
    let mut out = String::new();
    let mut dash = false;
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            dash = false;
        } else if !dash {
            out.push('-');
            dash = true;
        }
    }
    let trimmed: String = out.trim_matches('-').chars().take(max).collect();
    let trimmed = trimmed.trim_end_matches('-');
    if trimmed.is_empty() {
        fallback.to_string()
    } else {
        trimmed.to_string()
    }
}

/// `text` as a label value: invalid characters become `_`, cut to 63, alphanumeric ends.
pub fn label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .take(63)
        .collect();
    mapped
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// The Job of group number `gi` (plan order) with id `group`: `nodes-<gi>-<group>`. The number
/// keeps two groups apart whose ids differ only in characters a DNS label cannot hold.
pub fn job_name(gi: usize, group: &str) -> String {
    format!("nodes-{gi}-{}", dns_part(group, GROUP_NAME_MAX, "group"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert!(is_dns_label("nodes-0-hosts"));
        assert!(is_dns_label("a"));
        assert!(!is_dns_label(""));
        assert!(!is_dns_label("-a"));
        assert!(!is_dns_label("a-"));
        assert!(!is_dns_label("A"));
        assert!(!is_dns_label("a_b"));
        assert!(!is_dns_label(&"a".repeat(64)));
        assert!(is_label_value(""));
        assert!(is_label_value("simple_discovery.v2"));
        assert!(!is_label_value("_x"));
    }

    #[test]
    fn dns_parts() {
        assert_eq!(dns_part("Publishers_EU", 30, "g"), "publishers-eu");
        assert_eq!(dns_part("__x__y__", 30, "g"), "x-y");
        assert_eq!(dns_part("***", 30, "g"), "g");
        assert_eq!(dns_part("ünïcode", 30, "g"), "n-code");
        let long = dns_part(&"ab-".repeat(40), 30, "g");
        assert!(long.len() <= 30 && is_dns_label(&long), "{long}");
        assert_eq!(job_name(3, "Slow Peers"), "nodes-3-slow-peers");
        assert!(is_dns_label(&job_name(99, &"x".repeat(200))));
    }

    #[test]
    fn label_values() {
        assert_eq!(label_value("simple discovery"), "simple_discovery");
        assert_eq!(label_value("--x--"), "x");
        assert!(is_label_value(&label_value(&"é".repeat(100))));
    }
}
