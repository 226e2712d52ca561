//! Where an HTTP check may go: the origins a spec allows, the addresses no check reaches unless the
//! spec names them, and what a redirect keeps.
//!
//! - `allowedHosts` entries are origins: `https://app.internal`, `http://127.0.0.1:8080`; a bare
//!   host (`app.internal`) stands for its default ports only (http on 80, https on 443). A URL, and
//!   every redirect hop, must match an entry in scheme, host and port.
//! - Whatever a name resolves to, loopback (127.0.0.0/8, ::1, and 0.0.0.0/8 and ::, which reach it)
//!   is reached only through an IP literal or `localhost` named in `allowedHosts`, never through
//!   another name; link-local and metadata addresses (169.254.0.0/16, fe80::/10, AWS's fd00:ec2::/64
//!   with the IMDS at fd00:ec2::254) only when `allowedHosts` names that IP literal; the Lambda
//!   Runtime API (`AWS_LAMBDA_RUNTIME_API`) only by its IP literal with its port, named so. IPv4
//!   addresses written as IPv6 (`::ffff:169.254.169.254`, NAT64 `64:ff9b::a9fe:a9fe`) count as the
//!   IPv4 address they carry.
//! - Names are resolved by [`GuardedResolver`] (reqwest's resolver for the probe), which drops
//!   refused addresses; reqwest does not resolve IP literals, so [`EgressPolicy::check_target`]
//!   judges them before every request and every redirect hop.
//! - A redirect never goes from https to http, and once it leaves the original origin the
//!   request no longer carries credentials: no URL user info, `Authorization`, `Cookie`,
//!   `Proxy-Authorization`, nor the check's `secretHeaders` ([`next_hop`]).

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;

use reqwest::Url;
use serde::Deserialize;

/// A host as a URL names it: an IP literal or a (lower-case) domain name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    Ip(IpAddr),
    Domain(String),
}

impl HostName {
    /// The host of a parsed URL (the parser has already normalised `0x7f.1` to `127.0.0.1`).
    pub fn of(url: &Url) -> HostName {
        let host = url.host_str().unwrap_or("");
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => HostName::Ip(ip),
            Err(_) => HostName::Domain(host.to_ascii_lowercase()),
        }
    }
}

/// One `allowedHosts` entry: `scheme://host[:port]` names one origin; a bare host names two
/// (http on 80, https on 443).
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedHost {
    written: String,
    /// `None` for a bare host: http or https.
    scheme: Option<String>,
    host: HostName,
    /// `None` for a bare host: the scheme's default port. An entry with a scheme always has one.
    port: Option<u16>,
}

impl fmt::Debug for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.written)
    }
}

fn default_port(scheme: &str) -> u16 {
    if scheme == "https" {
        443
    } else {
        80
    }
}

impl AllowedHost {
    /// Parses an entry; the error quotes it redacted and says how to write it.
    pub fn parse(entry: &str) -> Result<AllowedHost, String> {
        let written = entry.trim();
        let shown = pipewarden_shared::logging::redact_url(written);
        if written.is_empty() {
            return Err("allowedHosts has an empty entry".to_string());
        }
        if written.contains("://") {
            let url = Url::parse(written).map_err(|e| format!("allowedHosts entry {shown:?} is not a URL: {e}"))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(format!("allowedHosts entry {shown:?} must be http or https"));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(format!("allowedHosts entry {shown:?} must not carry credentials"));
            }
            if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "allowedHosts entry {shown:?} is scheme, host and port only (no path, query or fragment)"
                ));
            }
            return Ok(AllowedHost {
                written: written.to_string(),
                scheme: Some(url.scheme().to_string()),
                host: HostName::of(&url),
                port: url.port_or_known_default(),
            });
        }
        if written.contains(['/', '?', '#', '@', '\\']) {
            return Err(format!(
                "allowedHosts entry {shown:?} is a host (`app.internal`) or scheme, host and port (`https://app.internal:8443`)"
            ));
        }
        // An IP literal; IPv6 with or without brackets.
        let inside = written.strip_prefix('[').and_then(|w| w.strip_suffix(']')).unwrap_or(written);
        if let Ok(ip) = inside.parse::<IpAddr>() {
            return Ok(AllowedHost { written: written.to_string(), scheme: None, host: HostName::Ip(ip), port: None });
        }
        let url = Url::parse(&format!("http://{written}/"))
            .map_err(|e| format!("allowedHosts entry {shown:?} is not a host: {e}"))?;
        if written.contains(':') {
            return Err(format!(
                "allowedHosts entry {shown:?} has a port but no scheme: write \"http://{written}\" or \"https://{written}\" (a bare host means http on 80 and https on 443)"
            ));
        }
        Ok(AllowedHost { written: written.to_string(), scheme: None, host: HostName::of(&url), port: None })
    }

    fn matches(&self, url: &Url) -> bool {
        let scheme = url.scheme();
        (scheme == "http" || scheme == "https")
            && self.scheme.as_deref().is_none_or(|s| s == scheme)
            && self.host == HostName::of(url)
            && url.port_or_known_default() == Some(self.port.unwrap_or_else(|| default_port(scheme)))
    }
}

