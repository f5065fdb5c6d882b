//! The QR payload of ESP's provisioning apps (fact sheet §8.7): how a device tells a phone its name, transport
//! and credentials. Not part of the wire protocol, but every ESP app reads exactly this JSON.

/// The transport the app should use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrTransport {
    /// Wi-Fi SoftAP / HTTP.
    Softap,
    /// Bluetooth LE.
    Ble,
}

impl QrTransport {
    fn name(self) -> &'static str {
        match self {
            Self::Softap => "softap",
            Self::Ble => "ble",
        }
    }
}

/// `{"ver":"v1","name":…,"username":…,"pop":…,"transport":…}` in exactly this field order; `username` only for
/// security 2, `pop` (the PoP, or the security 2 password) only when there is one. It carries a secret: show it
/// to the person provisioning, never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct QrPayload<'a> {
    name: &'a str,
    username: Option<&'a str>,
    pop: Option<&'a str>,
    transport: QrTransport,
}

impl<'a> QrPayload<'a> {
    /// The payload for a device named `name`.
    pub fn new(name: &'a str, username: Option<&'a str>, pop: Option<&'a str>, transport: QrTransport) -> Self {
        Self { name, username, pop, transport }
    }

    /// The JSON text to encode in the QR code. Built by hand because the apps expect this field order.
    pub fn to_json(&self) -> String {
        let quote = |s: &str| serde_json::Value::from(s).to_string();
        let mut json = format!("{{\"ver\":\"v1\",\"name\":{}", quote(self.name));
        if let Some(username) = self.username {
            json.push_str(&format!(",\"username\":{}", quote(username)));
        }
        if let Some(pop) = self.pop {
            json.push_str(&format!(",\"pop\":{}", quote(pop)));
        }
        json.push_str(&format!(",\"transport\":\"{}\"}}", self.transport.name()));
        json
    }
}

impl core::fmt::Debug for QrPayload<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QrPayload")
            .field("name", &self.name)
            .field("username", &self.username)
            .field("pop", &self.pop.map(|_| "<redacted>"))
            .field("transport", &self.transport)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_order_matches_the_esp_apps() {
        let sec2 = QrPayload::new("PROV_123456", Some("wifiprov"), Some("abcd1234"), QrTransport::Softap);
        assert_eq!(
            sec2.to_json(),
            r#"{"ver":"v1","name":"PROV_123456","username":"wifiprov","pop":"abcd1234","transport":"softap"}"#
        );
        let sec1 = QrPayload::new("PROV_X", None, Some("pop"), QrTransport::Ble);
        assert_eq!(sec1.to_json(), r#"{"ver":"v1","name":"PROV_X","pop":"pop","transport":"ble"}"#);
        let sec0 = QrPayload::new("PROV_X", None, None, QrTransport::Softap);
        assert_eq!(sec0.to_json(), r#"{"ver":"v1","name":"PROV_X","transport":"softap"}"#);
        let odd = QrPayload::new("a\"b\\c", None, Some("p\u{1}"), QrTransport::Ble);
        assert_eq!(odd.to_json(), r#"{"ver":"v1","name":"a\"b\\c","pop":"p\u0001","transport":"ble"}"#);
        assert!(!format!("{sec2:?}").contains("abcd1234"));
    }
}
