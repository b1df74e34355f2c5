//! Name rules: DNS labels and domains, and jail names that current Bastille and FreeBSD accept.

/// Longest jail name that keeps Bastille's epair names `e0a_<name>`/`e0b_<name>` within IFNAMSIZ (15 usable
/// characters): `len("e0a_" + name) < 16` (reference/bastille.md §1.4).
pub const MAX_JAIL_NAME: usize = 11;

/// Checks one DNS label (RFC 1123: letters, digits, inner hyphens, 1–63 characters).
pub fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("a DNS label cannot be empty".into());
    }
    if label.len() > 63 {
        return Err(format!(
            "a DNS label has at most 63 characters ({} given)",
            label.len()
        ));
    }
    if let Some(bad) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "{bad:?} is not allowed in a DNS label (letters, digits and inner '-' only)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err("a DNS label cannot start or end with '-'".into());
    }
    Ok(())
}

/// Checks a domain: dot-separated labels, at most 253 characters, and never under `.local` (mDNS).
pub fn check_domain(domain: &str) -> Result<(), String> {
    if domain.len() > 253 {
        return Err("a domain has at most 253 characters".into());
    }
    for label in domain.split('.') {
        check_label(label)?;
    }
    let last = domain.rsplit('.').next().unwrap_or("");
    if last.eq_ignore_ascii_case("local") {
        return Err(".local is reserved for mDNS and makes local resolution ambiguous".into());
    }
    Ok(())
}

/// Special-use zones the public DNS never delegates (RFC 8375 `home.arpa`, RFC 6761 `test`/`invalid`/`localhost`,
/// ICANN's `internal`): a domain under one of them is internal, any other is a public domain.
const INTERNAL_ZONES: &[&str] = &["home.arpa", "internal", "test", "invalid", "localhost"];

/// Whether `domain` is (under) a special-use internal zone; then dnsmasq may answer the whole zone locally.
pub fn is_internal_domain(domain: &str) -> bool {
    let d = domain.trim_end_matches('.').to_ascii_lowercase();
    INTERNAL_ZONES
        .iter()
        .any(|z| d == *z || d.ends_with(&format!(".{z}")))
}

/// Whether `name` is `zone` or a name under it (case-insensitive).
pub fn is_under(name: &str, zone: &str) -> bool {
    let (n, z) = (name.to_ascii_lowercase(), zone.to_ascii_lowercase());
    n == z || n.ends_with(&format!(".{z}"))
}

/// Checks a jail name for a VNET jail on current Bastille: letters and digits only, not only digits, at most
/// [`MAX_JAIL_NAME`] characters (reference/bastille.md §1.2, §1.4, §8.3).
pub fn check_jail_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("a jail name cannot be empty".into());
    }
    if let Some(bad) = name.chars().find(|c| !c.is_ascii_alphanumeric()) {
        return Err(format!(
            "{bad:?} is not allowed: Bastille refuses '-' and '_' in VNET jail names and any other special character"
        ));
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return Err("a jail name cannot be only digits (Bastille reads it as a JID)".into());
    }
    if name.len() > MAX_JAIL_NAME {
        return Err(format!(
            "{} characters is too long: the epair name e0a_{name} must fit in 15 characters (at most {MAX_JAIL_NAME})",
            name.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn labels() {
        assert!(check_label("atlas").is_ok());
        assert!(check_label("a-b").is_ok());
        assert!(check_label("a_b").is_err());
        assert!(check_label("-a").is_err());
        assert!(check_label("").is_err());
    }

    #[test]
    fn local_is_refused() {
        assert!(check_domain("home.local").unwrap_err().contains(".local"));
        assert!(check_domain("home.arpa").is_ok());
    }

    #[test]
    fn jail_names() {
        assert!(check_jail_name("clawdiegit").is_ok());
        assert!(check_jail_name("clawdie-git").is_err());
        assert!(check_jail_name("clawdie_git").is_err());
        assert!(check_jail_name("123").is_err());
        assert!(check_jail_name("abcdefghijkl").is_err());
    }

    proptest! {
        #[test]
        fn accepted_jail_names_make_valid_epairs(name in "\\PC{0,20}") {
            if check_jail_name(&name).is_ok() {
                let epair = format!("e0a_{name}");
                prop_assert!(epair.len() <= 15);
                prop_assert!(epair.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
            }
        }

        #[test]
        fn accepted_labels_are_rfc1123(label in "\\PC{0,70}") {
            if check_label(&label).is_ok() {
                prop_assert!(!label.is_empty() && label.len() <= 63);
                prop_assert!(label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
            }
        }
    }
}