/// The spec's `allowedHosts`: the only origins HTTP checks call or follow redirects to.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts(Vec<AllowedHost>);

impl fmt::Debug for AllowedHosts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.0).finish()
    }
}

impl<'de> Deserialize<'de> for AllowedHosts {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries = Vec::<String>::deserialize(deserializer)?;
        AllowedHosts::parse(&entries).map_err(serde::de::Error::custom)
    }
}

impl AllowedHosts {
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<AllowedHosts, String> {
        entries.iter().map(|e| AllowedHost::parse(e.as_ref())).collect::<Result<_, _>>().map(AllowedHosts)
    }

    /// Whether a check may call this URL (its scheme, host and port); the error says which entry
    /// would allow it.
    pub fn permit(&self, url: &Url) -> Result<(), String> {
        if self.0.iter().any(|entry| entry.matches(url)) {
            return Ok(());
        }
        let origin = origin_text(url);
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(format!("{origin} is not http or https"));
        }
        let host = HostName::of(url);
        let same_host: Vec<&AllowedHost> = self.0.iter().filter(|e| e.host == host).collect();
        let why = match same_host.iter().find(|e| e.scheme.is_none()) {
            Some(bare) => format!(
                " (the bare host {:?} allows only http on port 80 and https on 443; entries are scheme, host and port)",
                bare.written
            ),
            None if !same_host.is_empty() => " (entries are scheme, host and port)".to_string(),
            None => String::new(),
        };
        Err(format!("{origin} is not in allowedHosts {self:?}{why}: the entry {origin:?} would allow it"))
    }

    /// Whether an entry names this IP literal (in any of its forms) as its host.
    fn names_ip(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|e| matches!(e.host, HostName::Ip(named) if canonical(named) == ip))
    }

    /// Whether an entry names `localhost`.
    fn names_localhost(&self) -> bool {
        self.0.iter().any(|e| matches!(&e.host, HostName::Domain(d) if is_localhost(d)))
    }

    /// Whether an entry names this IP literal with this port written out.
    fn names_with_port(&self, ip: IpAddr, port: u16) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|e| {
            e.scheme.is_some()
                && e.port == Some(port)
                && matches!(e.host, HostName::Ip(named) if canonical(named) == ip)
        })
    }
}

/// `scheme://host[:port]`, the port only when it is not the scheme's default: what allowedHosts
/// entries are written as, and all of a URL an error about where it goes may quote.
pub fn origin_text(url: &Url) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{}{port}", url.scheme(), url.host_str().unwrap_or(""))
}

fn is_localhost(name: &str) -> bool {
    name.trim_end_matches('.').eq_ignore_ascii_case("localhost")
}

/// The address an IPv6 address carries when it is IPv4 underneath (`::ffff:a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`); any other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let carried = || IpAddr::V4(Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8));
            // NAT64 (64:ff9b::/96) and the deprecated IPv4-compatible form (::a.b.c.d, but not ::
            // or ::1) carry an IPv4 address in the last 32 bits.
            if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || (s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1)) {
                return carried();
            }
            // 6to4 (2002::/16) carries it in bits 16-47.
            if s[0] == 0x2002 {
                return IpAddr::V4(Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8));
            }
            ip
        }
        IpAddr::V4(_) => ip,
    }
}

