//! Parsing ping's summary line.

/// What a ping run reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingResult {
    /// Echo requests sent ("N packets transmitted").
    pub sent: u32,
    /// Echo replies received ("M received").
    pub received: u32,
}

impl PingResult {
    /// True if at least one request was sent and every one was answered.
    pub fn all_received(&self) -> bool {
        self.sent > 0 && self.received >= self.sent
    }
}

fn leading_number(s: &str) -> Option<u32> {
    let s = s.trim_start();
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Finds and parses the summary line of iputils (or busybox) ping, e.g.
/// `3 packets transmitted, 3 received, 0% packet loss, time 402ms`.
/// Returns `None` if there is no such line; never panics.
pub fn parse_ping_summary(output: &str) -> Option<PingResult> {
    let line = output.lines().find(|l| l.contains("packets transmitted"))?;
    let mut parts = line.split(',');
    let sent = leading_number(parts.next()?)?;
    let received = parts
        .find(|p| p.contains("received"))
        .and_then(leading_number)?;
    Some(PingResult { sent, received })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_iputils() {
        let out = "PING 198.18.0.2 (198.18.0.2) 56(84) bytes of data.\n\
            64 bytes from 198.18.0.2: icmp_seq=1 ttl=64 time=0.05 ms\n\n\
            --- 198.18.0.2 ping statistics ---\n\
            3 packets transmitted, 3 received, 0% packet loss, time 402ms\n\
            rtt min/avg/max/mdev = 0.030/0.040/0.050/0.010 ms\n";
        assert_eq!(
            parse_ping_summary(out),
            Some(PingResult {
                sent: 3,
                received: 3
            })
        );
    }

    #[test]
    fn parses_loss_and_errors() {
        let out = "--- x ping statistics ---\n\
            4 packets transmitted, 0 received, +4 errors, 100% packet loss, time 3060ms\n";
        let r = parse_ping_summary(out).unwrap();
        assert_eq!(
            r,
            PingResult {
                sent: 4,
                received: 0
            }
        );
        assert!(!r.all_received());
    }

    #[test]
    fn parses_busybox() {
        let out = "2 packets transmitted, 1 packets received, 50% packet loss\n";
        assert_eq!(
            parse_ping_summary(out),
            Some(PingResult {
                sent: 2,
                received: 1
            })
        );
    }

    #[test]
    fn odd_output_is_none() {
        for out in [
            "",
            "connect: Network is unreachable",
            "packets transmitted",
            "x packets transmitted, y received",
            "99999999999999999999 packets transmitted, 1 received",
            "3 packets transmitted",
            "\u{1F600} packets transmitted, \u{1F600} received",
        ] {
            assert_eq!(parse_ping_summary(out), None, "{out:?}");
        }
    }
}
