//! Lists of IP networks (`10.0.0.0/8`, `::1/128`, `192.0.2.7`) for deciding
//! who may send a PROXY header, who counts as a trusted network, and so on.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetList(Vec<IpNet>);

impl NetList {
    pub fn new(nets: Vec<IpNet>) -> Self {
        NetList(nets)
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Loopback only (`127.0.0.0/8`, `::1`): the default trust of `tandem up`.
    /// This list and `other`'s networks.
    pub fn union(&self, other: &NetList) -> Self {
        let mut v = self.0.clone();
        v.extend(other.0.iter().filter(|n| !self.0.contains(n)));
        NetList(v)
    }

    pub fn loopback() -> Self {
        NetList(vec![
            IpNet::from_str("127.0.0.0/8").unwrap_or_default(),
            IpNet::from_str("::1/128").unwrap_or_default(),
        ])
    }
}

/// `::ffff:192.0.2.1` is 192.0.2.1 for every rule.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl FromStr for NetList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.split([',', ' '])
            .filter(|p| !p.is_empty())
            .map(parse_net)
            .collect::<Result<Vec<_>, _>>()
            .map(NetList)
    }
}

fn parse_net(s: &str) -> Result<IpNet, String> {
    if let Ok(n) = IpNet::from_str(s) {
        return Ok(n.trunc());
    }
    IpAddr::from_str(s)
        .map(IpNet::from)
        .map_err(|_| format!("{s:?} is not an IP address or network (like 10.0.0.0/8 or ::1)"))
}

impl Serialize for NetList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().map(|n| n.to_string()))
    }
}

impl<'de> Deserialize<'de> for NetList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = Vec::<String>::deserialize(d)?;
        items
            .iter()
            .map(|s| parse_net(s))
            .collect::<Result<Vec<_>, _>>()
            .map(NetList)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches() {
        let l: NetList = "10.0.0.0/8, 192.0.2.7 ::1 2001:db8::/32".parse().unwrap();
        for ip in [
            "10.1.2.3",
            "192.0.2.7",
            "::1",
            "2001:db8::5",
            "::ffff:10.9.9.9",
        ] {
            assert!(l.contains(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["11.0.0.1", "192.0.2.8", "::2", "127.0.0.1"] {
            assert!(!l.contains(ip.parse().unwrap()), "{ip}");
        }
        assert!("10.0.0.0/33".parse::<NetList>().is_err());
        assert!("example.com".parse::<NetList>().is_err());
        assert!(NetList::loopback().contains("127.0.0.2".parse().unwrap()));
    }
}