/// Addresses a check reaches only when the spec names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarded {
    /// 127.0.0.0/8, ::1, and 0.0.0.0/8 and ::, which connect to this machine too.
    Loopback,
    /// 169.254.0.0/16 (the EC2 and ECS metadata endpoints among them), fe80::/10.
    LinkLocal,
    /// AWS's IPv6 service addresses, fd00:ec2::/64 (the IMDS at fd00:ec2::254).
    Metadata,
}

impl Guarded {
    pub fn of(ip: IpAddr) -> Option<Guarded> {
        match canonical(ip) {
            IpAddr::V4(v4) if v4.is_loopback() || v4.octets()[0] == 0 => Some(Guarded::Loopback),
            IpAddr::V4(v4) if v4.is_link_local() => Some(Guarded::LinkLocal),
            IpAddr::V4(_) => None,
            IpAddr::V6(v6) if v6.is_loopback() || v6.is_unspecified() => Some(Guarded::Loopback),
            IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => Some(Guarded::LinkLocal),
            IpAddr::V6(v6) if v6.segments()[..4] == [0xfd00, 0x0ec2, 0, 0] => Some(Guarded::Metadata),
            IpAddr::V6(_) => None,
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Guarded::Loopback => "loopback",
            Guarded::LinkLocal => "link-local, where the instance metadata lives",
            Guarded::Metadata => "AWS's metadata and service addresses",
        }
    }
}

/// The Lambda Runtime API's address, as `AWS_LAMBDA_RUNTIME_API` gives it (`127.0.0.1:9001`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeApi {
    written: String,
    host: String,
    ip: Option<IpAddr>,
    port: u16,
}

impl RuntimeApi {
    pub fn parse(text: &str) -> Result<RuntimeApi, String> {
        let written = text.trim().to_string();
        if let Ok(addr) = written.parse::<SocketAddr>() {
            return Ok(RuntimeApi { host: addr.ip().to_string(), ip: Some(addr.ip()), port: addr.port(), written });
        }
        let (host, port) = written
            .rsplit_once(':')
            .and_then(|(h, p)| Some((h.trim_start_matches('[').trim_end_matches(']'), p.parse::<u16>().ok()?)))
            .ok_or_else(|| format!("AWS_LAMBDA_RUNTIME_API {written:?} is not host:port"))?;
        Ok(RuntimeApi { host: host.to_ascii_lowercase(), ip: host.parse().ok(), port, written })
    }

    /// Whether a connection to `ip:port` reaches it (any loopback address does when it listens on one).
    fn is_at(&self, ip: IpAddr, port: u16) -> bool {
        let Some(api) = self.ip else { return false };
        let (api, ip) = (canonical(api), canonical(ip));
        port == self.port
            && (api == ip
                || (Guarded::of(api) == Some(Guarded::Loopback) && Guarded::of(ip) == Some(Guarded::Loopback)))
    }
}

/// Who decides where a check's requests may go: the spec's `allowedHosts` and the Runtime API's
/// address.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    pub allowed: AllowedHosts,
    pub runtime_api: Option<RuntimeApi>,
}

impl EgressPolicy {
    /// Judged before every request and every redirect hop: the origin is allowed, and an IP literal
    /// (which reqwest connects to without resolving) or `localhost` is no Runtime API.
    pub fn check_target(&self, url: &Url) -> Result<(), String> {
        self.allowed.permit(url)?;
        let Some(api) = &self.runtime_api else { return Ok(()) };
        let port = url.port_or_known_default().unwrap_or(0);
        let reaches_api = match HostName::of(url) {
            HostName::Ip(ip) => api.is_at(ip, port) && !self.allowed.names_with_port(ip, port),
            HostName::Domain(name) => {
                port == api.port
                    && (name == api.host
                        || (is_localhost(&name) && api.ip.and_then(Guarded::of) == Some(Guarded::Loopback)))
            }
        };
        if reaches_api {
            return Err(format!(
                "{} is the Lambda Runtime API (AWS_LAMBDA_RUNTIME_API {}): a check reaches it only by its IP literal with its port, named so in allowedHosts",
                origin_text(url),
                api.written
            ));
        }
        Ok(())
    }

