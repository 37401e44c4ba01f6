//! Bearer tokens, tenants and scopes.
//!
//! The tokens file holds one token per line, `NAME TENANT SCOPES SHA256HEX`, with `#`
//! comments: the scopes a comma list of `read`, `write`, `work`, `admin`, the last field the
//! lowercase hex SHA-256 of the token. Only hashes are stored; a presented token is hashed and
//! compared in constant time. Without a tokens file (loopback only) every request acts as
//! tenant `default` with every scope.

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Read jobs, definitions, data, logs, stats.
    Read,
    /// Create, cancel, restart, delete jobs; upload data; manage definitions.
    Write,
    /// Claim jobs and report on them (workers).
    Work,
    /// Everything, in every tenant.
    Admin,
}

impl Permission {
    fn parse(text: &str) -> Option<Permission> {
        match text {
            "read" => Some(Permission::Read),
            "write" => Some(Permission::Write),
            "work" => Some(Permission::Work),
            "admin" => Some(Permission::Admin),
            _ => None,
        }
    }

    /// The scope a request of `method` needs on a job API: a GET (or HEAD) reads, every
    /// other method writes.
    pub(crate) fn of_method(method: &http::Method) -> Permission {
        if matches!(*method, http::Method::GET | http::Method::HEAD) {
            Permission::Read
        } else {
            Permission::Write
        }
    }

    /// The name used in the tokens file.
    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Read => "read",
            Permission::Write => "write",
            Permission::Work => "work",
            Permission::Admin => "admin",
        }
    }
}

/// Who is calling: a token's name, its tenant and what it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's name (recorded as `created_by`, OCAPI `client_id`).
    pub name: String,
    /// The tenant it acts in.
    pub tenant: String,
    permissions: Vec<Permission>,
}

impl Principal {
    /// The caller when no tokens file is configured: tenant `default`, every permission.
    pub fn anonymous_local() -> Principal {
        Principal {
            name: "local".into(),
            tenant: jobstore::DEFAULT_TENANT.into(),
            permissions: vec![Permission::Admin],
        }
    }

    /// Whether the principal holds `permission` (admin holds every one).
    pub fn may(&self, permission: Permission) -> bool {
        self.permissions.contains(&Permission::Admin) || self.permissions.contains(&permission)
    }

    /// Refuses with 403 `forbidden` unless the principal holds `permission`. Each dialect
    /// renders the refusal in its own fault shape.
    ///
    /// # Errors
    /// The 403 answer.
    pub fn require(&self, permission: Permission) -> Result<(), crate::ApiError> {
        if self.may(permission) {
            Ok(())
        } else {
            Err(crate::ApiError::new(
                crate::ErrorKind::Forbidden,
                format!(
                    "token `{}` lacks the `{}` scope",
                    self.name,
                    permission.as_str()
                ),
            ))
        }
    }

    /// Whether the principal crosses tenants.
    pub fn is_admin(&self) -> bool {
        self.permissions.contains(&Permission::Admin)
    }

    /// The store scope this principal acts in.
    pub fn scope(&self) -> jobstore::Scope {
        if self.is_admin() {
            jobstore::Scope::All
        } else {
            jobstore::Scope::Tenant(self.tenant.clone())
        }
    }
}

struct TokenEntry {
    principal: Principal,
    hash: [u8; 32],
}

/// The parsed tokens file.
#[derive(Default)]
pub struct Tokens {
    entries: Vec<TokenEntry>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("count", &self.entries.len())
            .finish()
    }
}

/// Why a tokens file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("cannot read tokens file: {0}")]
    Io(#[source] std::io::Error),
    /// A line is malformed.
    #[error("tokens file line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

impl Tokens {
    /// Reads and checks a tokens file.
    ///
    /// # Errors
    /// [`TokensError`] naming the first bad line.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(TokensError::Io)?;
        Tokens::parse(&text)
    }

    /// Parses the text of a tokens file.
    ///
    /// # Errors
    /// [`TokensError::Line`] naming the first bad line.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |reason: String| TokensError::Line {
                line: index + 1,
                reason,
            };
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [name, tenant, scopes, hash] = fields.as_slice() else {
                return Err(bad(format!(
                    "expected `NAME TENANT SCOPES SHA256HEX`, found {} fields",
                    fields.len()
                )));
            };
            let permissions = scopes
                .split(',')
                .map(|s| {
                    Permission::parse(s).ok_or_else(|| {
                        bad(format!(
                            "unknown scope `{s}`; valid scopes: read, write, work, admin"
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let hash = parse_hash(hash).ok_or_else(|| {
                bad("the last field must be 64 lowercase hex digits (SHA-256)".into())
            })?;
            entries.push(TokenEntry {
                principal: Principal {
                    name: (*name).to_owned(),
                    tenant: (*tenant).to_owned(),
                    permissions,
                },
                hash,
            });
        }
        Ok(Tokens { entries })
    }

    /// The principal of a presented token, or `None`. Every entry is compared, in constant
    /// time each, so the time taken does not tell which one matched.
    pub fn authenticate(&self, token: &str) -> Option<Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for entry in &self.entries {
            if constant_time_eq(&presented, &entry.hash) && found.is_none() {
                found = Some(entry.principal.clone());
            }
        }
        found
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64
        || !text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    let mut out = [0_u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let mut diff = 0_u8;
    for (x, y) in a.iter().zip(b.iter()) {
        diff |= x ^ y;
    }
    diff == 0
}

/// The lowercase hex SHA-256 of a token, as the tokens file stores it.
pub fn hash_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(64);
    for byte in digest {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// The line for a new token in the tokens file.
pub fn token_line(name: &str, tenant: &str, scopes: &[Permission], token: &str) -> String {
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    format!("{name} {tenant} {} {}", scopes.join(","), hash_token(token))
}

/// Parses a scope list like `read,write`.
///
/// # Errors
/// A message naming the unknown scope.
pub fn parse_scopes(text: &str) -> Result<Vec<Permission>, String> {
    text.split(',')
        .map(|s| {
            Permission::parse(s.trim()).ok_or_else(|| {
                format!("unknown scope `{s}`; valid scopes: read, write, work, admin")
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_authenticate_by_hash_with_their_tenant_and_scopes() {
        let line = token_line(
            "ci",
            "acme",
            &[Permission::Read, Permission::Work],
            "s3cret",
        );
        let tokens = Tokens::parse(&format!("# comment\n\n{line}\n")).unwrap();
        let who = tokens.authenticate("s3cret").unwrap();
        assert_eq!(who.name, "ci");
        assert_eq!(who.tenant, "acme");
        assert!(who.may(Permission::Read) && who.may(Permission::Work));
        assert!(!who.may(Permission::Write));
        assert!(tokens.authenticate("s3cret ").is_none());
        assert!(tokens.authenticate("").is_none());
    }

    #[test]
    fn malformed_lines_are_named() {
        for (text, needle) in [
            ("a b c", "found 3 fields"),
            (
                "a b reed 0000000000000000000000000000000000000000000000000000000000000000",
                "reed",
            ),
            ("a b read ABC", "hex"),
        ] {
            let err = Tokens::parse(text)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(err.contains("line 1") && err.contains(needle), "{err}");
        }
    }
}