    /// Whether a check may connect to `ip`, which `name` resolved to.
    pub fn check_resolved(&self, name: &str, ip: IpAddr) -> Result<(), String> {
        if let Some(api) = self.runtime_api.as_ref().and_then(|a| a.ip) {
            if canonical(api) == canonical(ip) && !is_localhost(name) {
                return Err(format!("{name} resolves to {ip}, the Lambda Runtime API's address"));
            }
        }
        let refused = match Guarded::of(ip) {
            None => false,
            Some(Guarded::Loopback) => !(is_localhost(name) && self.allowed.names_localhost()),
            Some(_) => !self.allowed.names_ip(ip),
        };
        if refused {
            let guarded = Guarded::of(ip).map(Guarded::describe).unwrap_or_default();
            let only = match Guarded::of(ip) {
                Some(Guarded::Loopback) => {
                    "reached only through an IP literal or localhost named in allowedHosts".to_string()
                }
                _ => format!("reached only when allowedHosts names {} itself", canonical(ip)),
            };
            return Err(format!("{name} resolves to {ip} ({guarded}), {only}"));
        }
        Ok(())
    }
}

/// A lookup's answer: the addresses of a name, or why there are none.
pub type Lookup = Pin<Box<dyn Future<Output = Result<Vec<IpAddr>, String>> + Send>>;

/// How names become addresses: the system's resolver in production ([`SystemLookup`]), a fixed
/// table in tests ([`StaticLookup`]).
pub trait NameLookup: Send + Sync + 'static {
    fn lookup(&self, name: &str) -> Lookup;
}

/// The system's resolver (`getaddrinfo`, through tokio).
pub struct SystemLookup;

impl NameLookup for SystemLookup {
    fn lookup(&self, name: &str) -> Lookup {
        let name = name.to_string();
        Box::pin(async move {
            tokio::net::lookup_host((name.as_str(), 0))
                .await
                .map(|addrs| addrs.map(|a| a.ip()).collect())
                .map_err(|e| format!("{name}: {e}"))
        })
    }
}

/// Names mapped to addresses by hand, for tests: no DNS, no /etc/hosts. A name not in the map
/// does not resolve.
#[derive(Debug, Clone, Default)]
pub struct StaticLookup(HashMap<String, Vec<IpAddr>>);

impl StaticLookup {
    pub fn new<'a>(names: impl IntoIterator<Item = (&'a str, &'a [IpAddr])>) -> Self {
        Self(names.into_iter().map(|(name, ips)| (name.to_ascii_lowercase(), ips.to_vec())).collect())
    }
}

impl NameLookup for StaticLookup {
    fn lookup(&self, name: &str) -> Lookup {
        let found = self.0.get(&name.to_ascii_lowercase()).cloned().ok_or_else(|| format!("{name}: unknown name"));
        Box::pin(std::future::ready(found))
    }
}

/// Why a request was not sent: a refused address (reported as such, not as a failed connection).
#[derive(Debug)]
pub struct Refused(pub String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// reqwest's resolver for the probe: resolves with `lookup`, then drops every address the policy
/// refuses; a name with nothing left fails with [`Refused`].
pub struct GuardedResolver {
    pub lookup: Arc<dyn NameLookup>,
    pub policy: Arc<EgressPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let name = name.as_str().to_string();
        let (lookup, policy) = (self.lookup.clone(), self.policy.clone());
        Box::pin(async move {
            let found = lookup.lookup(&name).await?;
            let mut kept = Vec::new();
            let mut refused = Vec::new();
            for ip in found {
                match policy.check_resolved(&name, ip) {
                    // Port 0: the connector puts the URL's port in.
                    Ok(()) => kept.push(SocketAddr::new(ip, 0)),
                    Err(problem) => refused.push(problem),
                }
            }
            if kept.is_empty() {
                let problem = match refused.is_empty() {
                    true => format!("{name} has no address"),
                    false => refused.join("; "),
                };
                return Err(Box::new(Refused(problem)) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The most redirects one attempt follows.
pub const MAX_REDIRECTS: usize = 5;

/// One request of an attempt: the first, or one a redirect leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    pub url: Url,
    pub method: reqwest::Method,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// Still on the first request's origin all along: credentials still go with the request.
    pub with_credentials: bool,
}

/// Headers that are credentials, whatever the check says.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// The request a redirect leads to, as browsers make it: 303 (and 301 or 302 after a POST) goes on
/// as a GET without the body; 307 and 308 repeat the request. Refused: a Location that is not a
/// URL or not http(s), and https to http. Leaving `first`'s origin drops the user info, the
/// credential headers and `secret_headers` for good (a later hop back does not restore them).
pub fn next_hop(first: &Url, hop: &Hop, status: u16, location: &str, secret_headers: &[String]) -> Result<Hop, String> {
    let mut url = hop.url.join(location).map_err(|_| "redirect refused: its Location is not a URL".to_string())?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(format!("redirect refused: to a {} URL", url.scheme()));
    }
    if hop.url.scheme() == "https" && url.scheme() == "http" {
        return Err(format!(
            "redirect refused: from https to http ({} to {})",
            origin_text(&hop.url),
            origin_text(&url)
        ));
    }
    let mut next = Hop { url: url.clone(), ..hop.clone() };
    let becomes_get = match status {
        303 => hop.method != reqwest::Method::HEAD,
        301 | 302 => hop.method == reqwest::Method::POST,
        _ => false,
    };
    if becomes_get {
        next.method = reqwest::Method::GET;
        next.body = None;
        next.headers.retain(|(name, _)| !name.to_ascii_lowercase().starts_with("content-"));
    }
    next.with_credentials = hop.with_credentials && url.origin() == first.origin();
    if next.with_credentials {
        // A Location without user info on the same origin keeps the first request's.
        if url.username().is_empty() && url.password().is_none() {
            let _ = url.set_username(first.username());
            let _ = url.set_password(first.password());
        }
    } else {
        let _ = url.set_username("");
        let _ = url.set_password(None);
        next.headers.retain(|(name, _)| {
            let name = name.to_ascii_lowercase();
            !CREDENTIAL_HEADERS.contains(&name.as_str())
                && name != "host"
                && !secret_headers.iter().any(|s| s.eq_ignore_ascii_case(&name))
        });
    }
    next.url = url;
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    fn allowed(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(entries).unwrap()
    }

    #[test]
    fn an_entry_is_an_origin_and_a_bare_host_its_default_ports() {
        let hosts = allowed(&["app.internal", "https://api.internal", "http://127.0.0.1:8080", "[::1]", "LOCALHOST"]);
        for ok in [
            "http://app.internal/x",
            "https://app.internal/x",
            "http://app.internal:80/",
            "https://APP.internal:443/",
            "https://api.internal/",
            "https://api.internal:443/",
            "http://127.0.0.1:8080/health",
            "http://[::1]/",
            "http://localhost/",
        ] {
            assert!(hosts.permit(&url(ok)).is_ok(), "{ok}");
        }
        for refused in [
            "http://app.internal:8080/",
            "https://app.internal:80/",
            "http://api.internal/",
            "https://api.internal:8443/",
            "http://127.0.0.1/",
            "https://127.0.0.1:8080/",
            "http://127.0.0.2:8080/",
            "http://[::1]:8080/",
            "http://other.internal/",
        ] {
            assert!(hosts.permit(&url(refused)).is_err(), "{refused}");
        }
    }

    #[test]
    fn a_refused_port_says_which_entry_would_allow_it() {
        let problem = allowed(&["127.0.0.1"]).permit(&url("http://127.0.0.1:8080/health?token=x")).unwrap_err();
        assert_eq!(
            problem,
            "http://127.0.0.1:8080 is not in allowedHosts [\"127.0.0.1\"] (the bare host \"127.0.0.1\" allows only http on port 80 and https on 443; entries are scheme, host and port): the entry \"http://127.0.0.1:8080\" would allow it"
        );
        let problem = allowed(&["https://a.internal"]).permit(&url("http://a.internal/")).unwrap_err();
        assert!(
            problem.ends_with("(entries are scheme, host and port): the entry \"http://a.internal\" would allow it"),
            "{problem}"
        );
    }

    #[test]
    fn bad_entries_are_explained_without_their_secrets() {
        let problem = |entry: &str| AllowedHost::parse(entry).unwrap_err();
        assert!(problem("127.0.0.1:8080").contains("has a port but no scheme: write \"http://127.0.0.1:8080\""));
        assert!(problem("ftp://a").contains("must be http or https"));
        assert!(problem("http://a/health").contains("scheme, host and port only"));
        assert!(problem("http://a/?x=1").contains("scheme, host and port only"));
        let with_credentials = problem("http://user:pw-secret@a");
        assert!(with_credentials.contains("must not carry credentials"), "{with_credentials}");
        assert!(!with_credentials.contains("pw-secret"), "{with_credentials}");
        assert!(problem("a b").contains("is not a host"));
        assert!(problem("").contains("empty entry"));
        assert!(AllowedHost::parse("http://a/").is_ok(), "a trailing slash is still just the origin");
        assert!(AllowedHost::parse("::1").is_ok());
    }

    #[test]
    fn ipv4_inside_ipv6_is_judged_as_ipv4() {
        assert_eq!(canonical("::ffff:169.254.169.254".parse().unwrap()), "169.254.169.254".parse::<IpAddr>().unwrap());
        assert_eq!(canonical("64:ff9b::a9fe:a9fe".parse().unwrap()), "169.254.169.254".parse::<IpAddr>().unwrap());
        assert_eq!(canonical("::a9fe:a9fe".parse().unwrap()), "169.254.169.254".parse::<IpAddr>().unwrap());
        assert_eq!(canonical("2002:a9fe:a9fe::1".parse().unwrap()), "169.254.169.254".parse::<IpAddr>().unwrap());
        assert_eq!(canonical("::1".parse().unwrap()), "::1".parse::<IpAddr>().unwrap(), "loopback stays itself");
        assert_eq!(canonical("::".parse().unwrap()), "::".parse::<IpAddr>().unwrap());
        for (ip, guarded) in [
            ("127.0.0.1", Some(Guarded::Loopback)),
            ("127.8.9.10", Some(Guarded::Loopback)),
            ("0.0.0.0", Some(Guarded::Loopback)),
            ("::", Some(Guarded::Loopback)),
            ("::1", Some(Guarded::Loopback)),
            ("::ffff:127.0.0.1", Some(Guarded::Loopback)),
            ("169.254.169.254", Some(Guarded::LinkLocal)),
            ("169.254.170.2", Some(Guarded::LinkLocal)),
            ("::ffff:169.254.169.254", Some(Guarded::LinkLocal)),
            ("fe80::1", Some(Guarded::LinkLocal)),
            ("febf::1", Some(Guarded::LinkLocal)),
            ("fd00:ec2::254", Some(Guarded::Metadata)),
            ("fd00:ec2::23", Some(Guarded::Metadata)),
            ("10.0.0.5", None),
            ("fd00:ec3::254", None),
            ("2600:1f18::1", None),
        ] {
            assert_eq!(Guarded::of(ip.parse().unwrap()), guarded, "{ip}");
        }
    }

    fn policy(entries: &[&str], runtime_api: Option<&str>) -> EgressPolicy {
        EgressPolicy { allowed: allowed(entries), runtime_api: runtime_api.map(|a| RuntimeApi::parse(a).unwrap()) }
    }

    #[test]
    fn a_name_never_reaches_loopback_except_localhost() {
        let policy = policy(&["app.internal", "127.0.0.1", "localhost"], None);
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(policy.check_resolved("localhost", loopback).is_ok());
        assert!(policy.check_resolved("localhost", "::1".parse().unwrap()).is_ok());
        let problem = policy.check_resolved("app.internal", loopback).unwrap_err();
        assert!(problem.contains("app.internal resolves to 127.0.0.1 (loopback)"), "{problem}");
        for ip in ["::1", "::ffff:127.0.0.1", "0.0.0.0", "::"] {
            assert!(policy.check_resolved("app.internal", ip.parse().unwrap()).is_err(), "{ip}");
        }
        assert!(self::policy(&["app.internal"], None).check_resolved("localhost", loopback).is_err());
        assert!(policy.check_resolved("app.internal", "10.0.0.5".parse().unwrap()).is_ok());
    }

    #[test]
    fn link_local_and_metadata_only_when_the_literal_is_named() {
        let closed = policy(&["app.internal"], None);
        for ip in ["169.254.169.254", "::ffff:169.254.169.254", "fe80::1", "fd00:ec2::254", "64:ff9b::a9fe:a9fe"] {
            let problem = closed.check_resolved("app.internal", ip.parse().unwrap()).unwrap_err();
            assert!(problem.contains(&format!("app.internal resolves to {ip}")), "{problem}");
        }
        let open = policy(&["app.internal", "169.254.170.2"], None);
        assert!(open.check_resolved("app.internal", "169.254.170.2".parse().unwrap()).is_ok());
        assert!(open.check_resolved("app.internal", "::ffff:169.254.170.2".parse().unwrap()).is_ok());
        assert!(open.check_resolved("app.internal", "169.254.169.254".parse().unwrap()).is_err());
    }

    #[test]
    fn the_runtime_api_only_by_its_literal_and_port() {
        let api = Some("127.0.0.1:9001");
        let named = policy(&["http://127.0.0.1:9001", "http://localhost:9001", "localhost"], api);
        assert!(named.check_target(&url("http://127.0.0.1:9001/2018-06-01/runtime/invocation/next")).is_ok());
        let problem = named.check_target(&url("http://localhost:9001/2018-06-01/runtime/invocation/next")).unwrap_err();
        assert!(problem.contains("http://localhost:9001 is the Lambda Runtime API"), "{problem}");
        assert!(named.check_target(&url("http://localhost/")).is_ok(), "localhost on another port");
        // A bare host names no port: on the Runtime API's port it is not enough.
        let bare = policy(&["127.0.0.1"], Some("127.0.0.1:80"));
        assert!(bare.check_target(&url("http://127.0.0.1/")).unwrap_err().contains("Lambda Runtime API"));
        let other_loopback = policy(&["http://127.0.0.2:9001", "http://[::1]:9001"], api);
        assert!(other_loopback.check_target(&url("http://127.0.0.2:9001/")).is_ok(), "named with its port");
        // Not at loopback: a name that resolves to it is refused whatever the port.
        let remote = policy(&["app.internal"], Some("10.1.2.3:9001"));
        let problem = remote.check_resolved("app.internal", "10.1.2.3".parse().unwrap()).unwrap_err();
        assert!(problem.contains("the Lambda Runtime API's address"), "{problem}");
        assert!(RuntimeApi::parse("nonsense").is_err());
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_the_addresses_the_policy_allows() {
        use reqwest::dns::Resolve;
        let ips = |list: &[&str]| list.iter().map(|ip| ip.parse().unwrap()).collect::<Vec<IpAddr>>();
        let mixed = ips(&["169.254.169.254", "10.0.0.5", "::1", "2600:1f18::1"]);
        let guarded = ips(&["169.254.169.254", "127.0.0.1"]);
        let resolver = GuardedResolver {
            lookup: Arc::new(StaticLookup::new([
                ("mixed.test", mixed.as_slice()),
                ("guarded.test", guarded.as_slice()),
            ])),
            policy: Arc::new(policy(&["mixed.test", "guarded.test"], None)),
        };
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        let kept: Vec<SocketAddr> = resolver.resolve(name("mixed.test")).await.unwrap().collect();
        assert_eq!(kept, vec!["10.0.0.5:0".parse().unwrap(), "[2600:1f18::1]:0".parse().unwrap()]);
        let Err(refused) = resolver.resolve(name("guarded.test")).await else { panic!("resolved") };
        assert!(refused.downcast_ref::<Refused>().is_some());
        assert_eq!(
            refused.to_string(),
            "guarded.test resolves to 169.254.169.254 (link-local, where the instance metadata lives), reached only when allowedHosts names 169.254.169.254 itself; guarded.test resolves to 127.0.0.1 (loopback), reached only through an IP literal or localhost named in allowedHosts"
        );
        assert!(resolver.resolve(name("unknown.test")).await.is_err());
    }

    fn hop(text: &str, method: reqwest::Method) -> Hop {
        Hop {
            url: url(text),
            method,
            headers: vec![
                ("Authorization".into(), "Bearer b".into()),
                ("Cookie".into(), "c".into()),
                ("Proxy-Authorization".into(), "p".into()),
                ("X-Api-Key".into(), "k".into()),
                ("X-Trace".into(), "t".into()),
                ("Content-Type".into(), "text/plain".into()),
            ],
            body: Some("form".into()),
            with_credentials: true,
        }
    }

    fn names(hop: &Hop) -> Vec<&str> {
        hop.headers.iter().map(|(n, _)| n.as_str()).collect()
    }

    #[test]
    fn leaving_the_origin_drops_credentials_for_good() {
        let first = url("https://u:pw@a.internal/start");
        let secret = vec!["x-api-key".to_string()];
        let start = hop(first.as_str(), reqwest::Method::GET);
        let same = next_hop(&first, &start, 302, "/next", &secret).unwrap();
        assert!(same.with_credentials);
        assert_eq!(same.url.as_str(), "https://u:pw@a.internal/next");
        assert_eq!(names(&same).len(), 6);
        let absolute_same = next_hop(&first, &start, 307, "https://a.internal:443/again", &secret).unwrap();
        assert_eq!(absolute_same.url.as_str(), "https://u:pw@a.internal/again", "same origin keeps the user info");

        let away = next_hop(&first, &start, 302, "https://b.internal/landing", &secret).unwrap();
        assert!(!away.with_credentials);
        assert_eq!(away.url.as_str(), "https://b.internal/landing");
        assert_eq!(names(&away), vec!["X-Trace", "Content-Type"]);
        let back = next_hop(&first, &away, 302, "https://a.internal/home", &secret).unwrap();
        assert!(!back.with_credentials, "once dropped, never restored");
        assert_eq!(back.url.as_str(), "https://a.internal/home");
        let other_port = next_hop(&first, &start, 302, "https://u:pw@a.internal:8443/", &secret).unwrap();
        assert_eq!(other_port.url.as_str(), "https://a.internal:8443/", "another port is another origin");
        assert_eq!(names(&other_port), vec!["X-Trace", "Content-Type"]);
    }

    #[test]
    fn https_never_redirects_to_http() {
        let first = url("https://a.internal/");
        let start = hop(first.as_str(), reqwest::Method::GET);
        let problem = next_hop(&first, &start, 301, "http://a.internal/", &[]).unwrap_err();
        assert_eq!(problem, "redirect refused: from https to http (https://a.internal to http://a.internal)");
        assert!(next_hop(&first, &start, 302, "ftp://a.internal/", &[]).unwrap_err().contains("to a ftp URL"));
        let plain = hop("http://a.internal/", reqwest::Method::GET);
        assert!(next_hop(&url("http://a.internal/"), &plain, 302, "https://a.internal/", &[]).is_ok(), "upgrade");
    }

    #[test]
    fn methods_change_as_browsers_change_them() {
        let first = url("http://a.internal/submit");
        let post = hop(first.as_str(), reqwest::Method::POST);
        for (status, method, body) in [
            (301, "GET", None),
            (302, "GET", None),
            (303, "GET", None),
            (307, "POST", Some("form")),
            (308, "POST", Some("form")),
        ] {
            let next = next_hop(&first, &post, status, "/done", &[]).unwrap();
            assert_eq!((next.method.as_str(), next.body.as_deref()), (method, body), "{status}");
            assert_eq!(names(&next).contains(&"Content-Type"), body.is_some(), "{status}");
        }
        let put = hop(first.as_str(), reqwest::Method::PUT);
        assert_eq!(next_hop(&first, &put, 302, "/done", &[]).unwrap().method, reqwest::Method::PUT);
        assert_eq!(next_hop(&first, &put, 303, "/done", &[]).unwrap().method, reqwest::Method::GET);
        let head = hop(first.as_str(), reqwest::Method::HEAD);
        assert_eq!(next_hop(&first, &head, 303, "/done", &[]).unwrap().method, reqwest::Method::HEAD);
    }
}
